"""Ingest: every LMS layout an instructor downloads, built here from scratch, and the zip attacks.

No grading happens here (no sandbox, no kernels): these tests run in seconds on any machine.
Each notebook's bytes name its student and version, so a test sees which file was chosen.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from autograder import ingest as ingest_module
from autograder.ingest import LAYOUTS, IngestError, Submission, ingest, student_key

NOTEBOOK = "hinge_loss.ipynb"
KEY = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")


def notebook(label: str) -> bytes:
    """A small valid notebook whose bytes say who wrote it."""
    return json.dumps({"cells": [], "metadata": {"label": label}, "nbformat": 4, "nbformat_minor": 5}).encode()


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return path


def by_id(ingested) -> dict[str, Submission]:
    return {s.student_id: s for s in ingested.submissions}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_ingest(tmp_path: Path, submissions: Path, **kwargs):
    """Ingest, and check it wrote nothing at all: not in tmp_path, not in the scratch folder."""
    scratch = tmp_path / "out" / ".work"
    before = listing(tmp_path)
    try:
        return ingest(submissions, NOTEBOOK, scratch, **kwargs)
    finally:
        assert listing(tmp_path) == before, "ingest wrote files"


# --- the folder layout (today's) -----------------------------------------------------------------

def test_folders_one_row_per_student_folder_sorted_by_id(tmp_path):
    root = write_files(tmp_path / "subs", {f"{s}/{NOTEBOOK}": notebook(s) for s in ("carol", "alice", "bob")})
    (root / "grades.xlsx").write_bytes(b"a loose file")
    found = run_ingest(tmp_path, root)
    assert found.layout == "folders" and found.ignored == ["grades.xlsx"]
    assert [s.student_id for s in found.submissions] == ["alice", "bob", "carol"]
    assert [s.raw for s in found.submissions] == [notebook("alice"), notebook("bob"), notebook("carol")]
    assert all(s.problem is None and s.notes == [] for s in found)
    assert len(found) == 3 and list(found) == found.submissions  # iterable, like the old list


def test_folders_zip_wrapped_in_one_top_folder(tmp_path):
    archive = write_zip(tmp_path / "class.zip", {f"class/{s}/{NOTEBOOK}": notebook(s) for s in ("alice", "bob")})
    found = run_ingest(tmp_path, archive)
    assert (found.layout, found.root) == ("folders", "class")
    assert sorted(by_id(found)) == ["alice", "bob"]
    assert by_id(found)["bob"].source == f"class/bob/{NOTEBOOK}"


def test_a_one_student_class_is_not_taken_for_a_wrapper(tmp_path):
    root = write_files(tmp_path / "subs", {f"alice/{NOTEBOOK}": notebook("alice")})
    assert [s.student_id for s in run_ingest(tmp_path, root)] == ["alice"]
    # Her notebook in a sub-folder of her own: still alice (SUBMISSIONS' sub-folders are the
    # student ids), never a student called "hw".
    nested = write_files(tmp_path / "subs2", {f"alice/hw/{NOTEBOOK}": notebook("alice")})
    [row] = run_ingest(tmp_path, nested).submissions
    assert (row.student_id, row.raw, row.source) == ("alice", notebook("alice"), f"alice/hw/{NOTEBOOK}")
    # A zip of the submissions folder: its one top folder wraps the class, even a class of one.
    wrapped = write_zip(tmp_path / "class.zip", {f"class/alice/{NOTEBOOK}": notebook("alice")})
    found = run_ingest(tmp_path, wrapped)
    assert [s.student_id for s in found] == ["alice"] and found.root == "class"
    # Wrappers in a folder are recognised by the class they lead to, through several levels.
    deep = write_files(tmp_path / "subs3", {f"course/2024/{s}/hw/{NOTEBOOK}": notebook(s) for s in ("alice", "bob")})
    found = run_ingest(tmp_path, deep)
    assert [s.student_id for s in found] == ["alice", "bob"] and found.root == "course/2024"


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_a_student_id_starting_with_a_dot_gets_a_row_and_hidden_clutter_none(tmp_path, as_zip):
    files = {
        f".alice/{NOTEBOOK}": notebook(".alice"),
        f"bob/{NOTEBOOK}": notebook("bob"),
        "bob/._hinge_loss.ipynb": b"AppleDouble resource fork",  # macOS clutter, a hidden file
        "bob/.config/settings.json": b"{}",
        ".Trash-1000/files/readme.txt": b"x",
        ".DS_Store": b"x",
    }
    source = write_zip(tmp_path / "class.zip", files) if as_zip else write_files(tmp_path / "subs", files)
    found = run_ingest(tmp_path, source)
    rows = by_id(found)
    assert sorted(rows) == [".alice", "bob"]
    assert rows[".alice"].raw == notebook(".alice") and rows[".alice"].problem is None
    assert KEY.fullmatch(rows[".alice"].key) and not rows[".alice"].key.startswith(".")
    assert rows["bob"].raw == notebook("bob") and rows["bob"].notes == []


def test_todays_rules_for_zero_one_or_several_notebooks(tmp_path):
    root = write_files(tmp_path / "subs", {
        f"named_and_other/{NOTEBOOK}": notebook("named"), "named_and_other/scratch.ipynb": notebook("other"),
        "renamed/hinge_loss (1).ipynb": notebook("renamed"),
        "two_unnamed/a.ipynb": notebook("a"), "two_unnamed/b.ipynb": notebook("b"),
        f"two_named/x/{NOTEBOOK}": notebook("x"), f"two_named/y/{NOTEBOOK}": notebook("y"),
        f"nested_and_top/{NOTEBOOK}": notebook("top"), f"nested_and_top/old/{NOTEBOOK}": notebook("old"),
        "none/answers.py": b"print(1)\n",
        "zipped/work.zip": b"PK\x05\x06" + b"\0" * 18,
    })
    found = by_id(run_ingest(tmp_path, root))
    assert found["named_and_other"].raw == notebook("named")
    assert found["named_and_other"].notes == ["1 other notebook(s) ignored"]
    assert found["renamed"].raw == notebook("renamed")
    assert found["renamed"].notes == [f"notebook named hinge_loss (1).ipynb, not {NOTEBOOK}"]
    assert found["two_unnamed"].raw is None and "none named" in found["two_unnamed"].problem
    assert found["two_named"].raw is None and "several copies" in found["two_named"].problem
    assert found["nested_and_top"].raw == notebook("top")
    assert found["none"].problem == f"no notebook in the submission (expected {NOTEBOOK})"
    assert ".zip was submitted" in found["zipped"].problem


# --- ids and keys ---------------------------------------------------------------------------------

def test_ids_keep_their_spelling_and_get_safe_unique_keys(tmp_path):
    ids = ["b11 spaced ünïcode id", "Zoë", "bob smith", "bob_smith", "bob?smith", "x" * 200, "plain.id@uni-1"]
    root = write_files(tmp_path / "subs", {f"{i}/{NOTEBOOK}": notebook(i) for i in ids})
    found = by_id(run_ingest(tmp_path, root))
    assert sorted(found) == sorted(ids)
    for student_id, submission in found.items():
        assert submission.raw == notebook(student_id)  # the id is the folder's exact name
        assert KEY.fullmatch(submission.key), submission.key
    keys = [s.key for s in found.values()]
    assert len(set(keys)) == len(keys)
    assert found["bob_smith"].key == "bob_smith" and found["plain.id@uni-1"].key == "plain.id@uni-1"
    assert found["b11 spaced ünïcode id"].key.startswith("b11_spaced_unicode_id+")
    assert found["bob smith"].key.startswith("bob_smith+") and found["bob?smith"].key.startswith("bob_smith+")


def test_a_hashed_key_can_never_be_a_real_students_key(tmp_path):
    # Even a folder named exactly like another student's hashed key keeps apart, in either order.
    hashed = student_key("bob smith")
    for order in (["bob smith", hashed], [hashed, "bob smith"]):
        root = write_files(tmp_path / f"subs{len(order[0])}", {f"{i}/{NOTEBOOK}": notebook(i) for i in order})
        found = by_id(run_ingest(tmp_path, root))
        assert found["bob smith"].key == hashed
        assert found[hashed].key != hashed and "+" in found[hashed].key
    assert student_key("bob smith") == hashed  # deterministic: a re-run finds its results again


def test_ids_differing_only_in_case_get_keys_apart_on_case_insensitive_disks(tmp_path):
    root = write_files(tmp_path / "subs", {f"{i}/{NOTEBOOK}": notebook(i) for i in ("Bob", "bob", "alice")})
    found = by_id(run_ingest(tmp_path, root))
    assert len({s.key.casefold() for s in found.values()}) == 3
    assert found["alice"].key == "alice"


def test_folder_names_that_are_not_utf8_still_get_a_row(tmp_path):
    root = tmp_path / "subs"
    root.mkdir()
    os.mkdir(os.fsencode(root) + b"/m\xfcller")  # latin-1 bytes on disk
    (Path(os.fsdecode(os.fsencode(root) + b"/m\xfcller")) / NOTEBOOK).write_bytes(notebook("muller"))
    found = run_ingest(tmp_path, root)
    assert [s.student_id for s in found] == ["m\ufffdller"]
    assert found.submissions[0].raw == notebook("muller") and KEY.fullmatch(found.submissions[0].key)


# --- Canvas ----------------------------------------------------------------------------------------

def canvas_download() -> dict[str, bytes]:
    return {
        f"smithbob_340934_208490284_{NOTEBOOK}": notebook("bob v0"),
        "smithbob_340934_208490284_hinge_loss-1.ipynb": notebook("bob v1"),
        "smithbob_340934_208490284_hinge_loss-2.ipynb": notebook("bob v2"),
        "smithbob_340934_208490284_notes.pdf": b"%PDF-1.4",
        f"doejane_LATE_11_22_{NOTEBOOK}": notebook("jane"),
        "leezoe_77_88_my homework.ipynb": notebook("zoe"),
        "nopebook_99_100_answers.txt": b"no notebook",
    }


@pytest.mark.parametrize("as_zip", [True, False], ids=["zip", "extracted"])
def test_canvas_download_of_flat_files(tmp_path, as_zip):
    files = canvas_download()
    source = write_zip(tmp_path / "submissions.zip", files) if as_zip else write_files(tmp_path / "submissions", files)
    found = run_ingest(tmp_path, source)
    assert found.layout == "canvas"
    rows = by_id(found)
    assert sorted(rows) == ["11", "340934", "77", "99"]  # Canvas user ids
    bob = rows["340934"]
    assert bob.raw == notebook("bob v2") and bob.name == "smithbob" and bob.late is False
    assert bob.notes == [f"3 uploads of {NOTEBOOK}: graded the newest, hinge_loss-2.ipynb"]
    assert bob.source == "smithbob_340934_208490284_hinge_loss-2.ipynb"
    jane = rows["11"]
    assert jane.raw == notebook("jane") and jane.late is True
    assert jane.notes == ["late: Canvas marks the files LATE"]
    assert rows["77"].notes == [f"notebook named my homework.ipynb, not {NOTEBOOK}"]
    assert rows["99"].raw is None and "no notebook" in rows["99"].problem


def test_canvas_two_submissions_of_one_student_newest_graded_both_reported(tmp_path):
    archive = write_zip(tmp_path / "submissions.zip", {
        f"smithbob_340934_500_{NOTEBOOK}": notebook("older"),
        f"smithbob_340934_900_{NOTEBOOK}": notebook("newer"),
    })
    [bob] = run_ingest(tmp_path, archive).submissions
    assert bob.raw == notebook("newer")
    [note] = bob.notes
    assert "2 submissions for student id 340934" in note and "900" in note and "500" in note


# --- Moodle ----------------------------------------------------------------------------------------

def test_moodle_download_in_folders(tmp_path):
    archive = write_zip(tmp_path / "CV-Homework 1-42.zip", {
        f"Jane Doe_123456_assignsubmission_file_/{NOTEBOOK}": notebook("jane"),
        "Jane Doe_123456_assignsubmission_onlinetext_/onlinetext.html": b"<p>hi</p>",
        f"Zoë O'Brien-Nguyễn_654321_assignsubmission_file_/sub dir/{NOTEBOOK}": notebook("zoe"),
        "Ann Lee_777_assignsubmission_file_/report.pdf": b"%PDF",
    })
    found = run_ingest(tmp_path, archive)
    assert found.layout == "moodle"
    rows = by_id(found)
    assert sorted(rows) == ["123456", "654321", "777"]
    assert rows["123456"].raw == notebook("jane") and rows["123456"].name == "Jane Doe"
    assert rows["654321"].raw == notebook("zoe") and rows["654321"].name == "Zoë O'Brien-Nguyễn"
    assert "no notebook" in rows["777"].problem


def test_moodle_flat_download_of_older_versions(tmp_path):
    root = write_files(tmp_path / "moodle", {
        f"Jane Doe_123456_assignsubmission_file_{NOTEBOOK}": notebook("jane"),
        "Bo Li_222_assignsubmission_file_hw.ipynb": notebook("bo"),
    })
    found = run_ingest(tmp_path, root)
    assert found.layout == "moodle"
    assert by_id(found)["123456"].raw == notebook("jane")
    assert by_id(found)["222"].notes == [f"notebook named hw.ipynb, not {NOTEBOOK}"]


def test_moodle_one_participant_id_under_two_names_newest_graded(tmp_path):
    root = write_files(tmp_path / "moodle", {
        f"Jane Doe_123456_assignsubmission_file_/{NOTEBOOK}": notebook("old name"),
        f"Jane Smith_123456_assignsubmission_file_/{NOTEBOOK}": notebook("new name"),
    })
    old = root / f"Jane Doe_123456_assignsubmission_file_/{NOTEBOOK}"
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    [jane] = run_ingest(tmp_path, root).submissions
    assert jane.raw == notebook("new name") and jane.name == "Jane Smith"
    assert "2 submissions for student id 123456" in jane.notes[0] and "Jane Doe_123456" in jane.notes[0]


# --- nbgrader's exchange ---------------------------------------------------------------------------

def nbgrader_course(root: Path) -> Path:
    write_files(root, {
        f"submitted/alice/a1_hinge_loss/{NOTEBOOK}": notebook("alice"),
        "submitted/alice/a1_hinge_loss/timestamp.txt": b"2024-02-10 13:45:12.123456 UTC\n",
        f"submitted/bob/a1_hinge_loss/{NOTEBOOK}": notebook("bob"),
        "submitted/bob/a1_hinge_loss/timestamp.txt": b"2024-02-11 09:00:00.000000 UTC",
        f"source/a1_hinge_loss/{NOTEBOOK}": notebook("SOLUTION"),
        "nbgrader_config.py": b"c = get_config()\n",
    })
    return root


@pytest.mark.parametrize("form", ["course root", "submitted folder", "zip of the course root"])
def test_nbgrader_exchange_collection(tmp_path, form):
    course = nbgrader_course(tmp_path / "course")
    if form == "submitted folder":
        source = course / "submitted"
    elif form == "zip of the course root":
        source = tmp_path / "course.zip"
        with zipfile.ZipFile(source, "w") as bundle:
            for path in sorted(course.rglob("*")):
                if path.is_file():
                    bundle.write(path, Path("course") / path.relative_to(course))
    else:
        source = course
    found = run_ingest(tmp_path, source)
    assert found.layout == "nbgrader-exchange"
    rows = by_id(found)
    assert sorted(rows) == ["alice", "bob"]  # never the instructor's source/ folder
    assert rows["alice"].raw == notebook("alice") and rows["alice"].submitted_at == "2024-02-10 13:45:12.123456 UTC"
    assert rows["bob"].submitted_at == "2024-02-11 09:00:00.000000 UTC"


def test_nbgrader_student_with_two_assignments(tmp_path):
    root = write_files(tmp_path / "submitted", {
        f"alice/a1_hinge_loss/{NOTEBOOK}": notebook("a1"), "alice/a1_hinge_loss/timestamp.txt": b"2024-01-01 10:00:00 UTC",
        f"alice/a1_retake/{NOTEBOOK}": notebook("retake"), "alice/a1_retake/timestamp.txt": b"2024-03-01 10:00:00 UTC",
    })
    [named] = run_ingest(tmp_path, root, assignment="a1_hinge_loss").submissions
    assert named.raw == notebook("a1") and named.notes == []
    [newest] = run_ingest(tmp_path, root).submissions
    assert newest.raw == notebook("retake") and "graded a1_retake" in newest.notes[0]


# --- nothing to grade --------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ["empty folder", "unrelated files", "zip of unrelated files", "empty zip",
                                     "notebooks but no student folders"])
def test_no_submission_found_is_an_error_naming_the_layouts(tmp_path, content):
    if content == "empty folder":
        source = tmp_path / "subs"
        source.mkdir()
    elif content == "unrelated files":
        source = write_files(tmp_path / "subs", {"grades.xlsx": b"x", "notes/readme.txt": b"hello"})
    elif content == "zip of unrelated files":
        source = write_zip(tmp_path / "subs.zip", {"photos/cat.jpg": b"jpg", "readme.txt": b"hi"})
    elif content == "empty zip":
        source = write_zip(tmp_path / "subs.zip", {})
    else:
        source = write_files(tmp_path / "subs", {"alice.ipynb": notebook("a"), "bob.ipynb": notebook("b")})
    with pytest.raises(IngestError) as raised:
        run_ingest(tmp_path, source)
    assert "no submissions found" in str(raised.value)
    for layout in LAYOUTS:
        assert layout in str(raised.value)


def test_a_missing_path_or_a_file_that_is_not_a_zip_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        ingest(tmp_path / "missing", NOTEBOOK, tmp_path / "w")
    (tmp_path / "subs.tar").write_bytes(b"x")
    with pytest.raises(IngestError, match="neither a folder nor a .zip"):
        ingest(tmp_path / "subs.tar", NOTEBOOK, tmp_path / "w")
    (tmp_path / "broken.zip").write_bytes(b"not a zip at all")
    with pytest.raises(IngestError, match="not a valid zip"):
        ingest(tmp_path / "broken.zip", NOTEBOOK, tmp_path / "w")


# --- zip attacks -----------------------------------------------------------------------------------

def member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the mode bits below mean what they say
    info.external_attr = mode << 16
    return info


def test_traversal_and_absolute_members_are_refused_and_nothing_is_written(tmp_path):
    target = tmp_path / "absolute_target" / "planted.ipynb"
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"alice/{NOTEBOOK}", notebook("alice"))
        bundle.writestr("../escaped.txt", b"x")
        bundle.writestr(f"alice/../../{NOTEBOOK}", notebook("traversal"))
        bundle.writestr(str(target), notebook("absolute"))
        bundle.writestr("C:\\Windows\\evil.ipynb", notebook("drive"))
        bundle.writestr("..\\..\\backslash.ipynb", notebook("backslash"))
    found = run_ingest(tmp_path, archive)
    assert [s.student_id for s in found] == ["alice"] and found.submissions[0].raw == notebook("alice")
    rules = sorted(entry.rsplit(": ", 1)[1] for entry in found.refused)
    assert rules == ["absolute path", "absolute path", "path traversal", "path traversal", "path traversal"]
    assert any(f"../../{NOTEBOOK} refused (path traversal)" in n for n in found.submissions[0].notes)
    assert not target.exists() and not (tmp_path / "escaped.txt").exists()
    assert "folders layout: 1 submission(s); 5 entries refused (" in found.summary()


def test_symlink_and_device_members_are_refused(tmp_path):
    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(member(f"alice/{NOTEBOOK}", stat.S_IFLNK | 0o777), "/etc/passwd")
        bundle.writestr(member(f"bob/{NOTEBOOK}", stat.S_IFCHR | 0o666), b"")
        bundle.writestr(member("bob/old.ipynb", stat.S_IFREG | 0o644), notebook("bob"))
        bundle.writestr(member("carol/pipe", stat.S_IFIFO | 0o644), b"")
        bundle.writestr(member(f"carol/{NOTEBOOK}", stat.S_IFREG | 0o644), notebook("carol"))
    found = run_ingest(tmp_path, archive)
    rows = by_id(found)
    assert rows["alice"].raw is None and "no notebook" in rows["alice"].problem
    assert f"{NOTEBOOK} refused (symbolic link)" in rows["alice"].notes
    assert rows["bob"].raw == notebook("bob") and f"{NOTEBOOK} refused (device or special file)" in rows["bob"].notes
    assert rows["carol"].raw == notebook("carol")
    assert sorted(e.rsplit(": ", 1)[1] for e in found.refused) == [
        "device or special file", "device or special file", "symbolic link"]


def test_links_in_a_folder_are_never_followed(tmp_path):
    secret = tmp_path / "solutions" / NOTEBOOK
    write_files(tmp_path, {f"solutions/{NOTEBOOK}": notebook("SOLUTION")})
    root = write_files(tmp_path / "subs", {f"alice/{NOTEBOOK}": notebook("alice")})
    (root / "bob").mkdir()
    (root / "bob" / NOTEBOOK).symlink_to(secret)
    (root / "carol").mkdir()
    os.link(secret, root / "carol" / NOTEBOOK)  # a hard link reads as the solution itself
    (root / "dave").symlink_to(secret.parent, target_is_directory=True)
    found = run_ingest(tmp_path, root)
    rows = by_id(found)
    assert sorted(rows) == ["alice", "bob", "carol"]  # dave's folder is a link: refused, no row
    assert all(notebook("SOLUTION") != s.raw for s in found)
    assert f"{NOTEBOOK} refused (symbolic link)" in rows["bob"].notes and rows["bob"].raw is None
    assert f"{NOTEBOOK} refused (hard link)" in rows["carol"].notes and rows["carol"].raw is None
    assert "dave: symbolic link" in found.refused


def patch_declared_size(archive: Path, name: str, size: int) -> None:
    """Make the zip's central directory lie about a member's uncompressed size."""
    data = bytearray(archive.read_bytes())
    start = data.find(b"PK\x01\x02")
    while start != -1:
        name_length = struct.unpack_from("<H", data, start + 28)[0]
        if data[start + 46:start + 46 + name_length] == name.encode():
            struct.pack_into("<I", data, start + 24, size)
        start = data.find(b"PK\x01\x02", start + 4)
    archive.write_bytes(bytes(data))


def test_a_zip_declaring_more_than_the_limit_is_refused_before_reading(tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", {f"alice/{NOTEBOOK}": notebook("alice")})
    patch_declared_size(archive, f"alice/{NOTEBOOK}", 0xF0000000)  # 3.75 GB declared
    with pytest.raises(IngestError, match=r"declared size"):
        run_ingest(tmp_path, archive)


def test_a_genuine_zip_bomb_over_the_total_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "MAX_ZIP_BYTES", 4 * 2**20)
    archive = write_zip(tmp_path / "bomb.zip", {f"alice/{NOTEBOOK}": notebook("a"), "alice/zeros.bin": bytes(8 * 2**20)})
    assert archive.stat().st_size < 100_000  # 8 MB of zeros deflate to almost nothing
    with pytest.raises(IngestError, match=r"declared size"):
        run_ingest(tmp_path, archive)


def test_a_member_whose_header_lies_about_its_size_is_that_students_problem(tmp_path):
    archive = write_zip(tmp_path / "class.zip", {
        f"alice/{NOTEBOOK}": notebook("alice").ljust(20 * 2**20),  # 20 MB that deflate to kilobytes
        f"bob/{NOTEBOOK}": notebook("bob"),
    })
    patch_declared_size(archive, f"alice/{NOTEBOOK}", 1000)
    started = time.monotonic()
    rows = by_id(run_ingest(tmp_path, archive))
    assert time.monotonic() - started < 5
    assert rows["alice"].raw is None and "damaged in the zip" in rows["alice"].problem
    assert rows["bob"].raw == notebook("bob")


def test_a_notebook_over_the_size_limit_is_that_students_problem(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "MAX_NOTEBOOK_BYTES", 1000)
    files = {f"alice/{NOTEBOOK}": notebook("alice").ljust(5000), f"bob/{NOTEBOOK}": notebook("bob")}
    for source in (write_zip(tmp_path / "class.zip", files), write_files(tmp_path / "class", files)):
        rows = by_id(run_ingest(tmp_path, source))
        assert rows["alice"].raw is None and "larger than" in rows["alice"].problem
        assert rows["bob"].raw == notebook("bob")


def test_ten_thousand_tiny_files_are_read_within_seconds(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for i in range(2_000):
            bundle.writestr(f"class/s{i:04d}/{NOTEBOOK}", notebook(str(i)))
            for j in range(4):
                bundle.writestr(f"class/s{i:04d}/data/{j}.txt", b"x")
    started = time.monotonic()
    found = run_ingest(tmp_path, archive)
    assert time.monotonic() - started < 10
    assert len(found) == 2_000 and found.submissions[1234].raw == notebook("1234")


def test_too_many_members_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_module, "MAX_ZIP_MEMBERS", 500)
    archive = write_zip(tmp_path / "many.zip", {f"s{i}/{NOTEBOOK}": b"{}" for i in range(600)})
    with pytest.raises(IngestError, match=r"600 members.*too many members"):
        run_ingest(tmp_path, archive)


def rename_member(archive: Path, old: bytes, new: bytes) -> None:
    """Rewrite a member's name bytes in place (same length), leaving the UTF-8 flag as it was."""
    assert len(old) == len(new)
    data = archive.read_bytes()
    assert data.count(old) == 2  # the local header and the central directory
    archive.write_bytes(data.replace(old, new))


def test_member_names_in_odd_encodings(tmp_path):
    archive = write_zip(tmp_path / "class.zip", {
        f"Mxxller/{NOTEBOOK}": notebook("utf8 without the flag"),
        f"Pxrez/{NOTEBOOK}": notebook("cp437"),
        f"eve_bell/{NOTEBOOK}": notebook("control"),
    })
    rename_member(archive, b"Mxxller", "Müller".encode())  # UTF-8 bytes, flag unset
    rename_member(archive, b"Pxrez", "Pérez".encode("cp437"))  # the zip standard's own encoding
    rename_member(archive, b"eve_bell", b"eve\x07bell")  # a control character
    found = run_ingest(tmp_path, archive)
    rows = by_id(found)
    assert rows["Müller"].raw == notebook("utf8 without the flag")
    assert rows["Pérez"].raw == notebook("cp437")
    assert "eve\x07bell" not in rows and any("odd name" in e and "eve?bell" in e for e in found.refused)


def test_member_names_flagged_utf8_that_are_not_are_a_clear_error(tmp_path):
    archive = write_zip(tmp_path / "class.zip", {f"é/{NOTEBOOK}": notebook("x")})  # zipfile sets the flag
    rename_member(archive, "é".encode(), b"\xff\xfe")
    with pytest.raises(IngestError, match="encoding"):
        run_ingest(tmp_path, archive)


# --- malicious zips, one table -------------------------------------------------------------------

def _bob_and(*members):
    """A zip builder: bob's honest notebook plus the given (ZipInfo or name, data) members."""
    def build(path: Path) -> Path:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(f"bob/{NOTEBOOK}", notebook("bob"))
            for info, data in members:
                bundle.writestr(info, data)
        return path
    return build


def _lying_header(path: Path) -> Path:
    _bob_and((f"alice/{NOTEBOOK}", notebook("alice").ljust(2 * 2**20)))(path)
    patch_declared_size(path, f"alice/{NOTEBOOK}", 1000)
    return path


def _huge_declared(path: Path) -> Path:
    _bob_and((f"alice/{NOTEBOOK}", notebook("alice")))(path)
    patch_declared_size(path, f"alice/{NOTEBOOK}", 0xF0000000)
    return path


def _encrypted(path: Path) -> Path:
    _bob_and((f"alice/{NOTEBOOK}", notebook("alice")))(path)
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        start = data.find(signature)
        while start != -1:
            name_offset = 30 if signature == b"PK\x03\x04" else 46
            if data[start + name_offset:].startswith(f"alice/{NOTEBOOK}".encode()):
                data[start + flag_offset] |= 0x1
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


def _truncated(path: Path) -> Path:
    _bob_and((f"alice/{NOTEBOOK}", notebook("alice")))(path)
    path.write_bytes(path.read_bytes()[:60])
    return path


def _not_a_zip(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4 this is a PDF renamed to .zip\n" * 10)
    return path


# (case, builder, limits patched, expected): expected is ("error", pattern) for a zip refused as a
# whole, or ("row", alice's problem pattern or None, refused rules) where bob is graded as usual.
MALICIOUS_ZIPS = [
    ("path traversal", _bob_and(("../escaped.ipynb", notebook("x")), (f"alice/../../{NOTEBOOK}", notebook("x"))),
     {}, ("row", None, ["path traversal", "path traversal"])),
    ("backslash traversal", _bob_and((f"..\\..\\{NOTEBOOK}", notebook("x"))), {}, ("row", None, ["path traversal"])),
    ("absolute path", _bob_and((f"/tmp/planted/{NOTEBOOK}", notebook("x")), (f"C:\\x\\{NOTEBOOK}", notebook("x"))),
     {}, ("row", None, ["absolute path", "absolute path"])),
    ("symbolic link", _bob_and((member(f"alice/{NOTEBOOK}", stat.S_IFLNK | 0o777), "/etc/passwd")),
     {}, ("row", "no notebook", ["symbolic link"])),
    ("fifo", _bob_and((member(f"alice/{NOTEBOOK}", stat.S_IFIFO | 0o644), b"")),
     {}, ("row", "no notebook", ["device or special file"])),
    ("control characters", _bob_and((f"alice/hinge\x1b[2Jloss.ipynb", notebook("x"))),
     {}, ("row", None, ["odd name (control characters)"])),
    ("header lies about size", _lying_header, {}, ("row", "damaged in the zip", [])),
    ("notebook too large", _bob_and((f"alice/{NOTEBOOK}", notebook("alice").ljust(5000))),
     {"MAX_NOTEBOOK_BYTES": 1000}, ("row", "larger than", [])),
    ("encrypted member", _encrypted, {}, ("row", r": it is encrypted in the zip$", [])),
    ("declared size", _huge_declared, {}, ("error", r"declared size")),
    ("zip bomb", _bob_and(("alice/zeros.bin", bytes(8 * 2**20))), {"MAX_ZIP_BYTES": 4 * 2**20},
     ("error", r"declared size")),
    ("too many members", _bob_and(*[(f"s{i}/{NOTEBOOK}", b"{}") for i in range(6)]), {"MAX_ZIP_MEMBERS": 5},
     ("error", r"7 members.*too many members")),
    ("not a zip", _not_a_zip, {}, ("error", r"not a valid zip")),
    ("truncated zip", _truncated, {}, ("error", r"not a valid zip|cannot be read")),
]


@pytest.mark.parametrize("case, build, limits, expected", MALICIOUS_ZIPS, ids=[c[0] for c in MALICIOUS_ZIPS])
def test_malicious_zips_table(tmp_path, monkeypatch, case, build, limits, expected):
    for name, value in limits.items():
        monkeypatch.setattr(ingest_module, name, value)
    archive = build(tmp_path / "class.zip")
    if expected[0] == "error":
        with pytest.raises(IngestError, match=expected[1]):
            run_ingest(tmp_path, archive)
        return
    _, problem, rules = expected
    found = run_ingest(tmp_path, archive)
    rows = by_id(found)
    assert rows["bob"].raw == notebook("bob") and rows["bob"].problem is None, "one bad entry cost another student"
    assert sorted(entry.rsplit(": ", 1)[1] for entry in found.refused) == sorted(rules)
    if problem is None:
        assert "alice" not in rows or rows["alice"].raw is None
    else:
        assert rows["alice"].raw is None and re.search(problem, rows["alice"].problem)
    assert not (tmp_path / "escaped.ipynb").exists() and not Path("/tmp/planted").exists()
