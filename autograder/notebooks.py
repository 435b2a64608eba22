"""The instructor's source notebook as the grader sees it: which cells are answers, which are
tests (with their points), and which are locked instructions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ANSWER, TEST, LOCKED = "answer", "test", "locked"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
SKIP_TAG = "skip-when-grading"  # a locked cell the grader does not run (slow, ungraded)
_HIDDEN_REGION = re.compile(
    rf"^[ \t]*{re.escape(HIDDEN_BEGIN)}[^\n]*\n?(.*?)^[ \t]*{re.escape(HIDDEN_END)}[^\n]*\n?", flags=re.S | re.M)


def nbgrader_metadata(cell: dict) -> dict:
    metadata = cell.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    value = metadata.get("nbgrader")
    return value if isinstance(value, dict) else {}


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return str(source)


@dataclass(frozen=True)
class SourceCell:
    """One cell of the source notebook. ``kind`` is answer, test or locked (any other cell)."""

    grade_id: str | None
    kind: str
    cell: dict
    points: float = 0.0

    @property
    def source(self) -> str:
        return cell_source(self.cell)

    @property
    def visible_source(self) -> str:
        """The source without its hidden-test region: what a student sees of a test cell."""
        return _HIDDEN_REGION.sub("", self.source)

    @property
    def hidden_source(self) -> str:
        """The code of the hidden-test regions alone."""
        return "\n".join(match.group(1) for match in _HIDDEN_REGION.finditer(self.source))

    @property
    def skipped_when_grading(self) -> bool:
        tags = self.cell.get("metadata", {}).get("tags", [])
        return self.kind == LOCKED and isinstance(tags, list) and SKIP_TAG in tags

    @property
    def description(self) -> str:
        """The test's first comment line, e.g. 'svm_loss_naive matches ... (20 points)'."""
        for line in self.source.splitlines():
            line = line.strip()
            if line.startswith("#"):
                return line.lstrip("# ").removeprefix("Test:").strip()
        return self.grade_id or ""


@dataclass(frozen=True)
class SourceNotebook:
    path: Path
    cells: tuple[SourceCell, ...]

    @property
    def tests(self) -> tuple[SourceCell, ...]:
        return tuple(cell for cell in self.cells if cell.kind == TEST)

    @property
    def answers(self) -> tuple[SourceCell, ...]:
        return tuple(cell for cell in self.cells if cell.kind == ANSWER)

    @property
    def max_score(self) -> float:
        return sum(cell.points for cell in self.tests)

    def by_grade_id(self) -> dict[str, SourceCell]:
        return {cell.grade_id: cell for cell in self.cells if cell.grade_id}

    @property
    def setup(self) -> tuple[SourceCell, ...]:
        """The set-up: locked code cells before the first answer cell. They run in every kernel."""
        cells = []
        for cell in self.cells:
            if cell.kind == ANSWER:
                break
            if cell.kind == LOCKED and cell.cell.get("cell_type") == "code" and not cell.skipped_when_grading:
                cells.append(cell)
        return tuple(cells)


def read_source_notebook(path: Path) -> SourceNotebook:
    """Parse an nbgrader source notebook; its grade ids must be unique and its tests scored."""
    notebook = json.loads(Path(path).read_text())
    cells = []
    for cell in notebook["cells"]:
        meta = nbgrader_metadata(cell)
        grade_id = meta.get("grade_id")
        if meta.get("solution") and cell.get("cell_type") == "code":
            kind = ANSWER
        elif meta.get("grade") and cell.get("cell_type") == "code":
            kind = TEST
        else:
            kind = LOCKED
        cells.append(SourceCell(grade_id, kind, cell, float(meta.get("points", 0) or 0)))
    ids = [cell.grade_id for cell in cells if cell.grade_id]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"{path}: duplicated grade ids {duplicated}")
    source = SourceNotebook(Path(path), tuple(cells))
    unscored = [cell.grade_id for cell in source.tests if cell.points <= 0]
    if unscored:
        raise ValueError(f"{path}: test cells without points: {unscored}")
    unhidden = [cell.grade_id for cell in source.tests if not cell.hidden_source.strip()]
    if unhidden:
        raise ValueError(f"{path}: test cells without hidden tests (nothing to record): {unhidden}")
    return source
