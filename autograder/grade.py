"""Grade a class: ingest, assemble, execute in the sandbox, verify, record, report.

Results are kept per student in ``OUT/results/STUDENT.json`` as soon as each is verified, so a
run that is killed part-way and started again grades only what is missing (or what changed:
a result counts only for the same submission bytes and the same reference).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import assemble as assembling
from .config import AssignmentConfig, load_assignment
from .feedback import write_feedback
from .gradebook import GradebookWriter
from .ingest import Submission, ingest
from .notebooks import SourceNotebook, read_source_notebook
from .report import write_report
from .sandbox import SandboxUnavailable, bubblewrap_problem, run_notebook
from .verify import Reference, check_source, check_value, feedback_message, load_records, load_reference

PACKAGE_DIR = Path(__file__).parent


@dataclass
class GradingRun:
    config: AssignmentConfig
    source: SourceNotebook
    out: Path
    sandboxed: bool
    reference: Reference | None = None
    reference_id: str = ""


def _reference_id(config: AssignmentConfig) -> str:
    """Changes whenever anything that decides a verdict changes: then every result is redone."""
    digest = hashlib.sha256()
    for path in (config.source_path, PACKAGE_DIR / "runner.py", PACKAGE_DIR / "assemble.py",
                 PACKAGE_DIR / "verify.py", PACKAGE_DIR / "assignments.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepare_reference(run: GradingRun) -> None:
    """Run the solution notebook through the same pipeline and keep what its hidden tests record."""
    run.reference_id = _reference_id(run.config)
    folder = run.out / ".reference" / run.reference_id
    done = folder / "complete"
    if not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        solution = json.loads(run.config.source_path.read_text())
        assembled = assembling.assemble(run.source, solution)
        result = run_notebook(json.dumps(assembled.notebook), folder / "run", run.config.limits,
                              sandboxed=run.sandboxed)
        if result.timed_out:
            raise RuntimeError(f"the solution notebook did not finish within {run.config.limits.wall_seconds} s")
        done.write_text(f"{result.seconds:.1f}\n")
    run.reference = load_reference(folder / "run" / "out", [t.grade_id for t in run.source.tests],
                                   run.config.limits.records_mb * 1024 * 1024)


def _status(notes: list[str]) -> str:
    return "graded" if not notes else "graded (" + "; ".join(notes) + ")"


def grade_submission(run: GradingRun, submission: Submission) -> dict:
    """Grade one student; never raises for anything the submission contains."""
    started = time.monotonic()
    tests = run.source.tests
    result = {
        "student_id": submission.student_id, "assignment": run.config.name,
        "fingerprint": submission.fingerprint, "reference_id": run.reference_id,
        "max_score": run.source.max_score, "score": 0.0, "notes": list(submission.notes),
        "tests": [{"grade_id": t.grade_id, "description": t.description, "points": 0.0,
                   "max_points": t.points, "passed": False, "message": "not graded", "reason": ""}
                  for t in tests],
    }

    def finish(status: str) -> dict:
        result["status"] = status
        result["score"] = round(sum(t["points"] for t in result["tests"]), 6)
        result["seconds"] = round(time.monotonic() - started, 2)
        return result

    if submission.raw is None:
        return finish(f"ungradable: {submission.problem}")
    try:
        assembled = assembling.assemble(run.source, assembling.parse_submission(submission.raw))
    except assembling.UngradableSubmission as problem:
        return finish(f"ungradable: {problem}")
    notes = result["notes"] + assembled.notes

    scratch = run.out / ".work" / submission.student_id
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    outcome = run_notebook(json.dumps(assembled.notebook), scratch, run.config.limits, sandboxed=run.sandboxed)
    manifest_file = outcome.out / "manifest.json"
    try:
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {"cells": []}
    except (OSError, ValueError):
        manifest = {"cells": []}
        notes.append("the run's manifest was damaged")
    records = load_records(outcome.out / "records", run.config.limits.records_mb * 1024 * 1024)
    if outcome.timed_out:
        notes.append(f"stopped at the time limit of {run.config.limits.wall_seconds} s")
    elif manifest.get("stopped"):
        notes.append(f"the run stopped early: {manifest['stopped']}")
    elif not manifest_file.is_file() or manifest.get("seconds") is None:
        notes.append("the run ended abnormally (the kernel or the runner was killed)")
    if manifest.get("output_truncated"):
        notes.append(f"output beyond {run.config.limits.output_kb} KB was dropped")
    errors_by_cell = {}
    for entry in manifest.get("cells", []):
        if isinstance(entry, dict) and isinstance(entry.get("grade_id"), str):
            errors_by_cell[entry["grade_id"]] = (entry.get("status"), entry.get("error"))
            if entry.get("status") == "timeout":
                notes.append(f"cell {entry['grade_id']} ran longer than {run.config.limits.cell_seconds} s")
    student_code = list(assembled.answers.values()) + assembled.extra_code

    for test, row in zip(tests, result["tests"]):
        reference = run.reference
        problems = [p for key in reference.keys_by_cell[test.grade_id]
                    if (p := check_value(key, reference, records.get(key))) is not None]
        check = run.config.source_checks.get(test.grade_id)
        source_problem = check_source(check, student_code) if check else None
        status, error = errors_by_cell.get(test.grade_id, (None, None))
        if not problems and source_problem is None:
            row.update(passed=True, points=test.points, message="passed", reason="")
            continue
        if source_problem is not None and not problems:
            row.update(message=f"the code does not meet the assignment's rules: {source_problem}",
                       reason=source_problem)
            continue
        visible = feedback_message(error, test.visible_source) if status in ("error", "timeout") else ""
        row.update(message=visible or "failed the hidden tests",
                   reason="; ".join(problems[:5]) + (f"; source: {source_problem}" if source_problem else ""))
    executed = outcome.out / "executed.ipynb"
    if executed.is_file() and not executed.is_symlink() and executed.stat().st_size < 20 * 2**20:
        (run.out / "executed").mkdir(exist_ok=True)
        shutil.copyfile(executed, run.out / "executed" / f"{submission.student_id}.ipynb")
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch.parent / f"{scratch.name}.log").unlink(missing_ok=True)
    return finish(_status(notes))


def _write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)  # atomic: a killed run never leaves half a result


def _current_result(path: Path, submission: Submission, reference_id: str) -> dict | None:
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if result.get("fingerprint") == submission.fingerprint and result.get("reference_id") == reference_id:
        return result
    return None


class Progress:
    """One line on stderr: submissions done, failed (ungradable) and remaining."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.failed, self.enabled = total, 0, 0, enabled
        self.tty = sys.stderr.isatty()
        self.lock = threading.Lock()

    def update(self, failed: bool) -> None:
        with self.lock:
            self.done += 1
            self.failed += int(failed)
            if not self.enabled:
                return
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} done, "
                    f"{self.failed} failed, {self.total - self.done} remaining")
            if self.tty:
                print("\r" + line, end="" if self.done < self.total else "\n", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)


def write_grades_csv(path: Path, source: SourceNotebook, results: list[dict]) -> None:
    test_ids = [t.grade_id for t in source.tests]
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student_id", "assignment", "score", "max_score", "status", *test_ids])
        for result in sorted(results, key=lambda r: r["student_id"]):
            points = {t["grade_id"]: t["points"] for t in result["tests"]}
            writer.writerow([result["student_id"], result["assignment"], _number(result["score"]),
                             _number(result["max_score"]), result["status"],
                             *[_number(points[t]) for t in test_ids]])
    os.replace(temporary, path)


def _number(value: float) -> str:
    return f"{value:g}"


def grade_class(assignment: str, submissions: Path, out: Path, *, workers: int | None = None,
                unsafe: bool = False, progress: bool = True,
                config: AssignmentConfig | None = None) -> list[dict]:
    """Grade every submission; returns the results (one per student) and writes OUT.

    ``config`` replaces the settings of assignments.toml (tests use shorter limits).
    """
    config = config or load_assignment(assignment)
    if not unsafe:
        problem = bubblewrap_problem()
        if problem:
            raise SandboxUnavailable(
                f"{problem}\nStudent code must run in a sandbox. To grade without one (only on a "
                "machine you can afford to lose to a malicious submission), add --unsafe.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("results", "feedback", ".work"):
        (out / folder).mkdir(exist_ok=True)
    run = GradingRun(config, read_source_notebook(config.source_path), out, sandboxed=not unsafe)
    prepare_reference(run)
    submissions_found = ingest(submissions, config.notebook, out / ".work")
    gradebook = GradebookWriter(out / "gradebook.db", config.name, config.notebook, run.source)

    results: dict[str, dict] = {}
    pending = []
    for submission in submissions_found:
        existing = _current_result(out / "results" / f"{submission.student_id}.json", submission, run.reference_id)
        if existing is not None:
            results[submission.student_id] = existing
        else:
            pending.append(submission)
    bar = Progress(len(submissions_found), progress)
    for result in results.values():
        bar.update(result["status"].startswith("ungradable"))

    def store(result: dict) -> None:  # main thread only: the single writer
        _write_json(out / "results" / f"{result['student_id']}.json", result)
        gradebook.record(result["student_id"], {t["grade_id"]: t["points"] for t in result["tests"]})
        results[result["student_id"]] = result
        bar.update(result["status"].startswith("ungradable"))

    workers = max(1, workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(grade_submission, run, submission) for submission in pending]
        for future in as_completed(futures):
            store(future.result())

    ordered = [results[s.student_id] for s in submissions_found]
    for result in ordered:
        write_feedback(out / "feedback" / result["student_id"], config, result)
    write_grades_csv(out / "grades.csv", run.source, ordered)
    write_report(out / "report.html", config, run.source, ordered)
    shutil.rmtree(out / ".work", ignore_errors=True)
    return ordered
