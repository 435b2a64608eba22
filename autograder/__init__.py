"""The course's grading pipeline: nbgrader for authoring and the gradebook, and a hardened
grader for untrusted submissions.

    python -m autograder list
    python -m autograder release [ASSIGNMENT ...]
    python -m autograder grade ASSIGNMENT SUBMISSIONS --out DIR [--workers N] [--scheduler tcp://HOST:PORT] [--unsafe]
    python -m autograder export DIR --format canvas|moodle [--roster FILE]

The grading pipeline reads as named steps, one module each:

ingest     find one notebook per student in a folder or zip, in any layout an LMS produces
           (:mod:`autograder.ingest`)
assemble   rebuild the notebook to run from the instructor's source, taking only the
           student's answer cells from the submission (:mod:`autograder.assemble`)
plan       the runs of one submission: the notebook, and a clean run per group of tests with
           source rules, whose code :mod:`autograder.analysis` checked (:mod:`autograder.plan`)
execute    run each plan's kernel in a sandbox (:mod:`autograder.sandbox`), driven from outside
           by the trusted side, which decides which records belong to which test cell
           (:mod:`autograder.kernel`, :mod:`autograder.records`); here or on a Dask cluster
           (:mod:`autograder.cluster`)
verify     in this clean process, compare the records with the solution's, or judge them with
           grader-side evaluators (:mod:`autograder.verify`, :mod:`autograder.evaluators`)
record     grades.csv, the nbgrader gradebook, per-student results for resuming
           (:mod:`autograder.grade`, :mod:`autograder.gradebook`)
report     feedback per student, a class report, exports to an LMS (:mod:`autograder.feedback`,
           :mod:`autograder.report`, :mod:`autograder.export`)

The trust boundary, in one sentence: everything the student's kernel sends or writes is
untrusted input, and every fact a verdict rests on (which test cell recorded what, how each cell
ended, what the code obeys) is decided by code outside the sandbox that the kernel can neither
write to nor signal.
"""
