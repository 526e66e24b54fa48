"""Plots take plain data and return figures with the traces a reader expects."""

import numpy as np
import plotly.graph_objects as go
import pytest

from workbench import plots

TOKENS = ["[CLS]", "the", "cat", "saw", "the", "dog", "[SEP]"]


def _weights(layers=2, heads=3, seq=len(TOKENS), seed=0):
    rng = np.random.default_rng(seed)
    w = rng.random((layers, heads, seq, seq))
    return w / w.sum(-1, keepdims=True)


def test_select_attention_average_and_head():
    w = _weights()
    assert np.allclose(plots.select_attention(w, 1, 2), w[1, 2])
    avg = plots.select_attention(w, 1, None)
    assert np.allclose(avg, w[1].mean(0))
    assert np.allclose(avg.sum(-1), 1.0)
    with pytest.raises(ValueError):
        plots.select_attention(np.ones((3, 4)))


def test_attention_heatmap_keeps_repeated_tokens():
    w = _weights()
    fig = plots.attention_heatmap(TOKENS, w, layer=1, head=0)
    assert isinstance(fig, go.Figure) and len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert np.allclose(np.asarray(fig.data[0].z), w[1, 0])
    # "the" appears twice: both rows survive on the axis
    assert list(fig.layout.yaxis.ticktext) == TOKENS
    assert "layer 2" in fig.layout.title.text and "head 1" in fig.layout.title.text
    avg = plots.attention_heatmap(TOKENS, w, layer=0, head=None)
    assert np.allclose(np.asarray(avg.data[0].z), w[0].mean(0))
    assert "average" in avg.layout.title.text


def test_attention_grid_one_heatmap_per_head():
    w = _weights(heads=6)
    fig = plots.attention_grid(TOKENS, w, layer=1, cols=4)
    assert [t.type for t in fig.data] == ["heatmap"] * 6
    assert np.allclose(np.asarray(fig.data[5].z), w[1, 5])
    assert [a.text for a in fig.layout.annotations][:6] == [f"head {h}" for h in range(1, 7)]


def test_head_view_lines_follow_weights():
    w = np.zeros((1, 2, 3, 3))
    w[0, 0] = np.eye(3)  # head 1: every token attends to itself
    w[0, 1, :, 0] = 1.0  # head 2: everyone attends to the first token
    toks = ["a", "b", "c"]
    fig = plots.head_view(toks, w, layer=0, head=None)
    lines = [t for t in fig.data if t.mode == "lines"]
    assert {t.legendgroup for t in lines} == {"head 1", "head 2"}
    segs = {t.legendgroup: [(t.y[i], t.y[i + 1]) for i in range(0, len(t.y), 3)] for t in lines}
    assert sorted(segs["head 1"]) == [(0, 0), (1, 1), (2, 2)]
    assert sorted(segs["head 2"]) == [(0, 0), (1, 0), (2, 0)]
    text_traces = [t for t in fig.data if "text" in t.mode]
    assert len(text_traces) == 2 and list(text_traces[0].text) == toks
    one = plots.head_view(toks, w, layer=0, head=1, selected=2)
    segs = [(t.y[i], t.y[i + 1]) for t in one.data if t.mode == "lines" for i in range(0, len(t.y), 3)]
    assert segs == [(2, 0)]
    assert "token 2: c" in one.layout.title.text


def test_token_attention_bar_is_the_row():
    w = _weights()
    fig = plots.token_attention(TOKENS, w, index=2, layer=0, head=1)
    assert fig.data[0].type == "bar" and np.allclose(np.asarray(fig.data[0].y), w[0, 1, 2])
    with pytest.raises(ValueError):
        plots.token_attention(TOKENS, w, index=99)


def test_fill_mask_bars_one_panel_per_mask_best_on_top():
    preds = [[{"token": "paris", "score": 0.5}, {"token": "london", "score": 0.2}],
             [{"token": "is", "score": 0.9}, {"token": "was", "score": 0.05}]]
    fig = plots.fill_mask_bars(preds)
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert list(fig.data[0].x) == [0.2, 0.5]  # reversed: plotly draws the last bar on top
    assert [y.strip() for y in fig.data[0].y] == ["london", "paris"]
    assert [a.text for a in fig.layout.annotations] == ["mask 1", "mask 2"]


RECORDS_A = [
    {"kind": "train", "step": 10, "time": 1.0, "tokens": 1000, "loss": 7.0, "lr": 1e-3, "tokens_per_s": 1000},
    {"kind": "train", "step": 20, "time": 2.0, "tokens": 2000, "loss": 6.0, "lr": 1e-3, "tokens_per_s": 1000},
    {"kind": "eval", "step": 20, "time": 2.0, "tokens": 2000, "val_loss": 6.5, "val_perplexity": 665.1,
     "val_accuracy": 0.1},
]
RECORDS_B = [
    {"kind": "train", "step": 10, "time": 3.0, "tokens": 500, "loss": 7.5, "lr": 1e-3, "tokens_per_s": 170},
]


def test_training_curves_several_runs_same_axes():
    fig = plots.training_curves({"a": RECORDS_A, "b": RECORDS_B}, x="tokens", y="loss")
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[0].x) == [1000, 2000] and list(fig.data[0].y) == [7.0, 6.0]
    assert list(fig.data[1].x) == [500]
    assert fig.layout.xaxis.title.text == "tokens seen"
    ev = plots.training_curves({"a": RECORDS_A, "b": RECORDS_B}, x="time", y="val_perplexity")
    assert [t.name for t in ev.data] == ["a"] and list(ev.data[0].y) == [665.1]
    assert ev.layout.yaxis.type == "log"
    both = plots.training_curves({"a": RECORDS_A}, y=["loss", "val_loss"])
    assert len(both.data) == 2 and both.data[1].line.dash == "dash"
    empty = plots.training_curves({"b": RECORDS_B}, y="val_accuracy")
    assert not empty.data and "no data" in empty.layout.annotations[0].text
    with pytest.raises(ValueError):
        plots.training_curves({"a": RECORDS_A}, x="epoch")


def test_confusion_matrix_and_scatter():
    fig = plots.confusion_matrix(["neg", "pos"], [[5, 1], [2, 7]])
    assert fig.data[0].type == "heatmap" and [list(r) for r in fig.data[0].text] == [["5", "1"], ["2", "7"]]
    norm = plots.confusion_matrix(["neg", "pos"], [[5, 1], [2, 7]], normalise=True)
    assert np.allclose(np.asarray(norm.data[0].z).sum(1), 1.0)
    with pytest.raises(ValueError):
        plots.confusion_matrix(["a"], [[1, 2], [3, 4]])
    pts = np.array([[0, 0], [1, 1], [2, 0]])
    sc = plots.embedding_scatter(pts, labels=["x", "y", "x"], texts=["t0", "t1", "t2"])
    assert [t.name for t in sc.data] == ["x", "y"] and list(sc.data[0].text) == ["t0", "t2"]


def test_confusion_matrix_counts():
    fig = plots.confusion_matrix(["a", "b"], [[3, 1], [0, 2]])
    assert len(fig.data) == 1
    assert np.asarray(fig.data[0].z).tolist() == [[3, 1], [0, 2]]
