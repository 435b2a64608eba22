"""Every page's word on the homework is true: the Homework page is the one source.

A chapter, the introduction or the summary may send a reader to "Homework N" only when the
Homework page lists it and its notebook is in assignments/ (and its source in solutions/); the
Homework page lists exactly the assignments the grader knows.
"""

from __future__ import annotations

import re
from pathlib import Path

from autograder.config import known_assignments

REPO_ROOT = Path(__file__).resolve().parents[1]
HOMEWORK_PAGE = REPO_ROOT / "book" / "homework.md"


def _listed_on_the_homework_page() -> dict[int, str]:
    """Assignment number -> notebook path, from the Homework page's table."""
    rows = re.findall(r"^\| (\d+) \| [^|]*\(`(assignments/[^`]+\.ipynb)`\)", HOMEWORK_PAGE.read_text(), re.M)
    return {int(number): path for number, path in rows}


def test_the_homework_page_lists_exactly_the_assignments_that_exist():
    listed = _listed_on_the_homework_page()
    assert listed, "no assignment table found on book/homework.md"
    for number, notebook in listed.items():
        assert (REPO_ROOT / notebook).is_file(), f"the Homework page lists {notebook}, which does not exist"
        folder = Path(notebook).parent.name
        assert folder.startswith(f"a{number}_"), f"Homework {number} points at {folder}"
        assert (REPO_ROOT / "solutions" / folder / Path(notebook).name).is_file(), folder
    assert sorted(Path(path).parent.name for path in listed.values()) == sorted(known_assignments())


def test_pages_mention_only_homework_the_homework_page_lists():
    listed = _listed_on_the_homework_page()
    for page in sorted((REPO_ROOT / "book").glob("*.md")):
        for number in re.findall(r"Homework\**\s+(\d+)", page.read_text()):
            assert int(number) in listed, f"{page.name} mentions Homework {number}, which the Homework page does not list"
        for notebook in re.findall(r"assignments/a\d+_\w+/\w+\.ipynb", page.read_text()):
            assert (REPO_ROOT / notebook).is_file(), f"{page.name} points at {notebook}, which does not exist"
