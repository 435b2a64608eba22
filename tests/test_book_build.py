"""The book builds from scratch with every chapter executed, no Sphinx warning and no cell
error; each chapter's page has its figures and no error output; a failing cell fails the
build. The build goes to a temporary folder, so it never reuses a cache or an earlier build."""

import shutil
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup

from banks.common import hidden_lines, solution_lines
from benchmarks.book_build import NOTEBOOK_FRONT_MATTER
# One build per session, shared with tests/test_browser.py (see tests/book_fixtures.py).
from book_fixtures import REPO_ROOT, built_book  # noqa: F401  (a fixture)
from book_fixtures import jupyter_book as _jupyter_book
from conftest import ASSIGNMENTS, BANKS


def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def _is_notebook(page: str) -> bool:
    """A MyST notebook opens with front matter that names a kernel."""
    path = REPO_ROOT / f"{page}.md"
    if not path.is_file():
        return False
    text = path.read_text()
    return text.startswith("---\n") and "kernelspec:" in text.split("\n---\n", 1)[0]


NOTEBOOK_PAGES = [page for page in _toc_files() if _is_notebook(page)]


def _sphinx_warnings(log: str) -> list[str]:
    # Sphinx writes "WARNING:"; kernels' own log lines ("[IPKernelApp] WARNING | ...") are not
    # warnings about the book.
    return [line for line in log.splitlines() if "WARNING:" in line]


def test_every_toc_entry_exists_and_every_chapter_is_there():
    for page in _toc_files():
        assert (REPO_ROOT / f"{page}.md").is_file(), f"_toc.yml lists {page}, which does not exist"
    assert {"book/01_classification", "book/02_svm", "book/03_generalization", "book/04_neural_networks",
            "book/05_convolutional_networks", "book/06_cnn_architectures", "book/07_training_recipe",
            "book/08_optimization", "book/09_improving_performance", "book/10_hardware_software",
            "book/11_understanding_cnns"} <= set(NOTEBOOK_PAGES)
    assert _toc_files()[-2:] == ["book/summary", "book/homework"]


def test_book_builds_from_scratch_without_warnings(built_book):
    result, html = built_book
    if result is None:
        pytest.skip("CVCOURSE_BUILT_BOOK: a book built beforehand, no build log to check")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert _sphinx_warnings(log) == []
    assert (html / "index.html").is_file()


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chapter_page_has_figures_and_no_error_output(built_book, page):
    _, html = built_book
    soup = BeautifulSoup((html / f"{page}.html").read_text(), "html.parser")
    outputs = soup.select("div.cell_output")
    assert outputs, f"{page}: no executed cell output in the page"
    figures = [img for block in outputs for img in block.find_all("img")]
    assert len(figures) >= 3, f"{page}: only {len(figures)} figures"
    for img in figures:
        assert (html / page).parent.joinpath(img["src"]).resolve().is_file(), img["src"]
    errors = soup.select(".output.traceback, .output.error, .output.stderr")
    assert not errors, f"{page}: error or stderr output: {errors[0].get_text()[:500]}"
    assert "Traceback (most recent call last)" not in soup.get_text()


def test_pages_have_launch_and_download_buttons(built_book):
    _, html = built_book
    page = (html / "book" / "01_classification.html").read_text()
    assert "mybinder.org/v2/gh/" in page
    assert "jupyterhub.example.edu" in page or "hub/user-redirect" in page
    assert "btn-download-source-button" in page and "btn-download-notebook-button" in page
    assert (html / "_sources" / "book" / "01_classification.md").is_file()


def test_the_introduction_shows_the_whole_plan(built_book):
    _, html = built_book
    soup = BeautifulSoup((html / "book" / "intro.html").read_text(), "html.parser")
    text = soup.get_text()
    for part in ("Classification", "Neural networks and CNNs", "Practical matters",
                 "Understanding CNNs", "Homework"):
        assert part in text
    # The plan table links every page of the book (no chapter is left "planned").
    plan = soup.find("table")
    linked = {a["href"].split("#")[0] for a in plan.find_all("a", href=True)}
    for page in _toc_files()[1:]:
        assert f"{Path(page).name}.html" in linked, f"the plan does not link {page}"


def test_a_failing_cell_fails_the_build(tmp_path):
    """raise_on_error: Jupyter Book 1 would otherwise exit 0 on a cell that raises. Built without
    --warningiserror, so that only the configuration can make it fail."""
    source = tmp_path / "book"
    source.mkdir()
    shutil.copy(REPO_ROOT / "_config.yml", source / "_config.yml")
    shutil.copytree(REPO_ROOT / "book" / "_ext", source / "book" / "_ext")  # the config's extensions
    (source / "_toc.yml").write_text("format: jb-book\nroot: broken\n")
    (source / "broken.md").write_text(
        f"{NOTEBOOK_FRONT_MATTER}# Broken\n\n```{{code-cell}} ipython3\n"
        "raise RuntimeError('this chapter is broken')\n```\n"
    )
    result = _jupyter_book(source, tmp_path / "out", strict=False)
    assert result.returncode != 0
    assert "this chapter is broken" in result.stdout + result.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_rendered_book_holds_no_solution_or_hidden_test(built_book, assignment):
    _, html = built_book
    homework = BANKS[assignment].HOMEWORK
    secrets = hidden_lines(homework) + solution_lines(homework)
    pages = list(html.rglob("*.html")) + list(html.rglob("*.ipynb")) + list(html.rglob("*.md"))
    assert pages
    for page in pages:
        text = page.read_text(errors="replace")
        assert [line for line in secrets if line in text] == [], page
