"""The Classify tab (shown when a fine-tuned classifier is around): label probabilities of a text."""

from __future__ import annotations

import html
from typing import Optional

import gradio as gr

from .. import inspection, limits, loading
from .core import ModelCache


class ClassifyHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def _init_classify(self) -> None:
        self.classifiers = ModelCache(inspection.load_classifier)

    def classifier_runs(self) -> list[str]:
        return self._runs(("ForSequenceClassification",))

    def classify_view(self, text: str, model: str) -> tuple[dict, str]:
        try:
            text = self.within(limits.check_text, text)
            m, tok = self.classifiers.get(self.resolve_choice(model, allowed_extra=self.classifier_path))
            if not (text or "").strip():
                raise inspection.InspectionError("the text is empty: type a sentence")
            return loading.classify(m, text, tokenizer=tok), ""
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return {}, f"⚠️ {html.escape(str(e))}"


def build_and_wire(wb, classifier: Optional[str]) -> None:
    """The tab and its events, when there is a classifier to offer (the start one or runs under runs_dir)."""
    choices = ([(f"{classifier} (start classifier)", str(classifier))] if classifier else []) + \
              [(f"runs: {n}", n) for n in wb.classifier_runs()]
    if not choices:
        return
    with gr.Tab("Classify", id="classify"):
        model = gr.Dropdown(choices, value=choices[0][1], label="Classifier")
        text = gr.Textbox(label="Text")
        button = gr.Button("Classify", variant="primary")
        msg = gr.Markdown()
        out = gr.Label(label="Label probabilities", num_top_classes=10)
    button.click(wb.classify_view, [text, model], [out, msg], api_name="classify")
    text.submit(wb.classify_view, [text, model], [out, msg], api_visibility="private")
