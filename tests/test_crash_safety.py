"""The grader survives being killed at any instant (issue 18): a class graded through six SIGKILLs
(during the reference run, at a random moment of the grading, inside a gradebook transaction,
between the gradebook and the result file, while the feedback and while grades.csv are written),
each followed by the same command again, ends with exactly the output of an uninterrupted run:
grades.csv and every feedback page byte for byte, and the nbgrader gradebook row for row (a
canonical dump of its content, see :func:`gradebook_dump`: SQLite pages and nbgrader's random row
ids differ between any two runs). No scratch folder, half-written file, socket folder or process
of a killed run is left behind, and a second grader on the same output folder is refused.

Homework 4 is the cheapest real assignment (a kernel run of about a second): 30 submissions, the
bank's mix (correct, partial, blank, each usual mistake, cheats) plus re-submissions of some of
them and broken files. The kill moments come from a seeded RNG (``CRASH_SEED`` overrides it) and
from test-only crash points (``AUTOGRADER_CRASH_AT``, read from the grader's own environment:
no student code can set it).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.storage import CRASH_VARIABLE, TEMPORARY_PREFIX
from banks import a4_alexnet_shapes as bank
from conftest import STARTING_ENVIRONMENT

ASSIGNMENT = bank.HOMEWORK.name
NOTEBOOK = bank.HOMEWORK.notebook
REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEED = int(os.environ.get("CRASH_SEED", "18"))
pytestmark = pytest.mark.usefixtures("sandbox")


# --- the class ---------------------------------------------------------------------------------------


def write_class(root: Path) -> Path:
    """30 submissions: the whole bank, eight students who handed in one of its notebooks too, and
    five broken hand-ins (each still gets a row)."""
    cases = bank.cases()
    for case in cases:
        case.write(root)
    for index, case in enumerate(cases[:8]):
        folder = root / f"resubmitted_{index}"
        folder.mkdir()
        case.build(folder)
    broken = {
        "invalid_json": {NOTEBOOK: '{"cells": ['},
        "empty_file": {NOTEBOOK: ""},
        "no_notebook": {"answers.py": "print('hi')\n"},
        "not_a_notebook": {NOTEBOOK: json.dumps({"hello": "world"})},
        "two_unnamed_notebooks": {"a.ipynb": "{}", "b.ipynb": "{}"},
    }
    for student, files in broken.items():
        (root / student).mkdir()
        for name, text in files.items():
            (root / student / name).write_text(text)
    assert len(list(root.iterdir())) == 30
    return root


# --- running the grader and watching its processes -----------------------------------------------------


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stream:
                    fields = stream.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _still_running(seen: dict[int, str]) -> list[int]:
    table = _process_table()
    return [pid for pid, start in seen.items() if pid in table and table[pid][1] == start
            and not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@dataclass
class Run:
    returncode: int
    stderr: str
    seconds: float
    moment: str = ""
    left_running: list[int] = field(default_factory=list)
    seen: dict[int, str] = field(default_factory=dict)  # every process of its tree: pid -> start time


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "(gone)"


def grade(subs: Path, out: Path, *, crash_at: str | None = None, kill_when=None, during=None) -> Run:
    """``python -m autograder grade`` as an instructor runs it. ``kill_when(out, seconds)`` says
    when to SIGKILL it from outside; ``crash_at`` names a crash point inside it; ``during(out, pid)``
    runs in a thread while it runs. Every process of its tree seen while it ran must be gone within
    15 s of its end."""
    # The run's starting environment (tests/conftest.py), not what an import in this process set.
    environment = dict(STARTING_ENVIRONMENT, PATH=f"{BIN}{os.pathsep}{STARTING_ENVIRONMENT.get('PATH', '')}")
    environment.pop("MPLBACKEND", None)
    environment.pop(CRASH_VARIABLE, None)
    if crash_at:
        environment[CRASH_VARIABLE] = crash_at
    descriptor, name = tempfile.mkstemp(prefix="grader-stderr-", suffix=".txt")  # not on OUT's disk
    errors = Path(name)
    with os.fdopen(descriptor, "w") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, str(subs), "--out", str(out),
             "--workers", "2", "--quiet"], cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=stream)
    started = time.monotonic()
    seen: dict[int, str] = {}
    moment = ""
    helper = threading.Thread(target=during, args=(out, process.pid)) if during else None
    if helper:
        helper.start()
    while process.poll() is None:
        table = _process_table()
        seen.update({pid: table[pid][1] for pid in _descendants(process.pid, table) if pid in table})
        elapsed = time.monotonic() - started
        if kill_when and not moment and kill_when(out, elapsed):
            process.send_signal(signal.SIGKILL)
            moment = f"SIGKILL from outside at {elapsed:.1f} s"
        time.sleep(0.05)
    seconds = time.monotonic() - started
    if helper:
        helper.join()
    deadline = time.monotonic() + 15
    while _still_running(seen) and time.monotonic() < deadline:
        time.sleep(0.2)
    text = errors.read_text()
    errors.unlink()
    return Run(process.returncode, text, seconds, moment, _still_running(seen), seen)


# --- what an output folder holds ---------------------------------------------------------------------------

GRADEBOOK_QUERIES = {
    "students": "SELECT id, first_name, last_name, email, lms_user_id FROM student ORDER BY id",
    "assignments": "SELECT name, duedate, course_id FROM assignment ORDER BY name",
    "notebooks": "SELECT a.name, n.name, n.kernelspec FROM notebook n JOIN assignment a ON n.assignment_id = a.id "
                 "ORDER BY a.name, n.name",
    "cells": "SELECT n.name, c.name, c.type, g.max_score, g.cell_type FROM base_cell c JOIN notebook n "
             "ON c.notebook_id = n.id LEFT JOIN grade_cells g ON g.id = c.id ORDER BY n.name, c.name, c.type",
    "source_cells": "SELECT n.name, s.name, s.cell_type, s.locked, s.source, s.checksum FROM source_cell s "
                    "JOIN notebook n ON s.notebook_id = n.id ORDER BY n.name, s.name",
    "submissions": "SELECT a.name, s.student_id, s.timestamp, s.extension FROM submitted_assignment s "
                   "JOIN assignment a ON s.assignment_id = a.id ORDER BY a.name, s.student_id",
    "submitted_notebooks": "SELECT s.student_id, n.name, sn.flagged, sn.late_submission_penalty "
                           "FROM submitted_notebook sn JOIN submitted_assignment s ON sn.assignment_id = s.id "
                           "JOIN notebook n ON sn.notebook_id = n.id ORDER BY s.student_id, n.name",
    "grades": "SELECT s.student_id, n.name, c.name, g.auto_score, g.manual_score, g.extra_credit, "
              "g.needs_manual_grade FROM grade g JOIN submitted_notebook sn ON g.notebook_id = sn.id "
              "JOIN submitted_assignment s ON sn.assignment_id = s.id JOIN notebook n ON sn.notebook_id = n.id "
              "JOIN base_cell c ON g.cell_id = c.id ORDER BY s.student_id, n.name, c.name",
    "comments": "SELECT s.student_id, n.name, c.name, m.auto_comment, m.manual_comment FROM comment m "
                "JOIN submitted_notebook sn ON m.notebook_id = sn.id JOIN submitted_assignment s "
                "ON sn.assignment_id = s.id JOIN notebook n ON sn.notebook_id = n.id JOIN base_cell c "
                "ON m.cell_id = c.id ORDER BY s.student_id, n.name, c.name",
    "schema_version": "SELECT version_num FROM alembic_version",
}


def gradebook_dump(path: Path) -> dict[str, list[tuple]]:
    """Every table of nbgrader's gradebook with its random ids replaced by the names they point
    at, sorted; and SQLite's own integrity check."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        dump = {name: connection.execute(query).fetchall() for name, query in GRADEBOOK_QUERIES.items()}
        dump["integrity"] = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return dump


def feedback_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "feedback").rglob("*")) if p.is_file()}


def leftovers(out: Path) -> list[str]:
    """Scratch and half-written files no finished run may leave in OUT."""
    found = [str(p) for p in out.rglob(TEMPORARY_PREFIX + "*")]
    found += [str(p) for p in (out / ".work",) if p.exists()]
    found += [str(p) for p in out.glob(".reference/*/run")]
    found += [str(p) for p in out.glob(".reference/*") if not (p / "complete").is_file()]
    return found


def socket_folders() -> set[str]:
    return {str(p) for p in Path("/tmp").glob("cvk-*")}


def _commands() -> str:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().decode(errors="replace"))
            except OSError:
                pass
    return "\n".join(lines)


# --- the test ----------------------------------------------------------------------------------------------------


def _after(path_glob: str, delay: float):
    """Kill ``delay`` seconds after ``path_glob`` (under OUT) first exists."""
    first_seen: list[float] = []

    def when(out: Path, elapsed: float) -> bool:
        if not first_seen and any(out.glob(path_glob)):
            first_seen.append(elapsed)
        return bool(first_seen) and elapsed - first_seen[0] >= delay

    return when


def _once(ready, when):
    """``when``, but only after ``ready()`` (the second grader has been refused)."""
    return lambda out, elapsed: ready() and when(out, elapsed)


@pytest.mark.slow  # about 5 minutes on 2 cores: make test-slow (CI's make test leaves it out)
def test_killed_at_any_moment_and_started_again_the_output_is_exactly_an_uninterrupted_runs(tmp_path):
    rng = random.Random(SEED)
    subs = write_class(tmp_path / "submissions")
    sockets_before = socket_folders()

    clean = grade(subs, tmp_path / "uninterrupted")
    assert clean.returncode == 0, clean.stderr
    expected_csv = (tmp_path / "uninterrupted" / "grades.csv").read_bytes()
    expected_feedback = feedback_files(tmp_path / "uninterrupted")
    expected_gradebook = gradebook_dump(tmp_path / "uninterrupted" / "gradebook.db")
    assert expected_csv.count(b"\n") == 31 and len(expected_feedback) == 30
    assert len(expected_gradebook["grades"]) == 30 * 8 and expected_gradebook["integrity"] == [("ok",)]

    out = tmp_path / "killed"
    refused: list[Run] = []

    def second_grader(out: Path, first: int) -> None:  # started while the first one runs, on the same folder
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (out / ".lock").read_text().strip() == str(first):
                    break
            except OSError:
                pass
            time.sleep(0.05)
        refused.append(grade(subs, out))

    kills = [
        ("during the reference run", dict(kill_when=_after(".reference/*/run", rng.uniform(0.2, 1.2)))),
        ("at a random moment of the grading", dict(kill_when=_once(lambda: bool(refused), _after(
            ".reference/*/complete", rng.uniform(1.0, 10.0))), during=second_grader)),
        ("inside a gradebook transaction", dict(crash_at=f"gradebook:{rng.randint(1, 4)}")),
        ("between the gradebook and the result file", dict(crash_at=f"result:{rng.randint(1, 3)}")),
        ("while the feedback is written", dict(crash_at=f"feedback:{rng.randint(2, 29)}")),
        ("while grades.csv is written", dict(crash_at="grades.csv")),
    ]
    timeline = []
    seen: dict[int, str] = {}
    for what, how in kills:
        results_before = len(list((out / "results").glob("*.json"))) if (out / "results").exists() else 0
        run = grade(subs, out, **how)
        moment = run.moment or f"crash point {how['crash_at']}"
        timeline.append(f"{what}: {moment}, {results_before} results kept before, after {run.seconds:.1f} s")
        assert run.returncode == -signal.SIGKILL, (what, run.returncode, run.stderr)
        seen.update(run.seen)
        if run.left_running:  # a kernel that was starting when the grader died: the next start ends it
            timeline.append(f"  still running 15 s after the kill: {[_command(pid) for pid in run.left_running]}")
        if what == "during the reference run":
            assert not list(out.glob(".reference/*/complete")), "the kill came after the reference run"
        if what == "while grades.csv is written":
            assert not (out / "grades.csv").exists() or (out / "grades.csv").read_bytes() == expected_csv
    print("\n".join(timeline))
    assert len(refused) == 1
    assert refused[0].returncode == 2, refused[0].stderr
    assert "another grader" in refused[0].stderr and "is writing to" in refused[0].stderr
    assert "Traceback" not in refused[0].stderr and refused[0].stderr.count("\n") == 1

    final = grade(subs, out)  # the kills left a stale lock file: it must not block
    assert final.returncode == 0, final.stderr
    assert final.left_running == []
    leaked = _still_running(seen)
    assert leaked == [], f"processes of killed graders outlived the next run: {[_command(p) for p in leaked]}"
    assert (out / "grades.csv").read_bytes() == expected_csv
    assert feedback_files(out) == expected_feedback
    assert gradebook_dump(out / "gradebook.db") == expected_gradebook
    assert leftovers(out) == [] and leftovers(tmp_path / "uninterrupted") == []
    commands = _commands()
    stale = [folder for folder in socket_folders() - sockets_before if folder not in commands]
    assert stale == [], "socket folders of killed runs are left in /tmp"
    assert str(out) not in commands and str(subs) not in commands


# --- a full disk, and two graders at once ------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs (we grade as root in CI); skipped where mounting is not allowed."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write until the disk says it is full."""
    with open(folder / "filler", "wb") as stream:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                stream.write(chunk)
                stream.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    try:
        with open(folder / "filler-small", "wb") as stream:  # the last few blocks too
            while True:
                stream.write(b"\0" * 4096)
                stream.flush()
    except OSError:
        pass


def test_a_disk_that_fills_up_ends_the_run_with_one_line_and_keeps_the_earlier_results(tmp_path, small_disk):
    cases = {case.name: case for case in bank.cases()}
    subs = tmp_path / "submissions"
    for name in ("correct", "blank", "mistake_floor"):
        cases[name].write(subs)
    out = small_disk / "out"
    first = grade(subs, out)
    assert first.returncode == 0, first.stderr
    earlier_csv = (out / "grades.csv").read_bytes()
    earlier_gradebook = gradebook_dump(out / "gradebook.db")

    for name in ("partial_first_three_parts", "mistake_pad_once", "mistake_no_biases", "mistake_groups_ignored"):
        cases[name].write(subs)
    shutil.rmtree(out / "results")  # everything is graded again, on a disk that fills up meanwhile

    def fill_when_grading(out: Path, _pid: int) -> None:
        deadline = time.monotonic() + 120
        while not list((out / "results").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        _fill(small_disk)

    run = grade(subs, out, during=fill_when_grading)
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the output disk is full"), run.stderr
    assert "Traceback" not in run.stderr
    assert run.left_running == []
    assert (out / "grades.csv").read_bytes() == earlier_csv
    assert gradebook_dump(out / "gradebook.db")["integrity"] == [("ok",)]
    assert {row[0] for row in gradebook_dump(out / "gradebook.db")["submissions"]} == {ASSIGNMENT}
    assert earlier_gradebook["grades"][0] in gradebook_dump(out / "gradebook.db")["grades"]

    # Space again: the same command finishes the job.
    for filler in small_disk.glob("filler*"):
        filler.unlink()
    again = grade(subs, out)
    assert again.returncode == 0, again.stderr
    assert (out / "grades.csv").read_text().count("\n") == 8
