"""Grading speed, per assignment: the notebook's own run time, ours, and stock nbgrader's.

    python benchmarks/grading.py [--assignments a1_hinge_loss ...] [--count 12] [--skip-nbgrader]

For each assignment of autograder/assignments.toml:

* **notebook**: the solution notebook's own run time outside any grader, ``jupyter nbconvert
  --to notebook --execute`` (kernel start included; the hidden tests run too, recording nothing),
  whole, and without the cells tagged ``skip-when-grading`` (what the grader runs);
* **ours**: ``COUNT`` submissions cycled from the assignment's test bank (tests/banks/; the cases
  that exist to hit a time limit left out) graded with 1 and with 2 workers, reported as seconds
  per submission after the reference run; **overhead** = ours with 1 worker - the notebook
  without its skipped cells;
* **stock nbgrader**: ``nbgrader autograde`` of the same single-notebook submissions (no
  sandbox, no rule checks, no clean runs), seconds per graded submission;
* **cluster**: the same submissions through a Dask ``LocalCluster`` of 2 worker processes on
  this machine (``--scheduler``), and a paper estimate for a class of 5 000 on 20 such workers
  from the measured cost of one submission on one core.

Times depend on what else the machine does (other load skews them by 2-3x): the table reports
the load average before and after. Writes grading.json into a temporary folder and prints a table.
"""

from __future__ import annotations

import argparse
import importlib
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

from autograder.config import known_assignments  # noqa: E402
from autograder.grade import grade_class  # noqa: E402
from autograder.notebooks import SKIP_TAG  # noqa: E402

SLOW_BY_DESIGN = {"cell_never_ends", "cell_ignores_interrupts", "kernel_dies", "cheat_forge_records"}
BIN = Path(sys.executable).parent
ENVIRONMENT = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
ENVIRONMENT.pop("MPLBACKEND", None)


def write_mix(bank, root: Path, count: int) -> list[str]:
    cases = [case for case in bank.cases() if case.name not in SLOW_BY_DESIGN]
    names = []
    for index in range(count):
        case = cases[index % len(cases)]
        name = f"s{index:03d}_{case.name.replace(' ', '_')}"
        folder = root / name
        folder.mkdir(parents=True)
        case.build(folder)
        names.append(name)
    return names


def time_notebook(solution: Path, work: Path, *, graded_cells_only: bool = False) -> float:
    notebook = json.loads(solution.read_text())
    if graded_cells_only:
        notebook["cells"] = [c for c in notebook["cells"] if SKIP_TAG not in c.get("metadata", {}).get("tags", [])]
    copy = work / ("graded-cells.ipynb" if graded_cells_only else "whole.ipynb")
    copy.write_text(json.dumps(notebook))
    start = time.perf_counter()
    subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                    "--ExecutePreprocessor.timeout=600", str(copy), "--output-dir", str(work),
                    "--output", f"executed-{copy.stem}"], check=True, capture_output=True, env=ENVIRONMENT, cwd=work)
    return time.perf_counter() - start


def time_ours(name: str, submissions: Path, out: Path, workers: int, count: int) -> dict:
    start = time.perf_counter()
    grade_class(name, submissions, out, workers=workers, progress=False)
    total = time.perf_counter() - start
    reference = float(next((out / ".reference").glob("*/complete")).read_text())
    return {"total_seconds": round(total, 1), "reference_seconds": round(reference, 1),
            "seconds_per_submission": round((total - reference) / count, 2)}


def time_stock_nbgrader(homework, submissions: Path, names: list[str], course: Path) -> dict:
    """A plain nbgrader course: source, release, submitted/STUDENT/ASSIGNMENT/NOTEBOOK."""
    (course / "source" / homework.name).mkdir(parents=True)
    shutil.copy(homework.solution, course / "source" / homework.name / homework.notebook)
    common = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", homework.name, "--force", *common],
                   check=True, capture_output=True, env=ENVIRONMENT, cwd=course)
    given = 0
    for name in names:
        notebooks = sorted((submissions / name).glob("*.ipynb"))
        if len(notebooks) != 1:
            continue  # stock nbgrader has no rule for these; they are left out of its timing
        target = course / "submitted" / name / homework.name
        target.mkdir(parents=True)
        shutil.copy(notebooks[0], target / homework.notebook)
        given += 1
    start = time.perf_counter()
    subprocess.run([str(BIN / "nbgrader"), "autograde", homework.name, "--force", *common,
                    "--ExecutePreprocessor.timeout=300"], capture_output=True, env=ENVIRONMENT, cwd=course)
    seconds = time.perf_counter() - start
    # nbgrader stops the whole batch at the first notebook it cannot read: count what it graded.
    graded = sum(1 for _ in (course / "autograded").glob(f"*/{homework.name}/{homework.notebook}"))
    return {"total_seconds": round(seconds, 1), "given": given, "graded": graded,
            "seconds_per_graded_submission": round(seconds / max(graded, 1), 2)}


def time_cluster(name: str, submissions: Path, out: Path, count: int) -> dict:
    from distributed import LocalCluster

    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster:
        start = time.perf_counter()
        grade_class(name, submissions, out, progress=False, scheduler=cluster.scheduler_address)
        total = time.perf_counter() - start
    reference = float(next((out / ".reference").glob("*/complete")).read_text())
    return {"total_seconds": round(total, 1), "submissions_per_minute": round(count / (total - reference) * 60, 1)}


def class_estimate(seconds_one_core: float, reference_seconds: float, students: int = 5000, workers: int = 20) -> dict:
    """On paper: the reference once, then students / workers submissions one after the other on
    each worker (one core each), as measured on this machine."""
    hours = (reference_seconds + students * seconds_one_core / workers) / 3600
    return {"students": students, "workers": workers, "hours": round(hours, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", nargs="*", default=None, help="default: every assignment")
    parser.add_argument("--count", type=int, default=12, help="submissions per assignment")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--notebooks-only", action="store_true", help="time the notebooks, not the grading")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grading-benchmark-"))
    results = {"cores": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()[0], "assignments": {}}
    for name in args.assignments or known_assignments():
        bank = importlib.import_module(f"banks.{name}")
        homework = bank.HOMEWORK
        folder = work / name
        names = write_mix(bank, folder / "submissions", args.count)
        if args.notebooks_only:
            print(f"{name}: notebook {time_notebook(homework.solution, folder):.1f} s, "
                  f"{time_notebook(homework.solution, folder, graded_cells_only=True):.1f} s without its skipped cells",
                  flush=True)
            continue
        row = {"submissions": args.count,
               "notebook_seconds": round(time_notebook(homework.solution, folder), 2),
               "graded_cells_seconds": round(time_notebook(homework.solution, folder, graded_cells_only=True), 2)}
        for workers in (1, 2):
            row[f"workers_{workers}"] = time_ours(name, folder / "submissions", folder / f"out-{workers}", workers,
                                                  args.count)
        row["overhead_seconds"] = round(row["workers_1"]["seconds_per_submission"] - row["graded_cells_seconds"], 2)
        row["identical_grades_1_vs_2_workers"] = ((folder / "out-1" / "grades.csv").read_text()
                                                  == (folder / "out-2" / "grades.csv").read_text())
        if not args.skip_nbgrader:
            row["stock_nbgrader"] = time_stock_nbgrader(homework, folder / "submissions", names, folder / "nbgrader")
        if not args.skip_cluster:
            row["cluster_2_workers"] = time_cluster(name, folder / "submissions", folder / "out-cluster", args.count)
            row["cluster_identical_grades"] = ((folder / "out-1" / "grades.csv").read_text()
                                               == (folder / "out-cluster" / "grades.csv").read_text())
        row["estimate_5000_students_20_workers"] = class_estimate(row["workers_1"]["seconds_per_submission"],
                                                                  row["workers_1"]["reference_seconds"])
        results["assignments"][name] = row
        print(f"{name}: notebook {row['notebook_seconds']:.1f} s ({row['graded_cells_seconds']:.1f} s without its skipped cells); ours {row['workers_1']['seconds_per_submission']:.2f} s "
              f"per submission with 1 worker (overhead {row['overhead_seconds']:+.2f} s), "
              f"{row['workers_2']['seconds_per_submission']:.2f} s with 2"
              + (f"; stock nbgrader {row['stock_nbgrader']['seconds_per_graded_submission']:.2f} s "
                 f"({row['stock_nbgrader']['graded']} of {row['stock_nbgrader']['given']} graded)"
                 if "stock_nbgrader" in row else "")
              + (f"; Dask, 2 local workers: {row['cluster_2_workers']['submissions_per_minute']:.1f} submissions/min "
                 f"(same grades: {row['cluster_identical_grades']})" if "cluster_2_workers" in row else "")
              + f"; 5 000 students on 20 workers: about {row['estimate_5000_students_20_workers']['hours']:.1f} h",
              flush=True)
    results["load_after"] = os.getloadavg()[0]
    print(f"{results['cores']} cores; load average {results['load_before']:.2f} before, {results['load_after']:.2f} after")
    (work / "grading.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'grading.json'}")


if __name__ == "__main__":
    main()
