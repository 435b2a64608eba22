"""Grading throughput: N mixed Homework 1 submissions with 1 and 2 workers, and a stock
``nbgrader autograde`` of the same set for comparison.

    python benchmarks/grading.py [--count 50] [--skip-nbgrader]

The mix cycles through the bank of tests/autograder_bank.py (correct, partly right, usual
mistakes, bad inputs, cheats), leaving out the cases that exist to hit a time limit. Prints a
table and writes grading.json into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

import autograder_bank as bank  # noqa: E402
from autograder.grade import grade_class  # noqa: E402

SLOW_BY_DESIGN = {"cell_never_ends", "cell_ignores_interrupts"}


def write_mix(root: Path, count: int) -> list[str]:
    cases = [case for case in bank.cases() if case.name not in SLOW_BY_DESIGN]
    names = []
    for index in range(count):
        case = cases[index % len(cases)]
        name = f"s{index:03d}_{case.name}"
        folder = root / name
        folder.mkdir(parents=True)
        case.build(folder)
        names.append(name)
    return names


def time_autograder(submissions: Path, out: Path, workers: int) -> tuple[float, float]:
    """Seconds for the whole run, and for the reference run alone (done once per output folder)."""
    start = time.perf_counter()
    grade_class(bank.ASSIGNMENT, submissions, out, workers=workers, progress=False)
    total = time.perf_counter() - start
    reference = float(next((out / ".reference").glob("*/complete")).read_text())
    return total, reference


def time_stock_nbgrader(submissions: Path, names: list[str], course: Path) -> float:
    """A plain nbgrader course: source, release, submitted/STUDENT/ASSIGNMENT/NOTEBOOK."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (course / "source" / bank.ASSIGNMENT).mkdir(parents=True)
    shutil.copy(bank.SOLUTION, course / "source" / bank.ASSIGNMENT / bank.NOTEBOOK)
    common = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    subprocess.run([str(bin_dir / "nbgrader"), "generate_assignment", bank.ASSIGNMENT, "--force", *common],
                   check=True, capture_output=True, env=env, cwd=course)
    students = []
    for name in names:
        notebooks = sorted((submissions / name).glob("*.ipynb"))
        if len(notebooks) != 1:
            continue  # stock nbgrader has no rule for these; they are left out of its timing
        target = course / "submitted" / name / bank.ASSIGNMENT
        target.mkdir(parents=True)
        shutil.copy(notebooks[0], target / bank.NOTEBOOK)
        students.append(name)
    start = time.perf_counter()
    subprocess.run([str(bin_dir / "nbgrader"), "autograde", bank.ASSIGNMENT, "--force", *common,
                    "--ExecutePreprocessor.timeout=60"], capture_output=True, env=env, cwd=course)
    seconds = time.perf_counter() - start
    # nbgrader stops the whole batch at the first notebook it cannot read (invalid JSON, say):
    # count what it actually graded.
    graded = sum(1 for _ in (course / "autograded").glob(f"*/{bank.ASSIGNMENT}/{bank.NOTEBOOK}"))
    return seconds, graded, len(students)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--skip-nbgrader", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grading-benchmark-"))
    names = write_mix(work / "submissions", args.count)
    results = {"submissions": args.count, "cores": os.cpu_count()}
    for workers in (1, 2):
        total, reference = time_autograder(work / "submissions", work / f"out-{workers}", workers)
        results[f"workers_{workers}"] = {"total_seconds": round(total, 1), "reference_seconds": round(reference, 1),
                                         "seconds_per_submission": round((total - reference) / args.count, 2)}
        print(f"autograder, {workers} worker(s): {total:.1f} s for {args.count} "
              f"({(total - reference) / args.count:.2f} s per submission after a {reference:.1f} s reference run)")
    same = (work / "out-1" / "grades.csv").read_text() == (work / "out-2" / "grades.csv").read_text()
    results["identical_grades_1_vs_2_workers"] = same
    print(f"identical grades with 1 and 2 workers: {same}")
    if not args.skip_nbgrader:
        seconds, graded, given = time_stock_nbgrader(work / "submissions", names, work / "nbgrader-course")
        results["stock_nbgrader"] = {"total_seconds": round(seconds, 1), "given": given, "graded": graded,
                                     "seconds_per_graded_submission": round(seconds / max(graded, 1), 2)}
        print(f"stock nbgrader autograde (no sandbox): graded {graded} of the {given} single-notebook "
              f"submissions in {seconds:.1f} s ({seconds / max(graded, 1):.2f} s per graded submission)")
    (work / "grading.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'grading.json'}")


if __name__ == "__main__":
    main()
