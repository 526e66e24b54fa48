"""The Masking playground tab: corrupt a sentence with chosen masking settings, then show what the
model puts back at the predicted positions."""

from __future__ import annotations

import html

import gradio as gr

from .. import inspection, limits
from ..config import ConfigError, MaskingConfig
from ..masking import html_masking

MASKING_EXAMPLE = "the central bank raised interest rates on thursday to fight rising inflation across the country ."


class MaskingHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def masking_view(self, text: str, rate: float, strategy: str, mask_fraction: float, random_fraction: float,
                     seed: float, model: str):
        """(corrupted input as chips, the model's reconstruction as chips, message)."""
        try:
            cfg = MaskingConfig(mlm_probability=float(rate), mask_fraction=float(mask_fraction),
                                random_fraction=float(random_fraction), mask_strategy=strategy, seed=int(seed or 0))
            text = self.within(limits.check_text, text)
            m, tok = self.mlm(model)
            rec = inspection.reconstruct(m, tok, text or "", cfg)
        except (inspection.InspectionError, ConfigError) as e:
            gr.Warning(str(e))
            return "", "", f"⚠️ {html.escape(str(e))}"
        n = sum(r["predicted"] for r in rec.rows)
        kinds = {k: sum(r["corruption"] == k for r in rec.rows) for k in ("mask", "random", "keep")}
        msg = (f"{n} of {len(rec.rows)} tokens to predict ({kinds['mask']} masked, {kinds['random']} random, "
               f"{kinds['keep']} kept); the model got "
               + (f"**{rec.accuracy:.0%}** right" if rec.accuracy is not None else "nothing to predict")
               + (f"\n\nℹ️ {rec.notice}" if rec.notice else ""))
        return html_masking(rec.rows), _reconstruction_html(rec.rows), msg


def _reconstruction_html(rows: list[dict]) -> str:
    """The sentence as the model rebuilds it: predicted positions green when right, red when wrong
    (hover shows the original)."""
    chips = []
    for r in rows:
        if r.get("predicted"):
            ok = r.get("correct")
            style = f"background:{'#bbf7d0' if ok else '#fecaca'};border:2px solid #111"
            label = r["prediction"] if ok else f"{r['prediction']} ≠ {r['original']}"
            title = f"original: {r['original']}, model: {r['prediction']}"
        else:
            style, label, title = "background:#f3f4f6;border:1px solid #ddd", r["original"], ""
        chips.append(f'<span class="recon-chip" title="{html.escape(title)}" style="display:inline-block;margin:2px;'
                     f'padding:2px 5px;border-radius:4px;font-family:monospace;{style}">{html.escape(label)}</span>')
    return ("<div>" + "".join(chips) + '</div><div style="font-size:12px;margin-top:4px">green: the model restored '
            "the original token &nbsp; red: it guessed wrong (guess ≠ original)</div>")


def build() -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Masking playground", id="masking"):
        text = gr.Textbox(label="Sentence", value=MASKING_EXAMPLE)
        with gr.Row():
            rate = gr.Slider(0.05, 0.9, value=0.15, step=0.05, label="masking rate")
            strategy = gr.Radio(["token", "whole_word", "span"], value="token", label="strategy")
            seed = gr.Number(value=0, precision=0, label="seed")
        with gr.Row():
            mask = gr.Slider(0, 1, value=0.8, step=0.05, label="share replaced by the mask token")
            random = gr.Slider(0, 1, value=0.1, step=0.05, label="share replaced by a random token (the rest is kept)")
        button = gr.Button("Corrupt and reconstruct", variant="primary")
        msg = gr.Markdown()
        gr.Markdown("**What the model sees**")
        corrupted = gr.HTML()
        gr.Markdown("**What the model puts back**")
        recon = gr.HTML()
    return {"text": text, "rate": rate, "strategy": strategy, "seed": seed, "mask": mask, "random": random,
            "button": button, "msg": msg, "input": corrupted, "recon": recon}


def wire(wb, ui: dict, picker) -> None:
    inputs = [ui["text"], ui["rate"], ui["strategy"], ui["mask"], ui["random"], ui["seed"], picker]
    outputs = [ui["input"], ui["recon"], ui["msg"]]
    ui["button"].click(wb.masking_view, inputs, outputs, api_name="masking")
    ui["text"].submit(wb.masking_view, inputs, outputs, api_visibility="private")
