"""Hand the grades back to the LMS: Canvas's gradebook CSV, Moodle's grading worksheet.

Reads ``OUT/grades.csv`` (``student_id, assignment, score, max_score, status``, then one column
per test) and writes a file the LMS imports as it is:

``canvas``  a copy of the gradebook export (Grades > Export) given as the roster, with the
            assignment's column filled in and every other row, column and cell kept: the
            identity columns ``Student, ID, SIS User ID, SIS Login ID, Section``, the
            ``Points Possible`` row, the read-only totals. Students are matched by Canvas user
            id (the ``ID`` column, which the ``canvas`` layout of :mod:`autograder.ingest`
            gives as student id), else by ``SIS User ID`` or ``SIS Login ID``. The column is the
            one named ``--column``, else the one whose header is the assignment's name (Canvas
            writes ``Name (assignment id)``); without one, a column is added, which Canvas
            imports as a new assignment.
``moodle``  the assignment's grading worksheet (Grading action > Download grading worksheet;
            imported by "Upload grading worksheet"), matched by ``Identifier``
            (``Participant 123456``, the id in Moodle's download folder names); without a
            roster, a worksheet with the columns that upload reads: ``Identifier, Grade,
            Maximum Grade, Last modified (grade), Feedback comments``.

Scores are rescaled to what the LMS gives the assignment when it says (Canvas's
``Points Possible``, Moodle's ``Maximum Grade``). A student graded but not in the roster, or in
the roster but not graded, is listed in the :class:`ExportReport`: no roster row is ever dropped,
and a cell without a grade keeps what the roster had.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

FORMATS = ("canvas", "moodle")
GRADES_COLUMNS = ("student_id", "assignment", "score", "max_score", "status")

CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_MATCH_COLUMNS = ("ID", "SIS User ID", "SIS Login ID")  # in the order tried
CANVAS_POINTS_ROW = "Points Possible"

# Moodle's worksheet upload (assignfeedback_offline) needs Identifier, Grade and
# "Last modified (grade)"; it reads feedback from a column named like the feedback plugin.
MOODLE_IDENTIFIER = "Identifier"
MOODLE_GRADE = "Grade"
MOODLE_MAXIMUM = "Maximum Grade"
MOODLE_MODIFIED = "Last modified (grade)"
MOODLE_FEEDBACK = "Feedback comments"
MOODLE_COLUMNS = (MOODLE_IDENTIFIER, MOODLE_GRADE, MOODLE_MAXIMUM, MOODLE_MODIFIED, MOODLE_FEEDBACK)
MOODLE_PARTICIPANT = "Participant "  # Moodle's English prefix; the upload reads the digits after it

SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class ExportError(ValueError):
    """The export cannot be written as asked (missing grades.csv, a roster of another format ...)."""


@dataclass(frozen=True)
class GradeRow:
    """One row of grades.csv."""

    student_id: str
    assignment: str
    score: float
    max_score: float
    status: str
    tests: dict[str, str]


@dataclass
class ExportReport:
    """What :func:`export` wrote, and who could not be matched."""

    format: str
    destination: Path
    assignment: str
    column: str  # the column the grades went into
    column_created: bool = False
    exported: list[str] = field(default_factory=list)  # student ids given a grade in the file
    unmatched_grades: list[str] = field(default_factory=list)  # graded, but no roster row: not in the file
    not_graded: list[str] = field(default_factory=list)  # roster students with no grade: cell left as it was
    scaled_to: float | None = None  # the LMS's points for the assignment, when scores were rescaled
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Lines for the command line."""
        lines = [f"{self.format}: {len(self.exported)} grade(s) of {self.assignment} written to "
                 f"{self.destination} (column {self.column!r}{', added' if self.column_created else ''})"]
        if self.scaled_to is not None:
            lines.append(f"scores rescaled to {_number(self.scaled_to)} points, as the LMS gives the assignment")
        if self.unmatched_grades:
            lines.append(f"graded but not in the roster ({len(self.unmatched_grades)}), NOT exported: "
                         + ", ".join(self.unmatched_grades))
        if self.not_graded:
            lines.append(f"in the roster but not graded ({len(self.not_graded)}), left as they were: "
                         + ", ".join(self.not_graded))
        return lines + self.notes


# --- reading -------------------------------------------------------------------------------------

def read_grades(out: Path) -> list[GradeRow]:
    """The rows of ``OUT/grades.csv``; ExportError when it is missing or not the grader's."""
    path = Path(out) / "grades.csv"
    if not path.is_file():
        raise ExportError(f"{path} does not exist: grade the submissions first (python -m autograder grade ...)")
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        missing = [c for c in GRADES_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ExportError(f"{path} lacks the columns {', '.join(missing)}: is it the grader's grades.csv?")
        tests = [c for c in reader.fieldnames if c not in GRADES_COLUMNS]
        rows = []
        for line in reader:
            try:
                score, max_score = float(line["score"]), float(line["max_score"])
            except (TypeError, ValueError) as error:
                raise ExportError(f"{path}, student {line['student_id']!r}: the score is not a number") from error
            rows.append(GradeRow(line["student_id"], line["assignment"], score, max_score, line["status"] or "",
                                 {t: line[t] or "" for t in tests}))
    seen: set[str] = set()
    for row in rows:
        if _same_id(row.student_id) in seen:
            raise ExportError(f"{path} lists student {row.student_id!r} twice: which grade counts?")
        seen.add(_same_id(row.student_id))
    if len({row.assignment for row in rows}) > 1:
        raise ExportError(f"{path} mixes assignments ({', '.join(sorted({r.assignment for r in rows}))})")
    return rows


@dataclass
class _Table:
    """A CSV file as rows of cells, with what it takes to write it back the same way."""

    rows: list[list[str]]
    delimiter: str
    newline: str
    bom: bool


def _read_table(path: Path, expected: str) -> _Table:
    """A roster CSV; ``expected`` is a header that must be in it (it also tells the delimiter)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ExportError(f"cannot read the roster {path}: {error.strerror}") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExportError(f"{path} is not UTF-8 text: download it again from the LMS "
                          "(or save it as 'CSV UTF-8')") from error
    first_line = text.split("\n", 1)[0]
    # Canvas and Moodle write commas, or semicolons or tabs when a user's settings ask for them.
    delimiter = max(",;\t", key=lambda d: (expected in _cells(first_line, d), first_line.count(d)))
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    if not rows or expected not in rows[0]:
        raise ExportError(f"{path} has no {expected!r} column in its first row: is it the LMS's export?")
    return _Table(rows, delimiter, "\r\n" if first_line.endswith("\r") else "\n", data.startswith(codecs.BOM_UTF8))


def _cells(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line.rstrip("\r")], delimiter=delimiter), [])


# --- writing -------------------------------------------------------------------------------------

def _number(value: float) -> str:
    """A grade as the LMS reads it: 85, 87.5, 8.3333 (never 1e+02, never -0)."""
    text = f"{round(value, 4):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _parse_number(text: str) -> float | None:
    """A number as an LMS writes it ('10', '10.00', '100,00'); None for '(read only)' and blanks."""
    cleaned = text.strip()
    if cleaned.count(",") == 1 and "." not in cleaned:  # a decimal comma
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _cell_text(text: str) -> str:
    """Text the grader composes from grades.csv: one line, never read as a spreadsheet formula."""
    flat = re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()
    return "'" + flat if flat.startswith(SPREADSHEET_FORMULA) else flat


def _same_id(student_id: str) -> str:
    """Ids compare as the same text however their accents are encoded (NFC), spaces trimmed."""
    return unicodedata.normalize("NFC", student_id.strip())


def _write_table(path: Path, table: _Table) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8-sig" if table.bom else "utf-8", newline="") as stream:
        csv.writer(stream, delimiter=table.delimiter, lineterminator=table.newline).writerows(table.rows)
    os.replace(temporary, path)  # atomic: never half a file for the LMS to import


def _feedback_comment(grade: GradeRow) -> str:
    points = ", ".join(f"{test} {value}" for test, value in grade.tests.items())
    text = f"{grade.assignment}: {_number(grade.score)} / {_number(grade.max_score)}. {grade.status}."
    return _cell_text(text + (f" Points per test: {points}." if points else ""))


def _scaled(grade: GradeRow, points: float | None, rescale: bool) -> float:
    if not rescale or points is None or grade.max_score <= 0 or points == grade.max_score:
        return grade.score
    return grade.score * points / grade.max_score


def _pad(row: list[str], width: int) -> None:
    row.extend([""] * (width - len(row)))


# --- matching grades to roster rows -------------------------------------------------------------

RosterIndex = dict[str, tuple[list[list[str]], str]]  # id -> (its roster rows, the column that matched)


def _index_rows(students: list[list[str]], columns: list[tuple[str, int]]) -> RosterIndex:
    """Each id the roster holds, in the given columns; an earlier column wins a tie."""
    index: RosterIndex = {}
    for name, position in columns:
        found: dict[str, list[list[str]]] = {}
        for row in students:
            if len(row) > position and row[position].strip():
                found.setdefault(_same_id(row[position]), []).append(row)
        for value, rows in found.items():
            index.setdefault(value, (rows, name))
    return index


def _fill(grades: list[GradeRow], index: RosterIndex, write, report: ExportReport) -> set[int]:
    """Call ``write(row, grade)`` for each grade's roster rows; returns the ids of rows filled.

    A grade with no row, or whose row another grade took already, is listed as unmatched: one
    student's grade never lands in two students' rows, nor two grades in one row.
    """
    filled: dict[int, str] = {}
    matched_by: dict[str, int] = {}
    for grade in grades:
        rows, how = index.get(_same_id(grade.student_id), ([], ""))
        taken = [filled[id(row)] for row in rows if id(row) in filled]
        if taken:
            report.notes.append(f"{grade.student_id!r} matches the roster row of {taken[0]!r}: not exported")
        if not rows or taken:
            report.unmatched_grades.append(grade.student_id)
            continue
        for row in rows:
            write(row, grade)
            filled[id(row)] = grade.student_id
        if len(rows) > 1:
            report.notes.append(f"{grade.student_id!r} has {len(rows)} roster rows (several sections): all filled")
        matched_by[how] = matched_by.get(how, 0) + 1
        report.exported.append(grade.student_id)
    report.notes += [f"{count} student(s) matched by {how}" for how, count in matched_by.items()
                     if how not in ("ID", MOODLE_IDENTIFIER)]
    return set(filled)


def _label(row: list[str], name: int | None, identifier: int, pattern: str) -> str:
    shown = row[name] if name is not None and len(row) > name and row[name] else "?"
    return pattern.format(name=shown, id=row[identifier])


# --- Canvas --------------------------------------------------------------------------------------

def _canvas_column(table: _Table, assignment: str, column: str | None, report: ExportReport) -> int:
    """The assignment's column: the one named ``column``, else the assignment's; added if absent."""
    header = table.rows[0]
    if column is not None:
        found = [header.index(column)] if column in header else []
    else:  # Canvas heads an assignment's column "Name (assignment id)"
        wanted = assignment.casefold()
        found = [i for i, name in enumerate(header)
                 if name.casefold() == wanted or re.fullmatch(re.escape(wanted) + r"\s*\(\d+\)", name.casefold())]
    if len(found) > 1:
        raise ExportError(f"several columns fit {assignment!r}: {', '.join(header[i] for i in found)}; "
                          "name one with --column")
    if found:
        report.column = header[found[0]]
        return found[0]
    # Canvas imports an unknown column as a new assignment. Every row gets the cell, blank
    # unless graded, so that the file stays rectangular.
    width = len(header)
    for row in table.rows[1:]:
        if row:
            _pad(row, width)
    for row in table.rows:
        if row:
            row.append("")
    header[width] = column or assignment
    report.column, report.column_created = header[width], True
    return width


def _canvas_points(table: _Table, target: int, max_score: float, report: ExportReport) -> float | None:
    """The assignment's points from the "Points Possible" row (set to max_score for a new column)."""
    points_row = next((r for r in table.rows[1:] if r and r[0].strip() == CANVAS_POINTS_ROW), None)
    if points_row is None:
        report.notes.append(f"the roster has no {CANVAS_POINTS_ROW!r} row: scores are the grader's points")
        return None
    _pad(points_row, target + 1)
    if report.column_created:
        points_row[target] = _number(max_score)
    return _parse_number(points_row[target])


def _export_canvas(grades: list[GradeRow], table: _Table, column: str | None, rescale: bool,
                   report: ExportReport) -> None:
    header = table.rows[0]
    missing = [c for c in CANVAS_IDENTITY if c not in header]
    if missing:
        report.notes.append(f"the roster lacks {', '.join(missing)}: Canvas's import expects "
                            f"{', '.join(CANVAS_IDENTITY)} first")
    target = _canvas_column(table, report.assignment, column, report)
    points = _canvas_points(table, target, grades[0].max_score, report)
    identifier = header.index("ID")
    # Rows without an ID are Canvas's own: "Points Possible", "Manual Posting", blank lines.
    students = [r for r in table.rows[1:] if len(r) > identifier and r[identifier].strip()]
    index = _index_rows(students, [(c, header.index(c)) for c in CANVAS_MATCH_COLUMNS if c in header])

    def write(row: list[str], grade: GradeRow) -> None:
        _pad(row, target + 1)
        row[target] = _number(_scaled(grade, points, rescale))

    filled = _fill(grades, index, write, report)
    if rescale and points is not None and points != grades[0].max_score and report.exported:
        report.scaled_to = points
    name = header.index("Student") if "Student" in header else None
    report.not_graded = [_label(r, name, identifier, "{name} (ID {id})") for r in students if id(r) not in filled]


# --- Moodle --------------------------------------------------------------------------------------

def _moodle_identifier(student_id: str) -> str:
    return MOODLE_PARTICIPANT + student_id.strip() if student_id.strip().isdigit() else _cell_text(student_id)


def _moodle_modified(now: datetime) -> str:
    # ISO 8601 with its offset: PHP's strtotime reads it whatever the server's time zone.
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _export_moodle_new(grades: list[GradeRow], now: datetime, report: ExportReport) -> _Table:
    rows = [list(MOODLE_COLUMNS)]
    for grade in grades:
        rows.append([_moodle_identifier(grade.student_id), _number(grade.score), _number(grade.max_score),
                     _moodle_modified(now), _feedback_comment(grade)])
        report.exported.append(grade.student_id)
    others = [g.student_id for g in grades if not g.student_id.strip().isdigit()]
    if others:
        report.notes.append(f"{len(others)} student id(s) are not Moodle participant ids (the number in "
                            f"Moodle's download folder names), so Moodle will skip them: {', '.join(others)}")
    report.column = MOODLE_GRADE
    return _Table(rows, ",", "\n", False)


def _export_moodle_worksheet(grades: list[GradeRow], table: _Table, now: datetime, rescale: bool,
                             report: ExportReport) -> None:
    header = table.rows[0]
    added = [name for name in (MOODLE_GRADE, MOODLE_MODIFIED, MOODLE_FEEDBACK) if name not in header]
    if added:
        report.notes.append(f"column(s) added: {', '.join(added)}")
        for row in table.rows[1:]:
            if row:
                _pad(row, len(header) + len(added))
        header.extend(added)
    report.column, report.column_created = MOODLE_GRADE, MOODLE_GRADE in added
    column = {name: header.index(name) for name in header}  # the first of a repeated name
    identifier = column[MOODLE_IDENTIFIER]
    students = [r for r in table.rows[1:] if len(r) > identifier and r[identifier].strip()]
    index = _index_rows(students, [(MOODLE_IDENTIFIER, identifier)])
    for value, entry in list(index.items()):
        if digits := re.search(r"(\d+)$", value):  # "Participant 123456", in any language
            index.setdefault(digits[1], entry)

    def write(row: list[str], grade: GradeRow) -> None:
        _pad(row, len(header))
        maximum = _parse_number(row[column[MOODLE_MAXIMUM]]) if MOODLE_MAXIMUM in column else None
        value = _scaled(grade, maximum, rescale)
        if value != grade.score:
            report.scaled_to = maximum
        row[column[MOODLE_GRADE]] = _number(value)
        row[column[MOODLE_FEEDBACK]] = _feedback_comment(grade)
        if MOODLE_MODIFIED in added:
            row[column[MOODLE_MODIFIED]] = _moodle_modified(now)

    filled = _fill(grades, index, write, report)
    name = column.get("Full name")
    report.not_graded = [_label(r, name, identifier, "{name} ({id})") for r in students if id(r) not in filled]


# --- the command ---------------------------------------------------------------------------------

def export(out: Path, fmt: str, roster: Path | None, destination: Path | None = None, *,
           column: str | None = None, rescale: bool = True, now: datetime | None = None) -> ExportReport:
    """Write OUT's grades in the LMS's import format; see the module's docstring.

    ``destination`` defaults to ``OUT/canvas_import.csv`` or ``OUT/moodle_import.csv``;
    ``column`` names Canvas's assignment column; ``rescale=False`` keeps the grader's points.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    out = Path(out)
    grades = read_grades(out)
    if not grades:
        raise ExportError(f"{out / 'grades.csv'} has no grades")
    destination = Path(destination) if destination else out / f"{fmt}_import.csv"
    protected = [Path(p).resolve() for p in (roster, out / "grades.csv") if p is not None]
    if destination.resolve() in protected:
        raise ExportError(f"{destination} is an input: choose another --out (the roster stays as the LMS gave it)")
    now = now or datetime.now(timezone.utc)
    report = ExportReport(fmt, destination, grades[0].assignment, column="")
    if fmt == "canvas":
        if roster is None:
            raise ExportError("--format canvas needs --roster: the course's gradebook as Canvas exports it "
                              "(Grades > Export > Export Entire Gradebook)")
        table = _read_table(roster, "ID")
        _export_canvas(grades, table, column, rescale, report)
    elif roster is None:
        table = _export_moodle_new(grades, now, report)
    else:
        table = _read_table(roster, MOODLE_IDENTIFIER)
        _export_moodle_worksheet(grades, table, now, rescale, report)
    ungradable = [g.student_id for g in grades if g.status.startswith("ungradable")
                  and g.student_id in report.exported]
    if ungradable:
        report.notes.append(f"{len(ungradable)} ungradable submission(s) exported with the points grades.csv "
                            f"gives them (look at them first): {', '.join(ungradable)}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    _write_table(destination, table)
    return report
