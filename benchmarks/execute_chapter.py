"""Execute chapters one at a time, as the book build does, without building the book.

    python benchmarks/execute_chapter.py book/09_improving_performance.md [...] [--out DIR]

For each chapter: the execution time, its slowest cells (``--slowest N``, default 8; from the
timestamps nbclient records in each cell's metadata), every value it glues (the numbers its prose
quotes), and the executed notebook written to ``DIR`` (default: a temporary folder) for a closer
look. Fails (exit 1) on the first cell that raises, with its traceback, as ``raise_on_error``
does in the build, and on any stderr output (a warning), which the book's tests reject. Run from
the repository root inside the course environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import jupytext
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

GLUE_MIME = "application/papermill.record/text/plain"


def glued_values(notebook) -> dict[str, str]:
    """Every ``glue(key, value)`` of an executed notebook, as the text its prose will show."""
    values = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            key = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if key is not None:
                data = output.get("data", {})
                values[key] = data.get(GLUE_MIME) or data.get("text/plain", "<not text>")
    return values


def numbered_code_cells(notebook):
    """(number from 1, cell) for every code cell, numbered as Jupyter's "code cell N"."""
    return enumerate((cell for cell in notebook.cells if cell.cell_type == "code"), start=1)


def first_line(text: str, skip: tuple[str, ...] = ()) -> str:
    """The first non-empty line of text that does not start with one of skip."""
    return next((line for line in text.splitlines() if line.strip() and not line.startswith(skip)), "")


def cell_seconds(notebook) -> list[tuple[float, int, str]]:
    """(seconds, code cell number from 1, first line) for every executed code cell, slowest first."""
    rows = []
    for number, cell in numbered_code_cells(notebook):
        timing = cell.get("metadata", {}).get("execution", {})
        started, ended = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if started and ended:
            seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
            rows.append((seconds, number, first_line(cell.source, skip=("---", ":"))[:70]))
    return sorted(rows, reverse=True)


def stderr_outputs(notebook) -> list[tuple[int, str]]:
    """(code cell number from 1, first line) of every stderr output: the book's tests fail on them."""
    return [(number, first_line(output.get("text", ""))[:100])
            for number, cell in numbered_code_cells(notebook)
            for output in cell.get("outputs", []) if output.get("name") == "stderr"]


def execute(chapter: Path, out: Path, timeout: int, slowest: int = 8) -> bool:
    notebook = jupytext.read(chapter)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(chapter.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        ok = True
    except CellExecutionError as error:
        print(error, file=sys.stderr)
        ok = False
    seconds = time.perf_counter() - start
    target = out / f"{chapter.stem}.ipynb"
    jupytext.write(notebook, target)
    print(f"{chapter}: {'executed' if ok else 'FAILED'} in {seconds:.1f} s -> {target}")
    for cell_time, number, first_line in cell_seconds(notebook)[:slowest]:
        print(f"  {cell_time:6.1f} s  code cell {number:2d}: {first_line}")
    for number, first_line in stderr_outputs(notebook):
        print(f"  STDERR in code cell {number}: {first_line}")
        ok = False  # tests/test_book_build.py fails a page with stderr output
    for key, value in glued_values(notebook).items():
        print(f"  glue {key} = {value}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (the build's)")
    parser.add_argument("--slowest", type=int, default=8, help="how many of the slowest cells to list")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="chapters-"))
    out.mkdir(parents=True, exist_ok=True)
    return 0 if all(execute(chapter.resolve(), out, args.timeout, args.slowest) for chapter in args.chapters) else 1


if __name__ == "__main__":
    sys.exit(main())
