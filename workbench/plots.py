"""Plotly figures for the app and the notebooks. Every function takes plain data (token lists,
numpy arrays, metrics records), never a model, so the same picture can be drawn from a saved result
and tested without one.

Token axes are numeric positions labelled with the tokens: a sentence often repeats a token ("the"),
and a categorical axis would silently merge the repeats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

PALETTE = qualitative.Plotly
METRIC_LABELS = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_perplexity": "validation perplexity",
    "val_accuracy": "validation accuracy (masked tokens)",
    "lr": "learning rate",
    "tokens_per_s": "tokens / s",
}
X_LABELS = {"step": "step", "tokens": "tokens seen", "time": "training time (s)",
            "flops": "estimated training FLOPs (6 × parameters × tokens)"}


# ---- attention -----------------------------------------------------------------------------------

def select_attention(weights: np.ndarray, layer: Optional[int] = None, head: Optional[int] = None) -> np.ndarray:
    """A [seq, seq] map from weights shaped [layers, heads, seq, seq], [heads, seq, seq] or
    [seq, seq]; head=None averages the heads (rows still sum to 1)."""
    w = np.asarray(weights, dtype=float)
    if w.ndim == 4:
        w = w[layer or 0]
    if w.ndim == 3:
        w = w.mean(0) if head is None else w[head]
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"expected square attention maps, got shape {np.shape(weights)}")
    return w


def _title(layer: Optional[int], head: Optional[int]) -> str:
    where = f"layer {layer + 1}" if layer is not None else ""
    return f"{where}, {'average of all heads' if head is None else f'head {head + 1}'}".strip(", ")


def _token_axis(tokens: Sequence[str], **extra) -> dict:
    return dict(tickmode="array", tickvals=list(range(len(tokens))), ticktext=list(tokens), **extra)


def attention_heatmap(tokens: Sequence[str], weights: np.ndarray, layer: Optional[int] = 0, head: Optional[int] = None,
                      title: Optional[str] = None) -> go.Figure:
    """One attention map: rows are the attending (query) tokens, columns the attended (key) tokens."""
    m = select_attention(weights, layer, head)
    fig = go.Figure(go.Heatmap(
        z=m, x=list(range(len(tokens))), y=list(range(len(tokens))), colorscale="Blues", zmin=0,
                               zmax=float(m.max()) or 1,
        customdata=[[[q, k] for k in tokens] for q in tokens],
        hovertemplate="%{customdata[0]} → %{customdata[1]}: %{z:.3f}<extra></extra>",
        colorbar=dict(title="weight"),
    ))
    size = max(320, min(720, 28 * len(tokens) + 160))
    fig.update_layout(title=title or f"Attention, {_title(layer, head)}", height=size,
                      margin=dict(l=80, r=20, t=50, b=80),
                      xaxis=_token_axis(tokens, title="attended token (key)", tickangle=-60),
                      yaxis=_token_axis(tokens, title="attending token (query)", autorange="reversed"))
    return fig


def attention_grid(tokens: Sequence[str], weights: np.ndarray, layer: int = 0, cols: int = 4) -> go.Figure:
    """All heads of one layer side by side, on one colour scale, to compare what each head does."""
    w = np.asarray(weights, dtype=float)
    heads = w[layer] if w.ndim == 4 else w
    n = heads.shape[0]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h + 1}" for h in range(n)],
                        horizontal_spacing=0.03, vertical_spacing=0.08 if rows > 1 else 0.1)
    idx = list(range(len(tokens)))
    for h in range(n):
        r, c = divmod(h, cols)
        fig.add_trace(go.Heatmap(z=heads[h], x=idx, y=idx, coloraxis="coloraxis",
                                 customdata=[[[q, k] for k in tokens] for q in tokens],
                                 hovertemplate=f"head {h + 1}: " + "%{customdata[0]} → %{customdata[1]}: "
                                 "%{z:.3f}<extra></extra>"),
                      row=r + 1, col=c + 1)
    show_ticks = len(tokens) <= 24
    fig.update_xaxes(**_token_axis(tokens, tickangle=-60, tickfont=dict(size=9)), showticklabels=show_ticks)
    fig.update_yaxes(**_token_axis(tokens, autorange="reversed", tickfont=dict(size=9)), showticklabels=show_ticks)
    fig.update_layout(title=f"All heads of layer {layer + 1}" if w.ndim == 4 else "All heads",
                      coloraxis=dict(colorscale="Blues", cmin=0), height=max(300, 260 * rows + 80),
                      margin=dict(l=60, r=20, t=70, b=60))
    return fig


def head_view(tokens: Sequence[str], weights: np.ndarray, layer: int = 0, head: Optional[int] = None,
              selected: Optional[int] = None, threshold: float = 0.02, levels: int = 8) -> go.Figure:
    """bertviz-style head view: the tokens twice, in two columns, with a line from each attending
    token (left) to each attended token (right) whose opacity and width follow the weight. One
    colour per head (head=None draws all heads); `selected` keeps only that token's lines.
    Lines are binned into `levels` weight levels, one trace per (head, level), so a 40-token
    sentence stays a few dozen traces instead of thousands of shapes."""
    w = np.asarray(weights, dtype=float)
    heads = w[layer] if w.ndim == 4 else w if w.ndim == 3 else w[None]
    chosen = range(heads.shape[0]) if head is None else [head]
    n = len(tokens)
    fig = go.Figure()
    for h in chosen:
        colour = PALETTE[h % len(PALETTE)]
        m = heads[h]
        queries = range(n) if selected is None else [selected]
        for level in range(levels):
            lo, hi = level / levels, (level + 1) / levels
            xs: list = []
            ys: list = []
            for q in queries:
                for k in range(n):
                    v = m[q, k]
                    if v >= threshold and lo <= v < hi or (level == levels - 1 and v >= 1.0):
                        xs += [0, 1, None]
                        ys += [q, k, None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"head {h + 1}", legendgroup=f"head {h + 1}",
                                         showlegend=not any(t.legendgroup == f"head {h + 1}" for t in fig.data),
                                         line=dict(color=colour, width=1 + 4 * hi), opacity=min(1.0, 0.15 + hi),
                                         hoverinfo="skip"))
    for x, anchor in ((0, "left"), (1, "right")):
        colours = ["#dc2626" if i == selected else "#111827" for i in range(n)]
        fig.add_trace(go.Scatter(x=[x] * n, y=list(range(n)), mode="text+markers", text=list(tokens),
                                 textposition="middle left" if x == 0 else "middle right",
                                 textfont=dict(color=colours, size=13), marker=dict(size=6, color=colours),
                                 name=f"{anchor} tokens", showlegend=False,
                                 hovertemplate="%{text}<extra></extra>"))
    what = "all heads" if head is None else f"head {head + 1}"
    sel = f", from token {selected}: {tokens[selected]}" if selected is not None and 0 <= selected < n else ""
    fig.update_layout(title=f"Head view, layer {layer + 1}, {what}{sel}", height=max(320, 24 * n + 120),
                      xaxis=dict(visible=False, range=[-0.6, 1.6]), yaxis=dict(visible=False, autorange="reversed"),
                      plot_bgcolor="white", margin=dict(l=20, r=20, t=50, b=20), legend=dict(orientation="h"))
    return fig


def token_attention(tokens: Sequence[str], weights: np.ndarray, index: int, layer: Optional[int] = 0,
                    head: Optional[int] = None) -> go.Figure:
    """Where one token looks: its row of the attention map as bars over the sentence."""
    m = select_attention(weights, layer, head)
    if not 0 <= index < len(tokens):
        raise ValueError(f"token index {index} outside the sentence (0..{len(tokens) - 1})")
    fig = go.Figure(go.Bar(x=list(range(len(tokens))), y=m[index], marker_color="#2563eb",
                           customdata=list(tokens), hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"Attention from token {index} ({tokens[index]}), {_title(layer, head)}", height=340,
                      xaxis=_token_axis(tokens, tickangle=-60),
                      yaxis=dict(title="weight", range=[0, max(1e-9, float(m[index].max())) * 1.1]),
                      margin=dict(l=60, r=20, t=50, b=80))
    return fig


# ---- fill-mask -------------------------------------------------------------------------------------

def fill_mask_bars(predictions: Sequence[Sequence[Mapping]], title: str = "Predictions") -> go.Figure:
    """Probability bars for each mask: one panel per mask, best candidate on top.
    `predictions` is inspection.FillMaskResult.predictions (dicts with token and score)."""
    n = max(1, len(predictions))
    fig = make_subplots(rows=n, cols=1, subplot_titles=[f"mask {i + 1}" for i in range(len(predictions))] or None,
                        vertical_spacing=min(0.12, 0.9 / (n - 1)) if n > 1 else 0.1)  # plotly: <= 1/(n-1)
    for i, cands in enumerate(predictions):
        toks = [c["token"] for c in cands][::-1]
        scores = [float(c["score"]) for c in cands][::-1]
        fig.add_trace(go.Bar(x=scores, y=[f"{t} " if toks.count(t) == 1 else f"{t} ({j})" for j, t in enumerate(toks)],
                             orientation="h", name=f"mask {i + 1}", marker_color=PALETTE[i % len(PALETTE)],
                             text=[f"{s:.2%}" for s in scores], textposition="auto",
                             hovertemplate="%{y}: %{x:.4f}<extra></extra>"), row=i + 1, col=1)
    fig.update_xaxes(rangemode="tozero")
    fig.update_xaxes(title_text="probability", row=n, col=1)  # on the last panel only: it collided with the next title
    rows_per = max([len(c) for c in predictions] or [1])
    fig.update_layout(title=title, showlegend=False, height=max(260, n * (28 * rows_per + 80) + 60),
                      margin=dict(l=120, r=20, t=60, b=40))
    return fig


# ---- training ----------------------------------------------------------------------------------------

def training_curves(runs: Mapping[str, Sequence[Mapping]], x: str = "step", y: str | Sequence[str] = "loss",
                    log_y: Optional[bool] = None) -> go.Figure:
    """Metric curves of one or several runs on the same axes. `runs` maps a run name to its
    metrics.jsonl records; records lacking `y` (train vs eval records) are skipped. Several `y`
    names draw one dash style per metric, one colour per run. x = "flops" needs records that carry
    it (run_comparison adds it from a parameter count)."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {', '.join(X_LABELS)}, got {x!r}")
    ys = [y] if isinstance(y, str) else list(y)
    dashes = ["solid", "dash", "dot", "dashdot"]
    fig = go.Figure()
    for r, (name, records) in enumerate(runs.items()):
        for j, metric in enumerate(ys):
            pts = sorted((rec[x], rec[metric]) for rec in records
                         if rec.get(metric) is not None and rec.get(x) is not None)
            if not pts:
                continue
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts],
                                     mode="lines+markers" if len(pts) < 30 else "lines",
                                     name=name if len(ys) == 1 else f"{name}: {METRIC_LABELS.get(metric, metric)}",
                                     line=dict(color=PALETTE[r % len(PALETTE)], dash=dashes[j % len(dashes)])))
    label = METRIC_LABELS.get(ys[0], ys[0]) if len(ys) == 1 else ", ".join(METRIC_LABELS.get(m, m) for m in ys)
    if log_y is None:
        log_y = ys == ["val_perplexity"]
    fig.update_layout(title=f"{label} by {X_LABELS[x]}", xaxis_title=X_LABELS[x], yaxis_title=label, height=420,
                      yaxis_type="log" if log_y else "linear", legend=dict(orientation="h", y=-0.2),
                      margin=dict(l=60, r=20, t=50, b=60))
    if not fig.data:
        fig.add_annotation(text="no data yet for this metric", showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper")
    return fig


# ---- evaluation ----------------------------------------------------------------------------------------

def confusion_matrix(labels: Sequence[str], matrix: np.ndarray | Sequence[Sequence[float]],
                     normalise: bool = False) -> go.Figure:
    """Rows are true labels, columns predicted labels; counts (or row shares) written in the cells."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(labels), len(labels)):
        raise ValueError(f"matrix shape {m.shape} does not match {len(labels)} labels")
    if normalise:
        m = m / np.maximum(m.sum(1, keepdims=True), 1e-12)
    text = [[f"{v:.2f}" if normalise else f"{int(v)}" for v in row] for row in m]
    fig = go.Figure(go.Heatmap(z=m, x=list(labels), y=list(labels), colorscale="Blues", text=text,
                               texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(title="Confusion matrix", xaxis_title="predicted", yaxis=dict(title="true", autorange="reversed"),
                      height=max(320, 60 * len(labels) + 160))
    return fig


def embedding_scatter(points: np.ndarray, labels: Optional[Sequence] = None, texts: Optional[Sequence[str]] = None,
                      title: str = "Embeddings (PCA)") -> go.Figure:
    """2-D points (e.g. inspection.pca_2d of sentence embeddings), one colour per label, the text on hover."""
    p = np.asarray(points, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"expected [n, 2] points, got shape {p.shape}")
    labels = list(labels) if labels is not None else ["all"] * len(p)
    texts = list(texts) if texts is not None else [str(i) for i in range(len(p))]
    fig = go.Figure()
    for i, lab in enumerate(dict.fromkeys(labels)):
        idx = [j for j, l in enumerate(labels) if l == lab]
        fig.add_trace(go.Scatter(x=p[idx, 0], y=p[idx, 1], mode="markers", name=str(lab),
                                 marker=dict(color=PALETTE[i % len(PALETTE)], size=8, opacity=0.8),
                                 text=[texts[j][:120] for j in idx],
                                 hovertemplate="%{text}<extra>" + str(lab) + "</extra>"))
    fig.update_layout(title=title, xaxis_title="component 1", yaxis_title="component 2", height=480)
    return fig


def message_figure(text: str) -> go.Figure:
    """An empty figure carrying a message, for a plot slot that has nothing to show yet."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), height=240, plot_bgcolor="white")
    return fig


def learning_curve(results: Sequence[Mapping], task: str, metric: str, scratch: bool = True) -> go.Figure:
    """Test score against training-set size (log x axis): pre-trained and, with `scratch`, from
    scratch; `results` are experiments.learning_curve's points ({size, pretrained, scratch})."""
    fig = go.Figure()
    xs = [r["size"] for r in results]
    fig.add_trace(go.Scatter(x=xs, y=[r["pretrained"] for r in results], mode="lines+markers", name="pre-trained"))
    if scratch:
        fig.add_trace(go.Scatter(x=xs, y=[r["scratch"] for r in results], mode="lines+markers", name="from scratch"))
    fig.update_layout(title=f"Learning curve: {task}", xaxis=dict(title="training examples", type="log"),
                      yaxis_title=f"test {metric}")
    return fig


# ---- comparing runs, and predictions through training ---------------------------------------------

def training_flops(parameters: Optional[int], tokens: Optional[float]) -> Optional[float]:
    """The usual estimate of training compute: 6 FLOPs per parameter per token (2 forward, 4 backward;
    Kaplan et al. 2020), every parameter counted, attention's own matmuls left out. None when a count
    is missing."""
    if not parameters or tokens is None:
        return None
    return 6.0 * parameters * tokens


def with_flops(records: Sequence[Mapping], parameters: Optional[int]) -> list[dict]:
    """The records with `flops` = training_flops(parameters, tokens) added (or left out when unknown)."""
    out = []
    for rec in records:
        rec = dict(rec)
        rec.pop("flops", None)
        f = training_flops(parameters, rec.get("tokens"))
        if f is not None:
            rec["flops"] = f
        out.append(rec)
    return out


def run_comparison(runs: Mapping[str, Sequence[Mapping]], x: str = "step", y: str | Sequence[str] = "loss",
                   parameters: Optional[Mapping[str, int]] = None,
                   budgets: Optional[Mapping[str, Optional[float]]] = None) -> go.Figure:
    """training_curves with the FLOPs axis (`parameters`: run -> parameter count) and each run's budget
    marked as a dashed vertical line in its colour (`budgets`: run -> the budget in units of `x`)."""
    data = {name: with_flops(recs, (parameters or {}).get(name)) for name, recs in runs.items()}
    fig = training_curves(data, x=x, y=y)
    for r, name in enumerate(runs):
        at = (budgets or {}).get(name)
        if at is not None:
            fig.add_vline(x=at, line=dict(color=PALETTE[r % len(PALETTE)], dash="dash", width=1),
                          annotation_text=f"{name}: budget", annotation_position="top left")
    return fig


def probe_curves(source, x: str = "step", value: str = "p_answer", probe_ids: Optional[Sequence[int]] = None,
                 title: Optional[str] = None) -> go.Figure:
    """How each cloze probe's answer probability changes during pre-training. `source`: a run (or
    model) directory holding probes.jsonl (workbench.watch), that file, its records, or {run name:
    records} for several runs (one colour per run). One thin line per probe (hover: the probe, the
    model's top-1 and the answer's rank), and the mean over the probes as a thick line. `value`:
    p_answer (total probability of the accepted answers) or p_best (the best-ranked answer's);
    `probe_ids` keeps some probes only."""
    if x not in ("step", "tokens", "time"):
        raise ValueError(f"x must be step, tokens or time, got {x!r}")
    runs = _probe_sources(source)
    fig = go.Figure()
    for r, (name, records) in enumerate(runs.items()):
        colour = PALETTE[r % len(PALETTE)]
        series: dict[int, list] = {}
        for rec in records:
            for p in rec.get("probes", []):
                if probe_ids is None or p["id"] in probe_ids:
                    series.setdefault(p["id"], []).append((rec.get(x), p, rec["step"]))
        for pid, pts in sorted(series.items()):
            pts = [pt for pt in pts if pt[0] is not None]
            text = pts[0][1]["text"] if pts else ""
            fig.add_trace(go.Scatter(
                x=[pt[0] for pt in pts], y=[pt[1][value] for pt in pts], mode="lines", opacity=0.35,
                line=dict(color=colour, width=1), legendgroup=name, showlegend=False,
                name=f"{name}: probe {pid}", customdata=[[pt[1]["top1"], pt[1]["rank"], pt[2]] for pt in pts],
                hovertemplate=f"{text}<br>step %{{customdata[2]}}: P = %{{y:.3f}}, rank %{{customdata[1]}}, "
                              "top-1 %{customdata[0]}<extra></extra>"))
        mean = [(rec.get(x), float(np.mean([p[value] for p in rec["probes"]
                                             if probe_ids is None or p["id"] in probe_ids] or [np.nan])))
                for rec in records if rec.get(x) is not None]
        if mean:
            fig.add_trace(go.Scatter(x=[m[0] for m in mean], y=[m[1] for m in mean], mode="lines+markers",
                                     line=dict(color=colour, width=3), legendgroup=name,
                                     name=f"{name}: mean of {len(series)} probes" if len(runs) > 1
                                     else f"mean of {len(series)} probes"))
    what = "P(accepted answers)" if value == "p_answer" else "P(best-ranked answer)"
    fig.update_layout(title=title or f"Cloze probes: {what} by {X_LABELS[x]}", xaxis_title=X_LABELS[x],
                      yaxis_title=what, yaxis_range=[0, 1], height=440, legend=dict(orientation="h", y=-0.2),
                      margin=dict(l=60, r=20, t=50, b=60))
    if not fig.data:
        fig.add_annotation(text="no probe records yet (probes.jsonl is written at every evaluation)",
                           showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return fig


def _probe_sources(source) -> dict[str, list]:
    """{name: probe records} from a directory, a probes.jsonl path, a record list or a mapping."""
    if isinstance(source, Mapping):
        return {str(k): list(v) for k, v in source.items()}
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = path.name if path.is_dir() else path.parent.name
        path = path / "probes.jsonl" if path.is_dir() else path
        records = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a half-written last line of a live run
                if isinstance(rec, dict) and isinstance(rec.get("probes"), list):
                    records.append(rec)
        return {name: records}
    return {"run": list(source)}


def fill_mask_compare(a: Sequence[Sequence[Mapping]], b: Sequence[Sequence[Mapping]], name_a: str = "A",
                      name_b: str = "B") -> go.Figure:
    """Two models' fill-mask predictions for the same sentence side by side: one row per mask, model A
    left and B right, every panel on the same probability axis (0 to the largest score shown)."""
    n = max(1, len(a), len(b))
    fig = make_subplots(rows=n, cols=2, column_titles=[name_a, name_b], shared_xaxes="all",
                        horizontal_spacing=0.18, vertical_spacing=min(0.12, 0.9 / (n - 1)) if n > 1 else 0.1,
                        row_titles=[f"mask {i + 1}" for i in range(n)] if n > 1 else None)
    top = 0.0
    for col, preds in ((1, a), (2, b)):
        for i, cands in enumerate(preds):
            toks = [c["token"] for c in cands][::-1]
            scores = [float(c["score"]) for c in cands][::-1]
            top = max([top, *scores])
            labels = [f"{t} " if toks.count(t) == 1 else f"{t} ({j})" for j, t in enumerate(toks)]
            fig.add_trace(go.Bar(x=scores, y=labels, orientation="h", marker_color=PALETTE[col - 1],
                                 text=[f"{s:.1%}" for s in scores],
                                 textposition="auto", hovertemplate="%{y}: %{x:.4f}<extra></extra>",
                                 name=name_a if col == 1 else name_b), row=i + 1, col=col)
    fig.update_xaxes(range=[0, max(top, 1e-6) * 1.05], title_text="probability")
    rows_per = max([len(c) for c in [*a, *b]] or [1])
    fig.update_layout(title="Side by side, same probability axis", showlegend=False,
                      height=max(280, n * (28 * rows_per + 80) + 60), margin=dict(l=110, r=40, t=70, b=40))
    return fig
