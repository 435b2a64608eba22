"""Grading on a Dask cluster: each submission's sandboxed runs go to a worker, everything else
stays in the instructor's process.

    python -m autograder grade ASSIGNMENT SUBMISSIONS --out DIR --scheduler tcp://HOST:8786

What travels is plain data: a submission's plan (:meth:`autograder.plan.SubmissionPlan.to_dict`,
the cells to run) goes out, the runs' outcomes (statuses, records, outputs) come back, and
:func:`autograder.grade.execute_submission` in between runs on the worker, in the worker's
sandbox. The reference run, the verdicts, ``grades.csv``, the gradebook and the feedback stay with
the single writer here, so a distributed run gives the same files as a local one.

A worker that dies mid-run loses only its running task: the scheduler runs it again on another
worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by default), and each result is
stored once, by student, when it arrives. A submission whose task fails for good gets the row
"ungradable: internal error" like any other failure of the grader.

Each worker needs, like the instructor's machine: this repository (the ``autograder`` package
importable: start the worker from the repository root with ``PYTHONPATH=.``), the course
environment (``make env``), the data (``make data``) and bubblewrap. One task at a time per
worker process (``--nthreads 1``); one worker process per core (``--nworkers``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


def run_on_cluster(scheduler: str, jobs: Iterable[tuple[str, dict]], execute: Callable, arguments: tuple,
                   on_result: Callable[[str, object], None], on_failure: Callable[[str, BaseException], None]) -> None:
    """Submit ``execute(plan, *arguments)`` for every ``(key, plan)`` of ``jobs`` to the cluster at
    ``scheduler`` (as ``jobs`` yields them) and hand each outcome to ``on_result(key, outcomes)``
    in this thread, as it arrives (or ``on_failure(key, error)``)."""
    from distributed import Client, as_completed

    with Client(scheduler, set_as_default=False) as client:
        futures = {}
        for key, plan in jobs:
            # pure=False: the same plan graded twice is two runs; a unique key per submission.
            future = client.submit(execute, plan, *arguments, key=f"grade-{key}", pure=False)
            futures[future] = key
        for future in as_completed(list(futures), loop=client.loop):
            key = futures.pop(future)  # forget it once handed on: memory that does not grow with the class
            try:
                outcome = future.result()
            except Exception as error:  # noqa: BLE001 - a lost task is that student's row
                on_failure(key, error)
            else:
                on_result(key, outcome)
            future.release()
