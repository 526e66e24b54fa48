"""A pre-training run started in a real browser (Debian's chromium driven by Playwright): fill the
Train a model form, start a tiny run, watch its live curve grow, reload the page (the run goes on),
stop it. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, tiny_bert_dir
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from workbench import runs

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
WAIT_MS = 900_000  # how long a tiny run may take to reach a state on a loaded 2-core machine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory, small_corpus):
    """`workbench.app.launch` in a subprocess (as `workbench app` runs it) over a runs folder holding a
    small corpus file; the app is ended with SIGTERM, which must end its run too."""
    runs_dir = tmp_path_factory.mktemp("browser-runs") / "runs"
    runs_dir.mkdir()
    texts = list(small_corpus["train"]["text"]) + list(small_corpus["validation"]["text"])
    (runs_dir / "small.txt").write_text("\n\n".join(texts), encoding="utf-8")
    port = free_port()
    code = (f"from workbench.app import launch; launch({str(tiny_bert_dir())!r}, {str(runs_dir)!r}, port={port}, "
            "max_budget='10m')")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{proc.stdout.read()}")
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail("the app did not answer within 300 s")
            time.sleep(0.5)
        yield url, runs_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def _pick(page, elem_id: str, text: str) -> None:
    """Choose the option showing `text` in a gradio dropdown: type it to filter the options, click the
    option (Enter where none is listed: the dropdowns take typed values too)."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(text)
    option = page.get_by_role("option", name=re.compile(re.escape(text)))
    try:
        option.first.click(timeout=5_000)
    except PlaywrightTimeout:
        box.press("Enter")


def _state(page) -> tuple[str, int]:
    return page.evaluate("() => { const s = document.querySelector('#run-state');"
                         " return s ? [s.dataset.state, Number(s.dataset.step)] : ['', 0]; }")


def _curve_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('#run-plot .js-plotly-plot');"
                         " return p && p.data && p.data.length ? p.data[0].x.length : 0; }")


def test_start_watch_and_stop_a_run_in_the_browser(app):
    url, runs_dir = app
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium; run `make browser`")

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("tab", name="Train a model").click()
        page.locator("#run-name textarea, #run-name input").first.fill("browser run")
        _pick(page, "run-preset", "tiny")
        _pick(page, "run-corpus", "small.txt")
        page.locator("#run-budget textarea, #run-budget input").first.fill("10m")
        page.screenshot(path=str(ARTIFACTS / "run-form.png"), full_page=True)
        page.locator("#run-start").click()

        # running: the status panel names the run and the live curve gains points as records arrive
        page.wait_for_function("() => { const s = document.querySelector('#run-state');"
                               " return s && s.dataset.state === 'running' && Number(s.dataset.step) >= 10; }",
                               timeout=WAIT_MS)
        page.wait_for_function("() => { const p = document.querySelector('#run-plot .js-plotly-plot');"
                               " return p && p.data && p.data.length && p.data[0].x.length >= 1; }", timeout=WAIT_MS)
        first = _curve_points(page)
        page.wait_for_function("n => { const p = document.querySelector('#run-plot .js-plotly-plot');"
                               " return p && p.data[0].x.length > n; }", arg=first, timeout=WAIT_MS)
        assert _curve_points(page) > first
        page.screenshot(path=str(ARTIFACTS / "run-training.png"), full_page=True)

        # a reload finds the run where it is (its state lives in the server)
        page.reload()
        page.get_by_role("tab", name="Train a model").click()
        page.wait_for_function("() => { const s = document.querySelector('#run-state');"
                               " return s && s.dataset.state === 'running'; }", timeout=WAIT_MS)
        assert "browser-run" in page.locator("#run-state").inner_text()

        page.locator("#run-stop").click()
        page.wait_for_function("() => { const s = document.querySelector('#run-state');"
                               " return s && s.dataset.state === 'stopped'; }", timeout=WAIT_MS)
        state, step = _state(page)
        assert "Resume continues it" in page.locator("#run-state").inner_text()
        page.screenshot(path=str(ARTIFACTS / "run-stopped.png"), full_page=True)
        browser.close()
    summary = runs.summary_of(runs_dir / "browser-run")
    assert summary["stopped"] is True and summary["steps"] == step
    assert runs.latest_checkpoint(runs_dir / "browser-run").name == f"step-{step:08d}"
