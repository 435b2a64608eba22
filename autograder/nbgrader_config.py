"""nbgrader configuration for the course, mapping nbgrader's steps onto the repository layout:
source step = solutions/, release step = assignments/. Used by `python -m autograder release`
and by instructors who run nbgrader's own commands from the repository root with
`nbgrader ... --config autograder/nbgrader_config.py`."""

from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = str(Path(__file__).resolve().parents[1])
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
# Student versions carry no outputs; nbgrader must not try to execute or validate them here.
c.ClearOutput.enabled = True
