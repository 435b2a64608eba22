"""The sandbox a submission's kernel runs in: bubblewrap, with limits.

The sandbox sees, read-only: the system's /usr (and its /lib, /bin links), the Python
installation and the course environment, and the course library's own folder. It sees
read-write only its own scratch folder (``/scratch``: ``work`` and ``home``) and the folder of
its kernel's sockets (``/kernel``). It has no network (its own, empty network namespace), its own
PID, IPC and user namespaces, an unprivileged user with no capabilities, an empty /tmp, no
environment variables of the grader, and no terminal. Everything else on the machine (the
repository with ``solutions/``, the reference values, the gradebook, other students' runs)
does not exist inside it. Only the kernel runs in here; the process that drives it and decides
what it recorded runs outside (:mod:`autograder.kernel`).

Limits (see assignments.toml): CPU time and writable memory (rlimits inherited by every
process of the sandbox), the size of any file it writes, and the CPUs it may use; the wall time
and the time of each cell are enforced from outside by the driver.

Memory is limited with ``RLIMIT_DATA`` (private writable memory), not ``RLIMIT_AS`` (address
space): TensorFlow and XLA reserve large address ranges they never write (about 3 GB of virtual
memory for a small Keras model, growing with the number of cores), so an address-space limit
of a few GB breaks ``import tensorflow`` on larger machines while limiting nothing real. Writable
memory is what an allocation uses: a 3 GB NumPy array or ``bytearray`` fails with MemoryError
under a 2 GB limit, while TensorFlow trains normally.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .config import Limits

SANDBOX_UID = 1000
MAX_FILE_BYTES = 256 * 1024 * 1024
TMPFS_BYTES = 256 * 1024 * 1024
# Numerical libraries size their thread pools from these (and from the CPU affinity, which the
# grader also sets): each worker's run uses the cores it was given, no more.
# (XLA, under JAX, sizes its pool from the affinity alone.)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces here."""


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


def run_environment(home: str, threads: int = 1) -> dict[str, str]:
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
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    environment.update({name: str(threads) for name in THREAD_VARIABLES})
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "KERAS_BACKEND"):  # machine settings
        if name in os.environ:
            environment[name] = os.environ[name]
    return environment


def bubblewrap_prefix(scratch: Path, socket_dir: Path) -> list[str]:
    """The bwrap options that build the sandbox around ``scratch`` (at /scratch) and the kernel's
    socket folder (at /kernel)."""
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
        "--bind", str(socket_dir), "/kernel",
        # The sandbox's own root (a tmpfs holding the mount points) becomes read-only.
        "--remount-ro", "/",
        "--chdir", "/scratch/work",
        "--clearenv",
    ]
    return command


def _limits_prefix(limits: Limits, cpus: tuple[int, ...] | None) -> list[str]:
    """util-linux's prlimit (and taskset): the limits are inherited by every process of the run.
    (Not preexec_fn: the grader starts runs from several threads, where it is unsafe.)"""
    prefix = [shutil.which("prlimit") or "prlimit", f"--data={limits.memory_mb * 1024 * 1024}",
              f"--cpu={limits.cpu_seconds}", f"--fsize={MAX_FILE_BYTES}", "--core=0", "--"]
    if cpus:
        prefix = [shutil.which("taskset") or "taskset", "--cpu-list", ",".join(map(str, cpus)), *prefix]
    return prefix


def kernel_command(scratch: Path, socket_dir: Path, limits: Limits, *, sandboxed: bool = True,
                   cpus: tuple[int, ...] | None = None) -> tuple[list[str], dict[str, str] | None]:
    """The command that starts an IPython kernel on ``socket_dir/connection.json``, and the
    environment to start it with (None: bwrap sets it itself)."""
    threads = len(cpus) if cpus else 1
    kernel = [str(Path(sys.prefix) / "bin" / "python"), "-m", "ipykernel_launcher", "--quiet",
              "--HistoryManager.enabled=False"]
    if not sandboxed:  # --unsafe: the same kernel and limits, no isolation
        environment = run_environment(str(scratch / "home"), threads)
        return [*_limits_prefix(limits, cpus), *kernel, "-f", str(socket_dir / "connection.json")], environment
    command = bubblewrap_prefix(scratch, socket_dir)
    for name, value in run_environment("/scratch/home", threads).items():
        command += ["--setenv", name, value]
    return [*_limits_prefix(limits, cpus), *command, *kernel, "-f", "/kernel/connection.json"], None
