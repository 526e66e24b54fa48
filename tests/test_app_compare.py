"""Comparing runs and checkpoints in the app: the x-axis conversions (step, tokens, time, estimated
FLOPs) and budget marks on hand-built records, the start model's own curve, the probe view and its
/probes endpoint, the checkpoint pickers and fill-mask side by side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import fake_metrics, served_app, tiny_bert_dir
from transformers import AutoModelForMaskedLM

from workbench import export, inspection, loading, plots, watch
from workbench.app import curves as curves_tab
from workbench.app import probes_view
from workbench.app.shell import Workbench

RECORDS = [
    {"kind": "train", "step": 10, "time": 2.0, "tokens": 1280, "loss": 7.0},
    {"kind": "train", "step": 20, "time": 4.5, "tokens": 2560, "loss": 6.5},
    {"kind": "eval", "step": 20, "time": 4.5, "tokens": 2560, "val_loss": 6.6, "val_mask_accuracy": 0.05,
     "cloze_top1": 0.1, "cloze_top5": 0.25},
]


# ---- pure: axes, budgets, table ------------------------------------------------------------------

def test_x_axes_are_exact_conversions_of_the_records():
    for x, want in (("step", [10, 20]), ("tokens", [1280, 2560]), ("time", [2.0, 4.5]),
                    ("flops", [6 * 1000 * 1280, 6 * 1000 * 2560])):
        fig = plots.run_comparison({"a": RECORDS}, x=x, y="loss", parameters={"a": 1000})
        assert list(fig.data[0].x) == want and list(fig.data[0].y) == [7.0, 6.5], x
    # no parameter count: no FLOPs, an empty figure that says so rather than a wrong axis
    assert not plots.run_comparison({"a": RECORDS}, x="flops", y="loss").data
    assert plots.training_flops(6_400_000, 17_760_256) == 6 * 6_400_000 * 17_760_256
    assert plots.training_flops(None, 100) is None


def test_budget_marks_on_every_axis():
    config = {"train": {"max_steps": 100, "time_budget": "2m"}}
    assert curves_tab.budget_marks(config, None, RECORDS, 1000) == {
        "step": 100, "tokens": 100 * 128.0, "time": 120.0, "flops": 6 * 1000 * 12800.0}
    # a finished time-budget run stopped at its budget: its end marks the other axes
    finished = {"steps": 80, "tokens": 10240, "train_time": 60.4}
    assert curves_tab.budget_marks({"train": {"time_budget": "1m"}}, finished, RECORDS, None) == {
        "time": 60.0, "step": 80, "tokens": 10240}
    assert curves_tab.budget_marks(None, None, RECORDS, 1000) == {}
    fig = plots.run_comparison({"a": RECORDS}, x="step", parameters={"a": 1000}, budgets={"a": 100})
    assert [s.x0 for s in fig.layout.shapes] == [100]


def test_comparison_rows_hold_the_final_mask_only_accuracy_and_cloze_scores():
    rows = curves_tab.comparison_rows({"a": RECORDS}, {"a": 1000}, {"a": {"train": {"time_budget": "2m"}}})
    assert rows == [["a", 20, 2560, 4.5, 1000, f"{6 * 1000 * 2560:.3g}", "2m", 6.5, 6.6, None, 0.05, 0.1, 0.25]]
    assert len(rows[0]) == len(curves_tab.TABLE_HEADERS)


def _probe_lines() -> list[dict]:
    def probe(pid, p, top1, rank):
        return {"id": pid, "text": f"probe {pid} [MASK] .", "answers": ["cat"], "answer": "cat", "p_answer": p,
                "p_best": p, "rank": rank, "top1": top1, "top1_p": 0.3}
    return [{"step": 25, "tokens": 3200, "time": 5.0, "cloze_top1": 0.0, "cloze_top5": 0.0, "cloze_probes": 2,
             "probes": [probe(0, 0.01, "the", 40), probe(2, 0.02, "the", 9)]},
            {"step": 50, "tokens": 6400, "time": 10.0, "cloze_top1": 0.5, "cloze_top5": 1.0, "cloze_probes": 2,
             "probes": [probe(0, 0.6, "cat", 1), probe(2, 0.1, "dog", 3)]}]


def test_probe_curves_and_top1_table_from_records(tmp_path):
    (tmp_path / "probes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _probe_lines()) + '{"step": 75')
    fig = plots.probe_curves(tmp_path, x="tokens")
    lines = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    assert lines[f"{tmp_path.name}: probe 0"] == ([3200, 6400], [0.01, 0.6])
    assert lines[f"{tmp_path.name}: probe 2"] == ([3200, 6400], [0.02, 0.1])
    assert lines["mean of 2 probes"] == ([3200, 6400], [pytest.approx(0.015), pytest.approx(0.35)])
    only = plots.probe_curves(_probe_lines(), probe_ids=[2])
    assert [t.name for t in only.data] == ["run: probe 2", "mean of 1 probes"]
    rows, headers = probes_view.top1_table(_probe_lines())
    assert headers == ["probe", "answers", "step 25", "step 50"]
    assert rows == [["probe 0 [MASK] .", "cat", "the", "cat ✓"], ["probe 2 [MASK] .", "cat", "the", "dog"]]


# ---- the app's handlers on a hand-built run directory ----------------------------------------------

def _model_with_records(path: Path) -> Path:
    """A model directory (the tiny BERT) holding its own metrics.jsonl and probes.jsonl, as a shipped
    model with its curve would."""
    shutil.copytree(tiny_bert_dir(), path)
    fake_metrics(path, steps=100)
    (path / watch.PROBE_RECORDS).write_text("".join(json.dumps(r) + "\n" for r in _probe_lines()))
    return path


def _runs_dir(root: Path) -> Path:
    """runs/r: a run with a final model, metrics, probe records and two snapshots."""
    run = root / "runs" / "r"
    shutil.copytree(tiny_bert_dir(), run / "model")
    shutil.copytree(tiny_bert_dir(), run / "tokenizer")
    fake_metrics(run, steps=100)
    (run / "config.json").write_text(json.dumps({"kind": "pretrain", "train": {"max_steps": 100}}))
    (run / watch.PROBE_RECORDS).write_text("".join(json.dumps(r) + "\n" for r in _probe_lines()))
    model = loading.load_model(AutoModelForMaskedLM, tiny_bert_dir())
    for step in (25, 50):
        with torch.no_grad():
            model.bert.embeddings.word_embeddings.weight.mul_(0.5)  # each snapshot differs from the final model
        watch.save_snapshot(model, watch.snapshot_dir(run, step))
    return root / "runs"


def test_the_start_models_own_curve_and_probe_records_are_shown(tmp_path):
    start = _model_with_records(tmp_path / "shipped")
    wb = Workbench(start, tmp_path / "runs")
    assert wb.metric_runs() == [str(start)] and wb.probe_runs() == [(f"start model: {start}", str(start))]
    fig, rows, msg = wb.training_plot([str(start)], "step", "loss")
    assert [t.name for t in fig.data] == ["shipped"] and rows[0][:3] == ["shipped", 100, 100 * 4096] and not msg
    data = wb.probes_api([str(start)])
    assert data["runs"]["shipped"] == _probe_lines() and data["refused"] == []
    # without records the start model is not offered
    assert Workbench(tiny_bert_dir(), tmp_path / "runs").metric_runs() == []


def test_an_exported_model_carries_its_curve_and_probe_records_into_the_app(tmp_path):
    run = _runs_dir(tmp_path) / "r"
    (run / "summary.json").write_text(json.dumps({"steps": 100, "tokens": 409600, "train_time": 10.0}))
    shipped = export.export_model(run, tmp_path / "shipped", half=True)
    assert (shipped / "metrics.jsonl").read_text() == (run / "metrics.jsonl").read_text()
    assert watch.read_probe_records(shipped) == _probe_lines()
    wb = Workbench(shipped, tmp_path / "other-runs")
    assert wb.metric_runs() == [str(shipped)]
    assert wb.probes_api([str(shipped)])["runs"] == {"shipped": _probe_lines()}


def test_checkpoint_picker_lists_snapshots_and_refuses_other_paths(tmp_path):
    runs_dir = _runs_dir(tmp_path)
    wb = Workbench(tiny_bert_dir(), runs_dir)
    assert wb.checkpoint_choices("r") == [("final model (as picked)", ""),
                                          ("step 25 (snapshot, float16)", "snapshots/step-00000025"),
                                          ("step 50 (snapshot, float16)", "snapshots/step-00000050")]
    assert wb.checkpoint_choices("") == [("final model (as picked)", "")]  # a model directory: no run
    final = wb.fill_mask_api("the [MASK] said .", 3, "r")
    early = wb.fill_mask_api("the [MASK] said .", 3, "r", "snapshots/step-00000025")
    assert final["predictions"] != early["predictions"]
    assert wb.checkpoint_path("r", "snapshots/step-00000050") == str((runs_dir / "r" / "snapshots" /
                                                                      "step-00000050").resolve())
    for bad in ("../../r/model", "/etc", "snapshots/step-00000099"):
        with pytest.raises(inspection.InspectionError):
            wb.checkpoint_path("r", bad)
    att = wb.attention_api("the cat sat", "r", "snapshots/step-00000025")
    assert att["shape"][:2] == [2, 2]


def test_fill_mask_side_by_side_shares_one_probability_axis(tmp_path):
    wb = Workbench(tiny_bert_dir(), _runs_dir(tmp_path))
    fig, msg = wb.fill_mask_compare("the [MASK] said .", 3, "r", "", "r", "snapshots/step-00000025")
    a = wb.fill_mask_api("the [MASK] said .", 3, "r")["predictions"][0]
    b = wb.fill_mask_api("the [MASK] said .", 3, "r", "snapshots/step-00000025")["predictions"][0]
    assert [list(t.x) for t in fig.data] == [[c["score"] for c in a][::-1], [c["score"] for c in b][::-1]]
    top = max(c["score"] for c in a + b)
    assert fig.layout.xaxis.range == fig.layout.xaxis2.range == (0, pytest.approx(top * 1.05))
    assert "r @ step-00000025" in msg
    _, refused = wb.fill_mask_compare("the [MASK] said .", 3, "r", "", "../elsewhere", "")
    assert "outside the runs directory" in refused


# ---- served, through gradio_client ---------------------------------------------------------------------

@pytest.mark.slow
def test_probes_endpoint_and_comparison_through_the_client(tmp_path):
    with served_app(_runs_dir(tmp_path)) as (demo, client, runs_dir):
        got = client.predict(["r", "../.."], api_name="/probes")
        assert got["runs"] == {"r": _probe_lines()} and got["refused"] == ["../.."]
        flops = client.predict(["r"], "flops", "loss", api_name="/training_plot")
        params = curves_tab.parameter_count(runs_dir / "r")
        assert params and flops["series"]["r"]["x"][0] == 6 * params * 10 * 4096
        assert flops["rows"][0][curves_tab.TABLE_HEADERS.index("budget")] == "100 steps"
        early = client.predict("the [MASK] said .", 3, "r", "snapshots/step-00000025", api_name="/fill_mask")
        assert early == demo.workbench.fill_mask_api("the [MASK] said .", 3, "r", "snapshots/step-00000025")
