"""The Attention tab: one head's (or the average) attention map, all heads of a layer, a head view
and the attention of a selected token; a checkpoint picker reads the same sentence at another step of a run."""

from __future__ import annotations

import html
import threading
from collections import OrderedDict
from typing import Optional

import gradio as gr

from .. import inspection, limits, plots
from .checkpoints import FINAL, CheckpointHandlers, wire_checkpoints

ATTENTION_EXAMPLE = "the cat sat on the mat because it was tired ."
AVERAGE = "average"
ALL_TOKENS = "all tokens"


class AttentionHandlers(CheckpointHandlers):
    """Workbench handlers of the tab (mixed into app.shell.Workbench); recent results are cached."""

    def _init_attention(self) -> None:
        self._attention: OrderedDict[tuple[str, str], inspection.AttentionResult] = OrderedDict()
        self._att_lock = threading.Lock()

    def attention_result(self, text: str, model: str, checkpoint: str = FINAL) -> inspection.AttentionResult:
        text = self.within(limits.check_text, text)
        path = self.checkpoint_path(model, checkpoint)
        key = (path, text)
        with self._att_lock:
            if key in self._attention:
                self._attention.move_to_end(key)
                return self._attention[key]
        m, tok = self.mlms.get(path)
        self.within(limits.check_attention_tokens, len(tok(text, verbose=False)["input_ids"]))
        result = inspection.attentions(m, tok, text)
        with self._att_lock:
            self._attention[key] = result
            while len(self._attention) > 16:
                self._attention.popitem(last=False)
        return result

    def attention_api(self, text: str, model: str = "", checkpoint: str = FINAL) -> dict:
        """Raw attention: {tokens, shape [layers, heads, seq, seq], weights (nested lists), notice}."""
        try:
            r = self.attention_result(text or "", model, checkpoint)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"tokens": r.tokens, "shape": list(r.weights.shape), "weights": r.weights.round(6).tolist(),
                "notice": r.notice}

    def attention_view(self, text: str, layer: int, head: str, token: Optional[str], model: str,
                       checkpoint: str = FINAL, warn: bool = True):
        """(heatmap, grid of heads, head view, selected-token bars, token picker update, message)."""
        try:
            r = self.attention_result(text or "", model, checkpoint)
        except inspection.InspectionError as e:
            if warn:
                gr.Warning(str(e))
            return None, None, None, None, gr.update(), f"⚠️ {html.escape(str(e))}"
        layer_i = min(max(int(layer or 1), 1), r.layers) - 1
        head_i = None if head in (None, "", AVERAGE) else min(int(head), r.heads) - 1
        choices = [ALL_TOKENS] + [f"{i}: {t}" for i, t in enumerate(r.tokens)]
        index = _token_index(token, len(r.tokens))  # None: all tokens in the head view
        bar_index = index if index is not None else (1 if len(r.tokens) > 2 else 0)
        toks = r.tokens
        figs = (plots.attention_heatmap(toks, r.weights, layer_i, head_i),
                plots.attention_grid(toks, r.weights, layer_i),
                plots.head_view(toks, r.weights, layer_i, head_i, selected=index),
                plots.token_attention(toks, r.weights, bar_index, layer_i, head_i))
        msg = f"{len(toks)} tokens, {r.layers} layers × {r.heads} heads" + (f"\n\nℹ️ {r.notice}" if r.notice else "")
        return (*figs, gr.update(choices=choices, value=choices[0] if index is None else choices[index + 1]), msg)


def _token_index(token: Optional[str], n: int) -> Optional[int]:
    try:
        i = int(str(token).split(":", 1)[0])
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < n else None


def head_choices(heads: int) -> list[str]:
    return [AVERAGE] + [str(h) for h in range(1, heads + 1)]


def api(wb):
    """The /attention endpoint (a plain typed function for gr.api)."""
    def attention(text: str, model: str = "", checkpoint: str = "") -> dict:
        """All attention weights of the text: shape [layers, heads, seq, seq]; `checkpoint`: a snapshot
        or checkpoint of the model's run (e.g. snapshots/step-00000400), '' for the model as picked."""
        return wb.attention_api(text, model, checkpoint)
    return attention


def build(layers: int, heads: int) -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Attention", id="attention"):
        text = gr.Textbox(label="Sentence", value=ATTENTION_EXAMPLE, elem_id="attention-text")
        with gr.Row():
            layer = gr.Slider(1, max(layers, 2), value=1, step=1,
                              label="Layer")  # a slider needs min < max; views clamp
            head = gr.Dropdown(head_choices(heads), value=AVERAGE, label="Head")
            token = gr.Dropdown([ALL_TOKENS], value=ALL_TOKENS, label="Selected token (head view and bars)",
                                allow_custom_value=True)
            button = gr.Button("Show attention", variant="primary")
        ckpt = gr.Dropdown([("final model (as picked)", FINAL)], value=FINAL, label="checkpoint",
                           info="the run's snapshots and checkpoints", elem_id="attention-checkpoint")
        msg = gr.Markdown()
        with gr.Row():
            heat = gr.Plot(label="Attention map", elem_id="attention-heatmap")
            view = gr.Plot(label="Head view", elem_id="attention-headview")
        bar = gr.Plot(label="Attention of the selected token")
        grid = gr.Plot(label="All heads of the layer")
    return {"text": text, "layer": layer, "head": head, "token": token, "button": button, "msg": msg, "heat": heat,
            "view": view, "bar": bar, "grid": grid, "ckpt": ckpt}


def wire(wb, ui: dict, picker, typing: dict) -> None:
    inputs = [ui["text"], ui["layer"], ui["head"], ui["token"], picker, ui["ckpt"]]
    outputs = [ui["heat"], ui["grid"], ui["view"], ui["bar"], ui["token"], ui["msg"]]
    ui["button"].click(wb.attention_view, inputs, outputs, api_name="attention_view")
    ui["text"].submit(wb.attention_view, inputs, outputs, api_visibility="private")
    for control in (ui["layer"], ui["head"], ui["token"], ui["ckpt"]):  # .input: user changes only, not our updates
        control.input(lambda *a: wb.attention_view(*a, warn=False), inputs, outputs, **typing)
    wire_checkpoints(wb, picker, ui["ckpt"])
