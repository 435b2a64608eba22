"""Numbers in the book's prose come from the code that measured them.

A sentence may quote a measured number only through myst-nb's glue (``{glue:text}`key:.1%```),
so that the page and its own printed output never disagree.  A number that no cell computes
(the lecture's worked numbers, a paper's error rate, a version) is written with the
``{quoted}`...``` role (book/_ext/quoted_numbers.py) in a sentence that names its source.

This test reads every page's MyST source and fails on a number with a decimal point or a percent
sign left in the prose.  Not prose, hence not checked: code cells and code blocks, inline code
(settings such as ``lr=0.01`` are written as code), math, directive options, link targets and
URLs.  Integers without a percent sign (60 000 images, 10 classes) are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO_ROOT / "book").glob("*.md"))

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(\{[\w:-]+\})?")
_DIRECTIVE_OPTION = re.compile(r"^\s*:[\w-]+:")
# Stripped before the search, in this order.
_NOT_PROSE = [
    re.compile(r"<!--.*?-->", re.S),                   # comments
    re.compile(r"\$\$.*?\$\$", re.S),                  # display math
    re.compile(r"(?<![\\$])\$[^$\n]+\$"),              # inline math
    re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]", re.S),      # LaTeX-style math
    re.compile(r"\{(glue(:\w+)?|quoted|math|eq|ref|numref|doc|cite(:\w+)?|download|term)\}`[^`]*`"),
    re.compile(r"`[^`\n]*`"),                          # inline code
    re.compile(r"\]\([^)\s]*\)"),                      # link targets
    re.compile(r"<[^>\s]+://[^>]*>|https?://\S+"),     # URLs
]
# A number with a decimal point (0.92, 3.57) or a percentage (93%, 5 %, 78.8 percent).
_MEASURED_LOOKING = re.compile(r"\d\.\d|\d\s?%|\d\s?per\s?cent", re.I)

# Code-like fences whose content is never prose; every other fence ({note}, {admonition},
# {figure} captions ...) holds prose and is checked.
_CODE_FENCES = {None, "{code-cell}", "{code-block}", "{code}", "{math}", "{glue:figure}", "{glue:math}"}


def prose_lines(source: str) -> list[tuple[int, str]]:
    """The (line number, text) pairs of a MyST page that are prose, with non-prose spans blanked."""
    source = re.sub(r"\A---\n.*?\n---\n", lambda m: "\n" * m.group(0).count("\n"), source, flags=re.S)
    kept: list[str] = []
    closing: str | None = None
    for line in source.splitlines():
        match = _FENCE.match(line)
        if closing is not None:
            if match and line.strip() == closing:
                closing = None
            kept.append("")
            continue
        if match and match.group(2) in _CODE_FENCES:
            closing = match.group(1)
            kept.append("")
            continue
        kept.append("" if match or _DIRECTIVE_OPTION.match(line) else line)
    text = "\n".join(kept)
    for pattern in _NOT_PROSE:
        text = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1)]


def unglued_numbers(source: str) -> list[str]:
    return [f"line {number}: {line.strip()[:200]}" for number, line in prose_lines(source)
            if _MEASURED_LOOKING.search(line)]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.stem)
def test_prose_numbers_are_glued_or_quoted(page):
    found = unglued_numbers(page.read_text())
    assert not found, (
        f"{page.name}: numbers typed into the prose; glue them from the cell that computes them "
        "({glue:text}`key:.3f`) or mark a number no cell computes as {quoted}`...` with its "
        "source:\n" + "\n".join(found)
    )


def test_the_check_finds_typed_numbers_and_spares_glued_quoted_code_and_math():
    page = "\n".join([
        "---", "jupytext: {version: 1.0}", "---",
        "The augmented network is ahead, 78.8% against 77.0%.",          # 4: caught
        "It reaches {glue:text}`acc:.1%` against {glue:text}`base:.1%`.",  # 5: glued
        "AlexNet's top-5 error was {quoted}`15.3%` (Krizhevsky et al.).",  # 6: quoted
        "With `lr=0.01` and $\\lambda = 0.5$ the loss falls.",           # 7: code and math
        "```{code-cell} ipython3", "print(0.25, '50%')", "```",          # 8-10: code
        ":::{note}", "Half of it, 50 %, is noise.", ":::",               # 11-13: caught
        "See [the paper](https://arxiv.org/abs/1409.1556).",             # 14: URL
        "$$", "L = 5.27", "$$",                                           # 15-17: math
    ])
    found = unglued_numbers(page)
    assert [line.split(":")[0] for line in found] == ["line 4", "line 12"], found
