"""Run a notebook inside a bubblewrap sandbox, with limits, and collect what it left.

The sandbox sees, read-only: the system's /usr (and its /lib, /bin links), the Python
installation and the course environment, the course library's own folder, and the runner
script. It sees read-write only its own scratch folder. It has no network (its own, empty
network namespace), its own PID, IPC and user namespaces, an unprivileged user with no
capabilities, an empty /tmp, no environment variables of the grader, and no terminal.
Everything else on the machine (the repository with ``solutions/``, the reference values,
the gradebook, other students' submissions) does not exist inside it.

Limits (see assignments.toml): wall time for the whole run (the process group is killed),
a per-cell timeout (enforced by the runner), CPU time and address space (rlimits inherited
by every process of the sandbox), and the size of any one file it writes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Limits

RUNNER = Path(__file__).with_name("runner.py")
SANDBOX_UID = 1000
MAX_FILE_BYTES = 256 * 1024 * 1024
TMPFS_BYTES = 256 * 1024 * 1024


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


@dataclass
class RunResult:
    out: Path  # the runner's output folder (records/, manifest.json)
    seconds: float
    timed_out: bool
    returncode: int | None


def bubblewrap_problem() -> str | None:
    """None when bubblewrap works on this machine, else what is wrong."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: sudo apt-get install bubblewrap"
    probe = subprocess.run(
        [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--cap-drop", "ALL",
         "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create a sandbox here: {probe.stderr.strip()[:300]}"
    return None


def _course_library_dir() -> Path | None:
    spec = importlib.util.find_spec("cvcourse")
    return Path(spec.origin).parent if spec and spec.origin else None


def run_environment(home: str) -> dict[str, str]:
    """The only environment variables a run sees (the grader's own are never passed on)."""
    environment = {
        "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CVCOURSE_OFFLINE": "1",
        "CVCOURSE_CACHE_DIR": f"{home}/.cache/cvcourse",
        # One thread per numerical library: parallel grading shares the cores fairly.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # machine workarounds, see env docs
        if name in os.environ:
            environment[name] = os.environ[name]
    return environment


def bubblewrap_command(scratch: Path, limits: Limits) -> list[str]:
    """The bwrap command line that runs the runner on ``scratch`` (bound at /scratch)."""
    command = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--hostname", "sandbox",
        # Mounts apply in order: the empty /tmp first, so that a course checked out under /tmp
        # (CI clones often are) is bound on top of it rather than hidden by it.
        "--proc", "/proc", "--dev", "/dev",
        # Memory-backed folders get a size, so writing to them cannot exhaust the machine.
        "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm",
        "--ro-bind", "/usr", "/usr",
    ]
    for link in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        command += ["--ro-bind-try", link, link]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf",
                 "localtime", "hosts"):
        command += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    readable = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix)}
    library = _course_library_dir()
    if library is not None:
        readable.add(library.resolve())
    for path in sorted(readable):
        command += ["--ro-bind", str(path), str(path)]
    command += [
        "--bind", str(scratch), "/scratch",
        "--ro-bind", str(RUNNER), "/grader/runner.py",
        # The sandbox's own root (a tmpfs holding the mount points) becomes read-only.
        "--remount-ro", "/",
        "--chdir", "/scratch/work",
        "--clearenv",
    ]
    for name, value in run_environment("/scratch/home").items():
        command += ["--setenv", name, value]
    command += [str(Path(sys.prefix) / "bin" / "python"), "/grader/runner.py", "/scratch/out",
                "--cell-seconds", str(limits.cell_seconds), "--output-kb", str(limits.output_kb)]
    return command


def unsafe_command(scratch: Path, limits: Limits) -> list[str]:
    """The runner without a sandbox (``--unsafe``): limits only, no isolation."""
    return [sys.executable, str(RUNNER), str(scratch / "out"),
            "--cell-seconds", str(limits.cell_seconds), "--output-kb", str(limits.output_kb)]


def _with_rlimits(command: list[str], limits: Limits) -> list[str]:
    """Prefix ``command`` with util-linux's prlimit: the limits are inherited by every process
    of the run. (Not preexec_fn: the grader starts runs from several threads, where it is unsafe.)"""
    memory = limits.memory_mb * 1024 * 1024
    return [shutil.which("prlimit") or "prlimit", f"--as={memory}", f"--cpu={limits.cpu_seconds}",
            f"--fsize={MAX_FILE_BYTES}", "--core=0", "--", *command]


def run_notebook(notebook_json: str, scratch: Path, limits: Limits, *, sandboxed: bool = True) -> RunResult:
    """Execute a notebook (JSON text) with ``scratch`` as its only writable folder."""
    for sub in ("out", "work", "home"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    command = _with_rlimits(
        bubblewrap_command(scratch, limits) if sandboxed else unsafe_command(scratch, limits), limits)
    # bwrap sets the run's environment itself (--clearenv, --setenv); unsafe runs get it here.
    environment = None if sandboxed else run_environment(str(scratch / "home"))
    log = (scratch.parent / f"{scratch.name}.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=environment,
        cwd=str(scratch / "work"), start_new_session=True,
    )
    timed_out = False
    try:
        process.communicate(notebook_json.encode(), timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the run's processes
        except ProcessLookupError:
            pass
        process.wait()
        log.close()
    return RunResult(scratch / "out", time.monotonic() - started, timed_out,
                     None if timed_out else process.returncode)
