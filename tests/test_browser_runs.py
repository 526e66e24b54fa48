"""A pre-training run started in a real browser (Debian's chromium driven by Playwright): fill the
Train a model form, start a tiny run, watch its live curve grow, reload the page (the run goes on),
stop it. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re

import pytest
from conftest import ARTIFACTS, app_process, chromium_page, tiny_bert_dir
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from workbench import runs

WAIT_MS = 900_000  # how long a tiny run may take to reach a state on a loaded 2-core machine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory, small_corpus):
    """The app in a subprocess (as `workbench app` runs it) over a runs folder holding a small corpus
    file; it is ended with SIGTERM, which must end its run too."""
    runs_dir = tmp_path_factory.mktemp("browser-runs") / "runs"
    runs_dir.mkdir()
    texts = list(small_corpus["train"]["text"]) + list(small_corpus["validation"]["text"])
    (runs_dir / "small.txt").write_text("\n\n".join(texts), encoding="utf-8")
    with app_process(tiny_bert_dir(), runs_dir, answer_within=300, end_within=120, max_budget="10m") as url:
        yield url, runs_dir


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
    with chromium_page(url, height=1400, timeout_ms=60_000) as page:
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
    summary = runs.summary_of(runs_dir / "browser-run")
    assert summary["stopped"] is True and summary["steps"] == step
    assert runs.latest_checkpoint(runs_dir / "browser-run").name == f"step-{step:08d}"
