"""The book as readers see it: every page of the table of contents opened in a real browser
(Debian's Chromium driven by Playwright), from file:// with the network off and from a local
http.server, at phone (390 px) and desktop (1440 px) widths.

Each page is visited once per way of opening it (the ``survey`` fixture records what it finds);
the tests below then judge one aspect each, over every page:
  * no console error, no failed request, no request leaving the machine;
  * every figure decodes and is not blank, every table renders, every figure has alt text;
  * math is typeset offline (KaTeX is served from the built site itself, no CDN);
  * headings carry their section number once ("5.2.1. Convolution", not "5.2.1. 1. Convolution");
  * no horizontal scrolling of the page (wide tables and code scroll in their own box);
  * axe-core finds no "critical" or "serious" accessibility violation;
  * every page's HTML and images weigh under 2 MB, and the assets all pages share (theme,
    KaTeX, fonts: downloaded once) under 1.5 MB together (benchmarks/page_weight.py);
and, over the built HTML: "next" from the title page visits the table of contents in order,
every internal link and anchor resolves, the search page finds the lecture's terms, and the
launch and download buttons are there and well formed.

Screenshots of every page at both widths go to _build/screenshots/ for a person to look at.
The book is the session's one build (tests/book_fixtures.py); CVCOURSE_BUILT_BOOK=DIR/_build/html
points the tests at a book built beforehand.
"""

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urljoin, urlsplit

import pytest
from bs4 import BeautifulSoup

from benchmarks.page_weight import (CHROMIUM, PAGE_BUDGET, SHARED_BUDGET, launch_chromium, page_weight, serve,
                                    split_weight, toc_pages)
from book_fixtures import REPO_ROOT, built_book  # noqa: F401  (a fixture: one build per session)

PAGES = toc_pages(REPO_ROOT)
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO_ROOT / "_build" / "screenshots"
WIDTHS = {"phone": (390, 844), "desktop": (1440, 900)}
RAW_MATH = ("\\(", "\\)", "\\[", "\\]", "$$", "\\frac", "\\sum", "\\begin{")
REPOSITORY = "open-cv-course/classification-and-tools"

# CI sets CI_REQUIRE_BROWSER=1: there a missing browser must fail the run, never pass as skips.
if os.environ.get("CI_REQUIRE_BROWSER") == "1" and not Path(CHROMIUM).is_file():
    pytest.fail(f"CI_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (make system-packages installs it)", pytrace=False)
playwright_api = pytest.importorskip("playwright.sync_api", reason="make env installs playwright")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no {CHROMIUM} (make system-packages installs Debian's chromium)", allow_module_level=True)


# --- what the browser reads from a page ------------------------------------------------------

# _static/book-math.js typesets with KaTeX and then marks <html data-math="typeset" | "failed">.
WAIT_FOR_MATH = """async () => {
  if (!document.querySelector('span.math, div.math')) return null;
  for (let i = 0; i < 200 && !document.documentElement.dataset.math; i++) {
    await new Promise(resolve => setTimeout(resolve, 50));
  }
  return document.documentElement.dataset.math || 'not typeset';
}"""

# Text a reader sees outside code (code may quote TeX on purpose) and outside typeset math.
VISIBLE_PROSE = """() => {
  const skip = 'pre, code, script, style, .katex, textarea, .highlight, nav';
  const walker = document.createTreeWalker(document.querySelector('main') || document.body,
                                           NodeFilter.SHOW_TEXT);
  const parts = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    if (!parent.getClientRects().length) continue;  // not rendered
    parts.push(node.textContent);
  }
  return parts.join(' ');
}"""

IMAGES = """() => Array.from(document.querySelectorAll('main img')).map(img => ({
  src: img.getAttribute('src'), alt: img.getAttribute('alt'), complete: img.complete,
  width: img.naturalWidth, height: img.naturalHeight,
  figure: !!img.closest('.cell_output, figure'),
}))"""

# Blank = one flat colour; drawn into a canvas (same origin over http, so it is not tainted).
BLANK_IMAGES = """() => Array.from(document.querySelectorAll('main img')).filter(img => {
  if (!img.naturalWidth) return false;
  const canvas = document.createElement('canvas');
  canvas.width = 96; canvas.height = 96;
  const context = canvas.getContext('2d');
  context.drawImage(img, 0, 0, 96, 96);
  const data = context.getImageData(0, 0, 96, 96).data;
  let low = 255, high = 0;
  for (let i = 0; i < data.length; i += 4) {
    const value = (data[i] + data[i + 1] + data[i + 2]) / 3 * data[i + 3] / 255;
    low = Math.min(low, value); high = Math.max(high, value);
  }
  return high - low < 8;
}).map(img => img.getAttribute('src'))"""

TABLES = """() => Array.from(document.querySelectorAll('main table')).map(table => ({
  rows: table.rows.length, height: table.getBoundingClientRect().height,
  text: table.innerText.trim().slice(0, 60),
}))"""

HEADINGS = """() => Array.from(document.querySelectorAll('main h1, main h2, main h3, main h4'))
  .map(h => h.innerText.replace(/[#¶]\\s*$/, '').trim())"""

# The page scrolls sideways when its content is wider than the window; a wide table or code block
# is fine when a box of its own (overflow-x auto/scroll) scrolls it.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrollsItself = el => {
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX)) return true;
    }
    return false;
  };
  const wide = Array.from(document.querySelectorAll('main table, main pre, main img, main .katex-display'))
    .filter(el => el.getBoundingClientRect().right > width + 1 && !scrollsItself(el.parentElement))
    .map(el => el.tagName.toLowerCase() + ': ' + (el.innerText || el.getAttribute('src') || '').slice(0, 50));
  return {page: document.documentElement.scrollWidth, window: width, unboxed: wide.slice(0, 5)};
}"""

RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.length, targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
}"""


def _watch(tab, record: dict) -> None:
    record.setdefault("console", [])
    record.setdefault("failed", [])
    tab.on("console", lambda message: message.type == "error" and record["console"].append(
        f"{message.text} ({message.location.get('url', '')})"))
    tab.on("pageerror", lambda error: record["console"].append(f"uncaught: {error}"))
    tab.on("requestfailed", lambda request: record["failed"].append(
        f"{request.url}: {request.failure}"))
    tab.on("response", lambda response: response.status >= 400 and record["failed"].append(
        f"{response.url}: HTTP {response.status}"))


def _offline_route(route, blocked: list) -> None:
    """file:// and the local server only: anything else would need the network."""
    url = route.request.url
    host = urlsplit(url).hostname
    if url.startswith(("file:", "data:", "blob:")) or host in ("127.0.0.1", "localhost"):
        route.continue_()
    else:
        blocked.append(url)
        route.abort("internetdisconnected")


@pytest.fixture(scope="module")
def survey(built_book):
    """Every page of the table of contents, opened three ways; {page: {aspect: findings}}."""
    _, html = built_book
    assert AXE.is_file(), f"no {AXE}: make book-assets installs the npm packages (package.json)"
    return survey_pages(html, PAGES)


def survey_pages(html: Path, pages: list[str]) -> dict:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    found = {page: {"blocked": []} for page in pages}
    with serve(html) as base, playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        # 1. from file://, network off
        offline = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS["desktop"])),
                                      offline=True)
        for page in pages:
            record = found[page]["file"] = {}
            tab = offline.new_page()
            tab.route("**/*", lambda route, blocked=found[page]["blocked"]: _offline_route(route, blocked))
            _watch(tab, record)
            tab.goto((html / f"{page}.html").as_uri(), wait_until="load")
            record["math"] = tab.evaluate(WAIT_FOR_MATH)
            tab.wait_for_timeout(200)
            record["prose"] = tab.evaluate(VISIBLE_PROSE)
            record["images"] = tab.evaluate(IMAGES)
            record["tables"] = tab.evaluate(TABLES)
            record["headings"] = tab.evaluate(HEADINGS)
            tab.close()
        offline.close()
        # 2. over http, desktop and phone: blank images, accessibility, layout, weight, screenshots
        for width_name, (width, height) in WIDTHS.items():
            context = browser.new_context(viewport={"width": width, "height": height},
                                          device_scale_factor=1,
                                          is_mobile=width_name == "phone", has_touch=width_name == "phone")
            for page in pages:
                record = found[page][width_name] = {}
                tab = context.new_page()
                tab.set_default_timeout(180_000)  # full-page screenshots of long pages on a busy machine
                tab.route("**/*", lambda route, blocked=found[page]["blocked"]: _offline_route(route, blocked))
                _watch(tab, record)
                loaded: list[str] = []
                tab.on("requestfinished", lambda request: loaded.append(request.url))
                url = urljoin(base, f"{page}.html")
                tab.goto(url, wait_until="load")
                record["math"] = tab.evaluate(WAIT_FOR_MATH)
                tab.wait_for_timeout(300)
                record["overflow"] = tab.evaluate(OVERFLOW)
                if width_name == "desktop":
                    record["blank"] = tab.evaluate(BLANK_IMAGES)
                    tab.add_script_tag(path=str(AXE))
                    record["axe"] = tab.evaluate(RUN_AXE)
                    sources = [image["src"] for image in found[page]["file"]["images"]]
                    record["weight"] = page_weight(html, base, url, loaded, sources)
                tab.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '_')}-{width}.png"),
                               full_page=True)
                tab.close()
            context.close()
        browser.close()
    return found


# --- over every page --------------------------------------------------------------------------

@pytest.mark.parametrize("way", ["file", "desktop", "phone"])
def test_every_page_opens_without_console_errors_or_failed_requests(survey, way):
    problems = {page: found[way]["console"] + found[way]["failed"] for page, found in survey.items()}
    assert {page: p for page, p in problems.items() if p} == {}


def test_no_page_needs_the_network(survey):
    """KaTeX, fonts, scripts: everything a page loads comes with the built site."""
    assert {page: found["blocked"] for page, found in survey.items() if found["blocked"]} == {}


def test_math_is_typeset_offline_from_file(survey):
    raw = {}
    for page, found in survey.items():
        left = [token for token in RAW_MATH if token in found["file"]["prose"]]
        if left:
            at = found["file"]["prose"].find(left[0])
            raw[page] = (left, found["file"]["prose"][max(0, at - 40):at + 60])
    assert raw == {}, "raw TeX left on the page (KaTeX did not typeset it offline)"
    not_typeset = {page: found[way]["math"] for page, found in survey.items()
                   for way in ("file", "desktop") if found[way]["math"] not in (None, "typeset")}
    assert not_typeset == {}
    pages_with_math = [page for page, found in survey.items() if found["file"]["math"]]
    assert len(pages_with_math) >= 5, "the chapters with formulas should be typeset"


def test_every_figure_decodes_is_not_blank_and_every_table_renders(survey):
    broken, blank, tables = {}, {}, {}
    for page, found in survey.items():
        bad = [image["src"] for image in found["file"]["images"] if not image["width"]]
        if bad:
            broken[page] = bad
        if found["desktop"].get("blank"):
            blank[page] = found["desktop"]["blank"]
        empty = [table["text"] for table in found["file"]["tables"] if table["rows"] < 2 or table["height"] < 10]
        if empty:
            tables[page] = empty
    assert broken == {}, "images that do not decode"
    assert blank == {}, "images of one flat colour"
    assert tables == {}, "tables without rows or not rendered"


def test_every_figure_has_alternative_text(survey):
    """Written for a reader who cannot see the figure: not missing, not a file name."""
    missing = {}
    for page, found in survey.items():
        bad = [image["src"] for image in found["file"]["images"] if image["figure"] and not _good_alt(image["alt"])]
        if bad:
            missing[page] = bad
    total = sum(len(found["file"]["images"]) for found in survey.values())
    assert missing == {}, f"{sum(map(len, missing.values()))} of {total} figures lack alt text"


def _good_alt(alt: str | None) -> bool:
    alt = (alt or "").strip()
    return len(alt) >= 12 and not re.search(r"\.(png|jpe?g|svg|gif)$|_images/|^image$|^figure", alt, re.I)


DOUBLE_NUMBER = re.compile(r"^(\d+\.)+\d*\s+\(?\d+(\.\d+)*[.):]\s")


def test_headings_carry_their_number_once(survey):
    doubled = {page: [h for h in found["file"]["headings"] if DOUBLE_NUMBER.match(h)]
               for page, found in survey.items()}
    assert {page: h for page, h in doubled.items() if h} == {}


@pytest.mark.parametrize("way", ["phone", "desktop"])
def test_no_horizontal_scrolling(survey, way):
    wide = {}
    for page, found in survey.items():
        overflow = found[way]["overflow"]
        if overflow["page"] > overflow["window"] + 1 or overflow["unboxed"]:
            wide[page] = overflow
    assert wide == {}


def test_no_serious_or_critical_accessibility_violation(survey):
    serious = {page: [v for v in found["desktop"]["axe"] if v["impact"] in ("critical", "serious")]
               for page, found in survey.items()}
    assert {page: v for page, v in serious.items() if v} == {}


def test_every_page_weighs_under_two_megabytes(survey):
    """A page's HTML and images under 2 MB; the assets every page shares (theme, KaTeX, fonts:
    downloaded once, then cached) under their own budget, counted once."""
    own, shared = split_weight({page: found["desktop"]["weight"] for page, found in survey.items()})
    heavy = {page: f"{weight / 1e6:.2f} MB" for page, weight in own.items() if weight > PAGE_BUDGET}
    assert heavy == {}, "pages whose HTML and images weigh over 2 MB (python benchmarks/page_weight.py)"
    assert sum(shared.values()) <= SHARED_BUDGET, (
        f"the shared assets weigh {sum(shared.values()) / 1e6:.2f} MB: "
        + ", ".join(f"{name} {size / 1e3:.0f} kB" for name, size in sorted(shared.items(), key=lambda i: -i[1])[:5]))


def test_screenshots_of_every_page_at_both_widths(survey):
    for page in PAGES:
        for width, _ in WIDTHS.values():
            shot = SCREENSHOTS / f"{page.replace('/', '_')}-{width}.png"
            assert shot.is_file() and shot.stat().st_size > 5000, shot


# --- over the built HTML ----------------------------------------------------------------------

def _soup(html: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((html / f"{page}.html").read_text(), "html.parser")


def test_next_from_the_title_page_follows_the_table_of_contents(built_book):
    """Rule: "next" from the title page visits every page of _toc.yml in its order (the lecture's
    order: chapters 1-11, then the summary, then the homework, which _toc.yml lists after the
    summary) and the last page has no "next"."""
    _, html = built_book
    visited, current = [], PAGES[0]
    while current is not None and len(visited) <= len(PAGES):
        visited.append(current)
        following = _soup(html, current).select_one("a.right-next")
        if following is None:
            current = None
            continue
        target = (html / current).parent / following["href"].split("#")[0]
        current = str(target.resolve().relative_to(html.resolve()).with_suffix(""))
    assert visited == PAGES
    assert PAGES.index("book/summary") == len(PAGES) - 2 and PAGES[-1] == "book/homework"


def test_every_internal_link_and_anchor_resolves(built_book):
    _, html = built_book
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = BeautifulSoup(path.read_text(), "html.parser")
            ids[path] = {tag["id"] for tag in soup.find_all(id=True)} | {
                tag["name"] for tag in soup.find_all("a", attrs={"name": True})}
        return ids[path]

    broken = []
    pages = [html / f"{page}.html" for page in PAGES] + [html / "genindex.html", html / "search.html"]
    for source in pages:
        soup = BeautifulSoup(source.read_text(), "html.parser")
        for tag, attribute in (("a", "href"), ("link", "href"), ("img", "src"), ("script", "src")):
            for element in soup.find_all(tag, attrs={attribute: True}):
                link = element[attribute]
                parts = urlsplit(link)
                if parts.scheme or link.startswith(("//", "mailto:", "javascript:")):
                    continue
                target = (source.parent / unquote(parts.path)).resolve() if parts.path else source
                if target.is_dir():
                    target = target / "index.html"
                if not target.is_file():
                    broken.append(f"{source.relative_to(html)}: {link} (no file)")
                elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
                    broken.append(f"{source.relative_to(html)}: {link} (no anchor)")
    assert broken == []


# Each term's home: the multiclass hinge loss and its worked example are taught in chapter 4 (the
# SVM chapter uses the binary hinge loss less often), AlexNet in chapter 6, dropout in chapter 9.
SEARCHES = {"hinge loss": "book/04_neural_networks", "AlexNet": "book/06_cnn_architectures",
            "dropout": "book/09_improving_performance"}


def test_search_finds_the_lectures_terms(built_book):
    """The built search page, in the browser over http: each term finds its chapter among the
    first results."""
    _, html = built_book
    results = {}
    with serve(html) as base, playwright_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        tab = browser.new_page()
        for term in SEARCHES:
            tab.goto(urljoin(base, f"search.html?q={quote(term)}"), wait_until="load")
            tab.wait_for_selector("#search-results ul.search li a", timeout=30000)
            links = tab.eval_on_selector_all("#search-results ul.search li a",
                                             "els => els.map(a => a.href)")
            results[term] = [str(Path(urlsplit(link).path.lstrip("/")).with_suffix("")) for link in links]
        browser.close()
    for term, chapter in SEARCHES.items():
        assert chapter in results[term][:3], (term, results[term][:5])


def test_launch_and_download_buttons_are_well_formed(built_book):
    """_config.yml promises Binder and JupyterHub launch buttons and the repository and issues
    buttons; every chapter page has them, pointing at this repository's file of the page, and its
    download links (.md source, .ipynb notebook) resolve in the built site. A Colab button would
    have to open an .ipynb (Colab cannot open the chapters' MyST Markdown)."""
    _, html = built_book
    notebook_pages = [page for page in PAGES
                      if "kernelspec:" in (REPO_ROOT / f"{page}.md").read_text().split("\n---\n", 1)[0]]
    assert len(notebook_pages) >= 11
    problems = []
    for page in notebook_pages:
        soup = _soup(html, page)
        links = [a["href"] for a in soup.find_all("a", href=True)]
        binder = [link for link in links if link.startswith("https://mybinder.org/")]
        hub = [link for link in links if link.startswith("https://jupyterhub.example.edu/")]
        colab = [link for link in links if link.startswith("https://colab.research.google.com/")]
        if not (binder and hub):
            problems.append(f"{page}: launch buttons binder={binder} hub={hub} colab={colab}")
            continue
        for link in binder:
            parts = urlsplit(link)
            if not parts.path.startswith(f"/v2/gh/{REPOSITORY}/main"):
                problems.append(f"{page}: binder {link}")
            urlpath = parse_qs(parts.query).get("urlpath", [""])[0]
            if not urlpath.endswith(f"{page}.md") and not urlpath.endswith(f"{page}.ipynb"):
                problems.append(f"{page}: binder opens {urlpath!r}")
        for link in hub:
            query = parse_qs(urlsplit(link).query)
            if REPOSITORY not in query.get("repo", [""])[0]:
                problems.append(f"{page}: jupyterhub {link}")
        for link in colab:
            if not link.endswith(f"/github/{REPOSITORY}/blob/main/{page}.ipynb"):
                problems.append(f"{page}: colab cannot open {link}")
        if f"https://github.com/{REPOSITORY}" not in links:
            problems.append(f"{page}: no repository button")
        downloads = [a for a in soup.select("a.btn-download-source-button, a.btn-download-notebook-button")]
        if len(downloads) < 2:
            problems.append(f"{page}: download buttons {downloads}")
        for anchor in downloads:
            target = ((html / page).parent / anchor["href"]).resolve()
            if not target.is_file() or target.stat().st_size == 0:
                problems.append(f"{page}: download {anchor['href']} does not resolve")
    assert problems == []
