"""The local scheduler holds a bounded window of submissions, whatever the size of the class.

A class of 500 graded with every plan submitted at once, and every finished run kept until the
end, grew the grader's memory with the class (benchmarks/grading.py --load). These tests drive the
real scheduler (`autograder.grade._runs_here`) with a stand-in for the sandboxed runs, so that
they can count what is outstanding at any moment: the end-to-end runs are in test_grading.py.
"""

from __future__ import annotations

import threading
import time
import types
import weakref

import pytest

from autograder import grade


class Plan(dict):
    """A stand-in plan: whether its runs fail."""


@pytest.fixture
def stand_in_runs(monkeypatch, tmp_path):
    """Replace the sandboxed runs by a short sleep that returns a large outcome (1 MB)."""
    def execute_submission(plan, limits, sandboxed, cpus=None, scratch=None):
        time.sleep(0.01)
        if plan["fail"]:
            raise RuntimeError("the runs were lost")
        return [bytearray(1 << 20)]

    monkeypatch.setattr(grade, "execute_submission", execute_submission)
    return types.SimpleNamespace(config=types.SimpleNamespace(limits=None), sandboxed=False, out=tmp_path)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_at_most_two_plans_per_worker_are_outstanding(stand_in_runs, workers):
    run_plans = grade._runs_here(stand_in_runs, workers)
    lock = threading.Lock()
    pulled, concluded, outstanding = [0], [], []

    def jobs():
        for number in range(40):
            with lock:
                pulled[0] += 1
                outstanding.append(pulled[0] - len(concluded))
            yield f"s{number:02d}", Plan(fail=number % 7 == 3)

    def on_result(key, outcomes):
        concluded.append(key)

    def on_failure(key, error):
        assert "lost" in str(error)
        concluded.append(key)

    run_plans(jobs(), on_result, on_failure)
    assert sorted(concluded) == [f"s{number:02d}" for number in range(40)]  # each once, failures too
    assert max(outstanding) <= 2 * workers
    assert max(outstanding) == 2 * workers  # the window is used: no worker waits for a plan


class Outcome(bytearray):
    """A run's outcome that can be watched (a bytearray cannot have weak references)."""


def test_finished_runs_are_not_kept(stand_in_runs, monkeypatch):
    """What a run returned is released once it has been handed on, not at the end of the class."""
    def execute_submission(plan, limits, sandboxed, cpus=None, scratch=None):
        time.sleep(0.005)
        return [Outcome(1 << 20)]

    monkeypatch.setattr(grade, "execute_submission", execute_submission)
    run_plans = grade._runs_here(stand_in_runs, 2)
    handed_on = []
    still_alive_after = []

    def jobs():
        for number in range(30):
            # By the time the 10th plan is pulled, the first outcomes have been handed on.
            if number == 10:
                still_alive_after.append(sum(reference() is not None for reference in handed_on[:4]))
            yield f"s{number:02d}", Plan(fail=False)

    def on_result(key, outcomes):
        handed_on.append(weakref.ref(outcomes[0]))

    run_plans(jobs(), on_result, lambda key, error: pytest.fail(str(error)))
    assert len(handed_on) == 30
    assert still_alive_after == [0]
    assert sum(reference() is not None for reference in handed_on) == 0
