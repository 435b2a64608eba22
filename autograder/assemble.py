"""Build the notebook to run from the instructor's source and the student's answers.

Only the student's *answer* cells (matched by nbgrader grade id) and code cells the student
added are taken from the submission. Every test cell, locked cell and instruction comes from
the source notebook, hidden tests included, whatever the submission did to them: deleted,
reordered, edited, re-typed or re-labelled test cells are restored, and the metadata of the
submission (points, cell types, checksums) is never trusted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .notebooks import ANSWER, SourceNotebook, cell_source, nbgrader_metadata

BLANK_ANSWER = "# YOUR CODE HERE\nraise NotImplementedError()\n"


class UngradableSubmission(Exception):
    """Nothing in the submission can be graded; the message is the row's status."""


@dataclass
class Assembled:
    notebook: dict
    notes: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # grade id -> submitted source
    extra_code: list[str] = field(default_factory=list)  # code cells the student added


def parse_submission(raw: bytes) -> dict:
    """Decode a submitted notebook file, or raise :class:`UngradableSubmission`."""
    try:
        notebook = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, or an integer of 5 000 digits
        raise UngradableSubmission(f"invalid notebook: not JSON ({type(error).__name__})") from error
    except RecursionError as error:  # nesting deeper than the parser goes
        raise UngradableSubmission("invalid notebook: nested too deeply") from error
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise UngradableSubmission("invalid notebook: no list of cells")
    return notebook


def _defined_names(code: str) -> set[str]:
    return set(re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", code, flags=re.M))


def _answer_function_names(source: SourceNotebook) -> set[str]:
    return {name for cell in source.answers for name in _defined_names(cell.source)}


def assemble(source: SourceNotebook, submitted: dict) -> Assembled:
    """Return the notebook to execute and notes on what was repaired."""
    known = source.by_grade_id()
    answer_ids = {cell.grade_id for cell in source.answers}
    answers: dict[str, list[str]] = {}
    extras: dict[str | None, list[str]] = {}
    notes: list[str] = []
    anchor: str | None = None
    matched_any = False
    for cell in submitted["cells"]:
        if not isinstance(cell, dict):
            notes.append("a malformed cell was ignored")
            continue
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if isinstance(grade_id, str) and grade_id in known:
            matched_any = True
            anchor = grade_id
            if grade_id in answer_ids:
                if cell.get("cell_type") != "code":
                    notes.append(f"answer cell {grade_id} is not a code cell; it was not run")
                    answers.setdefault(grade_id, [])
                else:
                    if grade_id in answers:
                        notes.append(f"answer cell {grade_id} appears more than once; all copies were run")
                    answers.setdefault(grade_id, []).append(cell_source(cell))
            # Tests and locked cells: the source version is used whatever the student sent.
            continue
        if cell.get("cell_type") == "code" and cell_source(cell).strip():
            extras.setdefault(anchor, []).append(cell_source(cell))

    if not matched_any:
        # Cell ids lost (another editor, a copy-paste into a new notebook): the submission still
        # counts if its code defines the assignment's functions; its cells then run in order.
        expected = _answer_function_names(source)
        defined = {name for text in extras.get(None, []) for name in _defined_names(text)}
        if not expected & defined:
            raise UngradableSubmission(
                "not a notebook of this assignment: none of its cells or functions belongs to it"
            )
        notes.append("no cell carries this assignment's cell ids; the notebook's code cells were "
                     "run in their own order before the tests")
    missing_answers = [grade_id for grade_id in answer_ids if grade_id not in answers]
    if missing_answers and matched_any:
        notes.append(f"{len(missing_answers)} answer cell(s) missing: {', '.join(sorted(missing_answers))}")
    submitted_ids = [nbgrader_metadata(c).get("grade_id") for c in submitted["cells"] if isinstance(c, dict)]
    missing_tests = [cell.grade_id for cell in source.tests if cell.grade_id not in submitted_ids]
    if missing_tests and matched_any:
        notes.append(f"{len(missing_tests)} test cell(s) deleted or re-labelled; the originals were run")

    extra_code = [text for texts in extras.values() for text in texts]
    cells = []

    def code_cell(text: str) -> dict:
        return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": text}

    first_code_seen = False
    for source_cell in source.cells:
        if source_cell.kind == ANSWER:
            texts = answers.get(source_cell.grade_id) or [BLANK_ANSWER]
            for text in texts:
                cell = code_cell(text)
                cell["metadata"] = {"grader": {"grade_id": source_cell.grade_id}}
                cells.append(cell)
        else:
            cell = json.loads(json.dumps(source_cell.cell))  # a copy; outputs are never carried
            cell["source"] = source_cell.source
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
            cell.setdefault("metadata", {})["grader"] = {"grade_id": source_cell.grade_id}
            cells.append(cell)
        if source_cell.cell.get("cell_type") == "code" and not first_code_seen:
            first_code_seen = True
            # Code the student wrote above every known cell runs after the set-up cell.
            cells.extend(code_cell(text) for text in extras.pop(None, []))
        cells.extend(code_cell(text) for text in extras.get(source_cell.grade_id, []))

    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    return Assembled(
        notebook=notebook,
        notes=notes,
        answers={key: "\n".join(value) for key, value in answers.items()},
        extra_code=extra_code,
    )
