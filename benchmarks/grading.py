"""Grading speed, per assignment: the notebook's own run time, ours, and stock nbgrader's; and a
class of hundreds through one grader.

    python benchmarks/grading.py [--assignments a1_hinge_loss ...] [--count 12] [--skip-nbgrader]
    python benchmarks/grading.py --load 500 [--load-assignment a1_hinge_loss] [--workers 2]

For each assignment of autograder/assignments.toml:

* **notebook**: the solution notebook's own run time outside any grader, ``jupyter nbconvert
  --to notebook --execute`` (kernel start included; the hidden tests run too, recording nothing),
  whole, and without the cells tagged ``skip-when-grading`` (what the grader runs);
* **ours** and **stock nbgrader** on the same ``COUNT`` *comparable* submissions: honest ones
  (correct, partial, blank, the usual mistakes) cycled from the assignment's test bank
  (tests/banks/), each a single notebook a kernel runs. Seconds per submission = the run's time
  (for ours less its reference run, which nbgrader does not do) / COUNT, for both. Ours with 1 and
  with 2 workers, the order alternated between assignments (and ours and nbgrader's order too);
  the machine's load average (``os.getloadavg``, 1 minute) is printed beside every figure.
  nbgrader's exit status is checked: a failed batch is reported as failed, not timed;
* **apart**: the bank's other submissions (broken files rejected before any kernel starts, the
  exploits, layouts stock nbgrader has no rule for) graded by ours only, reported on their own.
  Exploits are never given to stock nbgrader: it runs student code unsandboxed, on this machine;
  the markers escape attempts would leave (``banks.common.Probe``) are removed and reported;
* **overhead** = ours with 1 worker - the notebook without its skipped cells;
* **cluster**: the same comparable submissions through a Dask ``LocalCluster`` of 2 worker
  processes on this machine (``--scheduler``), and a paper estimate for a class of 5 000 on 20
  such workers from the measured cost of one submission on one core.

``--load N`` grades a class of N submissions of one assignment (a realistic mix from its bank:
correct, partial, blank, the usual mistakes, broken files and a few exploits) with ``--workers``
workers through ``python -m autograder grade`` and reports: the total time, the time per
submission at the start and at the end of the run (from when each result was written), the peak
memory (RSS) of the grader process and of its whole process tree (sampled every second), the disk
used by the output folder during and after the run, and its largest files.

Writes grading.json (or load.json) into a temporary folder and prints a table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from autograder.config import known_assignments  # noqa: E402
from autograder.grade import grade_class  # noqa: E402
from autograder.notebooks import SKIP_TAG  # noqa: E402

SLOW_BY_DESIGN = {"cell_never_ends", "cell_ignores_interrupts", "kernel_dies", "cheat_forge_records"}
# Submissions that attack the grader or the machine: ours only, in its sandbox; never stock nbgrader.
EXPLOIT_WORDS = ("cheat", "replay", "forged", "stripped", "predict_reads", "predict_looks", "carries_hidden",
                 "escape", "symlink", "eats_memory", "output_flood")
BIN = Path(sys.executable).parent
ENVIRONMENT = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
ENVIRONMENT.pop("MPLBACKEND", None)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def kind_of(case) -> str:
    """comparable (honest, one notebook), rejected (no kernel starts), exploit, or other."""
    if case.status.startswith("ungradable"):
        return "rejected"
    if any(word in case.name for word in EXPLOIT_WORDS):
        return "exploit"
    return "comparable"


def write_mix(bank, root: Path, count: int) -> dict[str, list[str]]:
    """``count`` comparable submissions cycled from the bank into ``root/comparable`` (only those
    whose folder holds exactly the assignment's notebook), every other case once into
    ``root/apart``. Returns the names by kind."""
    cases = [case for case in bank.cases() if case.name not in SLOW_BY_DESIGN]
    names: dict[str, list[str]] = {"comparable": [], "rejected": [], "exploit": [], "other": []}
    comparable = []
    for case in cases:
        kind = kind_of(case)
        if kind == "comparable":
            probe = root / ".probe" / case.name
            probe.mkdir(parents=True)
            case.build(probe)
            if [p.name for p in probe.iterdir()] == [bank.HOMEWORK.notebook]:
                comparable.append(case)
                continue
            kind = "other"
        case.build(_folder(root / "apart" / case.name))
        names[kind].append(case.name)
    shutil.rmtree(root / ".probe")
    for index in range(count):
        case = comparable[index % len(comparable)]
        name = f"s{index:03d}_{case.name.replace(' ', '_')}"
        case.build(_folder(root / "comparable" / name))
        names["comparable"].append(name)
    return names


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def remove_escape_markers() -> list[str]:
    """The files the bank's escape attempts write when they get out (banks.common.Probe's
    defaults): removed, and named, so that a benchmark never leaves them for the test suite."""
    from banks.common import Probe

    found = [path for path in Probe().paths if os.path.lexists(path)]
    for path in found:
        os.unlink(path)
    return found


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
    load_before = load()
    start = time.perf_counter()
    results = grade_class(name, submissions, out, workers=workers, progress=False)
    total = time.perf_counter() - start
    reference = float(next((out / ".reference").glob("*/complete")).read_text())
    rejected = sum(r["status"].startswith("ungradable") for r in results)
    return {"total_seconds": round(total, 1), "reference_seconds": round(reference, 1), "submissions": count,
            "rejected_before_a_kernel": rejected,
            "seconds_per_submission": round((total - reference) / max(count, 1), 2),
            "load": [load_before, load()], "escape_markers_removed": remove_escape_markers()}


def time_stock_nbgrader(homework, submissions: Path, names: list[str], course: Path) -> dict:
    """A plain nbgrader course: source, release, submitted/STUDENT/ASSIGNMENT/NOTEBOOK. Only the
    comparable submissions (one notebook each, no exploit) are given to it: it runs them without
    a sandbox."""
    (course / "source" / homework.name).mkdir(parents=True)
    shutil.copy(homework.solution, course / "source" / homework.name / homework.notebook)
    common = [f"--CourseDirectory.root={course}", f"--CourseDirectory.db_url=sqlite:///{course / 'gradebook.db'}"]
    subprocess.run([str(BIN / "nbgrader"), "generate_assignment", homework.name, "--force", *common],
                   check=True, capture_output=True, env=ENVIRONMENT, cwd=course)
    for name in names:
        target = course / "submitted" / name / homework.name
        target.mkdir(parents=True)
        shutil.copy(submissions / name / homework.notebook, target / homework.notebook)
    load_before = load()
    start = time.perf_counter()
    finished = subprocess.run([str(BIN / "nbgrader"), "autograde", homework.name, "--force", *common,
                               "--ExecutePreprocessor.timeout=300"], capture_output=True, text=True,
                              env=ENVIRONMENT, cwd=course)
    seconds = time.perf_counter() - start
    graded = sum(1 for _ in (course / "autograded").glob(f"*/{homework.name}/{homework.notebook}"))
    row = {"total_seconds": round(seconds, 1), "given": len(names), "graded": graded,
           "exit_status": finished.returncode, "load": [load_before, load()],
           "escape_markers_removed": remove_escape_markers()}
    if finished.returncode != 0 or graded != len(names):
        row["failed"] = (f"nbgrader autograde exited {finished.returncode} and graded {graded} of {len(names)}: "
                         + " | ".join(finished.stderr.strip().splitlines()[-3:]))
    else:
        row["seconds_per_submission"] = round(seconds / len(names), 2)
    return row


def time_cluster(name: str, submissions: Path, out: Path, count: int) -> dict:
    from distributed import LocalCluster

    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])
    load_before = load()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster:
        start = time.perf_counter()
        grade_class(name, submissions, out, progress=False, scheduler=cluster.scheduler_address)
        total = time.perf_counter() - start
    reference = float(next((out / ".reference").glob("*/complete")).read_text())
    return {"total_seconds": round(total, 1), "submissions_per_minute": round(count / (total - reference) * 60, 1),
            "load": [load_before, load()]}


def class_estimate(seconds_one_core: float, reference_seconds: float, students: int = 5000, workers: int = 20) -> dict:
    """On paper: the reference once, then students / workers submissions one after the other on
    each worker (one core each), as measured on this machine."""
    hours = (reference_seconds + students * seconds_one_core / workers) / 3600
    return {"students": students, "workers": workers, "hours": round(hours, 2)}


def _loads(row: dict) -> str:
    return f"load {row['load'][0]:.1f}->{row['load'][1]:.1f}"


def benchmark_assignment(name: str, position: int, work: Path, args) -> dict:
    bank = importlib.import_module(f"banks.{name}")
    homework = bank.HOMEWORK
    folder = work / name
    names = write_mix(bank, folder, args.count)
    if args.notebooks_only:
        print(f"{name}: notebook {time_notebook(homework.solution, folder):.1f} s, "
              f"{time_notebook(homework.solution, folder, graded_cells_only=True):.1f} s without its skipped cells",
              flush=True)
        return {}
    row = {"comparable_submissions": args.count, "apart": {k: v for k, v in names.items() if k != "comparable"},
           "notebook_seconds": round(time_notebook(homework.solution, folder), 2),
           "graded_cells_seconds": round(time_notebook(homework.solution, folder, graded_cells_only=True), 2)}
    # Alternate who goes first (a warm disk cache and the others' load favour the second run).
    order = (1, 2) if position % 2 == 0 else (2, 1)
    ours_first = position % 2 == 0 or args.skip_nbgrader
    row["order"] = ([f"ours, {w} worker(s)" for w in order] + ([] if args.skip_nbgrader else ["stock nbgrader"])
                    if ours_first else ["stock nbgrader"] + [f"ours, {w} worker(s)" for w in order])
    if not ours_first:
        row["stock_nbgrader"] = time_stock_nbgrader(homework, folder / "comparable", names["comparable"],
                                                    folder / "nbgrader")
    for workers in order:
        row[f"workers_{workers}"] = time_ours(name, folder / "comparable", folder / f"out-{workers}", workers,
                                              args.count)
    if ours_first and not args.skip_nbgrader:
        row["stock_nbgrader"] = time_stock_nbgrader(homework, folder / "comparable", names["comparable"],
                                                    folder / "nbgrader")
    apart = sum(len(v) for v in row["apart"].values())
    if apart:
        row["apart_ours"] = time_ours(name, folder / "apart", folder / "out-apart", 2, apart)
    row["overhead_seconds"] = round(row["workers_1"]["seconds_per_submission"] - row["graded_cells_seconds"], 2)
    row["identical_grades_1_vs_2_workers"] = ((folder / "out-1" / "grades.csv").read_text()
                                              == (folder / "out-2" / "grades.csv").read_text())
    if not args.skip_cluster:
        row["cluster_2_workers"] = time_cluster(name, folder / "comparable", folder / "out-cluster", args.count)
        row["cluster_identical_grades"] = ((folder / "out-1" / "grades.csv").read_text()
                                           == (folder / "out-cluster" / "grades.csv").read_text())
    row["estimate_5000_students_20_workers"] = class_estimate(row["workers_1"]["seconds_per_submission"],
                                                              row["workers_1"]["reference_seconds"])
    one, two = row["workers_1"], row["workers_2"]
    stock = row.get("stock_nbgrader")
    print(f"{name}: notebook {row['notebook_seconds']:.1f} s ({row['graded_cells_seconds']:.1f} s without its "
          f"skipped cells); on the same {args.count} comparable submissions: ours {one['seconds_per_submission']:.2f} s "
          f"per submission with 1 worker ({_loads(one)}; overhead {row['overhead_seconds']:+.2f} s), "
          f"{two['seconds_per_submission']:.2f} s with 2 ({_loads(two)})"
          + ("" if not stock else
             f"; stock nbgrader {stock['seconds_per_submission']:.2f} s ({_loads(stock)})" if "seconds_per_submission" in stock
             else f"; stock nbgrader FAILED: {stock['failed']}")
          + f"; order: {', '.join(row['order'])}", flush=True)
    if apart:
        print(f"  apart (ours only): {len(names['rejected'])} rejected before a kernel, {len(names['exploit'])} exploits, "
              f"{len(names['other'])} other layouts: {row['apart_ours']['total_seconds']:.1f} s in all "
              f"({_loads(row['apart_ours'])})", flush=True)
    if "cluster_2_workers" in row:
        print(f"  Dask, 2 local workers: {row['cluster_2_workers']['submissions_per_minute']:.1f} submissions/min "
              f"(same grades: {row['cluster_identical_grades']}, {_loads(row['cluster_2_workers'])})", flush=True)
    print(f"  5 000 students on 20 workers: about {row['estimate_5000_students_20_workers']['hours']:.1f} h", flush=True)
    markers = [m for key in ("workers_1", "workers_2", "stock_nbgrader", "apart_ours")
               for m in row.get(key, {}).get("escape_markers_removed", [])]
    if markers:
        print(f"  WARNING: escape markers found and removed: {sorted(set(markers))}", flush=True)
    return row


# --- a class of hundreds -----------------------------------------------------------------------------------

# Shares of a realistic class (the rest: the bank's other honest mistakes, evenly).
LOAD_MIX = {"correct": 0.35, "partial": 0.12, "blank": 0.08, "rejected": 0.03, "exploit": 0.02}


def write_class(bank, root: Path, size: int, seed: int = 500) -> dict[str, int]:
    rng = random.Random(seed)
    cases = [case for case in bank.cases() if case.name not in SLOW_BY_DESIGN]
    by_kind = {
        "correct": [c for c in cases if c.name == "correct"],
        "partial": [c for c in cases if c.name.startswith("partial")],
        "blank": [c for c in cases if c.name == "blank"],
        "rejected": [c for c in cases if kind_of(c) == "rejected"],
        "exploit": [c for c in cases if kind_of(c) == "exploit" and "escape" not in c.name],
    }
    used = {c.name for group in by_kind.values() for c in group}
    by_kind["mistake"] = [c for c in cases if kind_of(c) == "comparable" and c.name not in used]
    kinds = list(LOAD_MIX) + ["mistake"]
    weights = list(LOAD_MIX.values()) + [1 - sum(LOAD_MIX.values())]
    counts: dict[str, int] = {}
    for index in range(size):
        kind = rng.choices(kinds, weights)[0]
        case = rng.choice(by_kind[kind])
        case.build(_folder(root / f"student{index:04d}"))
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _tree(root: int) -> list[int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stream:
                    parents[int(entry.name)] = int(stream.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, todo = [root], [root]
    while todo:
        current = todo.pop()
        for pid, parent in parents.items():
            if parent == current:
                found.append(pid)
                todo.append(pid)
    return found


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as stream:
            for line in stream:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _disk_mb(folder: Path) -> float:
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total / 2**20


def load_run(assignment: str, size: int, workers: int, work: Path) -> dict:
    bank = importlib.import_module(f"banks.{assignment}")
    counts = write_class(bank, work / "class", size)
    out = work / "out"
    samples: list[dict] = []
    process = subprocess.Popen([sys.executable, "-m", "autograder", "grade", assignment, str(work / "class"),
                                "--out", str(out), "--workers", str(workers), "--quiet"],
                               cwd=REPO_ROOT, env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    last_disk = -10.0
    disk = 0.0
    while process.poll() is None:
        now = time.monotonic() - started
        if now - last_disk >= 10:
            disk, last_disk = _disk_mb(out) if out.exists() else 0.0, now
        tree = _tree(process.pid)
        done = len(os.listdir(out / "results")) if (out / "results").is_dir() else 0
        samples.append({"t": round(now, 1), "grader_mb": round(_rss_mb(process.pid), 1),
                        "tree_mb": round(sum(_rss_mb(pid) for pid in tree), 1), "processes": len(tree),
                        "results": done, "disk_mb": round(disk, 1), "load": load()})
        time.sleep(1.0)
    stdout, stderr = process.communicate()
    total = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"the grader failed (exit {process.returncode}): {stderr.strip()[-2000:]}")
    # When each kernel-run result was written: time per submission at the start and at the end.
    finished = []
    for path in (out / "results").glob("*.json"):
        result = json.loads(path.read_text())
        if not result["status"].startswith("ungradable"):
            finished.append(path.stat().st_mtime)
    finished.sort()
    tenth = max(len(finished) // 10, 2)
    start_rate = (finished[tenth] - finished[0]) / tenth
    end_rate = (finished[-1] - finished[-1 - tenth]) / tenth
    files = sorted(((p.stat().st_size, p) for p in out.rglob("*") if p.is_file()), reverse=True)[:6]

    def at(fraction: float) -> dict:
        target = fraction * size
        return next((s for s in samples if s["results"] >= target), samples[-1])

    return {
        "assignment": assignment, "submissions": size, "workers": workers, "mix": counts,
        "total_seconds": round(total, 1),
        "seconds_per_submission_first_tenth": round(start_rate, 2),
        "seconds_per_submission_last_tenth": round(end_rate, 2),
        "grader_rss_mb": {"peak": max(s["grader_mb"] for s in samples), "at_10%": at(0.1)["grader_mb"],
                          "at_50%": at(0.5)["grader_mb"], "at_90%": at(0.9)["grader_mb"]},
        "tree_rss_mb_peak": max(s["tree_mb"] for s in samples),
        "processes_peak": max(s["processes"] for s in samples),
        "disk_mb": {"peak_during": max(s["disk_mb"] for s in samples), "after": round(_disk_mb(out), 1)},
        "largest_files": [(str(p.relative_to(out)), round(size_ / 1024, 1)) for size_, p in files],
        "load": {"min": min(s["load"] for s in samples), "mean": round(sum(s["load"] for s in samples) / len(samples), 2),
                 "max": max(s["load"] for s in samples)},
        "grader_says": stdout.strip().splitlines()[-1:],
        "escape_markers_removed": remove_escape_markers(),
        "samples": samples,
    }


def print_load(row: dict) -> None:
    print(f"{row['submissions']} submissions of {row['assignment']} ({row['mix']}), {row['workers']} workers: "
          f"{row['total_seconds'] / 60:.1f} min in all; {row['seconds_per_submission_first_tenth']:.2f} s per submission "
          f"in the first tenth, {row['seconds_per_submission_last_tenth']:.2f} s in the last")
    rss = row["grader_rss_mb"]
    print(f"  grader RSS: {rss['at_10%']:.0f} MB at 10%, {rss['at_50%']:.0f} MB at 50%, {rss['at_90%']:.0f} MB at 90%, "
          f"peak {rss['peak']:.0f} MB; whole process tree peak {row['tree_rss_mb_peak']:.0f} MB "
          f"({row['processes_peak']} processes)")
    print(f"  output disk: {row['disk_mb']['peak_during']:.1f} MB at most during (sampled every 10 s), "
          f"{row['disk_mb']['after']:.1f} MB after; largest files: "
          + ", ".join(f"{name} {kb:.0f} KB" for name, kb in row["largest_files"]))
    print(f"  load average (1 min) during the run: min {row['load']['min']:.1f}, mean {row['load']['mean']:.1f}, "
          f"max {row['load']['max']:.1f} on {len(os.sched_getaffinity(0))} cores")
    if row["escape_markers_removed"]:
        print(f"  WARNING: escape markers found and removed: {row['escape_markers_removed']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignments", nargs="*", default=None, help="default: every assignment")
    parser.add_argument("--count", type=int, default=12, help="comparable submissions per assignment")
    parser.add_argument("--skip-nbgrader", action="store_true")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--notebooks-only", action="store_true", help="time the notebooks, not the grading")
    parser.add_argument("--load", type=int, metavar="N", help="grade a class of N submissions instead (see above)")
    parser.add_argument("--load-assignment", default="a1_hinge_loss")
    parser.add_argument("--workers", type=int, default=2, help="workers of the --load run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grading-benchmark-"))
    removed = remove_escape_markers()
    if removed:
        print(f"escape markers of an earlier run removed: {removed}")
    if args.load:
        row = load_run(args.load_assignment, args.load, args.workers, work)
        print_load(row)
        (work / "load.json").write_text(json.dumps(row, indent=1))
        print(f"results: {work / 'load.json'} (the output folder: {work / 'out'})")
        return
    results = {"cores": len(os.sched_getaffinity(0)), "load_before": load(), "assignments": {}}
    for position, name in enumerate(args.assignments or known_assignments()):
        results["assignments"][name] = benchmark_assignment(name, position, work, args)
    results["load_after"] = load()
    print(f"{results['cores']} cores; load average {results['load_before']:.2f} before, {results['load_after']:.2f} after")
    (work / "grading.json").write_text(json.dumps(results, indent=2))
    print(f"results: {work / 'grading.json'}")


if __name__ == "__main__":
    main()
