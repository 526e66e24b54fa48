"""The "Train a model" tab: a form for a pre-training run (the typed config's fields, their comments
as help), Start / Stop / Resume, progress and the live curve of the app's one job
(workbench.app.launcher). Endpoints: /start_run, /stop_run, /resume_run, /run_status, /upload_corpus."""

from __future__ import annotations

import html
from typing import Optional

import gradio as gr

from .. import config as C
from .. import flags, plots, runs
from .launcher import LaunchError, RunLauncher

POLL_S = 2.0  # seconds between the page's status refreshes while it is open
DEFAULT_CORPUS = ("the default corpus (3,781 news articles, 12 MB)", "")


def _help(cls: type, name: str) -> str:
    return flags.field_comments(cls).get(name, "")


class RunsHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    launcher: RunLauncher

    def _init_launcher(self, max_budget: str | float) -> None:
        self.launcher = RunLauncher(self.runs_dir, max_budget)

    def corpus_choices(self) -> list[tuple[str, str]]:
        return [DEFAULT_CORPUS] + [(f"{self.runs_dir.name}/{f}", f) for f in self.launcher.corpus_files()]

    def _act(self, action, *args) -> dict:
        """Run a launcher action for the API: a refusal reaches the client as a readable gr.Error."""
        try:
            return action(*args)
        except ValueError as e:  # LaunchError, ConfigError, LimitError: messages meant for the user
            raise gr.Error(str(e)) from None

    def _view(self, action, *args) -> str:
        """The same for the page: the status panel, with a refusal on top of it (and as a toast)."""
        try:
            return status_html(action(*args))
        except ValueError as e:
            gr.Warning(str(e))
            return f'<p class="run-refused">⚠️ {html.escape(str(e))}</p>' + status_html(self.launcher.status())

    def start_run_view(self, name, preset, architecture, budget, rate, strategy, corpus, max_steps, eval_every):
        return self._view(self.launcher.start, name, preset, architecture, budget, rate, strategy, corpus,
                          int(max_steps or 0), int(eval_every or 0))

    def resume_run_view(self, name, budget, max_steps):
        return self._view(self.launcher.resume, name, budget, int(max_steps or 0))

    def stop_run_view(self):
        return self._view(self.launcher.stop)

    def upload_corpus_view(self, path: Optional[str]):
        """Store an uploaded corpus inside the runs folder and pick it; over the limit: a gr.Error."""
        if not path:
            return gr.update(), ""
        try:
            stored = self.launcher.store_upload(path)
        except (LaunchError, OSError) as e:
            raise gr.Error(str(e)) from None
        return gr.update(choices=self.corpus_choices(), value=stored), f"stored as `{self.runs_dir.name}/{stored}`"

    def run_curve(self, status: dict):
        name = status.get("name")
        records = runs.read_metrics(status["run_dir"]) if name and status.get("run_dir") else []
        return plots.training_curves({name: records} if name else {}, x="step", y=["loss", "val_loss"])

    def run_tick(self, seen: int, picker_value: Optional[str]):
        """(status panel, live curve, picker, seen): the picker is rescanned when a job has ended since
        this page last looked, so a finished run's model can be picked at once."""
        status = self.launcher.status()
        ended = status.get("ended_jobs", 0)
        picker = gr.update() if ended == seen else gr.update(choices=self.model_choices(), value=picker_value)
        return status_html(status), self.run_curve(status), picker, ended


def status_html(s: dict) -> str:
    bar = ""
    if s.get("name"):
        bar = (f'<progress value="{s.get("progress", 0):.4f}" max="1" style="width:100%"></progress>'
               f'<small>{s.get("progress", 0):.0%} of the run</small>')
    return (f'<div id="run-state" data-state="{html.escape(s["state"])}" data-step="{s.get("step", 0)}">'
            f'<b>{html.escape(s["state"])}</b>: {html.escape(s["message"])}{bar}</div>')


def api(wb) -> list:
    """(function, api_name) pairs for gr.api: plain typed functions (gr.api reads their signatures)."""
    def start_run(name: str, preset: str = "mini", architecture: str = "modernbert", time_budget: str = "2m",
                  mlm_probability: float = 0.15, mask_strategy: str = "token", corpus: str = "", max_steps: int = 0,
                  eval_every: int = 50) -> dict:
        """Start `workbench pretrain` into RUNS/NAME ('' corpus = the default; else a file under RUNS).
        Refused while another run is running. Returns the run status."""
        return wb._act(wb.launcher.start, name, preset, architecture, time_budget, mlm_probability, mask_strategy,
                       corpus, max_steps, eval_every)

    def stop_run() -> dict:
        """Stop the running run after its current step (it writes a checkpoint). Returns the status."""
        return wb._act(wb.launcher.stop)

    def resume_run(name: str, time_budget: str = "", max_steps: int = 0) -> dict:
        """Continue RUNS/NAME from its last checkpoint ('' budget = the run's own). Returns the status."""
        return wb._act(wb.launcher.resume, name, time_budget, max_steps)

    def run_status() -> dict:
        """The app's run: state (idle | running | stopping | finished | stopped | failed), step, time,
        budget, progress, loss, message and the end of its log."""
        return wb.launcher.status()

    return [(start_run, "start_run"), (stop_run, "stop_run"), (resume_run, "resume_run"), (run_status, "run_status")]


def build_and_wire(wb, picker) -> None:
    """The tab (created inside the page's Blocks) and its events."""
    cap = wb.launcher.max_budget_s / 60
    model_defaults, mask_defaults = C.ModelConfig(), C.MaskingConfig()
    with gr.Tab("Train a model", id="launch"):
        gr.Markdown(f"Pre-train a masked LM here: it runs as `workbench pretrain` into `{wb.runs_dir}/NAME`, one "
                    f"run at a time, at most {cap:g} minutes. Stop writes a checkpoint; Resume continues it. The "
                    "run keeps going if you reload the page.")
        with gr.Row():
            name = gr.Textbox(label="Run name", placeholder="my-first-run", elem_id="run-name",
                              info="letters, digits, . _ - (anything else becomes -)")
            preset = gr.Dropdown(list(C.PRETRAIN_PRESETS), value="mini", label="Preset", elem_id="run-preset",
                                 info="model size with its learning rate and batch")
            arch = gr.Dropdown(list(C.ARCHITECTURES), value=model_defaults.architecture, label="Architecture",
                               info=_help(C.ModelConfig, "architecture"))
        with gr.Row():
            budget = gr.Textbox(value="2m", label="Time budget", elem_id="run-budget",
                                info=f"{_help(C.TrainConfig, 'time_budget')}; at most {cap:g}m")
            steps = gr.Number(value=0, precision=0, minimum=0, label="Max steps (0 = the budget alone)",
                              info=_help(C.TrainConfig, "max_steps"), elem_id="run-steps")
            every = gr.Number(value=50, precision=0, minimum=0, label="Evaluate every N steps",
                              info=_help(C.TrainConfig, "eval_every"))
        with gr.Row():
            rate = gr.Slider(0.05, 0.5, value=mask_defaults.mlm_probability, step=0.01, label="Masking rate",
                             info=_help(C.MaskingConfig, "mlm_probability"))
            strategy = gr.Radio(list(C.MASK_STRATEGIES), value=mask_defaults.mask_strategy, label="Masking strategy")
        with gr.Row():
            corpus = gr.Dropdown(wb.corpus_choices(), value="", label="Corpus", allow_custom_value=True, scale=3,
                                 info=f"the default corpus or a .txt/.jsonl/.csv file under {wb.runs_dir}",
                                 elem_id="run-corpus")
            upload = gr.File(label="…or upload one (≤ 50 MB)", file_types=[".txt", ".jsonl", ".csv"],
                             type="filepath", scale=2)
        upload_msg = gr.Markdown()
        with gr.Row():
            start = gr.Button("Start", variant="primary", elem_id="run-start")
            stop = gr.Button("Stop", variant="stop", elem_id="run-stop")
            resume = gr.Button("Resume", elem_id="run-resume")
        # values as functions: run again on every page load, so a reload finds the job where it is
        status = gr.HTML(lambda: status_html(wb.launcher.status()), elem_id="run-status")
        plot = gr.Plot(lambda: wb.run_curve(wb.launcher.status()), label="Live curve", elem_id="run-plot")
        seen = gr.State(0)
        timer = gr.Timer(POLL_S, active=True)
    private = dict(api_visibility="private")
    form = [name, preset, arch, budget, rate, strategy, corpus, steps, every]
    start.click(wb.start_run_view, form, [status], **private)
    stop.click(wb.stop_run_view, [], [status], **private)
    resume.click(wb.resume_run_view, [name, budget, steps], [status], **private)
    upload.upload(wb.upload_corpus_view, [upload], [corpus, upload_msg], api_name="upload_corpus")
    timer.tick(wb.run_tick, [seen, picker], [status, plot, picker, seen], show_progress="hidden", **private)
