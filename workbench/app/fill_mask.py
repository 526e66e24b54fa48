"""The Fill-mask tab: the top-k fillers of every mask token as bars and a table, updated as you type;
a checkpoint picker (a run's snapshots and checkpoints) and two models or checkpoints side by side."""

from __future__ import annotations

import html

import gradio as gr

from .. import inspection, limits, plots
from ..probes import load_probes
from .checkpoints import FINAL, CheckpointHandlers, wire_checkpoints


def _probe_examples(news: int = 5, everyday: int = 3) -> list[str]:
    """The first probes of each domain of the shipped cloze set (assets/probes), as format strings."""
    probes = load_probes()
    picked = [p for p in probes if p.domain == "news"][:news] + [p for p in probes if p.domain == "everyday"][:everyday]
    return [p.text.replace("[MASK]", "{mask}") for p in picked]


EXAMPLES = _probe_examples()


def placeholder(mask: str) -> str:
    return f"Type a sentence with {mask}, e.g. {EXAMPLES[0].format(mask=mask)}"


class FillMaskHandlers(CheckpointHandlers):
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def _fill(self, text: str, top_k: int, model: str, checkpoint: str = FINAL):
        """(tokenizer, notice about the mask spelling, FillMaskResult), the request checked against
        the limits first; InspectionError for anything the page should explain."""
        text, top_k = self.within(limits.check_text, text), self.within(limits.check_top_k, top_k)
        m, tok = self.mlm_at(model, checkpoint)
        text, note = inspection.normalise_mask(text or "", tok)
        self.within(limits.check_masks, text.count(tok.mask_token), tok.mask_token)
        return tok, note, inspection.fill_mask(m, tok, text, top_k)

    def fill_mask_api(self, text: str, top_k: int = 5, model: str = "", checkpoint: str = FINAL) -> dict:
        """Raw fill-mask result: {mask_token, tokens, predictions[mask][rank] = {token, token_id, score,
        sequence}, notice}. Errors reach the client as a readable gr.Error."""
        try:
            tok, note, r = self._fill(text, top_k, model, checkpoint)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"mask_token": tok.mask_token, "tokens": r.tokens, "predictions": r.predictions,
                "notice": "; ".join(n for n in (note, r.notice) if n) or None}

    def fill_mask_view(self, text: str, top_k: int, model: str, checkpoint: str = FINAL, warn: bool = True):
        """(bars, table rows, message) for the page."""
        try:
            _, note, r = self._fill(text, top_k, model, checkpoint)
        except inspection.InspectionError as e:
            if warn:
                gr.Warning(str(e))
            return None, [], f"⚠️ {html.escape(str(e))}"
        rows = [[i + 1, rank + 1, c["token"], round(c["score"], 4)] for i, cands in enumerate(r.predictions)
                for rank, c in enumerate(cands)]
        notes = [n for n in (note, r.notice) if n]
        best = " · ".join(f"mask {i + 1}: **{html.escape(c[0]['token'])}** ({c[0]['score']:.1%})"
                          for i, c in enumerate(r.predictions))
        msg = best + ("\n\nℹ️ " + "; ".join(notes) if notes else "")
        return plots.fill_mask_bars(r.predictions), rows, msg

    def fill_mask_compare(self, text: str, top_k: int, model_a: str, checkpoint_a: str, model_b: str,
                          checkpoint_b: str):
        """(side-by-side bars on one probability axis, message): the same sentence through two models,
        or two checkpoints of one run."""
        try:
            _, note_a, a = self._fill(text, top_k, model_a, checkpoint_a)
            _, note_b, b = self._fill(text, top_k, model_b, checkpoint_b)
            name_a, name_b = self.checkpoint_label(model_a, checkpoint_a), self.checkpoint_label(model_b, checkpoint_b)
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return None, f"⚠️ {html.escape(str(e))}"
        if name_a == name_b:
            name_a, name_b = f"A: {name_a}", f"B: {name_b}"
        lines = [f"**{html.escape(name)}**: " + " · ".join(
            f"mask {i + 1}: {html.escape(c[0]['token'])} ({c[0]['score']:.1%})" for i, c in enumerate(r.predictions))
            for name, r in ((name_a, a), (name_b, b))]
        notes = [n for n in (note_a, a.notice, note_b, b.notice) if n]
        return (plots.fill_mask_compare(a.predictions, b.predictions, name_a, name_b),
                "\n\n".join(lines) + ("\n\nℹ️ " + "; ".join(dict.fromkeys(notes)) if notes else ""))


def api(wb):
    """The /fill_mask endpoint: gr.api reads a plain typed function's signature, so not a bound method."""
    def fill_mask(text: str, top_k: int = 5, model: str = "", checkpoint: str = "") -> dict:
        """Top-k fillers for each mask token in the text; `checkpoint`: a snapshot or checkpoint of the
        model's run (e.g. snapshots/step-00000400), '' for the model as picked."""
        return wb.fill_mask_api(text, top_k, model, checkpoint)
    return fill_mask


def build(mask: str) -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Fill-mask", id="fill"):
        text = gr.Textbox(label="Text", placeholder=placeholder(mask), value=EXAMPLES[0].format(mask=mask),
                          elem_id="fill-text")
        with gr.Row():
            k = gr.Slider(1, 20, value=5, step=1, label="top-k")
            ckpt = gr.Dropdown([("final model (as picked)", FINAL)], value=FINAL, label="checkpoint",
                               info="the run's snapshots and checkpoints", elem_id="fill-checkpoint")
            button = gr.Button("Predict", variant="primary")
        gr.Examples([[e.format(mask=mask)] for e in EXAMPLES], inputs=[text], label="Examples")
        msg = gr.Markdown(elem_id="fill-message")
        plot = gr.Plot(label="Probabilities", elem_id="fill-plot")
        table = gr.Dataframe(headers=["mask", "rank", "token", "probability"], label="Predictions",
                             interactive=False, elem_id="fill-table")
        with gr.Accordion("Side by side: another model or checkpoint on the same sentence", open=False):
            with gr.Row():
                model_b = gr.Dropdown(label="model B", allow_custom_value=True, elem_id="fill-model-b")
                ckpt_b = gr.Dropdown([("final model (as picked)", FINAL)], value=FINAL, label="checkpoint B",
                                     elem_id="fill-checkpoint-b")
                compare = gr.Button("Compare")
            compare_msg = gr.Markdown()
            compare_plot = gr.Plot(label="A (the model above) and B", elem_id="fill-compare-plot")
    return {"text": text, "k": k, "ckpt": ckpt, "button": button, "msg": msg, "plot": plot, "table": table,
            "model_b": model_b, "ckpt_b": ckpt_b, "compare": compare, "compare_msg": compare_msg,
            "compare_plot": compare_plot}


def wire(wb, ui: dict, picker, typing: dict) -> tuple[list, list]:
    """The tab's events; returns the view's (inputs, outputs), which the page also runs on load."""
    inputs, outputs = [ui["text"], ui["k"], picker, ui["ckpt"]], [ui["plot"], ui["table"], ui["msg"]]
    ui["button"].click(wb.fill_mask_view, inputs, outputs, api_name="fill_mask_view")
    ui["text"].submit(wb.fill_mask_view, inputs, outputs, api_visibility="private")
    # As-you-type: only the latest pending keystroke runs; no toast while the sentence is unfinished.
    quiet = lambda t, k, m, c: wb.fill_mask_view(t, k, m, c, warn=False)  # noqa: E731
    ui["text"].change(quiet, inputs, outputs, **typing)
    ui["k"].release(quiet, inputs, outputs, **typing)
    ui["ckpt"].input(quiet, inputs, outputs, **typing)
    wire_checkpoints(wb, picker, ui["ckpt"])
    wire_checkpoints(wb, ui["model_b"], ui["ckpt_b"])
    gr.on(None, lambda: gr.update(choices=wb.model_choices()), None, [ui["model_b"]], api_visibility="private")
    ui["compare"].click(wb.fill_mask_compare, [ui["text"], ui["k"], picker, ui["ckpt"], ui["model_b"], ui["ckpt_b"]],
                        [ui["compare_plot"], ui["compare_msg"]], api_name="fill_mask_compare")
    return inputs, outputs

