"""The grader's behaviour around one assignment (Homework 1): resuming, zips, the class report,
one row per student whatever happens, errors an instructor can act on, and refusing to run
without a sandbox. The per-submission scores are in tests/test_grading.py."""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import pytest

import autograder.grade
from autograder.__main__ import main as autograder_main
from autograder.config import load_assignment
from autograder.grade import grade_class
from autograder.gradebook import GradebookWriter
from autograder.notebooks import read_source_notebook
from banks import a1_hinge_loss as bank
from banks.common import blank_answers, student_notebook

ASSIGNMENT = bank.HOMEWORK.name


def test_regrading_a_zip_reuses_results_and_a_killed_run_resumes(graded_bank, tmp_path, sandbox):
    graded = graded_bank(ASSIGNMENT)
    # Student "blank" hands in again, the correct notebook this time: only they are graded anew.
    changed = "blank"
    correct_notebook = graded.root / "submissions" / "correct" / bank.NOTEBOOK
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((graded.root / "submissions").rglob("*")):
            if path.is_file():
                relative = path.relative_to(graded.root / "submissions")
                source = correct_notebook if relative == Path(changed) / bank.NOTEBOOK else path
                bundle.write(source, Path("class") / relative)
    out = tmp_path / "out"
    shutil.copytree(graded.out, out)
    first_csv = (out / "grades.csv").read_text()
    assert graded.results[changed]["score"] == 0
    # Pretend the earlier run was killed after most students: two results are missing.
    for student in ("correct", "mistake_softmax_unstable"):
        (out / "results" / f"{graded.results[student]['key']}.json").unlink()
    changed_result = out / "results" / f"{graded.results[changed]['key']}.json"
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json") if p != changed_result}
    config = dataclasses.replace(load_assignment(ASSIGNMENT), limits=bank.LIMITS)
    again = {r["student_id"]: r for r in grade_class(ASSIGNMENT, archive, out, workers=2, progress=False,
                                                      config=config)}
    assert len(again) == len(graded.cases)
    # Reused: the same file, untouched, and the same row; regraded: the two lost ones and the changed one.
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json") if p.name in kept} == kept
    assert again[changed]["score"] == 100 and again[changed]["status"] == "graded"
    assert json.loads(changed_result.read_text())["score"] == 100
    for student, result in again.items():
        if student != changed:
            assert result["score"] == graded.results[student]["score"], student
    expected_csv = [line for line in first_csv.splitlines() if not line.startswith(f"{changed},")]
    new_csv = (out / "grades.csv").read_text().splitlines()
    assert [line for line in new_csv if not line.startswith(f"{changed},")] == expected_csv  # deterministic
    assert [line for line in new_csv if line.startswith(f"{changed},")] == [
        f"{changed},{ASSIGNMENT},100,100,graded," + ",".join(
            f"{t['max_points']:g}" for t in graded.results[changed]["tests"])]
    gradebook = GradebookWriter(out / "gradebook.db", ASSIGNMENT, bank.NOTEBOOK, read_source_notebook(bank.HOMEWORK.solution))
    assert gradebook.score(changed) == 100 and gradebook.score("correct") == 100
    assert "100 / 100" in (out / "feedback" / graded.results[changed]["key"] / "hinge_loss.html").read_text()


def test_the_class_report_shows_distribution_pass_rates_and_ungradable(graded_bank):
    graded = graded_bank(ASSIGNMENT)
    report = (graded.out / "report.html").read_text()
    assert "data:image/png;base64," in report
    assert "test_svm_loss_vectorized" in report and "invalid_json" in report
    assert "ungradable: invalid notebook" in report


def test_a_visible_tests_own_message_reaches_the_student_and_fields_do_not(graded_bank):
    graded = graded_bank(ASSIGNMENT)
    page = (graded.out / "feedback" / "mistake_hinge_counts_correct_class" / "hinge_loss.html").read_text()
    assert "every loss is 1 too large: the sum must skip j = y_i" in page
    # The student's AssertionError that imitates a visible f-string: only the template shows.
    page = (graded.out / "feedback" / "assertion_message_carries_hidden_tests" / "hinge_loss.html").read_text()
    assert "expected the slide&#x27;s …, got …" in page
    assert "BEGIN" not in page and "grader_record" not in page


def test_a_failure_of_the_grader_on_one_submission_is_that_students_row(monkeypatch, tmp_path, sandbox, caplog):
    submissions = tmp_path / "subs"
    for student in ("ada", "grace"):
        (submissions / student).mkdir(parents=True)
        (submissions / student / bank.NOTEBOOK).write_text(json.dumps(student_notebook(bank.HOMEWORK, blank_answers(bank.HOMEWORK))))
    real = autograder.grade.conclude_submission

    def crashes_on_ada(run, prepared, outcomes):
        if prepared.submission.student_id == "ada":
            raise RecursionError("something the grader did not expect")
        return real(run, prepared, outcomes)

    monkeypatch.setattr(autograder.grade, "conclude_submission", crashes_on_ada)
    config = dataclasses.replace(load_assignment(ASSIGNMENT), limits=bank.LIMITS)
    results = {r["student_id"]: r for r in grade_class(ASSIGNMENT, submissions, tmp_path / "out", workers=2,
                                                        progress=False, config=config)}
    assert results["ada"]["status"] == "ungradable: internal error (the details are in grading.log)"
    assert results["grace"]["status"] == "graded" and results["grace"]["score"] == 0
    log = (tmp_path / "out" / "grading.log").read_text()
    assert "RecursionError: something the grader did not expect" in log and "internal error while grading ada" in log
    assert (tmp_path / "out" / "grades.csv").read_text().count("\n") == 3


def test_a_failing_solution_names_its_first_failing_cell_and_what_to_check(tmp_path, sandbox):
    solutions = tmp_path / "solutions"
    shutil.copytree(bank.HOMEWORK.solution.parent, solutions / ASSIGNMENT)
    path = solutions / ASSIGNMENT / bank.NOTEBOOK
    notebook = json.loads(path.read_text())
    setup = next(c for c in notebook["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "setup")
    setup["source"] = "import cvcourse_not_installed\n" + "".join(setup["source"])
    path.write_text(json.dumps(notebook))
    config = dataclasses.replace(load_assignment(ASSIGNMENT), solutions_dir=solutions, limits=bank.LIMITS)
    (tmp_path / "subs").mkdir()
    with pytest.raises(RuntimeError) as failure:
        grade_class(ASSIGNMENT, tmp_path / "subs", tmp_path / "out", workers=1, progress=False, config=config)
    message = str(failure.value)
    assert "in cell 'setup'" in message
    assert "ModuleNotFoundError: No module named 'cvcourse_not_installed'" in message
    assert "make env" in message and "SLIDE_SCORES" not in message


def test_grading_refuses_to_run_without_a_sandbox_unless_told(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(autograder.grade, "bubblewrap_problem", lambda: "bwrap is not installed")
    (tmp_path / "subs" / "someone").mkdir(parents=True)
    code = autograder_main(["grade", ASSIGNMENT, str(tmp_path / "subs"), "--out", str(tmp_path / "out")])
    assert code == 2
    message = capsys.readouterr().err
    assert "bwrap is not installed" in message and "--unsafe" in message
    assert not (tmp_path / "out" / "grades.csv").exists()


def test_bad_arguments_fail_clearly(tmp_path, capsys):
    assert autograder_main(["grade", "a9_unknown", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "unknown assignment 'a9_unknown'" in capsys.readouterr().err
    assert autograder_main(["grade", ASSIGNMENT, str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
