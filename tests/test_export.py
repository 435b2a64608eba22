"""Export: grades.csv back to Canvas's gradebook CSV and Moodle's grading worksheet.

Rosters are written here the way the LMS writes them (csv module, names with accents, commas and
quotes) and read back with the csv module: every roster row and cell must survive, and only the
assignment's cells may change.
"""

from __future__ import annotations

import codecs
import csv
from datetime import datetime, timezone
from pathlib import Path

import pytest

from autograder.export import CANVAS_IDENTITY, MOODLE_COLUMNS, ExportError, export, read_grades

TESTS = ["test_hinge_loss", "test_svm_loss_naive"]
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def write_grades(out: Path, rows: list[tuple[str, float, str]], assignment: str = "a1_hinge_loss") -> Path:
    """OUT/grades.csv as the grader writes it: student_id, assignment, score, max_score, status, tests."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "grades.csv").open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student_id", "assignment", "score", "max_score", "status", *TESTS])
        for student_id, score, status in rows:
            writer.writerow([student_id, assignment, f"{score:g}", "100", status, f"{min(score, 40):g}", f"{max(score - 40, 0):g}"])
    return out


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as stream:
        csv.writer(stream, delimiter=delimiter).writerows(rows)
    return path


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        return list(csv.reader(stream, delimiter=delimiter))


# --- Canvas ----------------------------------------------------------------------------------------

CANVAS_HEADER = [*CANVAS_IDENTITY, "Homework 0 (1111)", "a1_hinge_loss (2222)", "Current Points", "Final Score"]
CANVAS_ROWS = [
    CANVAS_HEADER,
    ["    Points Possible", "", "", "", "", "10.00", "100.00", "(read only)", "(read only)"],
    ['Müller, Zoë "Zo"', "340934", "S-001", "zmuller", "CV 101, Section A", "9.00", "", "9.00", "90.00"],
    ["O'Brien, Seán", "11", "S-002", "sobrien", "CV 101, Section A", "7.50", "55.00", "62.50", "62.50"],
    ["Nguyễn, Văn A", "77", "S-003", "vnguyen", "CV 101, Section B", "", "", "0.00", "0.00"],
    ["Student, Test", "99999", "", "", "CV 101, Section A", "", "", "", ""],
]
GRADES = [("340934", 85, "graded"), ("11", 42.5, "graded (notebook named hw.ipynb, not hinge_loss.ipynb)"),
          ("424242", 100, "graded"), ("77", 0, "ungradable: invalid notebook")]


def test_canvas_fills_the_assignment_column_and_keeps_every_other_cell(tmp_path):
    out = write_grades(tmp_path / "out", GRADES)
    roster = write_csv(tmp_path / "gradebook.csv", CANVAS_ROWS)
    report = export(out, "canvas", roster)
    assert report.destination == out / "canvas_import.csv"
    written = read_csv(report.destination)
    assert written[0] == CANVAS_HEADER and written[0][:5] == list(CANVAS_IDENTITY)
    assert len(written) == len(CANVAS_ROWS)  # no roster row ever disappears
    column = CANVAS_HEADER.index("a1_hinge_loss (2222)")
    for before, after in zip(CANVAS_ROWS, written):
        assert before[:column] + before[column + 1:] == after[:column] + after[column + 1:]
    assert [row[column] for row in written[1:]] == ["100.00", "85", "42.5", "0", ""]
    assert report.column == "a1_hinge_loss (2222)" and not report.column_created
    assert report.exported == ["340934", "11", "77"]
    assert report.unmatched_grades == ["424242"]
    assert report.not_graded == ["Student, Test (ID 99999)"]
    assert any("ungradable" in note and "77" in note for note in report.notes)


def test_canvas_rescales_to_the_assignments_points_possible(tmp_path):
    out = write_grades(tmp_path / "out", [("340934", 85, "graded"), ("11", 42.5, "graded")])
    rows = [list(r) for r in CANVAS_ROWS]
    rows[1][6] = "10.00"
    roster = write_csv(tmp_path / "gradebook.csv", rows)
    report = export(out, "canvas", roster)
    assert [r[6] for r in read_csv(report.destination)[2:4]] == ["8.5", "4.25"]
    assert report.scaled_to == 10
    kept = export(out, "canvas", roster, tmp_path / "raw.csv", rescale=False)
    assert [r[6] for r in read_csv(kept.destination)[2:4]] == ["85", "42.5"] and kept.scaled_to is None


def test_canvas_adds_the_column_when_the_gradebook_has_none(tmp_path):
    out = write_grades(tmp_path / "out", [("11", 42.5, "graded")])
    rows = [r[:6] + r[7:] for r in CANVAS_ROWS]  # no a1_hinge_loss column
    roster = write_csv(tmp_path / "gradebook.csv", rows)
    report = export(out, "canvas", roster)
    written = read_csv(report.destination)
    assert written[0] == rows[0] + ["a1_hinge_loss"] and report.column_created
    assert written[1][-1] == "100"  # Canvas creates the assignment with these points
    assert [r[-1] for r in written[2:]] == ["", "42.5", "", ""]
    assert [r[:-1] for r in written] == rows


def test_canvas_column_named_explicitly_and_ambiguous_names_refused(tmp_path):
    out = write_grades(tmp_path / "out", [("11", 42.5, "graded")])
    roster = write_csv(tmp_path / "gradebook.csv", CANVAS_ROWS)
    report = export(out, "canvas", roster, column="Homework 0 (1111)")
    assert read_csv(report.destination)[3][5] == "4.25"  # rescaled to that column's 10 points
    rows = [r + [r[6]] for r in CANVAS_ROWS]
    rows[0][-1] = "a1_hinge_loss (3333)"
    with pytest.raises(ExportError, match="--column"):
        export(out, "canvas", write_csv(tmp_path / "two.csv", rows))


def test_canvas_matches_sis_login_ids_when_the_grader_had_no_canvas_ids(tmp_path):
    out = write_grades(tmp_path / "out", [("sobrien", 55, "graded"), ("S-003", 20, "graded")])
    report = export(out, "canvas", write_csv(tmp_path / "gradebook.csv", CANVAS_ROWS))
    written = read_csv(report.destination)
    assert (written[3][6], written[4][6]) == ("55", "20")
    assert any("matched by SIS Login ID" in n for n in report.notes)
    assert any("matched by SIS User ID" in n for n in report.notes)


def test_canvas_one_row_never_takes_two_grades_and_canvas_ids_match_first(tmp_path):
    # "zmuller" is the SIS Login ID of Canvas user 340934: a second grade for the same row.
    out = write_grades(tmp_path / "out", [("340934", 85, "graded"), ("zmuller", 10, "graded"), ("S-001", 1, "graded")])
    rows = [list(r) for r in CANVAS_ROWS]
    rows[5][2] = "77"  # the test student's SIS User ID equals Nguyễn's Canvas user id
    report = export(out, "canvas", write_csv(tmp_path / "gradebook.csv", rows))
    written = read_csv(report.destination)
    assert written[2][6] == "85" and report.exported == ["340934"]
    assert report.unmatched_grades == ["zmuller", "S-001"]
    assert any("'zmuller' matches the roster row of '340934'" in n for n in report.notes)
    out = write_grades(tmp_path / "out2", [("77", 30, "graded")])
    written = read_csv(export(out, "canvas", write_csv(tmp_path / "gradebook2.csv", rows)).destination)
    assert (written[4][6], written[5][6]) == ("30", "")


def test_canvas_semicolons_and_byte_order_mark_are_kept(tmp_path):
    out = write_grades(tmp_path / "out", [("340934", 85, "graded")])
    roster = write_csv(tmp_path / "gradebook.csv", CANVAS_ROWS, delimiter=";", bom=True)
    report = export(out, "canvas", roster)
    data = report.destination.read_bytes()
    assert data.startswith(codecs.BOM_UTF8)
    written = read_csv(report.destination, delimiter=";")
    assert written[0] == CANVAS_HEADER and written[2][6] == "85"


def test_canvas_needs_its_gradebook_and_never_overwrites_it(tmp_path):
    out = write_grades(tmp_path / "out", [("11", 1, "graded")])
    with pytest.raises(ExportError, match="--roster"):
        export(out, "canvas", None)
    other = write_csv(tmp_path / "other.csv", [["name", "score"], ["x", "1"]])
    with pytest.raises(ExportError, match="'ID' column"):
        export(out, "canvas", other)
    roster = write_csv(tmp_path / "gradebook.csv", CANVAS_ROWS)
    original = roster.read_bytes()
    with pytest.raises(ExportError, match="is an input"):
        export(out, "canvas", roster, roster)
    assert roster.read_bytes() == original


# --- Moodle ----------------------------------------------------------------------------------------

def test_moodle_without_a_roster_writes_the_worksheet_columns_the_upload_reads(tmp_path):
    out = write_grades(tmp_path / "out", [("123456", 85, "graded (submitted late)"), ("654321", 0, "ungradable: no notebook"),
                                          ("=cmd|x", 5, "graded")])
    report = export(out, "moodle", None, now=NOW)
    written = read_csv(report.destination)
    assert written[0] == list(MOODLE_COLUMNS) == ["Identifier", "Grade", "Maximum Grade", "Last modified (grade)",
                                                   "Feedback comments"]
    assert [r[:4] for r in written[1:3]] == [["Participant 123456", "85", "100", "2024-05-06T07:08:09+00:00"],
                                            ["Participant 654321", "0", "100", "2024-05-06T07:08:09+00:00"]]
    assert datetime.fromisoformat(written[1][3]) == NOW
    assert written[1][4] == ("a1_hinge_loss: 85 / 100. graded (submitted late). "
                             "Points per test: test_hinge_loss 40, test_svm_loss_naive 45.")
    assert written[3][0] == "'=cmd|x"  # never a spreadsheet formula
    assert any("not Moodle participant ids" in n and "=cmd|x" in n for n in report.notes)


MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
                 "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
MOODLE_ROWS = [
    MOODLE_HEADER,
    ["Participant 123456", 'Zoë "Zo" Müller', "zoe@example.edu", "Submitted for grading", "", "10.00", "Yes",
     "Monday, 6 May 2024, 9:00 AM", "-", ""],
    ["Participant 654321", "Seán O'Brien, Jr.", "sean@example.edu", "Submitted for grading", "7.00", "10.00", "Yes",
     "Monday, 6 May 2024, 9:30 AM", "Monday, 6 May 2024, 10:00 AM", "Good start, see notes"],
    ["Participant 777", "Nguyễn Văn A", "nva@example.edu", "No submission", "", "10.00", "Yes", "-", "-", ""],
]


def test_moodle_worksheet_round_trip_fills_grade_and_feedback_and_keeps_every_row(tmp_path):
    out = write_grades(tmp_path / "out", [("123456", 85, "graded"), ("654321", 42.5, "graded"), ("999", 1, "graded")])
    roster = write_csv(tmp_path / "worksheet.csv", MOODLE_ROWS)
    report = export(out, "moodle", roster, now=NOW)
    written = read_csv(report.destination)
    assert written[0] == MOODLE_HEADER and len(written) == len(MOODLE_ROWS)
    grade, feedback = MOODLE_HEADER.index("Grade"), MOODLE_HEADER.index("Feedback comments")
    for before, after in zip(MOODLE_ROWS, written):
        assert [c for i, c in enumerate(before) if i not in (grade, feedback)] == \
               [c for i, c in enumerate(after) if i not in (grade, feedback)]
    assert [r[grade] for r in written[1:]] == ["8.5", "4.25", ""]  # out of Moodle's 10
    assert written[1][feedback].startswith("a1_hinge_loss: 85 / 100. graded.")
    assert written[3][feedback] == ""
    assert report.scaled_to == 10
    assert report.unmatched_grades == ["999"] and report.not_graded == ["Nguyễn Văn A (Participant 777)"]


def test_moodle_worksheet_without_the_upload_columns_gets_them(tmp_path):
    out = write_grades(tmp_path / "out", [("123456", 85, "graded")])
    roster = write_csv(tmp_path / "worksheet.csv", [["Identifier", "Full name"], ["Participant 123456", "Zoë"]])
    report = export(out, "moodle", roster, now=NOW)
    written = read_csv(report.destination)
    assert written[0] == ["Identifier", "Full name", "Grade", "Last modified (grade)", "Feedback comments"]
    assert written[1][:4] == ["Participant 123456", "Zoë", "85", "2024-05-06T07:08:09+00:00"]


# --- grades.csv --------------------------------------------------------------------------------------

def test_grades_csv_is_read_as_the_grader_writes_it(tmp_path):
    out = write_grades(tmp_path / "out", [("b11 spaced ünïcode id", 42.5, "graded")])
    [row] = read_grades(out)
    assert (row.student_id, row.score, row.max_score) == ("b11 spaced ünïcode id", 42.5, 100)
    assert row.tests == {"test_hinge_loss": "40", "test_svm_loss_naive": "2.5"}


def test_missing_or_foreign_grades_csv_and_unknown_formats_fail_clearly(tmp_path):
    with pytest.raises(ExportError, match="grade the submissions first"):
        export(tmp_path, "moodle", None)
    (tmp_path / "grades.csv").write_text("name,points\nx,1\n")
    with pytest.raises(ExportError, match="lacks the columns"):
        export(tmp_path, "moodle", None)
    out = write_grades(tmp_path / "out", [("1", 1, "graded"), ("1", 2, "graded")])
    with pytest.raises(ExportError, match="twice"):
        export(out, "moodle", None)
    with pytest.raises(ExportError, match="unknown format"):
        export(out, "blackboard", None)
