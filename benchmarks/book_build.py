"""Time the book build: a cold build (empty cache), each chapter's execution time, a rebuild with
nothing changed, then a rebuild after a prose edit and one after a code edit of one chapter, and
which notebooks each rebuild executed again. Also reports the size of the installed environment.

    python benchmarks/book_build.py [--output DIR] [--chapter book/NN_name] [--tiny]

Run from the repository root inside the course environment (``make benchmark-book``). The book is
built from a copy (``DIR/book-copy``): the edits are made there, never in the repository. With
``--tiny`` the copy is a book of one short generated chapter (seconds, not minutes): a dry run of
the benchmark's own machinery. Prints a table and writes ``book_build.json`` to the output folder
(a temporary one by default).

What the cached rebuilds should show (``execute_notebooks: cache``): jupyter-cache keys a
notebook by its code cells, so a prose edit makes Sphinx read the chapter again but executes
nothing, and a code edit executes that chapter, and only it, again.
"""

from __future__ import annotations

import os

# The environment as this script was started, before anything it imports can add to it: every
# build runs in a child environment made from this.
STARTING_ENVIRONMENT = dict(os.environ)

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# What the book build reads: the configuration, the chapters and their extensions, static files.
BOOK_FILES = ("_config.yml", "_toc.yml", "book", "_static", "node_modules", "package.json")

# The header jupytext reads a MyST Markdown notebook by (tests/test_book_build.py uses it too).
NOTEBOOK_FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

TINY_CHAPTER = NOTEBOOK_FRONT_MATTER + """
# A tiny chapter

The benchmark's dry run: one paragraph of prose and two short code cells.

```{code-cell} ipython3
import numpy as np

values = np.arange(5)
```

```{code-cell} ipython3
print(values.sum())
```
"""


def copy_book(destination: Path, *, tiny: bool) -> Path:
    """A copy of what the build reads; with ``tiny``, a book of one generated chapter instead."""
    destination.mkdir(parents=True)
    for name in BOOK_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        elif source.is_file():
            shutil.copy2(source, destination / name)
    if tiny:
        (destination / "book" / "tiny.md").write_text(TINY_CHAPTER)
        (destination / "_toc.yml").write_text("format: jb-book\nroot: book/tiny\n")
    return destination


def build(book: Path, output: Path, log: Path) -> float:
    """Build the book into ``output`` as `make book` does; return the wall time in seconds."""
    environment = dict(STARTING_ENVIRONMENT, PATH=f"{BIN}{os.pathsep}{STARTING_ENVIRONMENT.get('PATH', '')}")
    environment.pop("MPLBACKEND", None)  # as `make book`: kernels draw figures inline
    start = time.perf_counter()
    with open(log, "w") as stream:
        result = subprocess.run(
            [str(BIN / "jupyter-book"), "build", str(book), "--path-output", str(output),
             "--builder", "html", "--warningiserror", "--keep-going"],
            env=environment, stdout=stream, stderr=subprocess.STDOUT,
        )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"the book build failed (exit {result.returncode}); its output is in {log}")
    return seconds


def cache_records(book: Path, output: Path) -> dict[int, dict]:
    """jupyter-cache's records, by primary key: the notebook and its execution time."""
    from jupyter_cache import get_cache

    cache = get_cache(output / "_build" / ".jupyter_cache")
    records = {}
    for record in cache.list_cache_records():
        path = Path(record.uri)
        records[record.pk] = {
            "notebook": str(path.relative_to(book)) if path.is_absolute() and path.is_relative_to(book) else record.uri,
            "seconds": round(record.data.get("execution_seconds", float("nan")), 1),
        }
    return records


def executed_since(before: dict[int, dict], after: dict[int, dict]) -> list[str]:
    """The notebooks a build executed: each execution adds a new cache record."""
    return sorted({record["notebook"] for pk, record in after.items() if pk not in before})


def documents_read(log: Path) -> list[str]:
    """The documents Sphinx read again (its "reading sources... [ 50%] book/x" lines)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))  # Sphinx colours its log
    return sorted(set(re.findall(r"reading sources\.\.\. \[\s*\d+%\] (\S+)", text)))


def edit_prose(chapter: Path) -> None:
    """Add a paragraph at the end of the chapter, outside every code cell."""
    chapter.write_text(chapter.read_text().rstrip("\n") + "\n\nA sentence the benchmark added to the prose.\n")


def edit_code(chapter: Path) -> None:
    """Add a harmless statement at the end of the chapter's first code cell."""
    lines = chapter.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("```{code-cell}"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    lines.insert(end, "_benchmark_edit = 1  # added by benchmarks/book_build.py")
    chapter.write_text("\n".join(lines))


def rebuild_after(change, book: Path, output: Path, name: str) -> dict:
    before = cache_records(book, output)
    if change is not None:
        change()
    log = output / f"build-{name}.log"
    seconds = build(book, output, log)
    return {"seconds": round(seconds, 1), "executed": executed_since(before, cache_records(book, output)),
            "documents_read": documents_read(log)}


def environment_size() -> str:
    result = subprocess.run(["du", "-sh", sys.prefix], capture_output=True, text=True)
    return result.stdout.split()[0] if result.returncode == 0 else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="build folder (default: temporary)")
    parser.add_argument("--chapter", default=None,
                        help="the chapter to edit, e.g. book/02_svm (default: the one that executes fastest)")
    parser.add_argument("--tiny", action="store_true", help="a book of one short generated chapter: a dry run")
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp(prefix="book-benchmark-"))
    book = copy_book(output / "book-copy", tiny=args.tiny)

    cold = build(book, output, output / "build-cold.log")
    per_chapter = {record["notebook"]: record["seconds"] for record in cache_records(book, output).values()}
    per_chapter = dict(sorted(per_chapter.items()))
    if not per_chapter:
        sys.exit("the cold build executed no notebook: nothing to measure")
    chapter = args.chapter or Path(min(per_chapter, key=per_chapter.get)).with_suffix("").as_posix()
    chapter_file = book / f"{chapter}.md"
    if not chapter_file.is_file():
        sys.exit(f"no chapter {chapter_file.relative_to(book)} in the book")

    unchanged = rebuild_after(None, book, output, "unchanged")
    prose = rebuild_after(lambda: edit_prose(chapter_file), book, output, "prose-edit")
    code = rebuild_after(lambda: edit_code(chapter_file), book, output, "code-edit")
    results = {
        "cores": os.cpu_count(),
        "tiny": args.tiny,
        "cold_build_seconds": round(cold, 1),
        "chapter_execution_seconds": per_chapter,
        "edited_chapter": chapter,
        "rebuild_unchanged": unchanged,
        "rebuild_after_prose_edit": prose,
        "rebuild_after_code_edit": code,
        "environment": sys.prefix,
        "environment_size": environment_size(),
    }
    (output / "book_build.json").write_text(json.dumps(results, indent=2))
    print(f"cores: {results['cores']}")
    print(f"cold build (every chapter executed): {results['cold_build_seconds']} s")
    print("chapter execution times:")
    for name, seconds in per_chapter.items():
        print(f"  {seconds:7.1f} s  {name}")
    for label, rebuild in (("nothing changed", unchanged), (f"prose of {chapter} changed", prose),
                           (f"a code cell of {chapter} changed", code)):
        print(f"rebuild, {label}: {rebuild['seconds']} s; executed again: "
              f"{', '.join(rebuild['executed']) or 'none'}; read again: {', '.join(rebuild['documents_read']) or 'none'}")
    print(f"environment {results['environment']}: {results['environment_size']}")
    print(f"results: {output / 'book_build.json'}")


if __name__ == "__main__":
    main()
