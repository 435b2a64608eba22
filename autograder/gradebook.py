"""Keep nbgrader's gradebook up to date with the grader's verdicts.

Only the orchestrating process writes here (one writer, after each verdict), so workers never
contend for the SQLite file. The gradebook lives with the grading output, never where a
sandbox can see it. Instructors can open it with nbgrader's own tools (formgrader, export).
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

# nbgrader creates and migrates the database with the `alembic` command of its environment.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

from .notebooks import ANSWER, TEST, SourceNotebook
from .storage import TEMPORARY_PREFIX, crash_here


def _create(path: Path) -> None:
    """A new, empty gradebook, created under a temporary name and renamed into place: nbgrader
    creates its tables and stamps its schema version in several steps, and a grader killed
    between them left a gradebook without its version table that nbgrader's tools reject."""
    descriptor, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX + path.name + ".", dir=path.parent)
    os.close(descriptor)
    os.unlink(temporary)  # nbgrader creates the database file itself
    try:
        with Gradebook(f"sqlite:///{temporary}"):
            pass
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        for leftover in (temporary, temporary + "-journal"):
            if os.path.exists(leftover):
                os.unlink(leftover)


class GradebookWriter:
    def __init__(self, path: Path, assignment: str, notebook_name: str, source: SourceNotebook):
        path = Path(path).resolve()
        if not path.exists():
            _create(path)
        self.url = f"sqlite:///{path}"
        self.assignment = assignment
        self.notebook = Path(notebook_name).stem
        self.source = source
        with Gradebook(self.url) as gradebook:
            gradebook.update_or_create_assignment(assignment)
            gradebook.update_or_create_notebook(self.notebook, assignment)
            for cell in source.cells:
                if cell.kind == TEST:
                    gradebook.update_or_create_grade_cell(
                        cell.grade_id, self.notebook, assignment, max_score=cell.points, cell_type="code")
                    gradebook.update_or_create_source_cell(
                        cell.grade_id, self.notebook, assignment, cell_type="code", locked=True,
                        source=cell.source)
                elif cell.kind == ANSWER:
                    gradebook.update_or_create_solution_cell(cell.grade_id, self.notebook, assignment)
                    gradebook.update_or_create_source_cell(
                        cell.grade_id, self.notebook, assignment, cell_type="code", locked=False,
                        source=cell.source)

    def record(self, student_id: str, points_by_test: dict[str, float]) -> None:
        """Store one student's automatic scores (replacing an earlier grading of the same).
        Idempotent: recording the same scores again leaves the same gradebook."""
        with Gradebook(self.url) as gradebook:
            gradebook.update_or_create_student(student_id)
            try:
                gradebook.find_submission(self.assignment, student_id)
            except MissingEntry:
                with warnings.catch_warnings():
                    # nbgrader's own add_submission trips SQLAlchemy autoflush notices: not ours to fix.
                    warnings.simplefilter("ignore", SAWarning)
                    gradebook.add_submission(self.assignment, student_id)
            for grade_id, points in points_by_test.items():
                grade = gradebook.find_grade(grade_id, self.notebook, self.assignment, student_id)
                grade.auto_score = points
            crash_here("gradebook")  # tests only: a kill inside the transaction
            gradebook.db.commit()  # one SQLite transaction: a killed run leaves all of it or none

    def score(self, student_id: str) -> float:
        with Gradebook(self.url) as gradebook:
            return gradebook.find_submission(self.assignment, student_id).score
