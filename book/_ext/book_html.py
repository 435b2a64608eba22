"""Two fixes to the HTML the theme writes, applied to every page when the build finishes.

* sphinx-thebe registers its inline configuration twice under Jupyter Book 1, and the second
  ``const THEBE_JS_URL = ...`` throws "Identifier 'THEBE_JS_URL' has already been declared" in
  every reader's console: a repeated inline <script> (same text) is dropped.
* pydata-sphinx-theme's search button is labelled aria-label="Search" while it shows
  "Search Ctrl+K", so a screen reader's name for it is not what a sighted reader sees (axe-core:
  label-content-name-mismatch, serious): without the aria-label its name is its visible text.

tests/test_browser.py checks both in a browser (no console error, no serious axe violation).
"""

import re
from pathlib import Path

INLINE_SCRIPT = re.compile(r"[ \t]*<script>(?P<body>[^<]*)</script>\n?")
SEARCH_BUTTON_LABEL = ('<button class="btn search-button-field search-button__button pst-js-only" '
                       'title="Search" aria-label="Search" ')


def fix_page(html: str) -> str:
    seen = set()

    def once(match):
        body = match.group("body").strip()
        if body in seen:
            return ""
        seen.add(body)
        return match.group(0)

    html = INLINE_SCRIPT.sub(once, html)
    return html.replace(SEARCH_BUTTON_LABEL, SEARCH_BUTTON_LABEL.replace('aria-label="Search" ', ""))


def _fix_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for path in Path(app.outdir).rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        fixed = fix_page(text)
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
