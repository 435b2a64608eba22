"""Grade a class: ingest, assemble, plan, execute in the sandbox, verify, record, report.

Results are kept per student in ``OUT/results/KEY.json`` as soon as each is verified, so a run
that is killed part-way and started again grades only what is missing (or what changed: a result
counts only for the same submission bytes and the same reference). Whatever goes wrong while
grading one submission becomes that student's row ("ungradable: internal error", the details in
``OUT/grading.log``); the class goes on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from . import assemble as assembling
from .config import AssignmentConfig, ConfigError, Limits, load_assignment
from .evaluators import Context, evaluate
from .feedback import write_feedback
from .gradebook import GradebookWriter
from .ingest import IngestError, Submission, ingest
from .kernel import CellRun, RunOutcome, execute_plan
from .notebooks import SourceNotebook, read_source_notebook
from .plan import SubmissionPlan, plan_submission
from .report import write_report
from .sandbox import SandboxUnavailable, bubblewrap_problem
from .storage import (OutputDiskFull, OutputLock, atomic_write, crash_here, is_disk_full, kill_orphaned_runs,
                      remove_stale_socket_folders,
                      remove_temporaries)
from .verify import Reference, check_record, feedback_message

PACKAGE_DIR = Path(__file__).parent
# Everything that decides a verdict: a change to any of these regrades every submission.
VERDICT_FILES = ("kernel.py", "plan.py", "analysis.py", "assemble.py", "verify.py", "records.py",
                 "evaluators.py", "sandbox.py", "assignments.toml")
log = logging.getLogger("autograder")


@dataclass
class GradingRun:
    config: AssignmentConfig
    source: SourceNotebook
    out: Path
    sandboxed: bool
    reference: Reference | None = None
    reference_id: str = ""


def _reference_id(config: AssignmentConfig) -> str:
    digest = hashlib.sha256(config.source_path.read_bytes())
    for name in VERDICT_FILES:
        digest.update((PACKAGE_DIR / name).read_bytes())
    digest.update(repr(config.limits).encode())
    return digest.hexdigest()[:16]


# --- which cell ran how ------------------------------------------------------------------------


def _runs_by_test(plan: SubmissionPlan, outcomes: list[RunOutcome]) -> tuple[dict, dict]:
    """For each test id: the notebook run's cell (visible part, or the whole test) and its
    window (the cell whose records count: the same cell, or the clean run's hidden part)."""
    visible, windows = {}, {}
    for run, outcome in zip(plan.runs, outcomes):
        for planned, cell in zip(run.cells, outcome.cells):
            if run is plan.runs[0] and planned.grade_id:
                visible[planned.grade_id] = cell
            if planned.test:
                windows[planned.test] = cell
    return visible, windows


def _executed_notebook(plan: SubmissionPlan, outcome: RunOutcome) -> dict:
    """The notebook run with its (budgeted) outputs, for the instructor's eyes only."""
    cells = []
    for planned, cell in list(zip(plan.runs[0].cells, outcome.cells))[1:]:  # the recorder cell is the grader's
        cells.append({"cell_type": "code", "execution_count": None, "outputs": cell.outputs, "source": planned.code,
                      "metadata": {"grader": {"grade_id": planned.grade_id, "status": cell.status}}})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


# --- the reference: the solution, through the same pipeline ------------------------------------

ENVIRONMENT_HINTS = {
    "ModuleNotFoundError": "a module is missing in the environment the grader runs kernels from ({python}): "
                           "run `make env`, and check that the course library (cvcourse) is installed there",
    "ImportError": "a module could not be imported in the grader's environment ({python}): run `make env`",
    "DataUnavailableError": "a data set is missing: install the Debian packages (`make data`, as root) or see "
                            "README.md, The data",
    "FileNotFoundError": "a file the notebook reads is missing inside the sandbox (only the environment, the "
                         "course library and the scratch folder exist there)",
    "MemoryError": "the solution needs more memory than memory_mb in autograder/assignments.toml",
    "KeyboardInterrupt": "a cell ran longer than cell_seconds in autograder/assignments.toml",
}


def _solution_failure(run: GradingRun, plan: SubmissionPlan, outcomes: list[RunOutcome]) -> str | None:
    """None when the solution ran cleanly, else which cell failed first, its error, and what to
    check in the environment."""
    for run_plan, outcome in zip(plan.runs, outcomes):
        for index, (planned, cell) in enumerate(zip(run_plan.cells, outcome.cells)):
            if cell.status == "ok":
                continue
            where = (f"cell {planned.grade_id!r}" if planned.grade_id else
                     "the grader's recorder cell" if index == 0 else "a definition of the solution's")
            if planned.test and run_plan is not plan.runs[0]:
                where = f"the hidden tests of {planned.test!r}"
            what = (f"{cell.error_name}: {cell.error_value}" if cell.status == "error" else
                    {"timeout": f"it ran longer than {run.config.limits.cell_seconds} s",
                     "died": outcome.stopped or "the kernel died",  # a limit of the run says which
                     "not run": outcome.stopped or "it did not run"}[cell.status])
            hint = ENVIRONMENT_HINTS.get(cell.error_name or ("KeyboardInterrupt" if cell.status == "timeout" else ""),
                                         "run the solution notebook with `jupyter nbconvert --execute` to see the "
                                         "whole traceback")
            detail = f" ({outcome.detail})" if outcome.detail else ""
            return (f"the solution notebook {run.config.source_path} fails in its {run_plan.name} run, in {where}: "
                    f"{what}{detail}. Check: {hint.format(python=sys.executable)}")
    return None


def prepare_reference(run: GradingRun) -> None:
    """Run the solution notebook through the same pipeline and keep what its hidden tests record."""
    run.reference_id = _reference_id(run.config)
    folder = run.out / ".reference" / run.reference_id
    if (folder / "complete").is_file():
        run.reference = Reference.load(folder)
        return
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished reference of a killed run
    folder.mkdir(parents=True)
    solution = json.loads(run.config.source_path.read_text())
    started = time.monotonic()
    plan = plan_submission(run.config, run.source, assembling.assemble(run.source, solution).notebook)
    outcomes = execute_submission(plan.to_dict(), run.config.limits, run.sandboxed, scratch=folder / "run")
    atomic_write(folder / "executed.ipynb", json.dumps(_executed_notebook(plan, outcomes[0])))
    failure = _solution_failure(run, plan, outcomes)
    if failure:
        raise RuntimeError(failure)
    broken_rules = {test: problem for test, problem in plan.rule_problems.items() if problem}
    if broken_rules:
        raise RuntimeError(f"the solution breaks its own source rules: {broken_rules}")
    _, windows = _runs_by_test(plan, outcomes)
    keys_by_test, values, options = {}, {}, {}
    for test in run.source.tests:
        window = windows.get(test.grade_id)
        records = window.records if window else {}
        problems = window.record_problems if window else []
        if not records or problems:
            raise RuntimeError(f"the hidden tests of {test.grade_id!r} in the solution record nothing usable: "
                               f"{problems or 'no record'}")
        keys_by_test[test.grade_id] = tuple(records)
        for key, record in records.items():
            if key in values:
                raise RuntimeError(f"the key {key!r} is recorded by two test cells of the solution")
            values[key], options[key] = record.value, record.options
    reference = Reference(keys_by_test, values, options)
    for test, keys in keys_by_test.items():  # the solution must pass its own evaluators
        context = Context(submitted=reference.cell_values(test), reference=reference.cell_values(test))
        for key in keys:
            if "evaluate" in options[key]:
                problem = evaluate(str(options[key]["evaluate"]), values[key], options[key], context)
                if problem:
                    raise RuntimeError(f"the solution fails its own evaluator on {key!r}: {problem}")
    reference.save(folder)
    for name in ("reference.json", "reference.npz"):  # on disk before the marker that says so
        with open(folder / name, "rb") as stream:
            os.fsync(stream.fileno())
    crash_here("reference")
    atomic_write(folder / "complete", f"{time.monotonic() - started:.1f}\n")
    run.reference = reference


# --- one submission ------------------------------------------------------------------------------


def _status(notes: list[str]) -> str:
    return "graded" if not notes else "graded (" + "; ".join(notes) + ")"


def _empty_result(run: GradingRun, submission: Submission) -> dict:
    return {
        "student_id": submission.student_id, "key": submission.key, "assignment": run.config.name,
        "fingerprint": submission.fingerprint, "reference_id": run.reference_id,
        "max_score": run.source.max_score, "score": 0.0, "notes": list(submission.notes),
        "tests": [{"grade_id": t.grade_id, "description": t.description, "points": 0.0,
                   "max_points": t.points, "passed": False, "message": "not graded", "reason": ""}
                  for t in run.source.tests],
    }


def _finish(result: dict, status: str, started: float) -> dict:
    result["status"] = status
    result["score"] = round(sum(t["points"] for t in result["tests"]), 6)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def _verdict(run: GradingRun, test, visible: CellRun | None, window: CellRun | None,
             rule_problem: str | None, checked: bool) -> tuple[bool, str, str]:
    """(passed, message for the student, reason for the instructor) of one test cell."""
    visible = visible or CellRun()
    reasons = []
    if visible.status != "ok":
        reasons.append(f"the test cell ended with status {visible.status}"
                       + (f" ({visible.error_name})" if visible.error_name else ""))
    if rule_problem:
        reasons.append(f"source: {rule_problem}")
    if checked and not rule_problem and (window is None or window.status != "ok"):
        reasons.append(f"the hidden tests ended with status {window.status if window else 'not run'}")
    records = window.records if window else {}
    problems = [p for key in run.reference.keys_by_test[test.grade_id]
                if (p := check_record(key, test.grade_id, run.reference, records)) is not None]
    reasons += problems[:5] + (window.record_problems[:3] if window else [])
    if not reasons:
        return True, "passed", ""
    if visible.status == "error":
        message = feedback_message(visible.error_name, visible.error_value, test.visible_source)
    elif visible.status == "timeout":
        message = f"stopped: the cell ran longer than {run.config.limits.cell_seconds} s"
    elif visible.status in ("died", "not run"):
        message = "not run: the notebook stopped before this test (see the status)"
    elif rule_problem:
        message = f"the code does not meet the assignment's rules: {rule_problem}"
    else:
        message = "failed the hidden tests"
    return False, message, "; ".join(reasons)


@dataclass
class Prepared:
    """A submission ready to run: its plan, and the notes assembling it left."""

    submission: Submission
    plan: SubmissionPlan
    notes: list[str]
    started: float


def prepare_submission(run: GradingRun, submission: Submission) -> dict | Prepared:
    """Everything before the sandbox, in this process: the finished row of a submission with
    nothing to run (ungradable), or its plan."""
    started = time.monotonic()
    if submission.raw is None:
        return _finish(_empty_result(run, submission), f"ungradable: {submission.problem}", started)
    try:
        assembled = assembling.assemble(run.source, assembling.parse_submission(submission.raw))
    except assembling.UngradableSubmission as problem:
        return _finish(_empty_result(run, submission), f"ungradable: {problem}", started)
    plan = plan_submission(run.config, run.source, assembled.notebook)
    return Prepared(submission, plan, list(submission.notes) + assembled.notes, started)


def execute_submission(plan: dict, limits: Limits, sandboxed: bool, cpus: tuple[int, ...] | None = None,
                       scratch: Path | None = None) -> list[RunOutcome]:
    """The sandboxed runs of one submission's plan (:meth:`SubmissionPlan.to_dict`), in a scratch
    folder of its own that is removed afterwards. Plain data in, plain data out: this is what a
    Dask worker runs (see :mod:`autograder.cluster`)."""
    own = scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="cvgrade-")) if own else scratch
    try:
        return execute_plan(SubmissionPlan.from_dict(plan), scratch, limits, sandboxed=sandboxed, cpus=cpus)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def conclude_submission(run: GradingRun, prepared: Prepared, outcomes: list[RunOutcome]) -> dict:
    """The verdicts, in this process, from what the runs sent back."""
    submission, plan = prepared.submission, prepared.plan
    result = _empty_result(run, submission)
    notes = prepared.notes
    limits = run.config.limits
    for outcome, run_plan in zip(outcomes, plan.runs):
        if outcome.stopped:
            which = "the notebook" if run_plan is plan.runs[0] else "a rule-check run"
            notes.append(f"{which} stopped early: {outcome.stopped}")
            if outcome.detail:
                log.warning("%s, %s run: %s", submission.key, run_plan.name, outcome.detail)
    if any(outcome.output_truncated for outcome in outcomes):
        notes.append(f"output beyond {limits.output_kb} KB was dropped")
    for run_plan, outcome in zip(plan.runs, outcomes):
        for planned, cell in zip(run_plan.cells, outcome.cells):
            if cell.status == "timeout":
                what = (f"cell {planned.grade_id}" if planned.grade_id else
                        "a cell you added" if run_plan is plan.runs[0] else "one of your definitions")
                notes.append(f"{what} ran longer than {limits.cell_seconds} s")
            elif cell.status == "error" and cell.error_name == "MemoryError":
                what = f"cell {planned.grade_id}" if planned.grade_id else "a cell"
                notes.append(f"{what} ran out of memory (the limit is {limits.memory_mb} MB)")
    visible, windows = _runs_by_test(plan, outcomes)
    for test, row in zip(run.source.tests, result["tests"]):
        checked = test.grade_id in plan.rule_problems
        passed, message, reason = _verdict(run, test, visible.get(test.grade_id), windows.get(test.grade_id),
                                           plan.rule_problems.get(test.grade_id), checked)
        row.update(passed=passed, points=test.points if passed else 0.0, message=message, reason=reason)
    (run.out / "executed").mkdir(exist_ok=True)
    atomic_write(run.out / "executed" / f"{submission.key}.ipynb", json.dumps(_executed_notebook(plan, outcomes[0])))
    return _finish(result, _status(list(dict.fromkeys(notes))), prepared.started)


# --- the class -----------------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))  # a killed run never leaves half a result


def _current_result(path: Path, submission: Submission, reference_id: str) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (isinstance(result, dict) and result.get("fingerprint") == submission.fingerprint
            and result.get("reference_id") == reference_id and result.get("student_id") == submission.student_id):
        return result
    return None


class Progress:
    """One line on stderr: submissions done, failed (ungradable), remaining, rate and time left."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.failed, self.enabled = total, 0, 0, enabled
        self.fresh, self.started = 0, time.monotonic()
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()

    def update(self, failed: bool, fresh: bool = True) -> None:
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            self.fresh += int(fresh)
            if not self.enabled:
                return
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = self.fresh / elapsed * 60
            left = (self.total - self.done) / rate * 60 if rate > 0 else 0
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} done, "
                    f"{self.failed} failed, {self.total - self.done} remaining, "
                    f"{rate:.1f}/min, about {left / 60:.0f} min left")
            if self.tty:
                print("\r" + line, end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)


def write_grades_csv(path: Path, source: SourceNotebook, results: list[dict]) -> None:
    test_ids = [t.grade_id for t in source.tests]
    stream = io.StringIO(newline="")
    writer = csv.writer(stream)
    writer.writerow(["student_id", "assignment", "score", "max_score", "status", *test_ids])
    for result in sorted(results, key=lambda r: r["student_id"]):
        points = {t["grade_id"]: t["points"] for t in result["tests"]}
        writer.writerow([result["student_id"], result["assignment"], _number(result["score"]),
                         _number(result["max_score"]), result["status"],
                         *[_number(points[t]) for t in test_ids]])
    atomic_write(path, stream.getvalue(), crash_point="grades.csv")


def _number(value: float) -> str:
    return f"{value:g}"


def cpu_slots(workers: int) -> list[tuple[int, ...]]:
    """The CPUs each worker's runs may use: this process's CPUs split evenly, so that parallel
    runs never share a core (with more workers than cores, each gets one, shared)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if workers >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(workers)]
    per = len(cpus) // workers
    return [tuple(cpus[i * per:(i + 1) * per]) for i in range(workers)]


class _LogFile(logging.FileHandler):
    """grading.log; a log line that cannot be written (a full disk) is dropped, not printed
    with a traceback: the run itself says what went wrong."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def _log_to(path: Path) -> logging.Handler:
    handler = _LogFile(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return handler


def grade_class(assignment: str, submissions: Path, out: Path, *, workers: int | None = None,
                unsafe: bool = False, progress: bool = True, config: AssignmentConfig | None = None,
                scheduler: str | None = None) -> list[dict]:
    """Grade every submission; returns the results (one per student) and writes OUT.

    ``config`` replaces the settings of assignments.toml (tests use shorter limits);
    ``scheduler`` (``tcp://HOST:PORT``) sends the sandboxed runs to a Dask cluster.
    """
    config = config or load_assignment(assignment)
    if not unsafe:
        problem = bubblewrap_problem()
        if problem:
            raise SandboxUnavailable(
                f"{problem}\nStudent code must run in a sandbox. To grade without one (only on a "
                "machine you can afford to lose to a malicious submission), add --unsafe.")
    source = read_source(config)
    if not Path(submissions).exists():  # before the reference run: a typo costs no minutes
        raise IngestError(f"{submissions} does not exist")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(out)
        lock.acquire()  # one grader per output folder; released when this process ends, however
    except OSError as error:
        if is_disk_full(error):
            raise OutputDiskFull(out) from error
        raise
    handler = None
    try:
        _clean_stale_scratch(out)
        for folder in ("results", "feedback", ".work"):
            (out / folder).mkdir(exist_ok=True)
        handler = _log_to(out / "grading.log")
        run = GradingRun(config, source, out, sandboxed=not unsafe)
        prepare_reference(run)
        found = ingest(submissions, config.notebook, out / ".work", assignment=config.name)
        log.info("%s: %s", config.name, found.summary())
        if progress:
            print(f"submissions: {found.summary()}", file=sys.stderr)
        results = _grade_all(run, found.submissions, workers, progress, scheduler)
        remove_stale_socket_folders()
        return results
    except Exception as error:
        if is_disk_full(error) and not isinstance(error, OutputDiskFull):
            raise OutputDiskFull(out) from error
        raise
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()
        lock.release()


def read_source(config: AssignmentConfig) -> SourceNotebook:
    """The assignment's source notebook, or a :class:`ConfigError` that says what is wrong with it."""
    path = config.source_path
    try:
        return read_source_notebook(path)
    except FileNotFoundError:
        raise ConfigError(f"assignment {config.name!r}: source notebook {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"assignment {config.name!r}: source notebook {path} is not valid JSON "
                          f"(line {error.lineno}, column {error.colno}: {error.msg})") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"assignment {config.name!r}: source notebook {path} is damaged "
                          f"({type(error).__name__}: {str(error)[:200]})") from None


def _clean_stale_scratch(out: Path) -> None:
    """What a killed run left behind: its scratch folders (submissions being run, the unpacked
    input), half-written files, and kernel socket folders no process uses any more."""
    kill_orphaned_runs(out)
    shutil.rmtree(out / ".work", ignore_errors=True)
    for folder in (out / ".reference").glob("*/run"):
        shutil.rmtree(folder, ignore_errors=True)
    remove_temporaries(out)
    remove_stale_socket_folders()


def _grade_all(run: GradingRun, submissions: list[Submission], workers: int | None, progress: bool,
               scheduler: str | None = None) -> list[dict]:
    out, config = run.out, run.config
    gradebook = GradebookWriter(out / "gradebook.db", config.name, config.notebook, run.source)
    results: dict[str, dict] = {}
    pending = []
    for submission in submissions:
        existing = _current_result(out / "results" / f"{submission.key}.json", submission, run.reference_id)
        if existing is not None:
            results[submission.key] = existing
        else:
            pending.append(submission)
    bar = Progress(len(submissions), progress)
    for result in results.values():
        bar.update(result["status"].startswith("ungradable"), fresh=False)

    def store(result: dict) -> None:  # this thread only: the single writer
        if _disk_full(out):  # the run may have failed for that: not the student's fault, so not kept
            raise OutputDiskFull(out, f"while grading {result['student_id']}")
        # The gradebook first, the result last: a result on disk is one the gradebook holds
        # (recording again, after a kill in between, writes the same values).
        gradebook.record(result["student_id"], {t["grade_id"]: t["points"] for t in result["tests"]})
        crash_here("result")  # tests only: a kill between the two
        _write_json(out / "results" / f"{result['key']}.json", result)
        results[result["key"]] = result
        bar.update(result["status"].startswith("ungradable"))

    if scheduler:
        from .cluster import run_on_cluster

        def run_plans(jobs, on_result, on_failure):
            run_on_cluster(scheduler, jobs, execute_submission, (config.limits, run.sandboxed), on_result, on_failure)
    else:
        run_plans = _runs_here(run, workers)
    _grade_pending(run, pending, store, run_plans)
    ordered = [results[s.key] for s in submissions]
    for result in ordered:
        write_feedback(out / "feedback" / result["key"], config, result)
        crash_here("feedback")
    write_grades_csv(out / "grades.csv", run.source, ordered)
    write_report(out / "report.html", config, run.source, ordered)
    shutil.rmtree(out / ".work", ignore_errors=True)
    return ordered


def _runs_here(run: GradingRun, workers: int | None) -> Callable:
    """Run plans on this machine, ``workers`` at a time, each on its own share of the cores."""
    workers = max(1, workers or os.cpu_count() or 1)
    slots: queue.Queue = queue.Queue()
    for slot in cpu_slots(workers):
        slots.put(slot)

    def on_a_slot(key: str, plan: dict) -> list[RunOutcome]:
        cpus = slots.get()
        try:
            return execute_submission(plan, run.config.limits, run.sandboxed, cpus, scratch=run.out / ".work" / key)
        finally:
            slots.put(cpus)

    def run_plans(jobs, on_result, on_failure) -> None:
        # A window of 2 plans per worker: a worker never waits for the next plan, and what the
        # grader holds (plans queued, outcomes not yet concluded) does not grow with the class.
        # Each finished run is forgotten once concluded (a kept future keeps its outcomes).
        jobs = iter(jobs)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            running: dict = {}

            def submit_next() -> None:
                job = next(jobs, None)
                if job is not None:
                    key, plan = job
                    running[pool.submit(on_a_slot, key, plan)] = key

            try:
                for _ in range(2 * workers):
                    submit_next()
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        key = running.pop(future)
                        try:
                            outcomes = future.result()
                        except Exception as error:  # noqa: BLE001 - reported as that student's row
                            on_failure(key, error)
                        else:
                            on_result(key, outcomes)
                        submit_next()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # a stopped run starts nothing more
                raise

    return run_plans


def _disk_full(out: Path, reserve: int = 256 * 1024) -> bool:
    """Whether the output disk is (nearly) full: a run that failed then failed for that."""
    try:
        return shutil.disk_usage(out).free < reserve
    except OSError:
        return False


def _internal_error(run: GradingRun, submission: Submission, started: float) -> dict:
    if is_disk_full(sys.exc_info()[1]):
        raise OutputDiskFull(run.out, f"while grading {submission.student_id}")
    log.error("internal error while grading %s:\n%s", submission.key, traceback.format_exc())
    return _finish(_empty_result(run, submission), "ungradable: internal error (the details are in grading.log)",
                   started)


def _grade_pending(run: GradingRun, pending: list[Submission], store: Callable[[dict], None],
                   run_plans: Callable) -> None:
    """Prepare each submission, have its plan run (:func:`execute_submission`, by ``run_plans``:
    worker threads here, or a Dask cluster), and conclude on what comes back.

    Everything that parses or compiles Python (preparing, concluding) happens in this thread;
    the workers only drive sandboxed runs. CPython 3.11's AST constructor is not safe across
    threads (python/cpython#106905): two submissions parsed at once in worker threads failed with
    "SystemError: AST constructor recursion depth mismatch"."""
    prepared: dict[str, Prepared] = {}

    def jobs():
        for submission in pending:
            try:
                ready = prepare_submission(run, submission)
            except Exception:  # noqa: BLE001 - one submission must never stop the class
                store(_internal_error(run, submission, time.monotonic()))
                continue
            if isinstance(ready, dict):
                store(ready)
            else:
                prepared[submission.key] = ready
                yield submission.key, ready.plan.to_dict()

    def arrived(key: str, outcomes: list[RunOutcome]) -> None:
        ready = prepared.pop(key)  # concluded once: its plan and notebook are not needed again
        try:
            result = conclude_submission(run, ready, outcomes)
        except Exception:  # noqa: BLE001
            result = _internal_error(run, ready.submission, ready.started)
        store(result)

    def lost(key: str, error: BaseException) -> None:
        ready = prepared.pop(key)
        if is_disk_full(error):
            raise OutputDiskFull(run.out, f"while grading {ready.submission.student_id}") from error
        log.error("the runs of %s were lost: %s: %s", key, type(error).__name__, error)
        store(_finish(_empty_result(run, ready.submission),
                      "ungradable: internal error (the details are in grading.log)", ready.started))

    run_plans(jobs(), arrived, lost)
