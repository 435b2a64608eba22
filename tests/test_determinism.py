"""A chapter executed twice prints the same numbers: set_seed makes its training repeatable.

The session's book build executed the chapter once (its outputs are in that build's
jupyter-cache); this test executes it again in a fresh kernel, as the build does. Every value it
glues into its prose and every line it prints must agree, except durations (a clock is not
seeded), which are masked.
"""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path

import jupytext
from nbclient import NotebookClient

from book_fixtures import built_book  # noqa: F401  (the session's one book build)

REPO_ROOT = Path(__file__).resolve().parents[1]
# A chapter that trains Keras networks (several set_seed calls, a CNN among them) and glues
# their accuracies and losses into its prose, in well under a minute.
CHAPTER = REPO_ROOT / "book" / "04_neural_networks.md"
GLUE_MIME = "application/papermill.record/text/plain"
# "0.42 s", "12 ms", "3.1 seconds", "15 873 images/s", "1.2e+03 steps/s": what a clock measured.
_DURATION = re.compile(r"\d[\d.,e+\- ]*\s*(s|ms|µs|us|seconds?|min|[\w ]+/s)\b")
_TIMING_KEY = re.compile(r"seconds|time|speed|per_s|throughput", re.I)


def _executed_by_the_build(html: Path, chapter: Path):
    """The chapter's notebook as the book build executed it, from the build's jupyter-cache."""
    from jupyter_cache import get_cache

    cache = get_cache(html.parent / ".jupyter_cache")
    for record in cache.list_cache_records():
        if Path(record.uri).resolve() == chapter.resolve():
            return cache.get_cache_bundle(record.pk).nb
    raise AssertionError(f"the book build did not cache {chapter.name}")


def _executed_now(chapter: Path):
    notebook = jupytext.read(chapter)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    return notebook


def _printed_numbers(notebook) -> list[tuple[str, str]]:
    """(kind, text) of every glued value and printed line, in order; durations masked."""
    seen = []
    for cell in notebook.cells:
        # Consecutive stream outputs are joined before they are split into lines: the kernel
        # sends what a cell prints in pieces as its buffer is flushed, which can fall between a
        # print's text and its newline, so the pieces differ from run to run.
        for is_stream, outputs in groupby(cell.get("outputs", []), key=lambda o: o.get("output_type") == "stream"):
            if is_stream:
                printed = "".join(output["text"] for output in outputs)
                seen += [("print", _DURATION.sub("<duration>", line)) for line in printed.splitlines()]
                continue
            for output in outputs:
                key = output.get("metadata", {}).get("scrapbook", {}).get("name")
                data = output.get("data", {})
                if key is not None:
                    if not _TIMING_KEY.search(key):
                        seen.append((f"glue {key}", data.get(GLUE_MIME) or data.get("text/plain", "")))
                elif "text/plain" in data and not any(mime.startswith("image/") for mime in data):
                    seen.append(("value", _DURATION.sub("<duration>", data["text/plain"])))
    return seen


def test_a_chapter_executed_twice_prints_the_same_numbers(built_book):
    _, html = built_book
    first = _printed_numbers(_executed_by_the_build(html, CHAPTER))
    second = _printed_numbers(_executed_now(CHAPTER))
    assert sum(kind.startswith("glue") for kind, _ in first) >= 5, "the chapter glues too few numbers to compare"
    differences = [f"{a[0]}: {a[1]!r} then {b[1]!r}" for a, b in zip(first, second) if a != b]
    assert len(first) == len(second) and not differences, "\n".join(differences[:20])
