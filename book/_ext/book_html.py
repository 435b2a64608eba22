"""Two fixes to the HTML the theme writes, applied to every page when the build finishes.

* sphinx-thebe registers its inline configuration twice under Jupyter Book 1, and the second
  ``const THEBE_JS_URL = ...`` throws "Identifier 'THEBE_JS_URL' has already been declared" in
  every reader's console: a repeated inline <script> (same text) is dropped.
* pydata-sphinx-theme's search button is labelled aria-label="Search" while it shows
  "Search Ctrl+K", so a screen reader's name for it is not what a sighted reader sees (axe-core:
  label-content-name-mismatch, serious): without the aria-label its name is its visible text.

* The theme loads Sphinx's search index (and its search scripts) into every page, for a
  search-as-you-type box that is switched off (search_as_you_type false): the search button
  opens a form for search.html, the one page that uses the index. Other pages drop the three
  scripts, which are most of a page's weight after its figures.

tests/test_browser.py checks these in a browser (no console error, no serious axe violation,
search works, every page under 2 MB).
"""

import re
from pathlib import Path

INLINE_SCRIPT = re.compile(r"[ \t]*<script>(?P<body>[^<]*)</script>\n?")
SEARCH_SCRIPTS = re.compile(
    r'[ \t]*<script src="[^"]*(?:_static/searchtools\.js|_static/language_data\.js|searchindex\.js)"></script>\n?')
SEARCH_BUTTON_LABEL = ('<button class="btn search-button-field search-button__button pst-js-only" '
                       'title="Search" aria-label="Search" ')


def fix_page(html: str, *, search_page: bool = False) -> str:
    seen = set()

    def once(match):
        body = match.group("body").strip()
        if body in seen:
            return ""
        seen.add(body)
        return match.group(0)

    html = INLINE_SCRIPT.sub(once, html)
    if not search_page and "DOCUMENTATION_OPTIONS.search_as_you_type = false;" in html:
        html = SEARCH_SCRIPTS.sub("", html)
    # myst-nb's "Show code cell source" toggles are labelled "Toggle hidden content": the same
    # mismatch; their visible text names them.
    html = html.replace('<summary aria-label="Toggle hidden content">', "<summary>")
    return html.replace(SEARCH_BUTTON_LABEL, SEARCH_BUTTON_LABEL.replace('aria-label="Search" ', ""))


def _fix_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for path in Path(app.outdir).rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        # The search page keeps its index.
        fixed = fix_page(text, search_page=path == Path(app.outdir) / "search.html")
        if fixed != text:
            path.write_text(fixed, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _fix_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
