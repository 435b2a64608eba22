"""Writing the grading output so that a grader killed at any instant leaves it whole.

* Every file of the output is written to a temporary file in the same folder, flushed to disk,
  then renamed over the old one (``os.replace`` is atomic): a reader, or the next run, sees the
  old file or the new one, never half of one.
* One grader at a time per output folder: ``OUT/.lock`` is held with ``flock`` for the whole run
  (the kernel releases it when the process dies, even by SIGKILL, so a killed run never blocks
  the next one).
* A full output disk ends the run with :class:`OutputDiskFull` (one line for the instructor);
  what earlier runs wrote stays readable.
* ``AUTOGRADER_CRASH_AT`` (tests only) kills the grader with SIGKILL at a named point of the run;
  it is read from the grader's own environment, which no student code can reach.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import tempfile
import threading
from collections import Counter
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


class OutputDiskFull(OSError):
    """The disk of the output folder is full."""

    def __init__(self, out: Path, where: str = ""):
        super().__init__(errno.ENOSPC, f"the output disk is full ({out}{': ' + where if where else ''}); "
                                       "free some space and run the same command again: the earlier "
                                       "results are kept and only what is missing is graded")
        self.out = out

    def __str__(self) -> str:
        return self.strerror


class OutputLocked(RuntimeError):
    """Another grader is writing to the same output folder."""


def is_disk_full(error: BaseException | None) -> bool:
    """Whether an error (or one it was raised from) says the disk is full: OSError ENOSPC or
    EDQUOT, or SQLite's "database or disk is full"."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OutputDiskFull):
            return True
        if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
            return True
        if "database or disk is full" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once, at import: os.umask cannot be read without setting it


def _mode_of(path: Path) -> int:
    """The mode the file has, or the one a plain ``open`` would give it."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def atomic_write(path: Path, data: str | bytes, *, crash_point: str | None = None) -> None:
    """Replace ``path`` with ``data`` in one step (temporary file in the same folder, fsync,
    ``os.replace``). On any failure the old file is left as it was and the temporary removed."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    descriptor, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), _mode_of(path))  # mkstemp's 0600 would hide the output
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        if crash_point:
            crash_here(crash_point)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_folder(path.parent)


def remove_temporaries(folder: Path) -> int:
    """Remove what killed runs left half-written in ``folder`` and its sub-folders."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob(TEMPORARY_PREFIX + "*"):
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


# --- one grader per output folder ------------------------------------------------------------------


class OutputLock:
    """``flock`` on ``OUT/.lock`` for as long as the run lasts."""

    def __init__(self, out: Path):
        self.path = Path(out) / ".lock"
        self.descriptor: int | None = None

    def acquire(self) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(descriptor, 64).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(descriptor)
            raise OutputLocked(f"another grader (process {holder}) is writing to {self.path.parent}: wait for it "
                               "to finish, or give another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self.descriptor = descriptor

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing releases the flock
            self.descriptor = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# --- stale kernel socket folders -------------------------------------------------------------------


def _live_command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


def remove_stale_socket_folders(base: Path = Path("/tmp"), min_age_seconds: float = 5.0) -> int:
    """Remove ``/tmp/cvk-*`` socket folders (see :mod:`autograder.kernel`) that no live process
    uses any more: a grader killed with SIGKILL cannot remove its own. Only this user's folders,
    only those no running command line names, only those older than a few seconds (a grader
    that just created one starts its kernel on it within milliseconds)."""
    import shutil
    import time

    if not Path("/proc").is_dir():
        return 0
    candidates = []
    for folder in base.glob("cvk-*"):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if folder.is_dir() and not folder.is_symlink() and info.st_uid == os.getuid() \
                and time.time() - info.st_mtime > min_age_seconds:
            candidates.append(folder)
    if not candidates:
        return 0
    commands = "\n".join(_live_command_lines())
    removed = 0
    for folder in candidates:
        if str(folder) not in commands:
            shutil.rmtree(folder, ignore_errors=True)
            removed += not folder.exists()
    return removed


def kill_orphaned_runs(out: Path) -> list[int]:
    """SIGKILL the sandboxed runs a killed grader of ``out`` left running: processes whose working
    folder is a run's scratch under ``OUT/.work`` or ``OUT/.reference/*/run``. Called with the
    output lock held, so no live grader owns them. (A grader killed while a kernel was starting,
    before bwrap set its parent-death signal, leaves that kernel alive; the sandbox's other
    processes die with it.)"""
    if not Path("/proc").is_dir():
        return []
    roots = [str(Path(out).resolve() / ".work") + os.sep, str(Path(out).resolve() / ".reference") + os.sep]
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        cwd = cwd.removesuffix(" (deleted)")
        if cwd.startswith(roots[0]) or (cwd.startswith(roots[1]) and "/run" in cwd[len(roots[1]):]):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


# --- test-only crash points --------------------------------------------------------------------------

CRASH_VARIABLE = "AUTOGRADER_CRASH_AT"
_passes: Counter = Counter()
_passes_lock = threading.Lock()


def crash_here(point: str) -> None:
    """SIGKILL this process when ``AUTOGRADER_CRASH_AT`` is ``POINT`` or ``POINT:N`` (the N-th
    time the run passes that point, from 1). For the crash-safety tests only."""
    wanted = os.environ.get(CRASH_VARIABLE)
    if not wanted:
        return
    name, _, count = wanted.partition(":")
    if name != point:
        return
    with _passes_lock:
        _passes[point] += 1
        reached = _passes[point] >= int(count or 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
