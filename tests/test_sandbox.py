"""The sandbox itself: what student code can and cannot reach while it runs."""

import json
import os

import numpy as np
import pytest

from autograder.config import Limits
from autograder.sandbox import bubblewrap_problem, run_notebook
from autograder.verify import load_records

pytestmark = pytest.mark.skipif(bubblewrap_problem() is not None, reason="bubblewrap is not usable here")

PROBES = r'''
import os, socket
def can(action):
    try:
        action()
        return 1
    except Exception:
        return 0
grader_record("network", can(lambda: socket.create_connection(("1.1.1.1", 80), timeout=2)))
grader_record("dns", can(lambda: socket.getaddrinfo("pypi.org", 443)))
# Only the mount points of the environment and the course library exist in the repository's place.
grader_record("read_repository", can(lambda: os.listdir(REPO)) and int(bool(set(os.listdir(REPO)) - {".venv", "cvcourse"})))
grader_record("read_solutions", can(lambda: open(REPO + "/solutions/a1_hinge_loss/hinge_loss.ipynb").read()))
grader_record("read_other_scratch", can(lambda: os.listdir(OTHER)))
# Where the course lives under /tmp, this lands in the sandbox's private /tmp: the test
# checks on the host that the real repository is untouched.
grader_record("write_repository", can(lambda: open(REPO + "/x", "w").write("escaped")))
grader_record("write_usr", can(lambda: open("/usr/x", "w")))
grader_record("write_scratch", can(lambda: open("/scratch/work/x", "w").write("ok")))
grader_record("write_tmp", can(lambda: open("/tmp/x", "w").write("ok")))
grader_record("secret_env", int("GRADER_SECRET" in os.environ))
grader_record("uid", os.getuid())
grader_record("allocate_8_gb", can(lambda: bytearray(8 * 2**30)))  # over the 3 GB address-space limit
grader_record("cvcourse", can(lambda: __import__("cvcourse.data").data.load_digits()))
'''


def test_student_code_has_no_network_no_repository_and_only_its_scratch(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    other = tmp_path / "other_student"
    other.mkdir()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = PROBES.replace("REPO", repr(repo), 100).replace("OTHER", repr(str(other)))
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": code}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 4}
    result = run_notebook(json.dumps(notebook), tmp_path / "scratch", Limits(120, 60, 120, 3072, 256, 16))
    records = {key: int(value) for key, value in load_records(result.out / "records", 2**20).items()
               if isinstance(value, np.ndarray)}
    assert "write_repository" in records
    records.pop("write_repository")
    assert records == {
        "network": 0, "dns": 0, "read_repository": 0, "read_solutions": 0, "read_other_scratch": 0,
        "write_usr": 0, "write_scratch": 1, "write_tmp": 1, "secret_env": 0,
        "uid": 1000, "cvcourse": 1, "allocate_8_gb": 0,
    }
    assert (tmp_path / "scratch" / "work" / "x").read_text() == "ok"
    assert not os.path.exists(os.path.join(repo, "x"))


def test_the_wall_time_limit_kills_the_whole_run(tmp_path):
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4, "nbformat_minor": 4}
    result = run_notebook(json.dumps(notebook), tmp_path / "scratch", Limits(15, 600, 600, 3072, 256, 16))
    assert result.timed_out and result.seconds < 30
