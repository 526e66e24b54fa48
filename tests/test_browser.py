"""The app in a real browser (Debian's chromium driven by Playwright): type a sentence with a mask and
read the predictions off the page, then see a plotly heatmap on the attention tab. Screenshots go to
test-artifacts/ (git-ignored)."""

from __future__ import annotations

import shutil

import pytest
from conftest import ARTIFACTS, app_process, chromium_page, fake_metrics, tiny_bert_dir

from workbench import inspection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A Chromium page on the app, served in a subprocess with a run `demo` (the tiny model and a curve)
    as its start model."""
    runs_dir = tmp_path_factory.mktemp("browser") / "runs"
    fake_metrics(runs_dir / "demo")
    shutil.copytree(tiny_bert_dir(), runs_dir / "demo" / "model")
    with app_process(runs_dir / "demo", runs_dir, answer_within=90, end_within=10) as url:
        with chromium_page(url, height=1200, timeout_ms=30_000) as pg:
            yield pg


def _table_rows(pg) -> list[list[str]]:
    """The cells of the predictions table (gradio 6 draws the body as a virtual grid of divs)."""
    return pg.eval_on_selector_all(
        "#fill-table [role=row].virtual-row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))")


def test_fill_mask_in_the_browser(page):
    model, tok = inspection.load_mlm(tiny_bert_dir())
    text = "police said the [MASK] was arrested on friday ."
    expected = [c["token"] for c in inspection.fill_mask(model, tok, text, top_k=5).predictions[0]]

    box = page.locator("#fill-text textarea")
    assert "[MASK]" in box.get_attribute("placeholder")  # the model's own mask token is shown
    box.fill("")
    box.press_sequentially(text, delay=5)  # no Enter: results must come as you type
    # Wait for all five: a superseded keystroke's text ("... on frida") often has the same best token but
    # another order below it, so waiting for the first cell alone read a stale table now and then.
    page.wait_for_function(
        "toks => toks.every((tok, i) => {"
        " const c = document.querySelector(`#fill-table [data-testid=\"cell-${i}-2\"]`);"
        " return c && c.innerText.trim() === tok; })", arg=expected)
    rows = _table_rows(page)
    assert [r[2] for r in rows[:5]] == expected
    assert [r[1] for r in rows[:5]] == ["1", "2", "3", "4", "5"]
    # the message may still carry gradio's "processing" overlay of a superseded keystroke: wait for it
    page.wait_for_function("tok => document.querySelector('#fill-message').innerText.trim().startsWith('mask 1: ' + "
                           "tok)",
                           arg=expected[0])
    # the plot is drawn after the table and message update (plotly renders client-side): wait for it
    page.wait_for_selector("#fill-plot .js-plotly-plot", timeout=30_000)
    assert page.locator("#fill-plot .js-plotly-plot").count() == 1
    page.screenshot(path=str(ARTIFACTS / "fill-mask.png"), full_page=True)

    # a sentence without a mask: a readable message on the page, not a traceback
    box.fill("a sentence without any mask")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#fill-message').innerText.includes('no mask token')")
    assert "Traceback" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "fill-mask-no-mask.png"), full_page=True)


def test_attention_tab_shows_a_heatmap(page):
    page.get_by_role("tab", name="Attention").click()
    page.get_by_role("button", name="Show attention").click()
    page.wait_for_selector("#attention-heatmap .js-plotly-plot")
    page.wait_for_function("() => { const p = document.querySelector('#attention-heatmap .js-plotly-plot');"
                           " return p && p.data && p.data.length > 0; }")
    traces = page.evaluate("() => document.querySelector('#attention-heatmap .js-plotly-plot').data.map(t => t.type)")
    assert traces == ["heatmap"]
    title = page.evaluate("() => document.querySelector('#attention-heatmap .js-plotly-plot').layout.title.text")
    assert "layer 1" in title and "average of all heads" in title
    assert page.locator("#attention-headview .js-plotly-plot").count() == 1
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "attention.png"), full_page=True)
