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

What a run writes (``disk_mb``): everything the sandbox can write lives in memory-backed,
size-limited file systems, never on the grader's disk: one tmpfs at /tmp of ``disk_mb`` (plus
1 MB) holds /tmp and the scratch folder (``/scratch`` is a link to ``/tmp/.scratch``: ``work``
and ``home``), and /dev/shm is a second one of at most 256 MB; /dev and the root are read-only.
A write past the size fails (ENOSPC) whatever the code does; the driver, outside, reads how full
both are (``statvfs`` through ``/proc/PID/root`` of the sandbox's first process, opened before
any student code runs) and ends a run that has written more than ``disk_mb``. Nested user
namespaces are disabled, so the code cannot mount a file system of its own. tmpfs pages are RAM:
they are not counted by ``RLIMIT_DATA``, but they are charged to the run's memory cgroup (below),
whose limit leaves room for them. What it can miss: the kernel's own log (its stdout and stderr,
read by the instructor) is a host file, bounded by the file-size limit per run only; records
travel over ZMQ and are bounded by ``records_mb`` and ``output_kb``.

Processes (``max_processes``) and the run as a whole: each run gets a fresh cgroup
(:class:`RunCgroup`; v1 ``pids`` and ``memory`` hierarchies, or v2) that a tiny launcher joins
before it executes anything else, so bwrap, the kernel and everything they start are in it
before any student code exists. ``pids.max`` bounds the tasks of the run at once (threads
count: the kernel's own take about 10-40); the memory cgroup bounds all its processes together
(``memory_mb`` plus the tmpfs sizes plus 512 MB for code and page cache), which
``RLIMIT_DATA`` cannot, being per process. When the run ends every process in the cgroup is
killed (also one that left the kernel's session or process group) and the cgroup removed;
cgroups left by a grader that was itself killed (named ``cvrun.PID.START.*``) are reaped at the
next start. Where no cgroup can be made (no cgroupfs, not writable: a grader not run as root),
``RLIMIT_NPROC`` is the fallback: it counts every process and thread of the *real user id*,
machine-wide, so it is set to what that user already runs plus ``max_processes``: it bounds a
fork bomb (the machine survives) but one run near the bound can make another run's fork fail,
and it means nothing for root (root is exempt from RLIMIT_NPROC); with no cgroup, processes that
leave the kernel's process group (``--unsafe``) are not found at the end.

Memory is limited with ``RLIMIT_DATA`` (private writable memory), not ``RLIMIT_AS`` (address
space): TensorFlow and XLA reserve large address ranges they never write (about 3 GB of virtual
memory for a small Keras model, growing with the number of cores), so an address-space limit
of a few GB breaks ``import tensorflow`` on larger machines while limiting nothing real. Writable
memory is what an allocation uses: a 3 GB NumPy array or ``bytearray`` fails with MemoryError
under a 2 GB limit, while TensorFlow trains normally.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from .config import Limits

SANDBOX_UID = 1000
MAX_FILE_BYTES = 256 * 1024 * 1024
SHM_BYTES = 256 * 1024 * 1024  # /dev/shm, at most (and at most disk_mb)
SCRATCH_INSIDE = "/tmp/.scratch"  # /scratch links here: one size-limited tmpfs for /tmp and scratch
MEMORY_SLACK_MB = 512  # the memory cgroup's room for code, libraries and page cache
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
        # The options the grader needs from bubblewrap 0.8.0 (--disable-userns, --size) included.
        [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--cap-drop", "ALL",
         "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp", "true"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        return (f"bubblewrap cannot create a sandbox here (version 0.8.0 or later is needed): "
                f"{probe.stderr.strip()[:300]}")
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


def scratch_sizes(disk_mb: int) -> tuple[int, int]:
    """Bytes of the sandbox's two tmpfs: /tmp (holding the scratch folder) and /dev/shm. /tmp has
    1 MB more than ``disk_mb``, so that a run that writes exactly ``disk_mb`` is told apart (by
    the driver) from one that tried to write more."""
    limit = disk_mb * 1024 * 1024
    return limit + 1024 * 1024, min(SHM_BYTES, limit)


def bubblewrap_prefix(socket_dir: Path, disk_mb: int) -> list[str]:
    """The bwrap options that build the sandbox: its scratch folder (/scratch, inside a tmpfs of
    ``disk_mb``) and the kernel's socket folder (at /kernel)."""
    tmp_bytes, shm_bytes = scratch_sizes(disk_mb)
    command = [
        shutil.which("bwrap") or "bwrap",
        "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
        # No user namespace inside: student code could mount a file system of its own there.
        "--disable-userns",
        "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--hostname", "sandbox",
        # Mounts apply in order: the empty /tmp first, so that a course checked out under /tmp
        # (CI clones often are) is bound on top of it rather than hidden by it.
        "--proc", "/proc", "--dev", "/dev",
        # Everything writable is memory-backed and sized (disk_mb): nothing reaches the host's disk.
        "--size", str(tmp_bytes), "--tmpfs", "/tmp",
        "--dir", SCRATCH_INSIDE, "--dir", f"{SCRATCH_INSIDE}/work", "--dir", f"{SCRATCH_INSIDE}/home",
        "--symlink", SCRATCH_INSIDE.lstrip("/"), "/scratch",
        "--remount-ro", "/dev",  # bwrap's /dev is a tmpfs of its own, unsized: read-only
        "--size", str(shm_bytes), "--tmpfs", "/dev/shm",
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
        "--bind", str(socket_dir), "/kernel",
        # The sandbox's own root (a tmpfs holding the mount points) becomes read-only.
        "--remount-ro", "/",
        "--chdir", "/scratch/work",
        "--clearenv",
    ]
    return command


def _limits_prefix(limits: Limits, cpus: tuple[int, ...] | None, nproc: int | None = None) -> list[str]:
    """util-linux's prlimit (and taskset): the limits are inherited by every process of the run.
    (Not preexec_fn: the grader starts runs from several threads, where it is unsafe.)"""
    prefix = [shutil.which("prlimit") or "prlimit", f"--data={limits.memory_mb * 1024 * 1024}",
              f"--cpu={limits.cpu_seconds}", f"--fsize={MAX_FILE_BYTES}", "--core=0"]
    if nproc is not None:
        prefix.append(f"--nproc={nproc}")
    prefix.append("--")
    if cpus:
        prefix = [shutil.which("taskset") or "taskset", "--cpu-list", ",".join(map(str, cpus)), *prefix]
    return prefix


def kernel_command(scratch: Path, socket_dir: Path, limits: Limits, *, sandboxed: bool = True,
                   cpus: tuple[int, ...] | None = None,
                   cgroup: RunCgroup | None = None) -> tuple[list[str], dict[str, str] | None]:
    """The command that starts an IPython kernel on ``socket_dir/connection.json``, and the
    environment to start it with (None: bwrap sets it itself). With ``cgroup``, the command
    joins it before anything else runs; without, RLIMIT_NPROC bounds the processes."""
    threads = len(cpus) if cpus else 1
    kernel = [str(Path(sys.prefix) / "bin" / "python"), "-m", "ipykernel_launcher", "--quiet",
              "--HistoryManager.enabled=False"]
    launcher = cgroup.launcher() if cgroup is not None else []
    nproc = None if cgroup is not None else nproc_fallback(limits.max_processes)
    if not sandboxed:  # --unsafe: the same kernel and limits, no isolation
        environment = run_environment(str(scratch / "home"), threads)
        return [*launcher, *_limits_prefix(limits, cpus, nproc), *kernel, "-f",
                str(socket_dir / "connection.json")], environment
    command = bubblewrap_prefix(socket_dir, limits.disk_mb)
    for name, value in run_environment("/scratch/home", threads).items():
        command += ["--setenv", name, value]
    return [*launcher, *_limits_prefix(limits, cpus, nproc), *command, *kernel, "-f", "/kernel/connection.json"], None


# --- the run's cgroup ----------------------------------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PREFIX = "cvrun."
_reaped = threading.Lock()
_reaped_done = False


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot): with its pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _own_cgroup_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller (``""``: the v2 unified hierarchy)."""
    paths = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _kill_all_in(folder: Path) -> None:
    """SIGKILL every process of a cgroup until none is left (a fork racing the kill is bounded
    by pids.max and cannot outrun it for long)."""
    kill_file = folder / "cgroup.kill"  # v2 (Linux 5.14+): the kernel does it at once
    if kill_file.exists():
        try:
            _write(kill_file, "1")
        except OSError:
            pass
    for _ in range(200):
        try:
            pids = [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _remove(folder: Path) -> None:
    _kill_all_in(folder)
    for _ in range(100):  # killed tasks leave the cgroup once they have exited
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as error:
            if error.errno != errno.EBUSY:
                return
            _kill_all_in(folder)
            time.sleep(0.02)


class RunCgroup:
    """One run's cgroup(s): ``pids`` (max_processes) and ``memory`` (the whole run together), in
    cgroup v1's separate hierarchies or v2's unified one, made under this process's own cgroup."""

    def __init__(self, folders: dict[str, Path], limits: Limits):
        self.folders, self.limits = folders, limits

    @classmethod
    def create(cls, limits: Limits) -> RunCgroup | None:
        """A fresh cgroup for one run, or None where cgroups cannot be made here."""
        bases = cgroup_bases()
        if not bases:
            return None
        reap_stale_cgroups(bases)
        name = f"{CGROUP_PREFIX}{os.getpid()}.{_start_time(os.getpid())}.{uuid.uuid4().hex[:12]}"
        folders: dict[str, Path] = {}
        try:
            for controller, base in bases.items():
                folder = base / name
                folder.mkdir()
                folders[controller] = folder
            cgroup = cls(folders, limits)
            cgroup._set_limits()
            return cgroup
        except OSError:
            for folder in folders.values():
                _remove(folder)
            return None

    def _set_limits(self) -> None:
        tmp_bytes, shm_bytes = scratch_sizes(self.limits.disk_mb)
        memory = self.limits.memory_mb * 1024 * 1024 + tmp_bytes + shm_bytes + MEMORY_SLACK_MB * 1024 * 1024
        pids, mem = self.folders["pids"], self.folders["memory"]
        if (pids / "pids.max").exists():
            _write(pids / "pids.max", str(self.limits.max_processes))
        else:
            raise OSError("pids.max is missing")
        if (mem / "memory.limit_in_bytes").exists():  # v1
            _write(mem / "memory.limit_in_bytes", str(memory))
        elif (mem / "memory.max").exists():  # v2
            _write(mem / "memory.max", str(memory))
            if (mem / "memory.swap.max").exists():
                _write(mem / "memory.swap.max", "0")
        else:
            raise OSError("no memory limit file")

    def launcher(self) -> list[str]:
        """A command prefix that puts its own process into the cgroup(s), then executes the rest:
        whatever it starts is in them from its first instruction."""
        procs = sorted({str(folder / "cgroup.procs") for folder in self.folders.values()})
        script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "cvrun", *procs, "--"]

    def _read(self, controller: str, name: str) -> str:
        try:
            return (self.folders[controller] / name).read_text()
        except OSError:
            return ""

    def _counter(self, controller: str, name: str, key: str) -> int:
        for line in self._read(controller, name).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return 0

    def processes_refused(self) -> int:
        """How many times a fork or thread was refused at pids.max."""
        return self._counter("pids", "pids.events", "max")

    def out_of_memory(self) -> int:
        """How many processes the kernel's OOM killer ended for exceeding the run's memory."""
        name = "memory.oom_control" if (self.folders["memory"] / "memory.oom_control").exists() else "memory.events"
        return self._counter("memory", name, "oom_kill")

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in self._read("pids", "cgroup.procs").split()]
        except ValueError:
            return []

    def close(self) -> None:
        """Kill every process of the run and remove its cgroup(s)."""
        for folder in self.folders.values():
            _kill_all_in(folder)
        for folder in self.folders.values():
            _remove(folder)


def cgroup_bases() -> dict[str, Path]:
    """Where this process may create the run cgroups: {"pids": folder, "memory": folder} (the
    same folder twice for v2), or {} where cgroups are not there or not writable."""
    own = _own_cgroup_paths()
    bases = {}
    if (CGROUP_ROOT / "pids").is_dir() and (CGROUP_ROOT / "memory").is_dir() and "pids" in own and "memory" in own:
        for controller in ("pids", "memory"):
            bases[controller] = CGROUP_ROOT / controller / own[controller].lstrip("/")
    elif (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
        base = CGROUP_ROOT / own[""].lstrip("/")
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
        except OSError:
            return {}
        if not {"pids", "memory"} <= set(enabled):
            try:  # refused where this cgroup holds processes itself (v2's no-internal-process rule)
                _write(base / "cgroup.subtree_control", "+pids +memory")
            except OSError:
                return {}
        bases = {"pids": base, "memory": base}
    if not bases or not all(os.access(base, os.W_OK) for base in bases.values()):
        return {}
    return bases


def reap_stale_cgroups(bases: dict[str, Path] | None = None, *, force: bool = False) -> list[str]:
    """Kill and remove the run cgroups of graders that no longer run (once per process, unless
    ``force``); returns their names."""
    global _reaped_done
    with _reaped:
        if _reaped_done and not force:
            return []
        _reaped_done = True
        removed = []
        for base in set((bases if bases is not None else cgroup_bases()).values()):
            try:
                entries = [entry for entry in base.iterdir() if entry.name.startswith(CGROUP_PREFIX)]
            except OSError:
                continue
            for entry in entries:
                parts = entry.name.split(".")
                alive = (len(parts) == 4 and parts[1].isdigit()
                         and _start_time(int(parts[1])) == parts[2])
                if not alive:
                    _remove(entry)
                    removed.append(entry.name)
        return list(dict.fromkeys(removed))  # v1: the same name in each hierarchy


def proc_statuses():
    """Yield (its /proc entry, the text of /proc/PID/status) for every process visible now; one
    that exits while being read is passed over."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            yield entry, Path(entry.path, "status").read_text()
        except OSError:
            continue


def nproc_fallback(max_processes: int) -> int:
    """RLIMIT_NPROC where no cgroup can be made: it counts every task (process or thread) of the
    real user id machine-wide, so: what that user runs now, plus ``max_processes``."""
    uid, running = os.getuid(), 0
    for _, status in proc_statuses():
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        try:
            if int(fields["Uid"].split()[0]) == uid:
                running += int(fields["Threads"])
        except (KeyError, ValueError, IndexError):
            continue
    return running + max_processes
