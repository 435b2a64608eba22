/* Typesets the page's math with KaTeX, which the built site serves itself: math reads the same
 * offline and from file:// as online. `make book-assets` copies KaTeX from npm into _static/katex/;
 * Jupyter Book adds every script and style sheet under _static/ to every page (KaTeX included),
 * and Sphinx loads this file as its `mathjax_path` (_config.yml) instead of MathJax from a CDN.
 * Sphinx writes inline math as <span class="math">\(...\)</span>, display math as
 * <div class="math">\[...\]</div> and amsmath environments as <div class="math">\begin{...}</div>,
 * with an equation number in <span class="eqno"> when labelled. When done, <html data-math> says
 * "typeset" (or "failed"), which tests/test_browser.py waits for. */
(function () {
  "use strict";
  if (window.bookMath) return; // the page includes this script twice (see above)
  window.bookMath = true;

  function tex(element) {
    var parts = [];
    element.childNodes.forEach(function (node) {
      if (node.nodeType === Node.TEXT_NODE) parts.push(node.textContent);
    });
    var source = parts.join("").trim();
    var inline = source.match(/^\\\(([\s\S]*)\\\)$/);
    if (inline) return { source: inline[1], display: false };
    var display = source.match(/^\\\[([\s\S]*)\\\]$/);
    if (display) return { source: display[1], display: true };
    return { source: source, display: element.tagName !== "SPAN" };
  }

  function typeset() {
    if (typeof katex === "undefined") {
      document.documentElement.dataset.math = "failed";
      console.error("KaTeX is missing from _static/katex/ (run make book-assets, then rebuild the book)");
      return;
    }
    var failed = 0;
    document.querySelectorAll("span.math, div.math").forEach(function (element) {
      if (element.dataset.typeset) return;
      var math = tex(element);
      var number = element.querySelector(".eqno");
      try {
        katex.render(math.source, element, {
          displayMode: math.display, throwOnError: true, strict: "ignore", trust: false,
        });
      } catch (error) {
        failed += 1;
        console.warn("KaTeX could not typeset " + math.source + ": " + error);
        return;
      }
      if (number) element.insertBefore(number, element.firstChild);
      element.dataset.typeset = "katex";
    });
    document.documentElement.dataset.math = failed ? "failed" : "typeset";
    focusableWhenScrolling();
  }

  // A display formula wider than the column scrolls in its own box (book.css); a keyboard user
  // must be able to reach that box to scroll it, so it takes focus while it scrolls.
  function focusableWhenScrolling() {
    document.querySelectorAll("div.math").forEach(function (element) {
      if (element.scrollWidth > element.clientWidth + 1) {
        element.tabIndex = 0;
        element.setAttribute("role", "region");
        element.setAttribute("aria-label", "formula (scrolls sideways)");
      } else {
        element.removeAttribute("tabindex");
        element.removeAttribute("role");
        element.removeAttribute("aria-label");
      }
    });
  }
  window.addEventListener("resize", focusableWhenScrolling);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", typeset);
  else typeset();
})();
