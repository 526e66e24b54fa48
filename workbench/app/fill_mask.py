"""The Fill-mask tab: the top-k fillers of every mask token as bars and a table, updated as you type."""

from __future__ import annotations

import html

import gradio as gr

from .. import inspection, limits, plots
from ..probes import load_probes


def _probe_examples(news: int = 5, everyday: int = 3) -> list[str]:
    """The first probes of each domain of the shipped cloze set (assets/probes), as format strings."""
    probes = load_probes()
    picked = [p for p in probes if p.domain == "news"][:news] + [p for p in probes if p.domain == "everyday"][:everyday]
    return [p.text.replace("[MASK]", "{mask}") for p in picked]


EXAMPLES = _probe_examples()


def placeholder(mask: str) -> str:
    return f"Type a sentence with {mask}, e.g. {EXAMPLES[0].format(mask=mask)}"


class FillMaskHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def _fill(self, text: str, top_k: int, model: str):
        """(tokenizer, notice about the mask spelling, FillMaskResult), the request checked against
        the limits first; InspectionError for anything the page should explain."""
        text, top_k = self.within(limits.check_text, text), self.within(limits.check_top_k, top_k)
        m, tok = self.mlm(model)
        text, note = inspection.normalise_mask(text or "", tok)
        self.within(limits.check_masks, text.count(tok.mask_token), tok.mask_token)
        return tok, note, inspection.fill_mask(m, tok, text, top_k)

    def fill_mask_api(self, text: str, top_k: int = 5, model: str = "") -> dict:
        """Raw fill-mask result: {mask_token, tokens, predictions[mask][rank] = {token, token_id, score,
        sequence}, notice}. Errors reach the client as a readable gr.Error."""
        try:
            tok, note, r = self._fill(text, top_k, model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"mask_token": tok.mask_token, "tokens": r.tokens, "predictions": r.predictions,
                "notice": "; ".join(n for n in (note, r.notice) if n) or None}

    def fill_mask_view(self, text: str, top_k: int, model: str, warn: bool = True):
        """(bars, table rows, message) for the page."""
        try:
            _, note, r = self._fill(text, top_k, model)
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


def api(wb):
    """The /fill_mask endpoint: gr.api reads a plain typed function's signature, so not a bound method."""
    def fill_mask(text: str, top_k: int = 5, model: str = "") -> dict:
        """Top-k fillers for each mask token in the text."""
        return wb.fill_mask_api(text, top_k, model)
    return fill_mask


def build(mask: str) -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Fill-mask", id="fill"):
        text = gr.Textbox(label="Text", placeholder=placeholder(mask), value=EXAMPLES[0].format(mask=mask),
                          elem_id="fill-text")
        with gr.Row():
            k = gr.Slider(1, 20, value=5, step=1, label="top-k")
            button = gr.Button("Predict", variant="primary")
        gr.Examples([[e.format(mask=mask)] for e in EXAMPLES], inputs=[text], label="Examples")
        msg = gr.Markdown(elem_id="fill-message")
        plot = gr.Plot(label="Probabilities", elem_id="fill-plot")
        table = gr.Dataframe(headers=["mask", "rank", "token", "probability"], label="Predictions",
                             interactive=False, elem_id="fill-table")
    return {"text": text, "k": k, "button": button, "msg": msg, "plot": plot, "table": table}


def wire(wb, ui: dict, picker, typing: dict) -> tuple[list, list]:
    """The tab's events; returns the view's (inputs, outputs), which the page also runs on load."""
    inputs, outputs = [ui["text"], ui["k"], picker], [ui["plot"], ui["table"], ui["msg"]]
    ui["button"].click(wb.fill_mask_view, inputs, outputs, api_name="fill_mask_view")
    ui["text"].submit(wb.fill_mask_view, inputs, outputs, api_visibility="private")
    # As-you-type: only the latest pending keystroke runs; no toast while the sentence is unfinished.
    quiet = lambda t, k, m: wb.fill_mask_view(t, k, m, warn=False)  # noqa: E731
    ui["text"].change(quiet, inputs, outputs, **typing)
    ui["k"].release(quiet, inputs, outputs, **typing)
    return inputs, outputs
