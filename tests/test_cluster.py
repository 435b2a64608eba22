"""Grading on a Dask cluster: a LocalCluster of 2 worker processes on loopback grades part of
Homework 1's bank, one worker is killed mid-run, and the grades and feedback are the local run's,
byte for byte, with one row per student."""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from autograder.config import load_assignment
from autograder.grade import grade_class
from banks import a1_hinge_loss as bank

SUBSET = ["correct", "blank", "partial_hinge_and_naive", "mistake_naive_missing_margin",
          "mistake_softmax_unstable", "vectorized_with_a_loop", "loop_rule_globals_lookup",
          "trainer_ignores_its_seed", "cheat_monkeypatch_numpy", "invalid_json"]


def _rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return {row["student_id"]: row for row in csv.DictReader(stream)}


def test_a_cluster_grades_like_this_machine_even_when_a_worker_dies(graded_bank, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    local = graded_bank(bank.HOMEWORK.name)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)]))
    submissions = tmp_path / "submissions"
    for name in SUBSET:
        local.cases[name].write(submissions)
    config = dataclasses.replace(load_assignment(bank.HOMEWORK.name), limits=bank.LIMITS)
    out = tmp_path / "out"

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster, set_as_default=False) as observer:  # the grader must not need it
        killed = {}

        def kill_a_busy_worker():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not killed:
                busy = [address for address, tasks in observer.processing().items() if tasks]
                if busy:
                    time.sleep(2)  # well inside the run: its kernel is executing cells
                    pids = observer.run(os.getpid, workers=[busy[0]])
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed[busy[0]] = pids[busy[0]]
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        results = grade_class(bank.HOMEWORK.name, submissions, out, config=config, progress=False,
                              scheduler=cluster.scheduler_address)
        killer.join()

    assert killed, "no worker was ever busy"
    assert sorted(r["student_id"] for r in results) == sorted(SUBSET)
    cluster_rows, local_rows = _rows(out / "grades.csv"), _rows(local.out / "grades.csv")
    assert list(cluster_rows) == sorted(SUBSET)  # one row each, none lost, none twice
    assert cluster_rows == {name: local_rows[name] for name in SUBSET}
    for result in results:
        name = f"{result['key']}/hinge_loss.html"
        assert (out / "feedback" / name).read_bytes() == (local.out / "feedback" / name).read_bytes(), name
