"""The probe view of the Training tab in a real browser (Debian's chromium driven by Playwright): a run's
cloze probes through training as curves and a top-1 table, switched to the best-ranked answer's
probability, narrowed to one probe, and refreshed after a new evaluation arrives. Screenshots go to
test-artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ARTIFACTS, app_process, chromium_page, fake_metrics, tiny_bert_dir

from workbench import watch

pytestmark = pytest.mark.slow

PLOT = "#probes-plot .js-plotly-plot"


def _probe(pid: int, p_answer: float, p_best: float, top1: str, rank: int) -> dict:
    return {"id": pid, "text": f"probe {pid} [MASK] .", "answers": ["cat"], "answer": "cat", "p_answer": p_answer,
            "p_best": p_best, "rank": rank, "top1": top1, "top1_p": 0.3}


def _evaluation(step: int, probes: list[dict]) -> dict:
    top1 = sum(p["rank"] == 1 for p in probes) / len(probes)
    return {"step": step, "tokens": 128 * step, "time": step / 5, "cloze_top1": top1, "cloze_top5": top1,
            "cloze_probes": len(probes), "probes": probes}


RECORDS = [_evaluation(25, [_probe(0, 0.01, 0.005, "the", 40), _probe(2, 0.02, 0.01, "the", 9)]),
           _evaluation(50, [_probe(0, 0.6, 0.5, "cat", 1), _probe(2, 0.1, 0.08, "dog", 3)])]
LATER = _evaluation(75, [_probe(0, 0.7, 0.65, "cat", 1), _probe(2, 0.4, 0.3, "cat", 1)])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app in a subprocess whose start model is the run `r` (the tiny model, a curve and two
    evaluations of probe records); yields (Chromium page, the run's folder)."""
    runs_dir = tmp_path_factory.mktemp("browser-probes") / "runs"
    run = runs_dir / "r"
    fake_metrics(run, steps=50)
    shutil.copytree(tiny_bert_dir(), run / "model")
    (run / watch.PROBE_RECORDS).write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    # live refresh every 10 s by default: the test's own Refresh click is what brings new records
    with app_process(run, runs_dir, answer_within=120, end_within=10) as url:
        with chromium_page(url, height=1800, timeout_ms=60_000) as page:
            yield page, run


def _traces(page) -> list[tuple[str, list, list]]:
    return page.evaluate(f"() => document.querySelector('{PLOT}').data.map(t => [t.name, t.x, t.y])")


def _wait_for_traces(page, names: list[str]) -> None:
    page.wait_for_function(f"names => {{ const p = document.querySelector('{PLOT}'); return p && p.data"
                           " && JSON.stringify(p.data.map(t => t.name)) === JSON.stringify(names); }", arg=names)


def _table(page) -> tuple[list[str], list[list[str]]]:
    """(headers, cells) of the top-1 table (gradio 6 draws its body as a virtual grid of divs)."""
    headers = page.eval_on_selector_all("#probes-table [role=columnheader]", "hs => hs.map(h => h.innerText.trim())")
    rows = page.eval_on_selector_all(
        "#probes-table [role=row].virtual-row",
        "rows => rows.map(r => Array.from(r.querySelectorAll('[role=gridcell]')).map(c => c.innerText.trim()))")
    return headers, rows


def test_probe_curves_table_value_probe_and_refresh_in_the_browser(served):
    page, run = served
    page.get_by_role("tab", name="Training").click()

    # the start model's run: one thin line per probe and their mean, of P(accepted answers) by step
    _wait_for_traces(page, ["r: probe 0", "r: probe 2", "mean of 2 probes"])
    traces = _traces(page)
    assert traces[0][1:] == [[25, 50], [0.01, 0.6]] and traces[1][1:] == [[25, 50], [0.02, 0.1]]
    assert traces[2][1] == [25, 50] and traces[2][2] == pytest.approx([0.015, 0.35])
    assert "P(accepted answers)" in page.evaluate(f"() => document.querySelector('{PLOT}').layout.title.text")
    page.wait_for_function("() => document.querySelectorAll('#probes-table [role=row].virtual-row').length === 2")
    headers, rows = _table(page)
    assert [h for h in headers if h] == ["probe", "answers", "step 25", "step 50"]
    assert rows == [["probe 0 [MASK] .", "cat", "the", "cat ✓"], ["probe 2 [MASK] .", "cat", "the", "dog"]]
    page.locator("#probes-plot").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "probes.png"), full_page=True)

    # the best-ranked answer's probability instead
    page.get_by_label("P(best-ranked answer)").check()
    page.wait_for_function(f"() => document.querySelector('{PLOT}').layout.title.text.includes('best-ranked')")
    _wait_for_traces(page, ["r: probe 0", "r: probe 2", "mean of 2 probes"])
    assert [t[2] for t in _traces(page)[:2]] == [[0.005, 0.5], [0.01, 0.08]]

    # one probe: its line and a mean over it alone
    box = page.get_by_label("probe", exact=True)
    box.click()
    box.fill("2: probe 2")
    page.get_by_role("option", name="2: probe 2 [MASK] .").click()
    _wait_for_traces(page, ["r: probe 2", "mean of 1 probes"])
    assert [t[2] for t in _traces(page)] == [[0.01, 0.08], [0.01, 0.08]]

    # a new evaluation written by the run appears on Refresh: a third point and a third table column
    with open(run / watch.PROBE_RECORDS, "a") as f:
        f.write(json.dumps(LATER) + "\n")
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function(f"() => document.querySelector('{PLOT}').data[0].x.length === 3")
    assert _traces(page)[0][1:] == [[25, 50, 75], [0.01, 0.08, 0.3]]
    headers, rows = _table(page)
    assert [h for h in headers if h][-1] == "step 75" and rows[1][-1] == "cat ✓"
    page.wait_for_timeout(2000)  # Refresh also rescans the run picker, whose change draws the view once more
    _wait_for_traces(page, ["r: probe 2", "mean of 1 probes"])
    page.screenshot(path=str(ARTIFACTS / "probes-one.png"), full_page=True)
