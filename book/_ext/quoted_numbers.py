"""The ``{quoted}`` role: a number the build does not compute.

Every measured number in a chapter's prose is glued from the code that measured it
(``{glue:text}`` with a format), so the page never contradicts its own output.  The few numbers
that no cell of the book computes (a figure from the lecture's slides, a paper's reported error
rate, a data sheet's peak FLOP/s) are written with this role instead::

    AlexNet's top-5 error was {quoted}`15.3%` (Krizhevsky et al., 2012).

The sentence says where the number comes from; the role renders the text unchanged and
tells ``tests/test_prose_numbers.py`` that the number was quoted on purpose.
"""

from __future__ import annotations

from docutils import nodes


def quoted_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    node = nodes.inline(rawtext, text, classes=["quoted-number"])
    return [node], []


def setup(app):
    app.add_role("quoted", quoted_role)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
