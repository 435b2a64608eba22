"""Building blocks of the test banks: an assignment's notebooks, submissions built from its
committed student version, and cases with the exact score each must get.

A bank module ``tests/banks/aN_name.py`` defines ``HOMEWORK = Homework("aN_name", "name.ipynb")``
and ``cases() -> list[Case]``; every submission starts from the student version with answer
cells filled from the solution (:func:`solution_answers`), left blank (:func:`blank_answers`),
or edited (:func:`replace`), the way a student's notebook would look.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from autograder.notebooks import cell_source, nbgrader_metadata

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n", flags=re.M)


def grade_id(cell: dict) -> str | None:
    return nbgrader_metadata(cell).get("grade_id")


@dataclass(frozen=True)
class Homework:
    """One assignment's source (solutions/) and student version (assignments/)."""

    name: str
    notebook: str

    @property
    def solution(self) -> Path:
        return REPO_ROOT / "solutions" / self.name / self.notebook

    @property
    def release(self) -> Path:
        return REPO_ROOT / "assignments" / self.name / self.notebook

    @cached_property
    def answer_ids(self) -> tuple[str, ...]:
        cells = json.loads(self.solution.read_text())["cells"]
        return tuple(grade_id(c) for c in cells
                     if nbgrader_metadata(c).get("solution") and c.get("cell_type") == "code")

    @cached_property
    def test_ids(self) -> tuple[str, ...]:
        cells = json.loads(self.solution.read_text())["cells"]
        return tuple(grade_id(c) for c in cells if nbgrader_metadata(c).get("grade"))


def solution_answers(homework: Homework) -> dict[str, str]:
    """The solution's answer cells as a student would submit them (no nbgrader markers)."""
    cells = json.loads(homework.solution.read_text())["cells"]
    return {grade_id(c): SOLUTION_MARKERS.sub("", cell_source(c)) for c in cells
            if grade_id(c) in homework.answer_ids}


def blank_answers(homework: Homework) -> dict[str, str]:
    """The answer cells of the student version, untouched."""
    cells = json.loads(homework.release.read_text())["cells"]
    return {grade_id(c): cell_source(c) for c in cells if grade_id(c) in homework.answer_ids}


def student_notebook(homework: Homework, answers: dict[str, str]) -> dict:
    """The student version with the given answer cells filled in."""
    notebook = json.loads(homework.release.read_text())
    for cell in notebook["cells"]:
        if grade_id(cell) in answers:
            cell["source"] = answers[grade_id(cell)]
    return notebook


def replace(answers: dict[str, str], cell: str, old: str, new: str) -> dict[str, str]:
    """A copy of ``answers`` with ``old`` replaced by ``new`` in one cell (``old`` must be there)."""
    changed = dict(answers)
    assert old in changed[cell], f"{old!r} is not in the solution's {cell}: update the bank"
    changed[cell] = changed[cell].replace(old, new)
    return changed


def with_cells(answers: dict[str, str], **cells: str) -> dict[str, str]:
    return {**answers, **cells}


def edited(homework: Homework, *edits: tuple[str, str, str]) -> Callable[[], dict[str, str]]:
    """A builder of the solution's answers with (cell, old, new) edits applied in order."""
    def answers() -> dict[str, str]:
        changed = solution_answers(homework)
        for cell, old, new in edits:
            changed = replace(changed, cell, old, new)
        return changed
    return answers


def partly_done(homework: Homework, *cells: str) -> dict[str, str]:
    """The blank answers, with these cells taken from the solution."""
    right = solution_answers(homework)
    return with_cells(blank_answers(homework), **{cell: right[cell] for cell in cells})


def appended(answers: dict[str, str], cell: str, code: str) -> dict[str, str]:
    """A copy of ``answers`` with ``code`` added at the end of one answer cell."""
    return with_cells(answers, **{cell: answers[cell] + "\n" + code})


@dataclass(frozen=True)
class Probe:
    """Host resources the escape cheats aim at, so a test can see whether they were reached:
    files that must never be written, and a loopback TCP port that must never be connected to.
    The defaults aim at nothing in particular (for benchmarks)."""

    paths: tuple[str, ...] = ("/tmp/cvcourse-sandbox-escape-marker",)
    port: int = 9


@dataclass
class Case:
    """One submission and the score it must get (``status``: a substring of its row's status)."""

    name: str
    expected_score: float
    build: Callable[[Path], None]  # writes the student's folder
    status: str = "graded"
    note: str = ""

    def write(self, root: Path) -> Path:
        folder = root / self.name
        folder.mkdir(parents=True)
        self.build(folder)
        return folder


def notebook_case(homework: Homework, name: str, expected: float, answers: Callable[[], dict[str, str]],
                  status: str = "graded", mutate: Callable[[dict], dict] | None = None,
                  filename: str | None = None, note: str = "") -> Case:
    """A case whose folder holds one notebook: the student version with ``answers()`` filled in,
    then ``mutate`` applied to the notebook's JSON."""
    def build(folder: Path) -> None:
        notebook = student_notebook(homework, answers())
        if mutate is not None:
            notebook = mutate(copy.deepcopy(notebook))
        (folder / (filename or homework.notebook)).write_text(json.dumps(notebook, indent=1))

    return Case(name, expected, build, status, note)


def hidden_lines(homework: Homework) -> list[str]:
    """Substantial lines of the hidden tests (what must never reach a student)."""
    lines = []
    for cell in json.loads(homework.solution.read_text())["cells"]:
        for hidden in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", cell_source(cell), flags=re.S):
            lines += [line.strip() for line in hidden.splitlines() if len(line.strip()) > 25]
    assert lines, f"{homework.solution} has no hidden tests"
    return lines


def solution_lines(homework: Homework) -> list[str]:
    """Substantial lines of the solution regions that appear nowhere else in the source notebook
    (a docstring may legitimately tell the student a line such as `W -= learning_rate * dW`), nor
    in the book's chapters (a generic line such as `metrics=["accuracy"])` is no secret)."""
    lines = []
    public = "".join(path.read_text() for path in sorted((REPO_ROOT / "book").glob("*.md")))
    for cell in json.loads(homework.solution.read_text())["cells"]:
        text = cell_source(cell)
        for body in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", text, flags=re.S):
            lines += [line.strip() for line in body.splitlines() if len(line.strip()) > 20]
        public += re.sub(r"### BEGIN SOLUTION.*?### END SOLUTION", "", text, flags=re.S)
    lines = [line for line in lines if line not in public]
    assert lines, f"{homework.solution} has no solution lines"
    return lines
