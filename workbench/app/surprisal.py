"""The Surprisal tab: how expected each token of a sentence is to one or two models (pseudo-log-
likelihood, one masked copy per token: workbench.surprisal), as a coloured sentence and bars."""

from __future__ import annotations

import html

import gradio as gr
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .. import inspection, limits, plots
from ..surprisal import Surprisal, token_surprisal

EXAMPLE = "the president said on tuesday that he would sign the bill ."
HOT_BITS = 16.0  # surprisal drawn at full colour (2^-16: about 1 in 65,000)


class SurprisalHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def _surprisal(self, text: str, model: str) -> tuple[str, Surprisal]:
        """(the model's path, its surprisal of text), the request checked against the limits first."""
        text = self.within(limits.check_text, text)
        m, tok = self.mlm(model)
        self.within(limits.check_surprisal_tokens, len(tok(text or "", verbose=False)["input_ids"]))
        return self.resolve_choice(model), token_surprisal(m, tok, text)

    def surprisal_results(self, text: str, model: str = "", model_b: str = "") -> list[tuple[str, Surprisal]]:
        """One (path, Surprisal) per model: the page's model, and `model_b` when one is chosen."""
        out = [self._surprisal(text, model)]
        if model_b:
            out.append(self._surprisal(text, model_b))
        return out

    def surprisal_api(self, text: str, model: str = "", model_b: str = "") -> dict:
        try:
            results = self.surprisal_results(text, model, model_b)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"models": [{"model": path, **s.as_dict()} for path, s in results]}

    def surprisal_view(self, text: str, model: str, model_b: str):
        """(coloured sentences as HTML, bar chart, message) for the page."""
        try:
            results = self.surprisal_results(text, model, model_b)
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return "", None, f"⚠️ {html.escape(str(e))}"
        lines = [f"**{html.escape(path)}**: pseudo-log-likelihood {s.pll:.2f} nats over {len(s.tokens)} tokens, "
                 f"pseudo-perplexity {s.pseudo_perplexity:,.1f}" + (f" (ℹ️ {html.escape(s.notice)})" if s.notice else "")
                 for path, s in results]
        return coloured(results), bars(results), "\n\n".join(lines)


def _shown(token: str) -> tuple[str, str]:
    """(leading space, text) of a token as it reads in the sentence (WordPiece ##, BPE Ġ, Unigram ▁)."""
    if token.startswith("##"):
        return "", token[2:]
    if token[:1] in ("Ġ", "▁"):
        return " ", token[1:]
    return " ", token


def coloured(results: list[tuple[str, Surprisal]]) -> str:
    """Each model's sentence with every token on a background from white (0 bits) to red (HOT_BITS or
    more); hovering a token shows its numbers and the model's own best guess."""
    blocks = []
    for path, s in results:
        spans = []
        for token, bits, lp, guess in zip(s.tokens, s.surprisal_bits, s.logprobs, s.top_tokens):
            space, text = _shown(token)
            heat = min(1.0, max(0.0, bits / HOT_BITS))
            colour = f"rgba(214, 39, 40, {heat:.2f})"
            tip = f"{token}: {bits:.2f} bits (p = {2 ** -bits:.2g}); best guess {guess}"
            spans.append(f'{space}<span class="surprisal-token" style="background:{colour};padding:1px 2px;'
                         f'border-radius:3px" title="{html.escape(tip)}" data-bits="{bits:.4f}">'
                         f"{html.escape(text)}</span>")
        blocks.append(f'<div class="surprisal-sentence" style="line-height:2;margin-bottom:8px">'
                      f'<small>{html.escape(path)}</small><br>{"".join(spans)}</div>')
    legend = (f"<small>white = expected (0 bits) … red = surprising ({HOT_BITS:g} bits or more); hover a token for "
              "its numbers</small>")
    return '<div id="surprisal-html">' + "".join(blocks) + legend + "</div>"


def bars(results: list[tuple[str, Surprisal]]) -> go.Figure:
    """Surprisal per token: one bar series per model, side by side when both tokenize the text alike,
    one panel each otherwise."""
    same = len({tuple(s.tokens) for _, s in results}) == 1
    rows = 1 if same else len(results)
    fig = make_subplots(rows=rows, cols=1, shared_yaxes=True, vertical_spacing=0.15,
                        subplot_titles=None if same else [p for p, _ in results])
    for i, (path, s) in enumerate(results):
        labels = [f"{j + 1}: {t}" for j, t in enumerate(s.tokens)]
        colour = plots.PALETTE[i % len(plots.PALETTE)]
        fig.add_trace(go.Bar(x=labels, y=s.surprisal_bits, name=path, marker_color=colour,
                             customdata=s.top_tokens, hovertemplate="%{x}: %{y:.2f} bits; best guess %{customdata}"
                             "<extra></extra>"), row=1 if same else i + 1, col=1)
    fig.update_layout(title="Surprisal of each token given all the others (bits)", barmode="group",
                      height=380 * rows, legend=dict(orientation="h", y=-0.25), margin=dict(l=60, r=20, t=50, b=80))
    fig.update_yaxes(title_text="bits")
    return fig


def api(wb):
    """The /surprisal endpoint (a plain typed function for gr.api)."""
    def surprisal(text: str, model: str = "", model_b: str = "") -> dict:
        """Per-token log-probability and surprisal (bits) of the text, one token masked at a time, for
        the model (and model_b when given): {models: [{model, tokens, logprobs, surprisal_bits, top_tokens,
        pll, pseudo_perplexity, notice}]}."""
        return wb.surprisal_api(text, model, model_b)
    return surprisal


def build_and_wire(wb, picker) -> None:
    """The tab (created inside the page's Blocks) and its events; the page's picker is the first model."""
    with gr.Tab("Surprisal", id="surprisal"):
        gr.Markdown("How expected is each token, given all the others? Each token is masked in turn and the "
                    "model's probability of the real token read off (its *pseudo-log-likelihood*); surprisal = "
                    "-log2 p bits. The model is the one picked at the top; compare it with a second one.")
        text = gr.Textbox(label="Text", value=EXAMPLE, elem_id="surprisal-text")
        with gr.Row():
            other = gr.Dropdown([("none", "")] + wb.model_choices(), value="", label="Compare with",
                                allow_custom_value=True, scale=3)
            button = gr.Button("Score", variant="primary", scale=1)
        msg = gr.Markdown(elem_id="surprisal-message")
        sentence = gr.HTML(elem_id="surprisal-sentence")
        plot = gr.Plot(label="Surprisal per token", elem_id="surprisal-plot")
    inputs, outputs = [text, picker, other], [sentence, plot, msg]
    button.click(wb.surprisal_view, inputs, outputs, api_name="surprisal_view")
    text.submit(wb.surprisal_view, inputs, outputs, api_visibility="private")
