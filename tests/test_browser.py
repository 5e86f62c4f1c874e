"""Real-browser test: JupyterLab draws our plotly figures offline, and the τ slider redraws the softmax.

Starts a headless JupyterLab on 127.0.0.1 (free port, random token) on a temporary copy of
tests/assets/browser_demo.ipynb, drives Debian's Chromium with Playwright (never
`playwright install`), runs all cells, checks that the scatter plot has drawn points, moves the
τ slider with the keyboard and checks that the softmax bars change, and that JupyterLab never
asked about "official Jupyter news". JupyterLab gets the project's settings exactly as `make lab`
passes them (the Makefile's LAB_CONFIG). Saves a screenshot to build/screenshots/ as a test
artefact.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "tests" / "assets" / "browser_demo.ipynb"
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

NEWS_QUESTION = "official Jupyter news"  # "Would you like to get notified about official ..."

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


def _lab_config_flag() -> str:
    """`make lab`'s --config flag (the Makefile's LAB_CONFIG), with an absolute path."""
    m = re.search(r"^LAB_CONFIG := --config=(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile has no `LAB_CONFIG := --config=...` line for `make lab`"
    return f"--config={ROOT / m.group(1)}"


def _bar_paths(page, plot_index: int) -> list[str]:
    return page.evaluate(
        """(i) => {
            const plots = document.querySelectorAll('.jupyter-widgets .js-plotly-plot');
            if (plots.length <= i) return [];
            return Array.from(plots[i].querySelectorAll('.barlayer .point path')).map(p => p.getAttribute('d'));
        }""", plot_index)


def test_notebook_plots_render_and_slider_updates(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "MMLAB_HTML_EXPORT": "0", "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrun"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
         "--allow-root", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}",
         _lab_config_flag(), "--ServerApp.port_retries=0"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = context = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/lab?token={token}", timeout=90)
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chrome-profile"), executable_path=CHROMIUM, headless=True, args=CHROME_ARGS,
                viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            try:
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}", timeout=120_000)
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                try:  # JupyterLab may ask which kernel to start: accept the preselected python3
                    page.wait_for_selector(".jp-Dialog", timeout=10_000)
                    page.locator(".jp-Dialog button.jp-mod-accept").first.click()
                except sync_api.TimeoutError:
                    pass
                page.wait_for_function(  # the kernel has started (status text, visible or not)
                    "Array.from(document.querySelectorAll('span')).some(s => /Kernel status: Idle/"
                    ".test(s.textContent.trim()))", timeout=120_000)
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()

                # the scatter plot is drawn: SVG points (or a WebGL canvas for big data)
                page.wait_for_selector(".js-plotly-plot svg.main-svg .scatterlayer .point, "
                                       ".js-plotly-plot canvas.gl-canvas", timeout=180_000)
                n_points = page.locator(".js-plotly-plot .scatterlayer .point").count()
                assert n_points >= 40, f"expected ≥ 40 drawn points (20 pairs × 2 modalities), got {n_points}"

                # the τ explorer is drawn: bars of the softmax figure inside the widget
                page.wait_for_function(
                    "document.querySelectorAll('.jupyter-widgets .js-plotly-plot .barlayer .point path').length >= 8",
                    timeout=120_000)
                before = _bar_paths(page, 0)
                assert len(before) == 8
                text_before = page.locator(".widget-html-content", has_text="entropy").first.inner_text()

                handle = page.locator(".widget-slider .noUi-handle").first
                handle.scroll_into_view_if_needed()
                handle.focus()
                for _ in range(40):  # 40 steps of 0.02 decades: τ from 0.1 to ~0.6
                    handle.press("ArrowRight")
                page.wait_for_function(
                    """(before) => {
                        const plots = document.querySelectorAll('.jupyter-widgets .js-plotly-plot');
                        if (!plots.length) return false;
                        const d = Array.from(plots[0].querySelectorAll('.barlayer .point path')).map(p => p.getAttribute('d'));
                        return d.length === before.length && d.some((x, i) => x !== before[i]);
                    }""", arg=before, timeout=60_000)
                after = _bar_paths(page, 0)
                assert after != before, "moving the τ slider did not change the softmax bars"
                text_after = page.locator(".widget-html-content", has_text="entropy").first.inner_text()
                assert text_after != text_before

                # long after the start, JupyterLab has not asked whether it may fetch the news
                # (the toast, if any, stays until answered; the notification list keeps it too)
                asked = NEWS_QUESTION in page.content()
                assert not asked, f"JupyterLab asked the learner about {NEWS_QUESTION!r}"
            finally:
                if page is not None:
                    page.screenshot(path=str(SCREENSHOTS / "browser_demo.png"), full_page=True)
                context.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
