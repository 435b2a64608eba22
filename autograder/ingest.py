"""Find each student's notebook in what an instructor downloads from the LMS.

``ingest(SUBMISSIONS, "hinge_loss.ipynb", scratch)`` accepts a folder or a ``.zip`` and
recognises its layout by content (:data:`LAYOUTS`):

``folders``            one folder per student id (possibly wrapped in one top folder: the top of
                       a zip, or a folder leading to several student folders; the only folder
                       of a one-student class is the student, even with the notebook in a
                       sub-folder); a student id may start with a dot
``canvas``             Canvas "Download Submissions": flat files
                       ``name[_LATE]_USERID_SUBMISSIONID_original-name``; Canvas appends
                       ``-1``, ``-2`` ... to a re-uploaded file's name (before the first dot)
``moodle``             Moodle "Download all submissions": ``Full Name_ID_assignsubmission_file_/``
                       folders, or the same prefix on flat file names (older Moodle)
``nbgrader-exchange``  what ``nbgrader collect`` writes: ``submitted/STUDENT/ASSIGNMENT/`` with
                       ``timestamp.txt``, given as the course root, its ``submitted`` folder or a
                       zip of either

Everything in SUBMISSIONS is untrusted input (a crafted zip, a student's file names). Nothing
is extracted: a zip's members are listed, and only the chosen notebooks (and nbgrader's
``timestamp.txt``) are read, in memory, through a stream that stops at the size limit. Each
entry passes named rules, in the spirit of CPython's tarfile extraction filters (PEP 706):

==========================  ====================================================================
rule                        what happens
==========================  ====================================================================
path traversal              a member with ``..`` in its path is refused (listed, never read)
absolute path               ``/x``, ``C:\\x`` or ``\\\\host\\x`` is refused
symbolic link               a link (zip member or file in a folder) is refused, never followed
hard link                   a file with more than one link is refused (it may be anything)
device or special file      character or block devices, FIFOs, sockets are refused
odd name                    control characters, or a name too long, is refused
odd name encoding           a zip name without the UTF-8 flag is read as UTF-8 when it is, else
                            as cp437 (the zip standard's); a flagged name that is not UTF-8 is an
                            :class:`IngestError`; a folder's non-UTF-8 bytes become U+FFFD
too many members            more than MAX_ZIP_MEMBERS (a folder: MAX_FOLDER_ENTRIES) entries:
                            :class:`IngestError`, before anything is read
declared size               more than MAX_ZIP_BYTES declared in all: :class:`IngestError`
notebook size               a notebook declaring, or expanding to, more than MAX_NOTEBOOK_BYTES
                            is that student's problem: their row says so
==========================  ====================================================================

A refused entry never stops the class: it is listed in :attr:`Ingested.refused` and noted on the
row of the student it belongs to. Only a problem with SUBMISSIONS itself (missing, not a zip,
no recognisable submission, the archive-wide limits) raises :class:`IngestError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
MAX_ZIP_BYTES = 2 * 1024 * 1024 * 1024  # declared uncompressed size of all members together
MAX_ZIP_MEMBERS = 100_000
MAX_FOLDER_ENTRIES = 100_000
MAX_TIMESTAMP_BYTES = 1024
MAX_NAME_CHARS = 1024  # a whole member path; one part may not exceed 255 bytes (as on disk)
READ_CHUNK = 1024 * 1024

LAYOUTS = ("folders", "canvas", "moodle", "nbgrader-exchange")
LAYOUT_HELP = (
    "folders (one folder per student id, each holding the notebook), "
    "canvas (Download Submissions: files named name_USERID_SUBMISSIONID_file), "
    "moodle (Download all submissions: folders named Full Name_ID_assignsubmission_file_), "
    "nbgrader-exchange (submitted/STUDENT/ASSIGNMENT/ with timestamp.txt)"
)

SAFE_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
KEY_SEPARATOR = "+"  # only in the keys of ids that are not used verbatim (see student_key)
KEY_HASH_CHARS = 16
JUNK = {"__MACOSX", ".ipynb_checkpoints", ".git", "Thumbs.db", "desktop.ini"}

CANVAS_FILE = re.compile(r"^(?P<name>.+?)(?P<late>_LATE)?_(?P<user>\d+)_(?P<submission>\d+)_(?P<original>.+)$")
# Canvas renames a re-upload "name.ext" to "name-N.ext", N = 1, 2, ... (before the first dot).
CANVAS_REUPLOAD = re.compile(r"^(?P<stem>[^.]+?)-(?P<number>\d+)(?P<rest>\..*)?$")
MOODLE_ENTRY = re.compile(r"^(?P<name>.*)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z0-9]+)_(?P<original>.*)$")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class IngestError(ValueError):
    """The submissions argument itself cannot be read (not a per-student problem)."""


@dataclass
class Submission:
    """One student's submission: the notebook to grade, or why there is none."""

    student_id: str  # exactly as the LMS or the folder spells it: grades.csv shows this
    raw: bytes | None = None  # the chosen notebook's bytes; None when there is nothing to grade
    problem: str | None = None  # why there is nothing to grade
    notes: list[str] = field(default_factory=list)
    key: str = ""  # safe for file and folder names, unique in the run (see student_key)
    submitted_at: str | None = None  # as the layout states it (nbgrader's timestamp.txt)
    name: str | None = None  # the student's name as the LMS writes it (Canvas, Moodle)
    late: bool | None = None  # Canvas's LATE marker; None where the layout does not say
    source: str | None = None  # the graded notebook's path inside SUBMISSIONS

    def __post_init__(self) -> None:
        if not self.key:
            self.key = student_key(self.student_id)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.raw if self.raw is not None else f"problem:{self.problem}".encode())
        return digest.hexdigest()


@dataclass
class Ingested:
    """What :func:`ingest` found: the layout, one submission per student, what was refused."""

    layout: str  # one of LAYOUTS
    submissions: list[Submission]  # sorted by student id
    root: str = ""  # where in SUBMISSIONS the students were found ("" for its top)
    refused: list[str] = field(default_factory=list)  # "path: rule" for each refused entry
    ignored: list[str] = field(default_factory=list)  # entries that belong to no student

    def __iter__(self):
        return iter(self.submissions)

    def __len__(self) -> int:
        return len(self.submissions)

    def summary(self) -> str:
        """One line for the command line: the layout found and anything left out."""
        where = f" in {self.root}/" if self.root else ""
        line = f"{self.layout} layout: {len(self.submissions)} submission(s){where}"
        if self.refused:
            line += f"; {len(self.refused)} entr{'y' if len(self.refused) == 1 else 'ies'} refused (" \
                    + "; ".join(self.refused[:3]) + (" ..." if len(self.refused) > 3 else "") + ")"
        if self.ignored:
            line += f"; {len(self.ignored)} loose entr{'y' if len(self.ignored) == 1 else 'ies'} ignored"
        return line


# --- student keys ---------------------------------------------------------------------------------

def _id_hash(student_id: str) -> str:
    return hashlib.sha256(student_id.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_HASH_CHARS]


def _uses_id_verbatim(student_id: str) -> bool:
    return (SAFE_ID.fullmatch(student_id) is not None and KEY_SEPARATOR not in student_id
            and not student_id.startswith("."))


def student_key(student_id: str) -> str:
    """A name for the student's files and folders: ``[A-Za-z0-9_.@+-]``, at most 128 characters.

    An id that is already such a name (and has no ``+``, and does not start with a dot) is its
    own key. Any other id becomes a readable prefix, ``+`` and a hash of the exact id: a verbatim
    key never contains ``+``, so ``bob smith`` (``bob_smith+1f0c...``) can never take the key of
    a real ``bob_smith``, whichever comes first, and two ids that sanitise alike keep apart.
    """
    if _uses_id_verbatim(student_id):
        return student_id
    decomposed = unicodedata.normalize("NFKD", student_id)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    prefix = re.sub(r"[^A-Za-z0-9_.@-]+", "_", ascii_only).lstrip("._") or "id"
    return f"{prefix[:128 - len(KEY_SEPARATOR) - KEY_HASH_CHARS]}{KEY_SEPARATOR}{_id_hash(student_id)}"


def assign_keys(submissions: list[Submission]) -> None:
    """Give every submission its key, unique in the run even on a case-insensitive disk."""
    verbatim = [s.student_id for s in submissions if _uses_id_verbatim(s.student_id)]
    folded = defaultdict(int)
    for student_id in verbatim:
        folded[student_id.casefold()] += 1
    for submission in submissions:
        submission.key = student_key(submission.student_id)
        if folded.get(submission.key.casefold(), 0) > 1 and submission.key == submission.student_id:
            # "Bob" and "bob" are one folder on macOS: both get the hashed form.
            submission.key = f"{submission.student_id[:128 - len(KEY_SEPARATOR) - KEY_HASH_CHARS]}" \
                             f"{KEY_SEPARATOR}{_id_hash(submission.student_id)}"
    keys = [s.key.casefold() for s in submissions]
    if len(set(keys)) != len(keys):  # a 64-bit hash collision: never silently merge two students
        raise IngestError("two student ids map to the same file name; rename one of them")


# --- what SUBMISSIONS holds, read without following links ----------------------------------------

@dataclass(frozen=True)
class _File:
    parts: tuple[str, ...]  # its path under the input's top, cleaned
    size: int  # the declared size (zip header, or lstat)
    mtime: float
    handle: object  # a Path (folder) or a ZipInfo (zip)


class _Unreadable(Exception):
    """A file that passed the listing could not be read within the rules (the student's problem)."""


class _Tree:
    """The files and folders of SUBMISSIONS, each entry already through the naming rules."""

    def __init__(self, label: str):
        self.label = label
        self.files: dict[tuple[str, ...], _File] = {}
        self.dirs: set[tuple[str, ...]] = {()}
        self.refused: list[tuple[str, str, tuple[str, ...]]] = []  # (shown path, rule, raw parts)
        self._children: dict[tuple[str, ...], tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))

    def refuse(self, name: str, rule: str) -> None:
        raw_parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
        shown = CONTROL_CHARACTERS.sub("?", name)  # never echo control characters to a terminal
        self.refused.append((shown if len(shown) <= 200 else shown[:200] + "...", rule, raw_parts))

    def add_dir(self, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts) + 1):
            prefix = parts[:depth]
            if prefix not in self.dirs:
                if self.files.pop(prefix, None) is not None:  # a file and a folder of one name
                    self._children[prefix[:-1]][1].discard(prefix[-1])
                self.dirs.add(prefix)
                self._children[prefix[:-1]][0].add(prefix[-1])

    def add_file(self, entry: _File) -> None:
        if entry.parts in self.dirs:
            return  # a folder and a file of one name: keep the folder
        self.add_dir(entry.parts[:-1])
        self.files[entry.parts] = entry
        self._children[entry.parts[:-1]][1].add(entry.parts[-1])

    def children(self, prefix: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Sub-folders and files directly in ``prefix``, sorted."""
        dirs, files = self._children.get(prefix, (set(), set()))
        return sorted(dirs), sorted(files)

    def files_by_child(self, prefix: tuple[str, ...]) -> dict[str, list[_File]]:
        """Every file under ``prefix``, grouped by the sub-folder of ``prefix`` it is in."""
        groups: dict[str, list[_File]] = defaultdict(list)
        depth = len(prefix)
        for parts, entry in self.files.items():
            if len(parts) > depth + 1 and parts[:depth] == prefix:
                groups[parts[depth]].append(entry)
        return groups

    def read(self, entry: _File, limit: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _name_problem(parts: list[str]) -> str | None:
    """The naming rule a path breaks, if any (shared by zips and folders)."""
    if any(CONTROL_CHARACTERS.search(part) for part in parts):
        return "odd name (control characters)"
    if any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in parts) or len("/".join(parts)) > MAX_NAME_CHARS:
        return "odd name (too long)"
    return None


def _is_junk(parts: tuple[str, ...], *, directory: bool = False) -> bool:
    """Entries that are nobody's submission: the JUNK names anywhere, hidden files, and, inside a
    hidden folder, everything but notebooks. A hidden folder is not dropped for its name alone
    (a student id may start with a dot: ``.alice``): it exists in the tree when a notebook is in it.
    """
    if any(part in JUNK for part in parts):
        return True
    if not any(part.startswith(".") for part in parts):
        return False
    return directory or parts[-1].startswith(".") or not parts[-1].lower().endswith(".ipynb")


# --- zips ----------------------------------------------------------------------------------------

def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as its author meant it.

    Names not flagged as UTF-8 are cp437 by the zip standard, but many tools write UTF-8 without
    the flag: such a name is re-read as UTF-8 when it is valid UTF-8, else kept as cp437 read it.
    """
    name = info.filename
    if not info.flag_bits & 0x800 and not name.isascii():
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name)


def _member_rule(name: str, info: zipfile.ZipInfo) -> tuple[str | None, list[str]]:
    """(the rule the member breaks or None, its path parts)."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        return "absolute path", []
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "path traversal", parts
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return "symbolic link", parts
    if kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        return "device or special file", parts
    if not parts:
        return "odd name (empty)", parts
    return _name_problem(parts), parts


def _zip_time(info: zipfile.ZipInfo) -> float:
    try:
        return datetime(*info.date_time, tzinfo=timezone.utc).timestamp()
    except ValueError:  # an impossible date in the header
        return 0.0


class _ZipTree(_Tree):
    def __init__(self, archive: Path):
        super().__init__(str(archive))
        try:
            self.bundle = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as error:
            raise IngestError(f"{archive} is not a valid zip file: {error}") from error
        except UnicodeDecodeError as error:
            raise IngestError(f"{archive}: a member name is flagged as UTF-8 but is not "
                              f"(rule: odd name encoding): {error}") from error
        except (OSError, ValueError, NotImplementedError) as error:
            raise IngestError(f"{archive} cannot be read as a zip file: {error}") from error
        members = self.bundle.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            self.bundle.close()
            raise IngestError(f"{archive}: {len(members)} members, more than the limit of "
                              f"{MAX_ZIP_MEMBERS} (rule: too many members)")
        declared = sum(member.file_size for member in members)
        if declared > MAX_ZIP_BYTES:
            self.bundle.close()
            raise IngestError(f"{archive}: its members declare {declared / 2**20:.0f} MB in all, more "
                              f"than the limit of {MAX_ZIP_BYTES / 2**20:.0f} MB (rule: declared size)")
        for info in members:
            name = _member_name(info)
            rule, parts = _member_rule(name, info)
            if rule:
                self.refuse(name, rule)
                if rule in ("symbolic link", "device or special file") and not _is_junk(tuple(parts)):
                    self.add_dir(tuple(parts[:-1]))  # its student still gets a row that says why
                continue
            if _is_junk(tuple(parts), directory=info.is_dir()):
                continue
            if info.is_dir():
                self.add_dir(tuple(parts))
                continue
            self.add_file(_File(tuple(parts), info.file_size, _zip_time(info), info))

    def read(self, entry: _File, limit: int) -> bytes:
        info: zipfile.ZipInfo = entry.handle
        if info.flag_bits & 0x1:
            raise _Unreadable("it is encrypted in the zip")
        if info.file_size > limit:
            raise _Unreadable(f"larger than {_megabytes(limit)} (rule: notebook size)")
        # Never trust the header: count what actually comes out, and stop past what it declared.
        allowed = min(limit, info.file_size)
        data = bytearray()
        try:
            with self.bundle.open(info) as stream:
                while chunk := stream.read(READ_CHUNK):
                    data += chunk
                    if len(data) > allowed:
                        raise _Unreadable("it expands beyond its declared size (rule: notebook size)")
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
            raise _Unreadable(f"it is damaged in the zip ({error})") from error
        return bytes(data)

    def close(self) -> None:
        self.bundle.close()


# --- folders -------------------------------------------------------------------------------------

def _decoded(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 become replacement characters."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _FolderTree(_Tree):
    def __init__(self, top: Path):
        super().__init__(str(top))
        count = 0
        for folder, dirnames, filenames in os.walk(top, followlinks=False):
            parts_here = tuple(_decoded(p) for p in Path(folder).relative_to(top).parts)
            kept = []
            for name in sorted(dirnames):
                parts = parts_here + (_decoded(name),)
                if any(part in JUNK for part in parts):
                    continue
                if self._checked(Path(folder) / name, parts, directory=True):
                    kept.append(name)
                    if not _is_junk(parts, directory=True):
                        self.add_dir(parts)
            dirnames[:] = kept  # os.walk descends only into these
            for name in sorted(filenames):
                parts = parts_here + (_decoded(name),)
                path = Path(folder) / name
                if not _is_junk(parts) and (status := self._checked(path, parts, directory=False)):
                    self.add_file(_File(parts, status.st_size, status.st_mtime, path))
            count += len(dirnames) + len(filenames)
            if count > MAX_FOLDER_ENTRIES:
                raise IngestError(f"{top}: more than {MAX_FOLDER_ENTRIES} entries (rule: too many members)")

    def _checked(self, path: Path, parts: tuple[str, ...], directory: bool) -> os.stat_result | None:
        """The entry's status when it passes the rules; None (and listed as refused) when not."""
        try:
            status = path.lstat()
        except OSError as error:
            self.refuse("/".join(parts), f"unreadable ({error.strerror})")
            return None
        rule = _name_problem(list(parts))
        if stat.S_ISLNK(status.st_mode):
            rule = "symbolic link"
        elif not directory and not stat.S_ISREG(status.st_mode):
            rule = "device or special file"
        elif not directory and status.st_nlink > 1:
            rule = "hard link"
        if rule:
            self.refuse("/".join(parts), rule)
            return None
        return status

    def read(self, entry: _File, limit: int) -> bytes:
        if entry.size > limit:
            raise _Unreadable(f"larger than {_megabytes(limit)} (rule: notebook size)")
        try:
            # O_NOFOLLOW: a file swapped for a link since the listing is refused, not followed.
            descriptor = os.open(entry.handle, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            raise _Unreadable(f"it cannot be opened ({error.strerror})") from error
        with os.fdopen(descriptor, "rb") as stream:
            status = os.fstat(stream.fileno())
            if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:
                raise _Unreadable("it is not a plain file (rule: hard link or special file)")
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise _Unreadable(f"larger than {_megabytes(limit)} (rule: notebook size)")
        return data


def _megabytes(limit: int) -> str:
    return f"{limit / 2**20:g} MB"


# --- layouts -------------------------------------------------------------------------------------

@dataclass
class _Upload:
    """One file of a candidate submission."""

    parts: tuple[str, ...]  # where it sits in the student's submission (Canvas: the original name)
    entry: _File
    rank: tuple = ()  # orders uploads of one name: higher is newer (Canvas's -1, -2 suffixes)
    shown: str = ""  # the name to show in notes


@dataclass
class _Candidate:
    """One submission as the layout presents it, before duplicates are settled."""

    student_id: str
    uploads: list[_Upload]
    label: str  # where it came from, for notes
    name: str | None = None
    late: bool | None = None
    submitted_at: str | None = None
    order: tuple = ()  # newer sorts later (after the submission time)
    notes: list[str] = field(default_factory=list)
    folder: tuple[str, ...] | None = None  # its own folder in the tree (refused entries are noted)


def _wrappers(tree: _Tree) -> list[tuple[str, ...]]:
    """The top, then each folder that is the only thing in the one above (a zip's wrapper)."""
    chain = [()]
    while len(chain) < 8:
        dirs, files = tree.children(chain[-1])
        if len(dirs) != 1 or files:
            break
        chain.append(chain[-1] + (dirs[0],))
    return chain


def _has_timestamp_folders(tree: _Tree, base: tuple[str, ...]) -> bool:
    students, _ = tree.children(base)
    with_stamp = sum(any(base + (s, a, "timestamp.txt") in tree.files for a in tree.children(base + (s,))[0])
                     for s in students)
    return with_stamp > 0 and with_stamp * 2 >= len(students)


def _moodle_entries(tree: _Tree, base: tuple[str, ...]) -> tuple[list[tuple[str, bool, re.Match]], int]:
    dirs, files = tree.children(base)
    matches = [(n, True, m) for n in dirs if (m := MOODLE_ENTRY.match(n)) and not m["original"]]
    matches += [(n, False, m) for n in files if (m := MOODLE_ENTRY.match(n)) and m["original"]]
    return matches, len(dirs) + len(files)


def _canvas_files(tree: _Tree, base: tuple[str, ...]) -> list[tuple[str, re.Match]]:
    _, files = tree.children(base)
    return [(n, m) for n in files if (m := CANVAS_FILE.match(n))]


def _notebook_below(tree: _Tree, base: tuple[str, ...]) -> bool:
    depth = len(base)
    return any(parts[:depth] == base and len(parts) > depth + 1 and parts[-1].lower().endswith(".ipynb")
               for parts in tree.files)


def _leads_to_a_class(tree: _Tree, folder: tuple[str, ...]) -> bool:
    """Whether ``folder``, through single sub-folders holding no notebook, reaches several folders."""
    for _ in range(8):
        dirs, files = tree.children(folder)
        if len(dirs) >= 2:
            return True
        if len(dirs) != 1 or any(f.lower().endswith(".ipynb") for f in files):
            return False
        folder = folder + (dirs[0],)
    return False


def _detect_layout(tree: _Tree) -> tuple[str, tuple[str, ...]]:
    """(layout, the folder in the tree where its students are); IngestError when none fits."""
    for base in _wrappers(tree):
        if base + ("submitted",) in tree.dirs and _has_timestamp_folders(tree, base + ("submitted",)):
            return "nbgrader-exchange", base + ("submitted",)
        if _has_timestamp_folders(tree, base):
            return "nbgrader-exchange", base
        moodle, entries = _moodle_entries(tree, base)
        if moodle and len(moodle) * 2 >= entries:
            return "moodle", base
        canvas = _canvas_files(tree, base)
        dirs, _ = tree.children(base)
        if canvas and len(canvas) > len(dirs):
            return "canvas", base
    # One folder per student. A single folder on top is a wrapper, not a student, when it leads
    # (through more single folders) to a class of several student folders, or when it is the top
    # of a zip (the zip of a submissions folder). Otherwise it is the only student of a one-student
    # class, whose notebook may sit in a sub-folder of their own (alice/hw/hinge_loss.ipynb is
    # alice's), as DESIGN.md's contract says: SUBMISSIONS' sub-folders are the student ids.
    base: tuple[str, ...] = ()
    while True:
        dirs, files = tree.children(base)
        if len(dirs) == 1 and not any(f.lower().endswith(".ipynb") for f in files):
            inner = base + (dirs[0],)
            inner_dirs, inner_files = tree.children(inner)
            if inner_dirs and not any(f.lower().endswith(".ipynb") for f in inner_files) \
                    and (_leads_to_a_class(tree, inner) or (isinstance(tree, _ZipTree) and not base)):
                base = inner
                continue
        break
    if tree.children(base)[0] and _notebook_below(tree, base):
        return "folders", base
    raise IngestError(f"no submissions found in {tree.label}: no layout fits what it holds. "
                      f"Recognised layouts: {LAYOUT_HELP}")


def _read_timestamp(tree: _Tree, parts: tuple[str, ...]) -> str | None:
    """nbgrader's timestamp.txt, as text safe to show (the student's side wrote it)."""
    entry = tree.files.get(parts)
    if entry is None:
        return None
    try:
        text = tree.read(entry, MAX_TIMESTAMP_BYTES).decode("utf-8", "replace")
    except _Unreadable:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = "".join(c for c in line if c.isprintable())[:64].strip()
    return line or None


def _parse_time(text: str | None) -> datetime | None:
    """nbgrader writes '2024-02-10 13:45:12.123456 UTC' (its timestamp_format, '%Z' being the
    course's zone name); ISO forms with an offset also parse. A zone name is dropped: the times
    compared are one student's, written by one course's nbgrader."""
    if not text:
        return None
    cleaned = re.sub(r"(\s+[A-Za-z]{1,5}|Z)$", "", text.strip())
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _folder_candidates(tree: _Tree, base: tuple[str, ...], assignment: str | None, ignored: list[str]):
    """One candidate per folder in ``base``; a ``timestamp.txt`` at its top gives the time."""
    dirs, files = tree.children(base)
    ignored.extend("/".join(base + (f,)) for f in files)
    groups = tree.files_by_child(base)
    for student in dirs:
        folder = base + (student,)
        uploads = [_Upload(e.parts[len(folder):], e, shown="/".join(e.parts[len(folder):]))
                   for e in groups.get(student, [])]
        yield _Candidate(student, uploads, label=f"folder {student}", folder=folder,
                         submitted_at=_read_timestamp(tree, folder + ("timestamp.txt",)))


def _nbgrader_candidates(tree: _Tree, base: tuple[str, ...], assignment: str | None, ignored: list[str]):
    """``submitted/STUDENT/ASSIGNMENT/``: pick the assignment's folder of each student."""
    dirs, files = tree.children(base)
    ignored.extend("/".join(base + (f,)) for f in files)
    groups = tree.files_by_child(base)
    for student in dirs:
        folder = base + (student,)
        assignments, _ = tree.children(folder)
        candidate = _Candidate(student, [], label=f"submitted/{student}", folder=folder)
        chosen = _choose_assignment_folder(tree, folder, assignments, assignment, candidate.notes)
        if chosen is not None:
            where = folder + (chosen,)
            candidate.uploads = [_Upload(e.parts[len(where):], e, shown="/".join(e.parts[len(where):]))
                                 for e in groups.get(student, [])
                                 if e.parts[:len(where)] == where and e.parts != where + ("timestamp.txt",)]
            candidate.submitted_at = _read_timestamp(tree, where + ("timestamp.txt",))
            candidate.label = f"submitted/{student}/{chosen}"
        yield candidate


def _choose_assignment_folder(tree: _Tree, folder: tuple[str, ...], assignments: list[str],
                              assignment: str | None, notes: list[str]) -> str | None:
    if assignment and assignment in assignments:
        chosen = assignment
    elif len(assignments) == 1:
        chosen = assignments[0]
    elif not assignments:
        return None
    else:
        # Several assignments collected for one student: the newest, as nbgrader would keep.
        stamps = {a: _parse_time(_read_timestamp(tree, folder + (a, "timestamp.txt"))) for a in assignments}
        chosen = max(assignments, key=lambda a: (stamps[a] is not None, stamps[a] or datetime.min.replace(tzinfo=timezone.utc), a))
        notes.append(f"{len(assignments)} assignment folders ({', '.join(assignments)}): graded {chosen}")
    return chosen


def _moodle_candidates(tree: _Tree, base: tuple[str, ...], assignment: str | None, ignored: list[str]):
    """Folders (or flat files) ``Full Name_ID_assignsubmission_PLUGIN_``: one candidate per name and id."""
    matches, _ = _moodle_entries(tree, base)
    matched = {n for n, _, _ in matches}
    dirs, files = tree.children(base)
    ignored.extend("/".join(base + (n,)) for n in dirs + files if n not in matched)
    groups = tree.files_by_child(base)
    by_student: dict[tuple[str, str], _Candidate] = {}
    for entry_name, is_dir, match in matches:
        key = (match["id"], match["name"])
        candidate = by_student.setdefault(key, _Candidate(
            match["id"], [], label=f"{match['name']}_{match['id']}", name=match["name"] or None, folder=None))
        if is_dir:
            folder = base + (entry_name,)
            candidate.folder = candidate.folder or folder
            candidate.uploads += [_Upload(e.parts[len(folder):], e, shown="/".join(e.parts[len(folder):]))
                                  for e in groups.get(entry_name, [])]
        else:
            entry = tree.files[base + (entry_name,)]
            candidate.uploads.append(_Upload((match["original"],), entry, shown=match["original"]))
    yield from by_student.values()


def _canvas_candidates(tree: _Tree, base: tuple[str, ...], assignment: str | None, ignored: list[str]):
    """Flat files ``name[_LATE]_USERID_SUBMISSIONID_original``: one candidate per submission."""
    canvas = _canvas_files(tree, base)
    matched = {n for n, _ in canvas}
    dirs, files = tree.children(base)
    ignored.extend("/".join(base + (n,)) for n in dirs + files if n not in matched)
    by_submission: dict[tuple[str, str], _Candidate] = {}
    for file_name, match in canvas:
        key = (match["user"], match["submission"])
        candidate = by_submission.setdefault(key, _Candidate(
            match["user"], [], label=f"Canvas submission {match['submission']}", name=match["name"],
            late=False, order=(int(match["submission"]),)))
        candidate.late = candidate.late or bool(match["late"])
        original, number = match["original"], 0
        if reupload := CANVAS_REUPLOAD.match(original):
            original, number = reupload["stem"] + (reupload["rest"] or ""), int(reupload["number"])
        candidate.uploads.append(_Upload((original,), tree.files[base + (file_name,)], rank=(number,),
                                         shown=match["original"]))
    for candidate in by_submission.values():
        if candidate.late:
            candidate.notes.append("late: Canvas marks the files LATE")
        yield candidate


CANDIDATES = {"folders": _folder_candidates, "canvas": _canvas_candidates,
              "moodle": _moodle_candidates, "nbgrader-exchange": _nbgrader_candidates}


# --- choosing what to grade ----------------------------------------------------------------------

def _newest_first(candidates: list[_Candidate]) -> list[_Candidate]:
    def age(candidate: _Candidate):
        moment = _parse_time(candidate.submitted_at)
        newest_file = max((u.entry.mtime for u in candidate.uploads), default=0.0)
        return (moment is not None, moment or datetime.min.replace(tzinfo=timezone.utc), candidate.order, newest_file)
    return sorted(candidates, key=age, reverse=True)


def _settle_duplicates(candidates: list[_Candidate]) -> list[_Candidate]:
    """One candidate per student id: the newest, its notes naming the others."""
    by_id: dict[str, list[_Candidate]] = defaultdict(list)
    for candidate in candidates:
        by_id[candidate.student_id].append(candidate)
    settled = []
    for student_id, group in by_id.items():
        ordered = _newest_first(group)
        kept = ordered[0]
        if len(ordered) > 1:
            kept.notes.append(f"{len(ordered)} submissions for student id {student_id}: graded the newest "
                              f"({kept.label}); not graded: {', '.join(c.label for c in ordered[1:])}")
        settled.append(kept)
    return settled


def _collapse_reuploads(uploads: list[_Upload], notes: list[str]) -> list[_Upload]:
    """Keep the newest of several uploads of one file name (Canvas's name-1.ipynb, name-2.ipynb)."""
    by_parts: dict[tuple[str, ...], list[_Upload]] = defaultdict(list)
    for upload in uploads:
        by_parts[upload.parts].append(upload)
    kept = []
    for parts, group in by_parts.items():
        group.sort(key=lambda u: u.rank, reverse=True)
        if len(group) > 1 and parts[-1].lower().endswith(".ipynb"):
            notes.append(f"{len(group)} uploads of {'/'.join(parts)}: graded the newest, {group[0].shown}")
        kept.append(group[0])
    return kept


def _choose_notebook(uploads: list[_Upload], expected: str) -> tuple[_Upload | None, str | None, list[str]]:
    """(the upload to grade, or None and why), with notes on anything unusual."""
    notes: list[str] = []
    uploads = _collapse_reuploads(uploads, notes)
    notebooks = sorted((u for u in uploads if u.parts[-1].lower().endswith(".ipynb")),
                       key=lambda u: (len(u.parts), u.parts))
    if not notebooks:
        hint = "; a .zip was submitted: the notebook itself must be" \
            if any(u.parts[-1].lower().endswith(".zip") for u in uploads) else ""
        return None, f"no notebook in the submission (expected {expected}{hint})", notes
    named = [u for u in notebooks if u.parts[-1] == expected]
    if named:
        depth = len(named[0].parts)
        if sum(len(u.parts) == depth for u in named) > 1:
            return None, f"several copies of {expected} at the same level: cannot tell which to grade", notes
        if len(notebooks) > 1:
            notes.append(f"{len(notebooks) - 1} other notebook(s) ignored")
        return named[0], None, notes
    if len(notebooks) == 1:
        notes.append(f"notebook named {notebooks[0].parts[-1]}, not {expected}")
        return notebooks[0], None, notes
    return None, f"{len(notebooks)} notebooks and none named {expected}: cannot tell which to grade", notes


def _submission(tree: _Tree, candidate: _Candidate, expected: str) -> Submission:
    submission = Submission(candidate.student_id, notes=list(candidate.notes), name=candidate.name,
                            late=candidate.late, submitted_at=candidate.submitted_at)
    chosen, problem, notes = _choose_notebook(candidate.uploads, expected)
    submission.notes += notes
    if chosen is None:
        submission.problem = problem
        return submission
    submission.source = "/".join(chosen.entry.parts)
    try:
        submission.raw = tree.read(chosen.entry, MAX_NOTEBOOK_BYTES)
    except _Unreadable as reason:
        submission.problem = f"notebook {chosen.shown}: {reason}"
    return submission


def _note_refusals(tree: _Tree, candidates: list[_Candidate]) -> None:
    """A refused entry inside a student's own folder goes on that student's row."""
    by_folder = {c.folder: c for c in candidates if c.folder}
    for shown, rule, raw_parts in tree.refused:
        for depth in range(len(raw_parts), 0, -1):
            candidate = by_folder.get(raw_parts[:depth])
            if candidate is not None:
                candidate.notes.append(f"{'/'.join(raw_parts[depth:]) or raw_parts[-1]} refused ({rule})")
                break


def _open_tree(submissions: Path) -> _Tree:
    if submissions.is_dir():
        return _FolderTree(submissions)
    if submissions.suffix.lower() != ".zip" or not submissions.is_file():
        raise IngestError(f"{submissions} is neither a folder nor a .zip file")
    return _ZipTree(submissions)


def ingest(submissions: Path, expected_notebook: str, scratch: Path | None = None, *,
           assignment: str | None = None) -> Ingested:
    """One :class:`Submission` per student in ``submissions`` (a folder or a .zip), any layout.

    ``expected_notebook`` is the assignment's notebook file name; ``assignment`` (optional) picks
    the folder of nbgrader's ``submitted/STUDENT/ASSIGNMENT``. Nothing is written anywhere:
    ``scratch`` is accepted for the callers' sake and left untouched.
    """
    submissions = Path(submissions)
    if not submissions.exists():
        raise IngestError(f"{submissions} does not exist")
    tree = _open_tree(submissions)
    try:
        layout, base = _detect_layout(tree)
        ignored: list[str] = []
        candidates = list(CANDIDATES[layout](tree, base, assignment, ignored))
        _note_refusals(tree, candidates)
        found = [_submission(tree, c, expected_notebook) for c in _settle_duplicates(candidates)]
    finally:
        tree.close()
    if not found:
        raise IngestError(f"no submissions found in {submissions} ({layout} layout, but no student in it). "
                          f"Recognised layouts: {LAYOUT_HELP}")
    found.sort(key=lambda s: s.student_id)
    assign_keys(found)
    return Ingested(layout, found, root="/".join(base),
                    refused=[f"{shown}: {rule}" for shown, rule, _ in tree.refused], ignored=ignored)
