"""What runs for one submission: the notebook, and one clean run per group of rule-checked tests.

* **The notebook run** is the assembled notebook (:mod:`autograder.assemble`): the student's
  answer and added cells among the instructor's cells, as the student ran them. Tests without
  source rules run whole, and their records count (a *window*). Tests with rules run only their
  visible part here: whether it completes without error is part of their verdict.
* **A clean run** per distinct set of rules: the set-up cells, then only the student's top-level
  statements that the group's hidden parts rely on (:mod:`autograder.analysis`), one per cell,
  then each hidden part as a window. Nothing else of the student's exists in that kernel, so
  the records come from exactly the code the rules were checked on.

Plans are plain data (lists of strings and flags), so a run can be shipped to another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .analysis import SubmissionAnalysis
from .config import AssignmentConfig, Rules
from .notebooks import ANSWER, TEST, SourceNotebook, cell_source
from .records import RECORDER_SOURCE


@dataclass(frozen=True)
class PlannedCell:
    """One cell to execute. ``test``: the test cell whose records count while it runs (a window),
    or None; ``grade_id``: the source cell it comes from, for the executed notebook."""

    code: str
    grade_id: str | None = None
    test: str | None = None


@dataclass
class RunPlan:
    """The cells of one kernel's run, in order; ``name`` is ``notebook`` or the rules it checks."""

    name: str
    cells: list[PlannedCell] = field(default_factory=list)

    def windows(self) -> list[str]:
        return [cell.test for cell in self.cells if cell.test]


@dataclass
class SubmissionPlan:
    """Every run of one submission, and the verdict of the source rules on each checked test."""

    runs: list[RunPlan]
    rule_problems: dict[str, str | None]  # test id -> None (obeys its rules) or the violation

    def to_dict(self) -> dict:
        return {"runs": [{"name": run.name, "cells": [vars(cell) for cell in run.cells]} for run in self.runs],
                "rule_problems": self.rule_problems}

    @classmethod
    def from_dict(cls, data: dict) -> SubmissionPlan:
        return cls([RunPlan(run["name"], [PlannedCell(**cell) for cell in run["cells"]]) for run in data["runs"]],
                   dict(data["rule_problems"]))


def student_cells(source: SourceNotebook, notebook: dict) -> tuple[list[str], list[str]]:
    """The student's code cells of an assembled notebook, in order, and a label for each."""
    answers = {cell.grade_id for cell in source.answers}
    codes, labels, previous = [], [], "the first cell"
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("grader", {}).get("grade_id")
        if cell.get("cell_type") == "code" and (grade_id is None or grade_id in answers):
            codes.append(cell_source(cell))
            labels.append(f"your cell {grade_id}" if grade_id else f"the cell you added after {previous}")
        if grade_id:
            previous = grade_id
    return codes, labels


def plan_submission(config: AssignmentConfig, source: SourceNotebook, notebook: dict) -> SubmissionPlan:
    """The runs for one assembled notebook (``notebook``, whose code cells carry their source
    grade id in ``metadata.grader``; the student's added cells carry none)."""
    tests = {cell.grade_id: cell for cell in source.tests}
    skipped = {cell.grade_id for cell in source.cells if cell.skipped_when_grading}
    checked = {test: rules for test in tests if (rules := config.rules_for(test))}

    main = RunPlan("notebook", [PlannedCell(RECORDER_SOURCE)])
    for cell in notebook["cells"]:
        if cell.get("cell_type") != "code":
            continue
        grade_id = cell.get("metadata", {}).get("grader", {}).get("grade_id")
        if grade_id in skipped:
            continue
        if grade_id in tests and tests[grade_id].kind == TEST:
            if grade_id in checked:
                main.cells.append(PlannedCell(tests[grade_id].visible_source, grade_id))
            else:
                main.cells.append(PlannedCell(tests[grade_id].source, grade_id, test=grade_id))
        else:
            main.cells.append(PlannedCell(cell_source(cell), grade_id))

    codes, labels = student_cells(source, notebook)
    # Every instructor cell's imports name modules (keras imported for a visible check, say), so
    # a student function that reaches them is told which rule it breaks.
    instructor_code = [cell.source for cell in source.cells if cell.kind != ANSWER and cell.cell.get("cell_type") == "code"]
    analysis = SubmissionAnalysis(codes, instructor_code, labels)
    rule_problems: dict[str, str | None] = {}
    groups: dict[Rules, list[tuple[str, list]]] = {}
    for test, rules in checked.items():
        hidden = tests[test].hidden_source
        closure = analysis.closure(analysis.roots(hidden))
        problem = analysis.check(closure, rules.forbid_syntax, rules.forbid_modules)
        rule_problems[test] = problem
        if problem is None:
            groups.setdefault(rules, []).append((test, closure.bindings))

    runs = [main]
    for rules, members in groups.items():
        run = RunPlan(f"rules: {rules.describe()}", [PlannedCell(RECORDER_SOURCE)])
        run.cells += [PlannedCell(cell.source, cell.grade_id) for cell in source.setup]
        statements: dict[tuple, str] = {}  # a statement shared by several closures runs once
        for _, bindings in members:
            for binding in bindings:
                where = (binding.cell, binding.node.lineno, binding.node.col_offset,
                         binding.name if binding.kind == "import" else "")
                statements.setdefault(where, binding.source())
        run.cells += [PlannedCell(code) for _, code in sorted(statements.items())]
        run.cells += [PlannedCell(tests[test].hidden_source, test, test=test) for test, _ in members]
        runs.append(run)
    return SubmissionPlan(runs, rule_problems)
