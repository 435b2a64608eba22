"""One build of the book per test session, shared by the modules that look at it.

tests/test_book_build.py (the HTML as text) and tests/test_browser.py (the book in a browser)
both import ``built_book`` from here. Pytest makes a separate fixture of an imported fixture
function in every module that imports it, so the build itself is memoised at module level:
whichever module asks first builds, the other gets the same folder.

CVCOURSE_BUILT_BOOK=/path/to/_build/html points the tests at a book built beforehand (during
development: build once, look many times); the build-log checks are skipped then.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

try:  # the run's starting environment (tests/conftest.py), not what an import set since
    from conftest import STARTING_ENVIRONMENT, subprocess_env
except ImportError:  # an older conftest.py
    STARTING_ENVIRONMENT = dict(os.environ)

    def subprocess_env(**overrides: str) -> dict[str, str]:
        return dict(STARTING_ENVIRONMENT, **overrides)

_BUILD: dict = {}


def jupyter_book(source: Path, output: Path, *, strict: bool = True) -> subprocess.CompletedProcess:
    """Run Jupyter Book 1 as `make book` does; ``strict`` turns Sphinx warnings into errors."""
    environment = subprocess_env(PATH=f"{BIN}{os.pathsep}{STARTING_ENVIRONMENT['PATH']}")
    # A non-interactive MPLBACKEND (Agg on CI machines) would stop the kernels from
    # displaying figures inline, and the pages would lose them.
    environment.pop("MPLBACKEND", None)
    command = [str(BIN / "jupyter-book"), "build", str(source), "--path-output", str(output),
               "--builder", "html", "--keep-going"]
    if strict:
        command.append("--warningiserror")
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=3000)


def build_book_once(tmp_path_factory) -> tuple[subprocess.CompletedProcess | None, Path]:
    """(the build's completed process, or None for a prebuilt book; the html folder)."""
    if "book" not in _BUILD:
        prebuilt = os.environ.get("CVCOURSE_BUILT_BOOK")
        if prebuilt:
            html = Path(prebuilt).resolve()
            assert (html / "index.html").is_file(), f"CVCOURSE_BUILT_BOOK={prebuilt}: no index.html there"
            _BUILD["book"] = (None, html)
        else:
            output = tmp_path_factory.mktemp("book")
            _BUILD["book"] = (jupyter_book(REPO_ROOT, output), output / "_build" / "html")
    return _BUILD["book"]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    return build_book_once(tmp_path_factory)
