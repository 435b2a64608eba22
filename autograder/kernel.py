"""The trusted side of a run: drive a kernel that runs inside the sandbox, from outside it.

Where the trust boundary is, and why it holds
---------------------------------------------
Only the IPython kernel runs inside the sandbox (:mod:`autograder.sandbox`). This module runs in
the grader's own process, outside it, and talks to the kernel over Jupyter's messaging protocol
on Unix sockets (``transport: ipc``) in a folder bound into the sandbox. Everything the kernel
sends is untrusted input; what decides a verdict is decided here, from facts the kernel cannot
forge:

* **which cell a record belongs to.** This side sends each cell as an ``execute_request`` with a
  fresh, unpredictable message id, and counts a record (:mod:`autograder.records`) for a test
  cell only if it arrives while that cell is executing *as seen from here*: its parent is that
  request, and it comes before the kernel reports the request ``idle``. A record sent by a later
  cell, by a replay of the test's code, or after the cell ended is not counted. A kernel can
  claim any parent header, but not one whose id it has not yet been sent, and closing a window
  early only loses its own records.
* **how a cell ended**: the reply to that request (status, exception name), or this side's own
  clock (timeout), or the sandbox's process having exited (died).
* **the connection itself**: this side writes the connection file, waits until the kernel has
  created its sockets (before any student code exists), connects with reconnection disabled, and
  never reads a path back from the sandbox; a socket replaced later by a link to another run's
  socket is never followed. Messages are capped in size and number (ZMQ options), so a flood
  cannot exhaust the grader.

The kernel's stdout/stderr goes to a log file outside the sandbox, for the instructor only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from jupyter_client.session import Session

from .config import Limits
from .records import MIME_TYPE, BadRecord, Record, decode_record
from .sandbox import RunCgroup, kernel_command, proc_statuses

CHANNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}
STARTUP_SECONDS = 60  # kernel start under load, before any cell runs
INTERRUPT_GRACE_SECONDS = 5
LIMIT_CHECK_SECONDS = 0.1  # how often the run's disk, processes and memory are looked at
UNSAFE_DISK_CHECK_SECONDS = 1.0  # --unsafe: the scratch folder is walked, so less often
RECEIVE_HWM = 64  # messages queued per channel before ZMQ drops (bounds the grader's memory)


@dataclass
class CellRun:
    """How one cell ended, as seen from outside the sandbox.

    ``status``: ``ok``, ``error`` (the reply says the cell raised), ``timeout`` (interrupted at the
    cell's time limit), ``died`` (the kernel's process ended or stopped answering), ``not run``.
    ``error_name`` / ``error_value`` are what the kernel said about its exception (untrusted text,
    capped); ``records`` only the records that arrived inside this cell's window."""

    status: str = "not run"
    error_name: str | None = None
    error_value: str | None = None
    records: dict[str, Record] = field(default_factory=dict)
    record_problems: list[str] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)
    seconds: float = 0.0


class KernelStartError(RuntimeError):
    """The kernel did not start or did not answer (the message says what the log shows)."""


class OutputBudget:
    """Outputs kept for the instructor's copy of the executed notebook, up to a byte budget."""

    def __init__(self, kilobytes: int):
        self.left = kilobytes * 1024
        self.truncated = False

    def take(self, output: dict) -> bool:
        size = len(json.dumps(output, default=str))
        if size > self.left:
            self.left, self.truncated = 0, True
            return False
        self.left -= size
        return True


def _short_socket_folder() -> Path:
    # Unix socket paths are limited to 107 bytes: keep the folder short, whatever TMPDIR says.
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="cvk-", dir=base))


class SandboxedKernel:
    """One kernel in one sandbox, driven from this process. Use as a context manager::

        with SandboxedKernel(scratch, limits, sandboxed=True) as kernel:
            run = kernel.run_cell(code, record=True)
    """

    def __init__(self, scratch: Path, limits: Limits, *, sandboxed: bool = True,
                 cpus: tuple[int, ...] | None = None, output: OutputBudget | None = None,
                 deadline: float | None = None):
        self.scratch, self.limits, self.sandboxed, self.cpus = Path(scratch), limits, sandboxed, cpus
        self.output = output or OutputBudget(limits.output_kb)
        self.record_budget = limits.records_mb * 1024 * 1024
        self.stopped: str | None = None  # why no further cell can run
        # The wall limit: for all of a submission's runs together when the caller gives it.
        self.deadline = deadline if deadline is not None else time.monotonic() + limits.wall_seconds
        self.process: subprocess.Popen | None = None
        self.cgroup: RunCgroup | None = None
        self.tmpfs_fds: list[int] = []  # the sandbox's /tmp and /dev/shm, opened from outside
        self.next_limit_check = self.next_disk_walk = 0.0
        self.context: zmq.Context | None = None
        self.sockets: dict[str, zmq.Socket] = {}
        self.socket_dir: Path | None = None
        self.session = Session(key=secrets.token_hex(32).encode(), signature_scheme="hmac-sha256",
                               username="grader")

    # --- start and stop ------------------------------------------------------------------------

    def __enter__(self) -> SandboxedKernel:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def log_path(self) -> Path:
        return self.scratch.parent / f"{self.scratch.name}.log"

    def _start(self) -> None:
        for sub in ("work", "home"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        self.socket_dir = _short_socket_folder()
        inside = "/kernel" if self.sandboxed else str(self.socket_dir)
        connection = {"transport": "ipc", "ip": f"{inside}/k", "key": self.session.key.decode(),
                      "signature_scheme": "hmac-sha256", "kernel_name": "python3",
                      **{f"{name}_port": port for name, port in CHANNEL_PORTS.items()}}
        (self.socket_dir / "connection.json").write_text(json.dumps(connection))
        # The run's own cgroup, joined by the command's first process: everything the run starts
        # is in it, and is killed with it (also what leaves the kernel's session).
        self.cgroup = RunCgroup.create(self.limits)
        command, environment = kernel_command(self.scratch, self.socket_dir, self.limits,
                                              sandboxed=self.sandboxed, cpus=self.cpus, cgroup=self.cgroup)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=environment, cwd=str(self.scratch / "work"), start_new_session=True)
        self._wait_for_sockets()
        if self.sandboxed:
            self._open_tmpfs()
        self._connect()
        self._handshake()

    def _wait_for_sockets(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        paths = [self.socket_dir / f"k-{port}" for port in CHANNEL_PORTS.values()]
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise KernelStartError(f"the kernel exited at start (code {self.process.returncode}): "
                                       f"{self.log_tail()}")
            # lstat: the kernel creates real sockets; at this point no student code has run.
            if all(p.exists() and stat.S_ISSOCK(p.lstat().st_mode) for p in paths):
                return
            time.sleep(0.02)
        raise KernelStartError(f"the kernel did not open its sockets within {STARTUP_SECONDS} s: {self.log_tail()}")

    def _open_tmpfs(self) -> None:
        """Open the sandbox's two tmpfs from outside, through /proc/PID/root of its first process
        (bwrap's init, the outer bwrap's child), while no student code has run yet: the open
        folders keep naming those file systems whatever the code does later."""
        own = self.process.pid
        for entry, status in proc_statuses():
            if f"\nPPid:\t{own}\n" not in status:
                continue
            for inside in ("tmp", "dev/shm"):
                try:
                    self.tmpfs_fds.append(os.open(f"{entry.path}/root/{inside}", os.O_RDONLY | os.O_DIRECTORY))
                except OSError:
                    pass
            return

    def _written(self) -> int | None:
        """Bytes the run has written (None: not known now)."""
        if self.sandboxed:
            total = 0
            for fd in self.tmpfs_fds:
                info = os.statvfs(fd)
                total += (info.f_blocks - info.f_bfree) * info.f_frsize
            return total if self.tmpfs_fds else None
        now = time.monotonic()  # --unsafe: only the scratch folder can be measured
        if now < self.next_disk_walk:
            return None
        self.next_disk_walk = now + UNSAFE_DISK_CHECK_SECONDS
        total = 0
        for folder, _, files in os.walk(self.scratch):
            for name in files:
                try:
                    total += os.lstat(os.path.join(folder, name)).st_blocks * 512
                except OSError:
                    pass
        return total

    def limit_reached(self, *, now: bool = False) -> str | None:
        """Why the run must end, from facts outside the sandbox (its cgroup's counters, how full
        its file systems are), or None. Looked at every LIMIT_CHECK_SECONDS unless ``now``."""
        moment = time.monotonic()
        if not now and moment < self.next_limit_check:
            return None
        self.next_limit_check = moment + LIMIT_CHECK_SECONDS
        if self.cgroup is not None:
            if self.cgroup.processes_refused():
                return f"the run tried to start more than {self.limits.max_processes} processes and threads at once"
            if self.cgroup.out_of_memory():
                return (f"the run's processes together used more memory than allowed "
                        f"({self.limits.memory_mb} MB, plus what it wrote)")
        written = self._written()
        if written is not None and written > self.limits.disk_mb * 1024 * 1024:
            return f"the run wrote more than {self.limits.disk_mb} MB"
        return None

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the sandbox and all it started
            except ProcessLookupError:
                pass
        if self.cgroup is not None:
            self.cgroup.close()  # also what left the kernel's session or process group
            self.cgroup = None
        if self.process is not None:
            self.process.wait()

    def _connect(self) -> None:
        self.context = zmq.Context()
        max_message = self.record_budget * 4 // 3 + 2 * 1024 * 1024
        kinds = {"shell": zmq.DEALER, "control": zmq.DEALER, "iopub": zmq.SUB}
        for name, kind in kinds.items():
            socket = self.context.socket(kind)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.RECONNECT_IVL, -1)  # never follow a replaced socket file
            socket.setsockopt(zmq.MAXMSGSIZE, max_message)
            socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
            if kind == zmq.SUB:
                socket.setsockopt(zmq.SUBSCRIBE, b"")
            else:
                socket.setsockopt(zmq.IDENTITY, uuid.uuid4().hex.encode())
            socket.connect(f"ipc://{self.socket_dir}/k-{CHANNEL_PORTS[name]}")
            self.sockets[name] = socket

    def _handshake(self) -> None:
        """Wait until shell, control and IOPub all answer (IOPub subscriptions take a moment)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        shell_ok = control_ok = iopub_ok = False
        while time.monotonic() < deadline and not (shell_ok and control_ok and iopub_ok):
            if self.process.poll() is not None:
                raise KernelStartError(f"the kernel exited at start: {self.log_tail()}")
            requests = {}
            if not shell_ok or not iopub_ok:
                requests["shell"] = self.session.send(self.sockets["shell"], "kernel_info_request", {})
            if not control_ok:
                requests["control"] = self.session.send(self.sockets["control"], "kernel_info_request", {})
            ids = {msg["header"]["msg_id"] for msg in requests.values()}
            round_end = time.monotonic() + 1.0
            while time.monotonic() < round_end and not (shell_ok and control_ok and iopub_ok):
                for channel, msg in self._receive(0.1):
                    parent = msg.get("parent_header", {}).get("msg_id")
                    if parent not in ids:
                        continue
                    if channel == "shell" and msg["msg_type"] == "kernel_info_reply":
                        shell_ok = True
                    elif channel == "control" and msg["msg_type"] == "kernel_info_reply":
                        control_ok = True
                    elif channel == "iopub" and msg["msg_type"] == "status":
                        iopub_ok = True
        if not (shell_ok and control_ok and iopub_ok):
            raise KernelStartError(f"the kernel did not answer within {STARTUP_SECONDS} s: {self.log_tail()}")

    def close(self) -> None:
        self._kill()
        for fd in self.tmpfs_fds:
            os.close(fd)
        self.tmpfs_fds = []
        for socket in self.sockets.values():
            socket.close(linger=0)
        self.sockets = {}
        if self.context is not None:
            self.context.term()
            self.context = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-1500:].decode("utf-8", "replace").strip() or "(empty log)"
        except OSError:
            return "(no log)"

    # --- messages -------------------------------------------------------------------------------

    def _receive(self, timeout: float) -> list[tuple[str, dict]]:
        """Messages waiting on shell, control and IOPub (at most ``timeout`` seconds of waiting).

        A message that cannot be parsed or verified is dropped: it can only come from the kernel."""
        poller = zmq.Poller()
        for socket in self.sockets.values():
            poller.register(socket, zmq.POLLIN)
        ready = dict(poller.poll(max(0, int(timeout * 1000))))
        received = []
        for name, socket in self.sockets.items():
            for _ in range(RECEIVE_HWM):
                if socket not in ready:
                    break
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                try:
                    _, frames = self.session.feed_identities(frames, copy=True)
                    message = self.session.deserialize(frames, content=True, copy=True)
                except Exception:  # noqa: BLE001 - malformed, unsigned or absurd (deep, huge) JSON
                    continue
                if isinstance(message, dict) and isinstance(message.get("content"), dict):
                    received.append((name, message))
        return received

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def run_cell(self, code: str, *, record: bool = False) -> CellRun:
        """Execute one cell; with ``record``, keep the records that arrive while it runs."""
        run = CellRun()
        if self.stopped:
            return run
        started = time.monotonic()
        timeout = min(self.limits.cell_seconds, self.seconds_left())
        if timeout <= 0:
            self.stopped = f"the run reached its time limit of {self.limits.wall_seconds} s"
            return run
        request = self.session.send(self.sockets["shell"], "execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False})
        msg_id = request["header"]["msg_id"]
        deadline, interrupted = started + timeout, False
        replied = idle = False
        used = 0
        while not (replied and idle):
            now = time.monotonic()
            if now >= deadline:
                if interrupted:
                    run.status = "timeout"
                    self.stopped = "a cell did not finish and could not be interrupted"
                    break
                self.session.send(self.sockets["control"], "interrupt_request", {})
                interrupted, deadline = True, now + INTERRUPT_GRACE_SECONDS
                continue
            reason = self.limit_reached()
            if reason is None and self.process.poll() is not None:
                reason = self.limit_reached(now=True) or "the kernel died"  # a limit may have killed it
            if reason is not None:
                run.status, self.stopped = "died", reason
                self._kill()
                break
            for channel, msg in self._receive(min(0.25, deadline - now)):
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue  # not this cell's: another cell's late output, or forged
                kind, content = msg.get("msg_type"), msg["content"]
                if channel == "shell" and kind == "execute_reply" and not replied:
                    replied = True
                    if content.get("status") == "ok":
                        run.status = "ok"
                    else:
                        run.status = "error"
                        run.error_name = str(content.get("ename", ""))[:200]
                        run.error_value = str(content.get("evalue", ""))[:4000]
                elif channel == "iopub" and kind == "status" and content.get("execution_state") == "idle":
                    idle = True  # the window closes: nothing after this counts for the cell
                elif channel == "iopub" and not idle:
                    bundle = content.get("data") if kind == "display_data" else None
                    if isinstance(bundle, dict) and MIME_TYPE in bundle:
                        if record:
                            used = self._take_record(run, bundle[MIME_TYPE], used)
                    elif kind in ("stream", "display_data", "execute_result", "error"):
                        self._keep_output(run, kind, content)
        if interrupted and run.status in ("error", "ok"):
            run.status = "timeout"
        if not self.stopped:  # a cell can go past a limit between two looks, then end at once
            reason = self.limit_reached(now=True)
            if reason is not None:
                run.status, self.stopped = "died", reason
                self._kill()
        run.seconds = round(time.monotonic() - started, 3)
        return run

    def _take_record(self, run: CellRun, payload: object, used: int) -> int:
        try:
            entry = decode_record(payload, self.record_budget - used)
        except BadRecord as problem:
            run.record_problems.append(f"a record was rejected: {problem}"[:300])
            return used
        if entry.key in run.records:
            run.record_problems.append(f"{entry.key} was recorded more than once")
            run.records[entry.key] = Record(entry.key, None, 0, {})  # a duplicated key never counts
        else:
            run.records[entry.key] = entry
        return used + entry.nbytes

    def _keep_output(self, run: CellRun, kind: str, content: dict) -> None:
        if kind == "stream":
            output = {"output_type": "stream", "name": str(content.get("name", "stdout"))[:10],
                      "text": str(content.get("text", ""))}
        elif kind == "error":
            output = {"output_type": "error", "ename": str(content.get("ename", ""))[:200],
                      "evalue": str(content.get("evalue", ""))[:4000],
                      "traceback": [str(line) for line in content.get("traceback", [])][:200]
                      if isinstance(content.get("traceback"), list) else []}
        else:
            data = content.get("data") if isinstance(content.get("data"), dict) else {}
            output = {"output_type": kind, "data": data, "metadata": {}}
            if kind == "execute_result":
                output["execution_count"] = None
        if self.output.take(output):
            run.outputs.append(output)


# --- one submission's runs ----------------------------------------------------------------------


@dataclass
class RunOutcome:
    """What one planned run produced: a :class:`CellRun` per planned cell, in order."""

    name: str
    cells: list[CellRun]
    stopped: str | None = None  # why the run ended before its last cell (a fixed sentence)
    detail: str | None = None  # what the instructor needs to know about it (a log's tail)
    seconds: float = 0.0
    output_truncated: bool = False  # outputs were dropped to keep within the budget


def execute_plan(plan, scratch: Path, limits: Limits, *, sandboxed: bool = True,
                 cpus: tuple[int, ...] | None = None, output: OutputBudget | None = None) -> list[RunOutcome]:
    """Run every planned run of one submission (a :class:`autograder.plan.SubmissionPlan`), one
    kernel after the other, within the submission's wall limit. Never raises for anything the
    submission does; a kernel that cannot start is reported as the run's ``stopped`` reason."""
    deadline = time.monotonic() + limits.wall_seconds
    output = output or OutputBudget(limits.output_kb)
    outcomes = []
    for index, run in enumerate(plan.runs):
        started = time.monotonic()
        cells = [CellRun() for _ in run.cells]
        stopped = detail = None
        if time.monotonic() >= deadline:
            stopped = f"the run reached its time limit of {limits.wall_seconds} s"
        else:
            try:
                with SandboxedKernel(scratch / f"run{index}", limits, sandboxed=sandboxed, cpus=cpus,
                                     output=output, deadline=deadline) as kernel:
                    for position, planned in enumerate(run.cells):
                        cells[position] = kernel.run_cell(planned.code, record=planned.test is not None)
                    stopped = kernel.stopped
                    detail = kernel.log_tail() if stopped else None
            except KernelStartError as error:
                stopped, detail = "the kernel could not start", str(error)[:3000]
        outcomes.append(RunOutcome(run.name, cells, stopped, detail, round(time.monotonic() - started, 3),
                                   output.truncated))
    return outcomes
