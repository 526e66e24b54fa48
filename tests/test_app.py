"""The running app, driven through gradio_client: endpoints return the right values, bad input gives
readable messages, paths outside the runs directory are refused, and concurrent requests all succeed."""

from __future__ import annotations

import base64
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import fake_metrics, served_app, tiny_bert_dir

from workbench import app as app_module
from workbench import embeddings, inspection, simcse
from workbench.app import core as app_core
from workbench.config import SimCSEConfig

# Every test here serves the app (a gradio server on a free port); the SimCSE ones also train an encoder.
pytestmark = pytest.mark.slow


def plotly_array(value) -> np.ndarray:
    """A data array from figure JSON: plotly 6+ writes numpy arrays as base64 typed arrays."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr
    return np.array(value)


def make_runs_dir(root: Path) -> Path:
    """runs/pre (a masked LM + metrics), runs/live (metrics only: a run still training),
    runs/clf (a fine-tuned sequence classifier)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    runs_dir = root / "runs"
    shutil.copytree(tiny_bert_dir(), runs_dir / "pre" / "model")
    fake_metrics(runs_dir / "pre")
    fake_metrics(runs_dir / "live", steps=60, slope=0.03, time_per_step=0.2)
    torch.manual_seed(0)
    cfg = BertConfig.from_pretrained(tiny_bert_dir())
    cfg.num_labels, cfg.id2label, cfg.label2id = 2, {0: "negative", 1: "positive"}, {"negative": 0, "positive": 1}
    BertForSequenceClassification(cfg).save_pretrained(runs_dir / "clf" / "model")
    AutoTokenizer.from_pretrained(tiny_bert_dir()).save_pretrained(runs_dir / "clf" / "model")
    return runs_dir


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app on a free loopback port, started with the tiny model as its start model."""
    with served_app(make_runs_dir(tmp_path_factory.mktemp("app"))) as s:
        yield s


def test_api_names(served):
    _, client, _ = served
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/fill_mask", "/attention", "/training_plot", "/fill_mask_view", "/attention_view", "/masking",
            "/classify"} <= names


def test_fill_mask_endpoint_equals_inspection(served):
    demo, client, _ = served
    model, tok = inspection.load_mlm(tiny_bert_dir())
    text = "the [MASK] of the [MASK] states"
    got = client.predict(text, 4, "", api_name="/fill_mask")
    ref = inspection.fill_mask(model, tok, text, top_k=4)
    assert got["mask_token"] == "[MASK]" and got["tokens"] == ref.tokens and got["notice"] is None
    assert [[c["token"] for c in m] for m in got["predictions"]] == [[c["token"] for c in m] for m in ref.predictions]
    assert np.allclose([c["score"] for m in got["predictions"] for c in m],
                       [c["score"] for m in ref.predictions for c in m], atol=1e-6)
    # the same model through a run name under the runs directory
    by_run = client.predict(text, 4, "pre", api_name="/fill_mask")
    assert by_run["predictions"] == got["predictions"]


def test_fill_mask_view_table_and_plot(served):
    _, client, _ = served
    plot, table, msg = client.predict("the [MASK] of the united states", 3, str(tiny_bert_dir()),
                                      api_name="/fill_mask_view")
    assert table["headers"] == ["mask", "rank", "token", "probability"]
    assert [row[:2] for row in table["data"]] == [[1, 1], [1, 2], [1, 3]]
    fig = json.loads(plot["plot"])
    assert plot["type"] == "plotly" and [t["type"] for t in fig["data"]] == ["bar"]
    assert msg.startswith("mask 1: **")


@pytest.mark.parametrize("text, expected", [
    ("a sentence without a mask", "no mask token"),
    ("   ", "empty"),
])
def test_bad_input_gives_a_message_not_a_traceback(served, text, expected):
    _, client, _ = served
    plot, table, msg = client.predict(text, 5, "", api_name="/fill_mask_view")
    assert plot is None and table["data"] in ([], [[]],
                                              [["", "", "", ""]]) and expected in msg and "Traceback" not in msg
    with pytest.raises(Exception, match=expected):
        client.predict(text, 5, "", api_name="/fill_mask")
    # and the app keeps serving
    assert client.predict("the [MASK] .", 2, "", api_name="/fill_mask")["predictions"]


def test_too_long_text_is_truncated_with_a_notice(served):
    _, client, _ = served
    got = client.predict("the [MASK] said " + "the market rose . " * 80, 3, "", api_name="/fill_mask")
    assert len(got["tokens"]) == 128 and "cut to the first 128" in got["notice"]
    _, _, msg = client.predict("the [MASK] said " + "the market rose . " * 80, 3, "", api_name="/fill_mask_view")
    assert "cut to the first 128" in msg


def test_paths_outside_the_runs_directory_are_refused(served, tmp_path):
    demo, client, runs_dir = served
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_bert_dir(), elsewhere)  # a perfectly loadable model, but outside
    for bad in (str(elsewhere), "../" * 8 + "etc", str(runs_dir / ".." / "x")):
        with pytest.raises(Exception, match="refused"):
            client.predict("the [MASK] .", 3, bad, api_name="/fill_mask")
        _, _, msg = client.predict("the [MASK] .", 3, bad, api_name="/fill_mask_view")
        assert "refused" in msg
    with pytest.raises(Exception, match="refused"):
        client.predict("the cat", str(elsewhere), api_name="/attention")
    series = client.predict(["pre", "../../.."], "step", "loss", api_name="/training_plot")
    assert list(series["series"]) == ["pre"] and "refused" in series["message"]
    assert str(elsewhere) not in demo.workbench.mlms._items


def test_unloadable_checkpoint_inside_runs_dir(served):
    _, client, runs_dir = served
    (runs_dir / "broken").mkdir(exist_ok=True)
    (runs_dir / "broken" / "config.json").write_text("{not json")
    (runs_dir / "broken" / "model.safetensors").write_bytes(b"junk")
    _, _, msg = client.predict("the [MASK] .", 3, "broken", api_name="/fill_mask_view")
    assert msg.startswith("⚠️") and "broken" in msg
    _, _, msg = client.predict("the [MASK] .", 3, "nothing-here", api_name="/fill_mask_view")
    assert "no such run" in msg
    assert client.predict("the [MASK] .", 2, "", api_name="/fill_mask")["predictions"]


def test_attention_endpoint(served):
    _, client, _ = served
    _, tok = inspection.load_mlm(tiny_bert_dir())
    text = "the cat sat on the mat ."
    got = client.predict(text, "", api_name="/attention")
    n = len(tok(text)["input_ids"])
    assert got["shape"] == [2, 2, n, n] and got["tokens"] == tok.convert_ids_to_tokens(tok(text)["input_ids"])
    w = np.array(got["weights"])
    assert w.shape == (2, 2, n, n) and np.allclose(w.sum(-1), 1.0, atol=1e-4)


def test_attention_view_plots(served):
    _, client, _ = served
    heat, grid, view, bar, token_pick, msg = client.predict("the cat sat", 2, "2", "1: the", "",
                                                            api_name="/attention_view")
    h = json.loads(heat["plot"])
    assert h["data"][0]["type"] == "heatmap" and "layer 2, head 2" in h["layout"]["title"]["text"]
    z = plotly_array(h["data"][0]["z"])
    assert z.shape[0] == z.shape[1] and np.allclose(z.sum(1), 1.0, atol=1e-4)
    assert [t["type"] for t in json.loads(grid["plot"])["data"]] == ["heatmap", "heatmap"]
    assert "from token 1: the" in json.loads(view["plot"])["layout"]["title"]["text"]
    assert json.loads(bar["plot"])["data"][0]["type"] == "bar"
    assert token_pick["value"] == "1: the" and token_pick["choices"][0][0] == "all tokens"
    assert "2 layers × 2 heads" in msg
    heat, *_ = client.predict("the cat sat", 1, "average", "all tokens", "", api_name="/attention_view")
    assert "average of all heads" in json.loads(heat["plot"])["layout"]["title"]["text"]


def test_training_plot_endpoint(served):
    _, client, runs_dir = served
    lines = (runs_dir / "pre" / "metrics.jsonl").read_text().splitlines()
    recs = [r for r in json.loads(json.dumps([json.loads(line) for line in lines]))]
    got = client.predict(["pre", "live"], "tokens", "loss", api_name="/training_plot")
    assert set(got["series"]) == {"pre", "live"}
    train = [r for r in recs if r["kind"] == "train"]
    assert got["series"]["pre"]["x"] == [r["tokens"] for r in train]
    assert got["series"]["pre"]["y"] == [r["loss"] for r in train]
    assert len(got["series"]["live"]["x"]) == 6
    acc = client.predict(["pre"], "time", "val_accuracy", api_name="/training_plot")
    ev = [r for r in recs if r["kind"] == "eval"]
    assert acc["series"]["pre"]["x"] == [r["time"] for r in ev]
    assert acc["series"]["pre"]["y"] == [r["val_accuracy"] for r in ev]
    both = client.predict(["pre"], "step", "loss+val_loss", api_name="/training_plot")
    assert len(both["series"]) == 2
    # a live run: appended records show up on the next call (what the refresh button and the timer do)
    with open(runs_dir / "live" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "train", "step": 70, "time": 14.0, "tokens": 70 * 4096, "loss": 5.9, "lr": 1e-3,
                            "tokens_per_s": 20480}) + "\n")
        f.write('{"kind": "train", "step": 8')  # a half-written line from a run being written right now
    again = client.predict(["live"], "step", "loss", api_name="/training_plot")
    assert again["series"]["live"]["x"][-1] == 70


def test_masking_endpoint(served):
    _, client, _ = served
    corrupted, recon, msg = client.predict("the central bank raised interest rates on thursday .", 0.5, "whole_word",
                                           0.8, 0.1, 4, "", api_name="/masking")
    assert "<span" in corrupted and "recon-chip" in recon and "tokens to predict" in msg and "right" in msg
    _, _, msg = client.predict("the bank", 0.5, "token", 0.8, 0.5, 0, "", api_name="/masking")
    assert "must lie in [0, 1]" in msg


def test_classify_tab_for_classifier_runs(served):
    _, client, _ = served
    label = client.predict("stocks rallied", "clf", api_name="/classify")[0]
    probs = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert set(probs) == {"negative", "positive"} and abs(sum(probs.values()) - 1) < 1e-5


def test_twenty_concurrent_fill_mask_requests(served):
    demo, client, _ = served
    texts = [f"the [MASK] of the {w} states" for w in ("united", "northern", "southern", "eastern")] * 5
    expected = {t: client.predict(t, 5, "", api_name="/fill_mask")["predictions"] for t in set(texts)}
    loads_before = demo.workbench.mlms.loads
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda t: client.predict(t, 5, "", api_name="/fill_mask"), texts))
    assert len(results) == 20
    for t, r in zip(texts, results):
        assert [c["token"] for c in r["predictions"][0]] == [c["token"] for c in expected[t][0]]
    assert demo.workbench.mlms.loads == loads_before  # cached: no reload per request


def test_model_choices_list_only_the_start_model_and_runs(served):
    demo, _, runs_dir = served
    wb = demo.workbench
    values = [v for _, v in wb.model_choices()]
    assert values == [str(tiny_bert_dir()), "pre"]  # clf is a classifier, live has no model yet
    assert wb.classifier_runs() == ["clf"] and set(wb.metric_runs()) == {"pre", "live"}


def test_fallbacks_without_a_model(tmp_path, monkeypatch):
    monkeypatch.setattr(app_core, "DEFAULT_MODEL", tmp_path / "no-default-model")
    empty = app_module.Workbench(None, tmp_path / "runs")
    assert empty.model_path is None
    plot, rows, msg = empty.fill_mask_view("the [MASK] .", 5, "", warn=False)
    assert plot is None and "workbench pretrain" in msg
    assert isinstance(app_module.build_app(None, tmp_path / "runs"), gr.Blocks)  # builds, explains itself
    # with no default checkpoint the newest masked-LM run is used
    shutil.copytree(tiny_bert_dir(), tmp_path / "runs" / "older" / "model")
    assert app_module.Workbench(None, tmp_path / "runs").model_path == str(tmp_path / "runs" / "older")


# ---- the Similarity tab (contrastive encoders) -------------------------------------------------------

def _tab_labels(demo) -> list[str]:
    return [c["props"].get("label") for c in demo.get_config_file()["components"] if c.get("type") == "tabitem"]


@pytest.fixture(scope="module")
def simcse_served(tmp_path_factory, small_corpus):
    """The app over a runs directory holding a masked LM (`pre`) and a SimCSE run trained for three
    steps from it (`sim`), found without being named."""
    from workbench.tasks import load_task

    runs_dir = tmp_path_factory.mktemp("simapp") / "runs"
    shutil.copytree(tiny_bert_dir(), runs_dir / "pre" / "model")
    cfg = SimCSEConfig(max_sentences=128, eval_examples=32, k=5)
    cfg.train.batch_size, cfg.train.max_steps, cfg.train.eval_every, cfg.train.log_every = 16, 3, 100, 1
    cfg.train.eval_batches, cfg.train.precision, cfg.train.lr = 1, "fp32", 1e-3
    simcse.train_simcse(runs_dir / "pre", runs_dir / "sim", cfg, progress=False, corpus=small_corpus,
                        task_data=load_task("trec"))
    with served_app(runs_dir) as s:
        yield s


def test_simcse_runs_are_found_and_get_a_tab(simcse_served):
    demo, client, runs_dir = simcse_served
    wb = demo.workbench
    assert wb.similarity_runs() == ["sim"] and [v for _, v in wb.model_choices()] == [str(tiny_bert_dir()), "pre"]
    assert "Similarity" in _tab_labels(demo)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/similarity", "/neighbours", "/similarity_view", "/neighbours_view"} <= names


def test_similarity_endpoint_equals_objectives(simcse_served):
    _, client, runs_dir = simcse_served
    model, tok = simcse.load_encoder(runs_dir / "sim")
    for a, b in [("the stock market fell sharply on monday .", "shares dropped at the start of the week ."),
                 ("police arrested a man", "the team won the cup after extra time")]:
        got = client.predict(a, b, "", api_name="/similarity")
        assert -1 <= got["similarity"] <= 1 and got["pooling"] == "mean" and got["notice"] is None
        assert got["similarity"] == pytest.approx(embeddings.sentence_similarity(model, tok, a, b), abs=1e-5)
        assert client.predict(a, b, "sim", api_name="/similarity")["similarity"] == got["similarity"]
    same = client.predict("a cat sat on the mat", "a cat sat on the mat", "sim", api_name="/similarity")
    assert same["similarity"] == pytest.approx(1.0, abs=1e-5)
    score, gauge, msg = client.predict("a cat sat on the mat", "a cat sat on the mat", "", api_name="/similarity_view")
    assert score == pytest.approx(1.0,
                                  abs=1e-4) and "similarity-gauge" in gauge and "cosine similarity **1.000**" in msg


def test_neighbours_endpoint_sorted_and_embedded_once(simcse_served):
    demo, client, runs_dir = simcse_served
    wb = demo.workbench
    got = client.predict("the government said on monday it would raise taxes", 7, "", api_name="/neighbours")
    rows = got["neighbours"]
    assert len(rows) == 7 and [r["rank"] for r in rows] == list(range(1, 8))
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    corpus = wb.neighbour_corpus()
    assert got["corpus_size"] == len(corpus) > 1000 and all(corpus[r["index"]] == r["text"] for r in rows)
    model, tok = simcse.load_encoder(runs_dir / "sim")
    ref = embeddings.nearest_neighbours("the government said on monday it would raise taxes", corpus, model, tok, k=7,
                                        corpus_embeddings=wb.corpus_embeddings.get(str(runs_dir / "sim")))
    assert np.allclose(scores, [r["score"] for r in ref], atol=1e-3)
    # a sentence of the corpus finds itself first; the page's table has the same rows
    itself = client.predict(corpus[3], 3, "sim", api_name="/neighbours")["neighbours"][0]
    assert itself["index"] == 3 and itself["score"] == pytest.approx(1.0, abs=1e-3)
    table, msg = client.predict(corpus[3], 3, "", api_name="/neighbours_view")
    assert table["headers"] == ["rank", "score", "sentence"] and table["data"][0][2] == corpus[3]
    assert f"of {len(corpus):,} sentences" in msg
    assert wb.corpus_embeddings.loads == 1  # the corpus sample was embedded once, not per request


def test_similarity_bad_input_gives_a_message(simcse_served, tmp_path):
    _, client, _ = simcse_served
    for a, b in [("", "a sentence"), ("a sentence", "   ")]:
        with pytest.raises(Exception, match="empty"):
            client.predict(a, b, "", api_name="/similarity")
        score, gauge, msg = client.predict(a, b, "", api_name="/similarity_view")
        assert score is None and "empty" in msg and "Traceback" not in msg
    with pytest.raises(Exception, match="empty"):
        client.predict(" ", 5, "", api_name="/neighbours")
    table, msg = client.predict("", 5, "", api_name="/neighbours_view")
    assert "empty" in msg and "Traceback" not in msg
    with pytest.raises(Exception, match="k must"):
        client.predict("a sentence", 0, "", api_name="/neighbours")
    shutil.copytree(tiny_bert_dir(), tmp_path / "elsewhere")
    with pytest.raises(Exception, match="refused"):
        client.predict("a", "b", str(tmp_path / "elsewhere"), api_name="/similarity")
    _, _, msg = client.predict("a", "b", "nothing-here", api_name="/similarity_view")
    assert "no such run" in msg
    assert client.predict("a", "b", "", api_name="/similarity")["similarity"] <= 1  # still serving


def test_no_similarity_tab_without_a_contrastive_model(served):
    demo, client, _ = served
    assert demo.workbench.similarity_runs() == [] and "Similarity" not in _tab_labels(demo)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert not names & {"/similarity", "/neighbours", "/similarity_view", "/neighbours_view"}
    with pytest.raises(inspection.InspectionError, match="workbench simcse"):
        demo.workbench.similarity_api("a", "b")


def test_explicit_similarity_model(simcse_served, tmp_path):
    """build_app(similarity=PATH) shows the tab for an encoder outside runs_dir, with its pooling."""
    _, _, runs_dir = simcse_served
    demo = app_module.build_app(model=str(tiny_bert_dir()), runs_dir=tmp_path / "runs",
                                similarity=runs_dir / "sim" / "model")
    wb = demo.workbench
    assert "Similarity" in _tab_labels(demo)
    assert [v for _, v in wb.similarity_choices()] == [str(runs_dir / "sim" / "model")]
    ref = app_module.Workbench(str(tiny_bert_dir()), runs_dir).similarity_api("a cat", "a dog", "sim")
    assert wb.similarity_api("a cat", "a dog")["similarity"] == pytest.approx(ref["similarity"], abs=1e-6)


def test_model_line_states_validation_accuracy_when_known(tmp_path):
    run = tmp_path / "runs" / "pre"
    shutil.copytree(tiny_bert_dir(), run / "model")
    wb = app_module.Workbench(model=str(run), runs_dir=tmp_path / "runs")
    assert "validation" not in wb.describe(None)  # no summary.json: nothing claimed
    (run / "summary.json").write_text(json.dumps({"steps": 4336, "val_accuracy": 0.37764}))
    assert "pre-trained 4,336 steps, validation masked-token accuracy 37.8%" in wb.describe(None)
