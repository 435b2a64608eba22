"""The autograder, end to end, on Homework 1: real nbgrader generation, real sandboxed kernels.

One grading run of the whole bank (tests/autograder_bank.py) serves most tests; each case
must get exactly its expected score, whatever it tried.
"""

from __future__ import annotations

import csv
import dataclasses
import json

import shutil
import zipfile
from pathlib import Path

import pytest

from autograder.__main__ import main as autograder_main
from autograder.config import Limits, load_assignment
from autograder.grade import grade_class
from autograder.notebooks import read_source_notebook
from autograder.release import generate_assignment
from autograder.sandbox import bubblewrap_problem

import autograder_bank as bank

pytestmark = pytest.mark.skipif(bubblewrap_problem() is not None, reason="bubblewrap is not usable here")
BANK_LIMITS = Limits(wall_seconds=60, cell_seconds=bank.CELL_SECONDS, cpu_seconds=60,
                     memory_mb=3072, output_kb=256, records_mb=64)


def _config():
    return dataclasses.replace(load_assignment(bank.ASSIGNMENT), limits=BANK_LIMITS)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    cases = bank.write_bank(root / "submissions")
    results = grade_class(bank.ASSIGNMENT, root / "submissions", root / "out", workers=2,
                          progress=False, config=_config())
    return root, cases, {r["student_id"]: r for r in results}


# --- the student version -------------------------------------------------------------------------

def test_student_version_is_exactly_what_nbgrader_generates(tmp_path):
    fresh = generate_assignment(bank.ASSIGNMENT, tmp_path) / bank.NOTEBOOK
    assert json.loads(fresh.read_text()) == json.loads(bank.RELEASE.read_text()), (
        "assignments/ is stale: run `make assignments`")


def test_student_version_has_no_solution_or_hidden_tests_and_no_outputs():
    text = bank.RELEASE.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "grader_record", "_record("):
        assert marker not in text
    leaked = [line for line in bank.hidden_lines() + bank.solution_lines() if line in text]
    assert leaked == []
    notebook = json.loads(text)
    assert all(not cell.get("outputs") for cell in notebook["cells"] if cell["cell_type"] == "code")
    assert all(not cell.get("outputs") for cell in json.loads(bank.SOLUTION.read_text())["cells"]
               if cell["cell_type"] == "code")


def test_tests_total_100_points_and_state_their_points():
    notebook = json.loads(bank.SOLUTION.read_text())
    tests = [c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
    assert sum(c["metadata"]["nbgrader"]["points"] for c in tests) == 100
    for cell in tests:
        points = cell["metadata"]["nbgrader"]["points"]
        assert f"({points:g} points)" in bank.cell_source(cell).splitlines()[0]


# --- grading the bank ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", [case.name for case in bank.cases()])
def test_each_submission_gets_exactly_its_expected_score(graded, case):
    _, cases, results = graded
    result = results[case]
    failing = [(t["grade_id"], t["reason"]) for t in result["tests"] if not t["passed"]]
    assert result["score"] == cases[case].expected_score, (result["status"], failing)
    assert cases[case].status in result["status"], result["status"]


def test_every_submission_gets_exactly_one_row(graded):
    root, cases, _ = graded
    with open(root / "out" / "grades.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert sorted(row["student_id"] for row in rows) == sorted(cases)
    test_ids = [c.grade_id for c in read_source_notebook(bank.SOLUTION).tests]
    assert list(rows[0]) == ["student_id", "assignment", "score", "max_score", "status", *test_ids]
    for row in rows:
        assert float(row["score"]) == sum(float(row[t]) for t in test_ids)
        assert row["max_score"] == "100"


def test_the_gradebook_holds_the_same_scores(graded):
    from autograder.gradebook import GradebookWriter

    root, _, results = graded
    gradebook = GradebookWriter(root / "out" / "gradebook.db", bank.ASSIGNMENT, bank.NOTEBOOK,
                                read_source_notebook(bank.SOLUTION))
    for student, result in results.items():
        assert gradebook.score(student) == pytest.approx(result["score"]), student


def test_feedback_names_every_test_and_leaks_nothing(graded):
    root, cases, results = graded
    secrets = bank.hidden_lines() + bank.solution_lines()
    for student in cases:
        page = (root / "out" / "feedback" / student / "hinge_loss.html").read_text()
        for test in results[student]["tests"]:
            assert test["grade_id"] in page
        assert f"{results[student]['score']:g} / 100" in page
        assert [line for line in secrets if line in page] == [], student
        assert "LEAK" not in page
    # A visible test's own message reaches the student.
    page = (root / "out" / "feedback" / "mistake_hinge_counts_correct_class" / "hinge_loss.html").read_text()
    assert "j = y_i" in page or "correct class" in page


def test_the_class_report_shows_distribution_pass_rates_and_ungradable(graded):
    root, _, _ = graded
    report = (root / "out" / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert "test_svm_loss_vectorized" in report and "invalid_json" in report
    assert "ungradable: invalid notebook" in report


def test_nothing_escaped_the_sandbox(graded):
    assert not Path(bank.ESCAPE_MARKER).exists()
    assert not (bank.REPO_ROOT / "ESCAPED").exists()


def test_regrading_a_zip_reuses_results_and_a_killed_run_resumes(graded, tmp_path):
    root, cases, results = graded
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((root / "submissions").rglob("*")):
            if path.is_file():
                bundle.write(path, Path("class") / path.relative_to(root / "submissions"))
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    first_csv = (out / "grades.csv").read_text()
    # Pretend the earlier run was killed after most students: two results are missing.
    for student in ("correct", "mistake_softmax_unstable"):
        (out / "results" / f"{student}.json").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    again = grade_class(bank.ASSIGNMENT, archive, out, workers=2, progress=False, config=_config())
    assert len(again) == len(cases)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json") if p.name in kept} == kept
    assert (out / "grades.csv").read_text() == first_csv  # the same grades, deterministically


def test_grading_refuses_to_run_without_a_sandbox_unless_told(monkeypatch, tmp_path, capsys):
    import autograder.grade

    monkeypatch.setattr(autograder.grade, "bubblewrap_problem", lambda: "bwrap is not installed")
    (tmp_path / "subs" / "someone").mkdir(parents=True)
    code = autograder_main(["grade", bank.ASSIGNMENT, str(tmp_path / "subs"), "--out", str(tmp_path / "out")])
    assert code == 2
    message = capsys.readouterr().err
    assert "bwrap is not installed" in message and "--unsafe" in message
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    assert autograder_main(["grade", "a9_unknown", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown assignment 'a9_unknown'" in capsys.readouterr().err
    assert autograder_main(["grade", bank.ASSIGNMENT, str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
