"""The sandbox and the trusted driver: what student code can and cannot reach while it runs, and
what the driver counts as a cell's records."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from autograder.config import Limits
from autograder.kernel import SandboxedKernel
from autograder.records import RECORDER_SOURCE
from conftest import ProbeServer

pytestmark = pytest.mark.usefixtures("sandbox")
REPO = str(Path(__file__).resolve().parents[1])

PROBES = r'''
import os, socket
def can(action):
    try:
        action()
        return 1
    except Exception:
        return 0
grader_record("network", can(lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2)))
grader_record("dns", can(lambda: socket.getaddrinfo("pypi.org", 443)))
# Only the mount points of the environment and the course library exist in the repository's place.
grader_record("read_repository", can(lambda: os.listdir(REPO)) and int(bool(set(os.listdir(REPO)) - {".venv", "cvcourse"})))
grader_record("read_solutions", can(lambda: open(REPO + "/solutions/a1_hinge_loss/hinge_loss.ipynb").read()))
grader_record("read_other_scratch", can(lambda: os.listdir(OTHER)))
grader_record("write_repository", can(lambda: open(REPO + "/ESCAPED", "w").write("escaped")))
grader_record("write_other_scratch", can(lambda: open(OTHER + "/ESCAPED", "w").write("escaped")))
grader_record("write_usr", can(lambda: open("/usr/x", "w")))
grader_record("write_scratch", can(lambda: open("/scratch/work/x", "w").write("ok")))
grader_record("write_tmp", can(lambda: open("/tmp/x", "w").write("ok")))
grader_record("write_dev", can(lambda: open("/dev/x", "w").write("ok")))
grader_record("user_namespace", int(os.system("unshare -Ur true 2>/dev/null") == 0))
grader_record("secret_env", int("GRADER_SECRET" in os.environ))
grader_record("uid", os.getuid())
grader_record("allocate_4_gb", can(lambda: bytearray(4 * 2**30)))  # over the 3 GB memory limit
grader_record("cvcourse", can(lambda: __import__("cvcourse.data").data.load_digits()))
'''


def _kernel(tmp_path: Path, limits: Limits = Limits(120, 60, 120, 3072, 256, 16), **options) -> SandboxedKernel:
    kernel = SandboxedKernel(tmp_path / "scratch", limits, **options)
    kernel.__enter__()
    assert kernel.run_cell(RECORDER_SOURCE).status == "ok"
    return kernel


def _values(run) -> dict:
    return {key: record.value for key, record in run.records.items()}


def test_student_code_has_no_network_no_repository_and_only_its_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    other = tmp_path / "other_student"
    other.mkdir()
    server = ProbeServer()
    code = (PROBES.replace("REPO", repr(REPO)).replace("OTHER", repr(str(other)))
            .replace("PORT", str(server.port)))
    kernel = _kernel(tmp_path)
    try:
        run = kernel.run_cell(code, record=True)
    finally:
        kernel.close()
        server.stop()
    assert run.status == "ok", (run.error_name, run.error_value)
    records = {key: int(value) for key, value in _values(run).items()}
    # Where the course lives under /tmp (CI clones often do), writing to its path lands in the
    # sandbox's private /tmp; what matters is the real repository, checked on the host below.
    assert "write_repository" in records
    if not REPO.startswith("/tmp/"):
        assert records["write_repository"] == 0
    records.pop("write_repository")
    assert records == {
        "network": 0, "dns": 0, "read_repository": 0, "read_solutions": 0, "read_other_scratch": 0,
        "write_other_scratch": 0, "write_usr": 0, "write_scratch": 1, "write_tmp": 1,
        "write_dev": 0, "user_namespace": 0,
        "secret_env": 0, "uid": 1000, "cvcourse": 1, "allocate_4_gb": 0,
    }
    assert server.connections == 0
    # What the run writes lives in the sandbox's own memory-backed file system, not on the host.
    assert not (tmp_path / "scratch" / "work" / "x").exists()
    assert not os.path.exists(os.path.join(REPO, "ESCAPED")) and not (other / "ESCAPED").exists()


def test_records_count_only_inside_their_cells_window(tmp_path):
    kernel = _kernel(tmp_path)
    try:
        # A thread started in one cell keeps recording, and a later cell replays the recorder.
        kernel.run_cell("import threading, time\n"
                        "def _late():\n    time.sleep(0.5)\n    grader_record('late', 1)\n"
                        "threading.Thread(target=_late).start()\ngrader_record('early', 2)\n")
        test = kernel.run_cell("grader_record('inside', 3)\ngrader_record('twice', 4)\ngrader_record('twice', 5)\n",
                               record=True)
        time.sleep(1.0)
        after = kernel.run_cell("grader_record('inside', 6)\n")
    finally:
        kernel.close()
    assert set(test.records) == {"inside", "twice"}
    assert int(test.records["inside"].value) == 3
    assert test.records["twice"].value is None and "twice was recorded more than once" in test.record_problems
    assert after.records == {}


def test_a_cell_that_ignores_interrupts_stops_the_run_at_its_time_limit(tmp_path):
    kernel = _kernel(tmp_path, Limits(60, 3, 60, 3072, 256, 16))
    try:
        started = time.monotonic()
        run = kernel.run_cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n")
        seconds = time.monotonic() - started
        later = kernel.run_cell("1 + 1")
    finally:
        kernel.close()
    assert run.status == "timeout" and kernel.stopped == "a cell did not finish and could not be interrupted"
    assert seconds < 15 and later.status == "not run"


def test_the_wall_limit_bounds_all_cells_together(tmp_path):
    kernel = _kernel(tmp_path, Limits(4, 60, 60, 3072, 256, 16))
    try:
        run = kernel.run_cell("import time\ntime.sleep(30)\n")
        later = kernel.run_cell("1 + 1")
    finally:
        kernel.close()
    assert run.status == "timeout" and later.status == "not run"
    assert "time limit of 4 s" in kernel.stopped


@pytest.mark.parametrize("cpus", [(0,), (0, 1)], ids=["1 core", "2 cores"])
def test_tensorflow_runs_under_the_memory_limit_on_the_workers_cores(tmp_path, cpus):
    if len(os.sched_getaffinity(0)) < len(cpus):
        pytest.skip("this machine has fewer cores")
    kernel = _kernel(tmp_path, Limits(180, 120, 180, 2048, 256, 16), cpus=cpus)
    try:
        run = kernel.run_cell('''
import os
import tensorflow as tf
from threadpoolctl import threadpool_info
x = tf.random.normal((256, 256))
grader_record("matmul", float(tf.reduce_sum(tf.linalg.matmul(x, x))))
grader_record("cores", len(os.sched_getaffinity(0)))
grader_record("blas_threads", [np.array(i["num_threads"]) for i in threadpool_info()])
grader_record("tf_threads_setting", int(os.environ["TF_NUM_INTRAOP_THREADS"]))
try:
    hog = bytearray(3 * 2**30)
    grader_record("allocated_3_gb", 1)
except MemoryError:
    grader_record("allocated_3_gb", 0)
'''.replace("grader_record(\"blas", "import numpy as np\ngrader_record(\"blas"), record=True)
    finally:
        kernel.close()
    assert run.status == "ok", (run.error_name, run.error_value)
    values = _values(run)
    assert np.isfinite(values["matmul"])
    assert int(values["cores"]) == len(cpus) and int(values["tf_threads_setting"]) == len(cpus)
    assert values["blas_threads"] and all(int(n) == len(cpus) for n in values["blas_threads"])
    assert int(values["allocated_3_gb"]) == 0  # the 2 GB limit holds, and TensorFlow still ran
