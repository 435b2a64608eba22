"""Find one notebook per student in a folder, or a zip of one, of student sub-folders."""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024
MAX_ZIP_BYTES = 2 * 1024 * 1024 * 1024
MAX_ZIP_MEMBERS = 100_000
SAFE_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
IGNORED = {"__MACOSX", ".ipynb_checkpoints", ".git"}


class IngestError(ValueError):
    """The submissions argument itself cannot be read (not a per-student problem)."""


@dataclass
class Submission:
    student_id: str
    raw: bytes | None = None  # the chosen notebook's bytes; None when there is nothing to grade
    problem: str | None = None  # why there is nothing to grade
    notes: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        digest.update(self.raw if self.raw is not None else f"problem:{self.problem}".encode())
        return digest.hexdigest()


def _extract_zip(archive: Path, destination: Path) -> Path:
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise IngestError(f"{archive}: more than {MAX_ZIP_MEMBERS} files")
            if sum(member.file_size for member in members) > MAX_ZIP_BYTES:
                raise IngestError(f"{archive}: expands to more than {MAX_ZIP_BYTES // 2**30} GB")
            for member in members:
                path = PurePosixPath(member.filename)
                mode = member.external_attr >> 16
                if path.is_absolute() or ".." in path.parts or stat.S_ISLNK(mode):
                    continue  # never write outside the destination, never create links
                target = destination.joinpath(*path.parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
    except zipfile.BadZipFile as error:
        raise IngestError(f"{archive} is not a valid zip file: {error}") from error
    return destination


def _student_folders(root: Path) -> list[Path]:
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.is_symlink()
               and p.name not in IGNORED and not p.name.startswith(".")]
    # A zip often wraps the class in one folder: descend when that folder holds students.
    if len(folders) == 1 and not any(folders[0].glob("*.ipynb")):
        inner = [p for p in folders[0].iterdir() if p.is_dir() and p.name not in IGNORED]
        if inner and any(any(p.rglob("*.ipynb")) for p in inner):
            return _student_folders(folders[0])
    return folders


def _notebooks(folder: Path) -> list[Path]:
    found = []
    for path in folder.rglob("*.ipynb"):
        relative = path.relative_to(folder)
        if any(part in IGNORED or part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        found.append(path)
    return sorted(found, key=lambda p: (len(p.relative_to(folder).parts), str(p)))


def choose_notebook(folder: Path, expected: str) -> Submission:
    """The notebook to grade in one student's folder, with notes on anything unusual."""
    submission = Submission(student_id=folder.name)
    notebooks = _notebooks(folder)
    named = [p for p in notebooks if p.name == expected]
    if not notebooks:
        submission.problem = f"no notebook in the submission (expected {expected})"
        return submission
    if named:
        depth = len(named[0].relative_to(folder).parts)
        if sum(len(p.relative_to(folder).parts) == depth for p in named) > 1:
            submission.problem = f"several copies of {expected} at the same level: cannot tell which to grade"
            return submission
        chosen = named[0]
        others = len(notebooks) - 1
        if others:
            submission.notes.append(f"{others} other notebook(s) ignored")
    elif len(notebooks) == 1:
        chosen = notebooks[0]
        submission.notes.append(f"notebook named {chosen.name}, not {expected}")
    else:
        submission.problem = (f"{len(notebooks)} notebooks and none named {expected}: "
                              "cannot tell which to grade")
        return submission
    if chosen.stat().st_size > MAX_NOTEBOOK_BYTES:
        submission.problem = f"notebook larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        return submission
    submission.raw = chosen.read_bytes()
    return submission


def ingest(submissions: Path, expected_notebook: str, scratch: Path) -> list[Submission]:
    """One :class:`Submission` per student folder of ``submissions`` (a folder or a .zip)."""
    submissions = Path(submissions)
    if not submissions.exists():
        raise IngestError(f"{submissions} does not exist")
    if submissions.is_file():
        if submissions.suffix.lower() != ".zip":
            raise IngestError(f"{submissions} is neither a folder nor a .zip file")
        unpacked = scratch / "unzipped"
        shutil.rmtree(unpacked, ignore_errors=True)
        unpacked.mkdir(parents=True)
        submissions = _extract_zip(submissions, unpacked)
    result = []
    used: set[str] = set()
    for folder in _student_folders(submissions):
        submission = choose_notebook(folder, expected_notebook)
        if not SAFE_ID.fullmatch(folder.name):
            safe = re.sub(r"[^A-Za-z0-9_.@+-]", "_", folder.name)[:128] or "student"
            submission.notes.append(f"folder name {folder.name!r} shown as {safe!r}")
            submission.student_id = safe
        while submission.student_id in used:
            submission.student_id += "_"
        used.add(submission.student_id)
        result.append(submission)
    return result
