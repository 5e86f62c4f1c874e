"""The book (`make book`) works offline: every page opens from the built folder in Chromium,
its plotly figures draw, its maths renders, and no request leaves the machine.

By default the test builds a small book (00_tour and 01_embedding_spaces executed in tiny mode,
about a minute) with scripts/book.py into a temporary folder. `MMLAB_BOOK=build/book` tests an
already built book instead (every page of it: a minute or two per ten pages). Pages are opened
as file:// URLs, as a learner opens build/book/index.html; every request that is not a local
file (or data:/blob:) is recorded and aborted. Drives Debian's Chromium with Playwright (never
`playwright install`). Skips when Chromium, Playwright or Jupyter Book is missing
(`make book-deps` installs Jupyter Book). Screenshots go to build/screenshots/book_*.png.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--allow-file-access-from-files"]
SMALL_BOOK = ["00_tour", "01_embedding_spaces"]
FORMULAS = "span.math.notranslate, div.math.notranslate"  # Sphinx's, not MathJax's inner spans
LOCAL_SCHEMES = {"file", "data", "blob", "about", "chrome-error"}

pytestmark = [
    pytest.mark.browser, pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None,
                       reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(importlib.util.find_spec("jupyter_book") is None,
                       reason="Jupyter Book is not installed (make book-deps)"),
]


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """The built book's folder: MMLAB_BOOK, or a small book built here."""
    given = os.environ.get("MMLAB_BOOK")
    if given:
        folder = Path(given).resolve()
        assert (folder / "index.html").is_file(), f"MMLAB_BOOK={given}: no index.html there"
        return folder
    work = tmp_path_factory.mktemp("book")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "book.py"), "--notebooks",
                          *SMALL_BOOK, "--work", str(work / "work"), "--out", str(work / "html")],
                         env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, (f"scripts/book.py failed:\n{run.stdout[-3000:]}\n"
                                 f"{run.stderr[-5000:]}")
    return work / "html"


def _notebook_pages(book: Path) -> list[Path]:
    return sorted(p for p in book.glob("[0-9][0-9]_*.html"))


def test_book_folder_has_every_page_and_download(book):
    pages = _notebook_pages(book)
    assert pages, f"no notebook page in {book}"
    index = (book / "index.html").read_text(encoding="utf-8")
    for page in pages:
        name = page.stem
        assert f'href="{name}.html"' in index, f"the landing page does not link {name}"
        for edition in ("student", "instructor"):
            assert (book / edition / f"{name}.ipynb").is_file(), f"no {edition}/{name}.ipynb"
            assert f'href="{edition}/{name}.ipynb"' in page.read_text(encoding="utf-8")
    for heading in ("Before you start", "The path through the course"):
        assert heading in index
    assert "learner time" in index and "tiny mode" in index
    assert (book / "search.html").is_file() and (book / "searchindex.js").is_file()


def test_every_page_draws_offline(book):
    sync_api = pytest.importorskip("playwright.sync_api")
    pages = [book / "index.html", *_notebook_pages(book), book / "genindex.html"]
    outside, errors = [], []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def guard(route):
        url = route.request.url
        if urlparse(url).scheme in LOCAL_SCHEMES:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        context = browser.new_context(viewport={"width": 1300, "height": 900})
        context.route("**/*", guard)
        page = context.new_page()
        page.on("request", lambda r: None if urlparse(r.url).scheme in LOCAL_SCHEMES
                else outside.append(r.url))
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        try:
            for path in pages:
                page.goto(path.as_uri(), wait_until="load", timeout=120_000)
                if re.match(r"\d\d_", path.name):
                    _check_figures(page, path)
                    _check_maths(page, path)
                    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
                    page.screenshot(path=str(SCREENSHOTS / f"book_{path.stem}.png"))
            page.goto(book.joinpath("search.html").as_uri() + "?q=embedding", timeout=120_000)
            page.wait_for_function(
                "document.querySelectorAll('#search-results ul.search li').length > 0",
                timeout=60_000)
        finally:
            browser.close()
    assert not outside, f"requests left the machine: {sorted(set(outside))[:10]}"
    assert not errors, f"JavaScript errors: {errors[:5]}"


def _check_figures(page, path: Path) -> None:
    """Every plotly figure of the page has drawn its SVG (and there is at least one)."""
    page.wait_for_function(
        """() => {
            const divs = document.querySelectorAll('.plotly-graph-div');
            return divs.length > 0 && Array.from(divs).every(
                d => d.classList.contains('js-plotly-plot') && d.querySelector('svg.main-svg'));
        }""", timeout=120_000)
    drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .filter(d => d.querySelector('.scatterlayer .trace, .barlayer .trace, .heatmaplayer image,'
                                     + ' .imagelayer image, .heatmaplayer .hm, .gl-canvas'))
        .length""")
    assert drawn >= 1, f"{path.name}: no figure drew any data (traces, bars, heatmaps or images)"


def _check_maths(page, path: Path) -> None:
    """MathJax (the book's local copy) typeset every formula: no raw TeX, no error."""
    page.wait_for_function(
        "window.MathJax && MathJax.Hub && MathJax.Hub.queue && MathJax.Hub.queue.pending === 0"
        " && !MathJax.Hub.queue.running", timeout=120_000)
    page.wait_for_function(
        f"document.querySelectorAll('{FORMULAS}').length > 0 && Array.from("
        f"document.querySelectorAll('{FORMULAS}')).every("
        "m => m.querySelector('.MathJax, .MathJax_Display') !== null)",
        timeout=120_000)
    stats = page.evaluate("""() => ({
        formulas: document.querySelectorAll('span.math.notranslate, div.math.notranslate').length,
        rendered: document.querySelectorAll('span.MathJax, div.MathJax_Display').length,
        errors: document.querySelectorAll('.MathJax_Error, [data-mjx-error]').length,
        message: (document.getElementById('MathJax_Message') || {}).textContent || ''})""")
    assert stats["rendered"] >= stats["formulas"] > 0, f"{path.name}: {stats}"
    assert stats["errors"] == 0, f"{path.name}: MathJax errors: {stats}"
    assert "failed" not in stats["message"].lower(), f"{path.name}: {stats['message']}"
