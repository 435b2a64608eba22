/* Replaces the theme's scripts/fontawesome.js (pydata-sphinx-theme, 1.5 MB: Font Awesome's
 * JavaScript, which swaps every icon for an inline SVG). The theme's style sheet already draws the
 * same icons from Font Awesome's web fonts, so the book loads those instead and every page is
 * 1.5 MB lighter (tests/test_browser.py holds each page under 2 MB). Sphinx copies the book's
 * _static/ over the theme's, so this file wins. */
