"""The page: the model picker, the tabs (one module each) and the events that span tabs; `launch`
serves it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from .. import limits
from . import attention, classify, curves, fill_mask, launcher, playground, probes_view, runs_tab
from . import similarity as similarity_tab  # `similarity` is also build_app's argument (an encoder path)
from . import surprisal as surprisal_tab
from .core import NO_MODEL_HELP, WorkbenchCore


class Workbench(fill_mask.FillMaskHandlers, attention.AttentionHandlers, playground.MaskingHandlers,
                curves.CurvesHandlers, classify.ClassifyHandlers, similarity_tab.SimilarityHandlers,
                runs_tab.RunsHandlers, surprisal_tab.SurprisalHandlers, WorkbenchCore):
    """What the app's handlers share (runs directory, start model, model caches) plus every tab's
    handlers. Handlers return page updates; `*_api` methods return plain data."""

    def __init__(self, model: Optional[str | Path] = None, runs_dir: str | Path = "runs",
                 classifier: Optional[str | Path] = None, similarity: Optional[str | Path] = None,
                 neighbour_corpus: Optional[list[str]] = None, max_budget: str | float = "30m"):
        WorkbenchCore.__init__(self, model, runs_dir, classifier, similarity)
        self._init_launcher(max_budget)
        self._init_attention()
        self._init_classify()
        self._init_similarity(neighbour_corpus)


def build_app(model: Optional[str | Path] = None, runs_dir: str | Path = "runs",
              classifier: Optional[str | Path] = None,
              live_every: float = 10.0, similarity: Optional[str | Path] = None,
              max_budget: str | float = "30m") -> gr.Blocks:
    """The app's Blocks, not launched. `model`: the start model (a run, checkpoint or model dir; by
    default assets/default-model, else the newest run); `classifier`: a fine-tuned classifier for the
    Classify tab (otherwise classifier runs under runs_dir are offered, and the tab is hidden when
    there are none); `similarity`: a contrastive (SimCSE) encoder for the Similarity tab (otherwise
    SimCSE runs under runs_dir are offered, and the tab is hidden when there are none);
    `live_every`: seconds between live refreshes of the training curves; `max_budget`: the longest
    time budget of a run started from the page (the Train a model tab)."""
    wb = Workbench(model, runs_dir, classifier, similarity, max_budget=max_budget)
    sim_choices = wb.similarity_choices()
    mask = wb.mask_token()
    layers, heads = wb.shape()
    with gr.Blocks(title="Pretraining Workbench") as demo:
        demo.workbench = wb  # tests and notebooks reach the handlers through it
        # Data endpoints first: later events default their api names to their function names, and
        # gradio renames a clashing endpoint (training_plot -> training_plot_5) instead of failing.
        gr.api(fill_mask.api(wb), api_name="fill_mask")
        gr.api(attention.api(wb), api_name="attention")
        gr.api(curves.api(wb), api_name="training_plot")
        gr.api(probes_view.api(wb), api_name="probes")
        gr.api(surprisal_tab.api(wb), api_name="surprisal")
        for fn, name in runs_tab.api(wb):
            gr.api(fn, api_name=name)
        if sim_choices:
            gr.api(similarity_tab.similarity_api(wb), api_name="similarity")
            gr.api(similarity_tab.neighbours_api(wb), api_name="neighbours")
        gr.Markdown("# Pretraining Workbench\nLook inside a BERT-style masked language model.")
        with gr.Row():
            picker = gr.Dropdown(choices=wb.model_choices(), value=wb.model_path, label="Model",
                                 info=f"the start model or a run under {wb.runs_dir}", allow_custom_value=True, scale=4)
            reload_btn = gr.Button("↻ rescan runs", scale=1)
        model_info = gr.Markdown(wb.describe(None) if wb.model_path else f"⚠️ {NO_MODEL_HELP}")

        fm = fill_mask.build(mask)
        at = attention.build(layers, heads)
        mk = playground.build()
        tr = curves.build(wb, live_every)
        classify.build_and_wire(wb, classifier)
        similarity_tab.build_and_wire(wb, sim_choices, reload_btn)
        surprisal_tab.build_and_wire(wb, picker)
        runs_tab.build_and_wire(wb, picker)

        # As-you-type events: only the latest pending one runs, without a progress overlay.
        typing = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="private")
        fm_inputs, fm_outputs = fill_mask.wire(wb, fm, picker, typing)
        attention.wire(wb, at, picker, typing)
        playground.wire(wb, mk, picker)
        tr_inputs, tr_outputs = curves.wire(wb, tr)

        def on_model(choice):
            tok_mask = wb.mask_token(choice)
            lay, hd = wb.shape(choice)
            return (wb.describe(choice), gr.update(placeholder=fill_mask.placeholder(tok_mask)),
                    gr.update(maximum=max(lay, 2), value=1),
                    gr.update(choices=attention.head_choices(hd), value=attention.AVERAGE))

        picker.change(on_model, [picker], [model_info, fm["text"], at["layer"], at["head"]], api_visibility="private")
        reload_btn.click(lambda c: gr.update(choices=wb.model_choices(), value=c), [picker], [picker],
                         api_visibility="private")

        demo.load(wb.fill_mask_view, fm_inputs, fm_outputs, api_visibility="private")
        demo.load(wb.training_plot, tr_inputs, tr_outputs, api_visibility="private")
        demo.load(wb.probes_view, *tr["probes"]["io"], api_visibility="private")
    return demo


def launch(model: Optional[str | Path] = None, runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = 7860,
           share: bool = False, classifier: Optional[str | Path] = None, similarity: Optional[str | Path] = None,
           max_budget: str | float = "30m", **launch_kwargs: Any):
    """Build and serve the app (what `workbench app` runs). Loopback only unless `host` says
    otherwise; no public share link unless asked. `similarity`: a contrastive (SimCSE) encoder for
    the Similarity tab (SimCSE runs under runs_dir are found without it)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this machine can use the app")
    demo = build_app(model, runs_dir, classifier, similarity=similarity, max_budget=max_budget)
    launcher.install_exit_handlers(demo.workbench.launcher)  # a run started from the page ends with the app
    if demo.workbench.similarity_choices():
        threading.Thread(target=demo.workbench.warm_neighbours, daemon=True, name="warm-neighbours").start()
    demo.queue(default_concurrency_limit=limits.CONCURRENCY, max_size=limits.QUEUE_MAX_SIZE)
    launch_kwargs.setdefault("max_file_size", limits.MAX_UPLOAD_BYTES)  # uploads: gradio refuses larger ones too
    return demo.launch(server_name=host, server_port=port, share=share, **launch_kwargs)
