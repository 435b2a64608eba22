"""How heavy each page of the built book is for a reader: the HTML plus everything a browser loads
to show it (images, CSS, JavaScript, fonts, MathJax), measured in Debian's Chromium over a local
http.server, and the size of the whole site.

    python benchmarks/page_weight.py [_build/html] [--json FILE]

A file's weight is its size on disk (what file:// reads, and what an uncompressed server sends).
Images the page links but the browser did not fetch yet (lazy loading) are counted too, so the
number is what a reader who scrolls to the end has downloaded. tests/test_browser.py measures the
same way and holds every page under PAGE_BUDGET.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# A page's own weight, its HTML and its images (what the issue measures and what a reader downloads
# for every further page), must stay under PAGE_BUDGET. The shared assets (the theme's CSS, JS and
# fonts, KaTeX) are the same files on every page: downloaded once, then cached by the browser (and
# compressed by any web server); their total has its own budget, so that one heavy file (the
# theme's 1.5 MB fontawesome.js was one) cannot creep back.
PAGE_BUDGET = 2 * 1024 * 1024  # bytes: a page's HTML and its images
SHARED_BUDGET = int(1.5 * 1024 * 1024)  # bytes: every other file any page loads, counted once
CHROMIUM = "/usr/bin/chromium"  # Debian's chromium (make system-packages); never Playwright's own
# As root Chromium needs --no-sandbox; the rest keeps it from phoning home (each refused
# connection would be a failed request) and from reusing anything between runs. Playwright gives
# every launch a fresh --user-data-dir of its own.
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-default-apps", "--disable-extensions", "--mute-audio"]


def toc_pages(repo_root: Path = REPO_ROOT) -> list[str]:
    """The pages of the table of contents in reading order, e.g. 'book/intro'."""
    toc = yaml.safe_load((repo_root / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - no access log on stderr
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """A local http.server on a free port for ``directory``; yields its base URL ('http://.../')."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def local_file(html_dir: Path, base: str, url: str) -> Path | None:
    """The built file a URL of the local server (or a file:// URL into the site) reads."""
    parts = urlsplit(url)
    if url.startswith(base):
        relative = unquote(parts.path)[len(urlsplit(base).path):]
        path = html_dir / relative
    elif parts.scheme == "file":
        path = Path(unquote(parts.path))
    else:
        return None
    if path.is_dir():
        path = path / "index.html"
    return path if path.is_file() else None


def page_weight(html_dir: Path, base: str, page_url: str, loaded: list[str],
                linked_images: list[str]) -> dict[str, int]:
    """{site-relative path: bytes} of the page, what the browser loaded, and its linked images."""
    files = {}
    for url in [page_url, *loaded, *(urljoin(page_url, src) for src in linked_images)]:
        path = local_file(html_dir, base, url.split("#")[0])
        if path is not None:
            files[str(path.resolve().relative_to(html_dir.resolve()))] = path.stat().st_size
    return files


def is_own(page: str, name: str) -> bool:
    """Whether a loaded file belongs to the page itself (its HTML, its images), not to the site."""
    return name == f"{page}.html" or name.startswith("_images/")


def split_weight(weights: dict[str, dict[str, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """({page: bytes of its HTML and images}, {shared file: bytes}, each shared file once)."""
    own = {page: sum(size for name, size in files.items() if is_own(page, name)) for page, files in weights.items()}
    shared = {name: size for page, files in weights.items() for name, size in files.items() if not is_own(page, name)}
    return own, shared


def site_size(html_dir: Path) -> int:
    return sum(p.stat().st_size for p in html_dir.rglob("*") if p.is_file())


def measure(html_dir: Path, pages: list[str] | None = None) -> dict[str, dict[str, int]]:
    """{page: {file: bytes}} for every page of the table of contents, loaded in Chromium."""
    from playwright.sync_api import sync_playwright

    html_dir = Path(html_dir)
    pages = pages or toc_pages()
    weights = {}
    with serve(html_dir) as base, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        for page_name in pages:
            tab = context.new_page()
            loaded: list[str] = []
            tab.on("requestfinished", lambda request: loaded.append(request.url))
            url = urljoin(base, f"{page_name}.html")
            tab.goto(url, wait_until="load")
            # Math typeset (KaTeX fonts fetched), or no math on the page.
            tab.wait_for_function("!document.querySelector('.math') || document.documentElement.dataset.math",
                                  timeout=20000)
            tab.wait_for_timeout(300)
            images = tab.eval_on_selector_all("img[src]", "els => els.map(e => e.getAttribute('src'))")
            weights[page_name] = page_weight(html_dir, base, url, loaded, images)
            tab.close()
        browser.close()
    return weights


def report(weights: dict[str, dict[str, int]], html_dir: Path) -> str:
    own, shared = split_weight(weights)
    lines = [f"{'page':40s} {'own':>9s} {'html':>9s} {'images':>10s} {'first visit':>12s}"]
    for page, files in sorted(weights.items(), key=lambda item: -own[item[0]]):
        html = sum(size for name, size in files.items() if name == f"{page}.html")
        flag = "  OVER 2 MB" if own[page] > PAGE_BUDGET else ""
        lines.append(f"{page:40s} {own[page] / 1e6:8.2f}M {html / 1e6:8.2f}M {(own[page] - html) / 1e6:9.2f}M "
                     f"{sum(files.values()) / 1e6:11.2f}M{flag}")
    heaviest = sorted(shared.items(), key=lambda item: -item[1])[:5]
    lines.append(f"shared assets (loaded once, then cached): {sum(shared.values()) / 1e6:.2f} MB in {len(shared)} files"
                 f"{'  OVER BUDGET' if sum(shared.values()) > SHARED_BUDGET else ''}; heaviest: "
                 + ", ".join(f"{name} {size / 1e3:.0f} kB" for name, size in heaviest))
    lines.append(f"whole site: {site_size(html_dir) / 1e6:.1f} MB in {html_dir}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", default=str(REPO_ROOT / "_build" / "html"))
    parser.add_argument("--json", help="write {page: {file: bytes}} here")
    args = parser.parse_args(argv)
    html_dir = Path(args.html)
    weights = measure(html_dir)
    print(report(weights, html_dir))
    if args.json:
        Path(args.json).write_text(json.dumps(weights, indent=1))
    return 0 if all(sum(files.values()) <= PAGE_BUDGET for files in weights.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
