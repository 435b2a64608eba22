"""Every assignment of autograder/assignments.toml, end to end: real nbgrader generation, real
sandboxed kernels, and its bank (tests/banks/) graded once per test session with 2 workers.
Each submission must get exactly its expected score, whatever it tried, and nothing of the
solutions or the hidden tests may reach a student.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from autograder.gradebook import GradebookWriter
from autograder.notebooks import cell_source, read_source_notebook
from autograder.release import generate_assignment
from banks.common import hidden_lines, solution_lines
from conftest import ASSIGNMENTS, BANKS

CASES = [(name, case.name) for name, bank in BANKS.items() for case in bank.cases()]
pytestmark = pytest.mark.usefixtures("sandbox")


# --- the student version ---------------------------------------------------------------------------

@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_is_exactly_what_nbgrader_generates(assignment, tmp_path):
    homework = BANKS[assignment].HOMEWORK
    fresh = generate_assignment(assignment, tmp_path) / homework.notebook
    assert json.loads(fresh.read_text()) == json.loads(homework.release.read_text()), (
        "assignments/ is stale: run `make assignments`")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_has_no_solution_or_hidden_tests_and_no_outputs(assignment):
    homework = BANKS[assignment].HOMEWORK
    text = homework.release.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "grader_record", "_record("):
        assert marker not in text
    assert [line for line in hidden_lines(homework) + solution_lines(homework) if line in text] == []
    for path in (homework.release, homework.solution):
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_tests_total_100_points_and_state_their_points(assignment):
    homework = BANKS[assignment].HOMEWORK
    source = read_source_notebook(homework.solution)
    assert source.max_score == 100
    for test in source.tests:
        assert f"({test.points:g} points)" in cell_source(test.cell).splitlines()[0], test.grade_id


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_bank_has_the_correct_and_the_blank_submission(assignment):
    cases = {case.name: case for case in BANKS[assignment].cases()}
    assert cases["correct"].expected_score == 100 and cases["blank"].expected_score == 0


# --- grading the banks -----------------------------------------------------------------------------

@pytest.mark.parametrize("assignment,case", CASES)
def test_each_submission_gets_exactly_its_expected_score(graded_bank, assignment, case):
    bank = graded_bank(assignment)
    result = bank.results[case]
    failing = [(t["grade_id"], t["reason"][:300]) for t in result["tests"] if not t["passed"]]
    assert result["score"] == bank.cases[case].expected_score, (result["status"], failing)
    assert bank.cases[case].status in result["status"], result["status"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_submission_gets_exactly_one_row_with_its_own_id(graded_bank, assignment):
    bank = graded_bank(assignment)
    with open(bank.out / "grades.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert sorted(row["student_id"] for row in rows) == sorted(bank.cases)
    test_ids = [c.grade_id for c in read_source_notebook(BANKS[assignment].HOMEWORK.solution).tests]
    assert list(rows[0]) == ["student_id", "assignment", "score", "max_score", "status", *test_ids]
    for row in rows:
        assert float(row["score"]) == sum(float(row[t]) for t in test_ids)
        assert row["max_score"] == "100"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_gradebook_holds_the_same_scores(graded_bank, assignment):
    bank = graded_bank(assignment)
    homework = BANKS[assignment].HOMEWORK
    gradebook = GradebookWriter(bank.out / "gradebook.db", assignment, homework.notebook,
                                read_source_notebook(homework.solution))
    for student, result in bank.results.items():
        assert gradebook.score(student) == pytest.approx(result["score"]), student


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_names_every_test_and_leaks_nothing(graded_bank, assignment):
    bank = graded_bank(assignment)
    homework = BANKS[assignment].HOMEWORK
    secrets = hidden_lines(homework) + solution_lines(homework)
    for student, result in bank.results.items():
        page = (bank.out / "feedback" / result["key"] / f"{Path(homework.notebook).stem}.html").read_text()
        for test in result["tests"]:
            assert test["grade_id"] in page
        assert f"{result['score']:g} / 100" in page
        assert [line for line in secrets if line in page] == [], student
        assert "### BEGIN" not in page and "_record(" not in page, student


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nothing_escaped_the_sandbox(graded_bank, assignment):
    bank = graded_bank(assignment)
    assert [path for path in bank.probe.paths if Path(path).exists()] == []
    assert bank.connections == 0
