"""The course's grading pipeline: nbgrader for authoring and the gradebook, and a hardened
grader for untrusted submissions.

    python -m autograder release ASSIGNMENT
    python -m autograder grade ASSIGNMENT SUBMISSIONS --out DIR [--workers N] [--unsafe]

The grading pipeline reads as named steps, one module each:

ingest     find one notebook per student in a folder or a zip (:mod:`autograder.ingest`)
assemble   rebuild the notebook to run from the instructor's source, taking only the
           student's answer cells from the submission (:mod:`autograder.assemble`)
execute    run it in a sandbox with no network, a private scratch folder and limits
           (:mod:`autograder.sandbox`, which starts :mod:`autograder.runner` inside)
verify     in this clean process, compare what the hidden tests recorded with the values
           the solution recorded, and check the submitted source (:mod:`autograder.verify`)
record     grades.csv, the nbgrader gradebook, per-student results for resuming
           (:mod:`autograder.grade`, :mod:`autograder.gradebook`)
report     feedback per student and a class report (:mod:`autograder.feedback`,
           :mod:`autograder.report`)
"""
