"""The Training tab: curves of the runs' metrics.jsonl against steps, tokens, time or estimated
training FLOPs, live-refreshed, each run's budget marked, with a table comparing the runs (final
[MASK]-only accuracy and cloze scores); below them the cloze probes' predictions through training
(app.probes_view). The start model's own metrics.jsonl / probes.jsonl, when its directory holds
them, is offered beside the runs."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Optional

import gradio as gr
from safetensors import safe_open

from .. import plots, runs
from ..config import parse_duration
from . import probes_view

METRICS_Y = ["loss", "val_loss", "loss+val_loss", "val_perplexity", "val_accuracy", "val_mask_accuracy",
             "cloze_top1", "cloze_top5"]
TABLE_HEADERS = ["run", "step", "tokens", "train time (s)", "parameters", "est. training FLOPs", "budget",
                 "train loss", "val loss", "val accuracy", "[MASK]-only accuracy", "cloze top-1", "cloze top-5"]


class CurvesHandlers(probes_view.ProbesHandlers):
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def start_model_dir(self) -> Optional[Path]:
        """The start model's directory when it holds training records (metrics.jsonl or probes.jsonl):
        a run, or a model directory shipped with its curve (assets/default-model); RUN/model looks in RUN."""
        if not self.model_path:
            return None
        p = Path(self.model_path)
        for d in (p, p.parent) if p.name == runs.MODEL else (p,):
            if (d / runs.METRICS).is_file() or (d / probes_view.PROBE_RECORDS).is_file():
                return d
        return None

    def _record_choices(self, has) -> list[tuple[str, str]]:
        """Picker entries (label, value) of the start model (when it has records) and the runs under
        runs_dir for which `has(dir)` holds; the start model's own run is not listed twice."""
        start = self.start_model_dir()
        out = [(f"start model: {self.model_path}", self.model_path)] if start is not None and has(start) else []
        for p in runs.list_runs(self.runs_dir):
            if has(p) and (start is None or p.resolve() != start.resolve()):
                out.append((p.name, p.name))
        return out

    def metric_run_choices(self) -> list[tuple[str, str]]:
        return self._record_choices(lambda d: (d / runs.METRICS).exists())

    def metric_runs(self) -> list[str]:
        """Picker values of the runs with a metrics.jsonl (and the start model's path when it has one)."""
        return [v for _, v in self.metric_run_choices()]

    def record_dir(self, name: str) -> Path:
        """A picker value -> the directory whose records to read: the start model's, or a run inside
        runs_dir (anything else: runs.RunError)."""
        if name and name == self.model_path and self.start_model_dir() is not None:
            return self.start_model_dir()
        return runs.inside(self.runs_dir, name)

    def _read_selected(self, selected, read) -> tuple[dict, list[str], dict[str, Path]]:
        selected = [selected] if isinstance(selected, str) else list(selected or [])
        data, refused, dirs = {}, [], {}
        for name in selected:
            try:
                dirs[name] = self.record_dir(name)
                data[_short(name)] = read(dirs[name])
            except runs.RunError:
                refused.append(name)
        return data, refused, dirs

    def training_plot(self, selected: Optional[list[str]], x: str = "step", y: str = "loss"):
        """(curves of the chosen runs with their budgets marked, comparison table, message). Run names
        are checked to lie inside runs_dir (or to be the start model)."""
        if x not in plots.X_LABELS or y not in METRICS_Y:
            raise gr.Error(f"x must be one of {list(plots.X_LABELS)} and y one of {METRICS_Y}")
        data, refused, dirs = self._read_selected(selected, runs.read_metrics)
        params = {_short(n): parameter_count(d) for n, d in dirs.items()}
        budgets = {_short(n): budget_marks(runs.run_config(d), runs.summary_of(d), data[_short(n)],
                                           params[_short(n)]).get(x) for n, d in dirs.items()}
        msg = ""
        if refused:
            msg = f"⚠️ refused (outside the runs directory {self.runs_dir}): {', '.join(map(html.escape, refused))}"
            gr.Warning(msg)
        elif not dirs:
            msg = (f"No run chosen. Runs with metrics under `{self.runs_dir}`: "
                   f"{', '.join(self.metric_runs()) or 'none yet - start one with `workbench pretrain`'}")
        elif x == "flops" and not all(params.values()):
            msg = "ℹ️ no parameter count (no saved weights yet) for: " + ", ".join(n for n, v in params.items() if not v)
        fig = plots.run_comparison(data, x=x, y=y.split("+"), parameters=params, budgets=budgets)
        return fig, comparison_rows(data, params, {_short(n): runs.run_config(d) for n, d in dirs.items()}), msg


def _short(name: str) -> str:
    """A run's display name: its name under runs_dir, or the start model's folder name."""
    return Path(name).name if Path(name).is_absolute() or "/" in name else name


def parameter_count(run_or_model: Path) -> Optional[int]:
    """Parameters of a run's (or model directory's) saved weights, read from the safetensors headers
    (tied weights are stored once); None when nothing is saved yet."""
    try:
        model_dir, _ = runs.resolve_model_dir(run_or_model)
    except runs.RunError:
        return None
    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total or None


def budget_marks(config: Optional[dict], summary: Optional[dict], records: list[dict],
                 parameters: Optional[int]) -> dict[str, float]:
    """Where a run's budget lies on each x axis it can be placed on: `--max-steps` on the step axis
    (and on the token axis at the run's tokens per step), `--time-budget` on the time axis; once the
    run has finished (summary.json), its end on the others, since it stopped at its budget. FLOPs
    follow from tokens (plots.training_flops)."""
    train = (config or {}).get("train") or {}
    marks: dict[str, float] = {}
    last = next((r for r in reversed(records) if r.get("step") and r.get("tokens")), None)
    if train.get("max_steps"):
        marks["step"] = train["max_steps"]
        if last:
            marks["tokens"] = train["max_steps"] * last["tokens"] / last["step"]
    if train.get("time_budget"):
        marks["time"] = parse_duration(train["time_budget"])
    if summary:
        for axis, key in (("step", "steps"), ("tokens", "tokens"), ("time", "train_time")):
            if axis not in marks and summary.get(key) is not None:
                marks[axis] = summary[key]
    flops = plots.training_flops(parameters, marks.get("tokens"))
    if flops is not None:
        marks["flops"] = flops
    return marks


def _budget_text(config: Optional[dict]) -> str:
    train = (config or {}).get("train") or {}
    parts = [f"{train['time_budget']}" if train.get("time_budget") else "",
             f"{train['max_steps']:,} steps" if train.get("max_steps") else "",
             f"{train['epochs']:g} epochs" if train.get("epochs") else ""]
    return " / ".join(p for p in parts if p) or "-"


def comparison_rows(data: dict[str, list[dict]], params: dict[str, Optional[int]],
                    configs: dict[str, Optional[dict]]) -> list[list]:
    """One row per run: how far it got (step, tokens, time), its size and estimated compute, its
    budget, and the latest training and validation numbers ([MASK]-only accuracy, cloze top-1/top-5)."""
    out = []
    for name, recs in data.items():
        train = [r for r in recs if r.get("kind") == "train"]
        ev = [r for r in recs if r.get("kind") == "eval"]
        last_t, last_e = (train[-1] if train else {}), (ev[-1] if ev else {})
        tokens = max((r.get("tokens", 0) for r in recs), default=0)
        flops = plots.training_flops(params.get(name), tokens)
        out.append([name, max((r.get("step", 0) for r in recs), default=0), tokens,
                    _round(max((r.get("time", 0) for r in recs), default=0)), params.get(name),
                    f"{flops:.3g}" if flops else None, _budget_text(configs.get(name)),
                    _round(last_t.get("loss")), _round(last_e.get("val_loss")), _round(last_e.get("val_accuracy")),
                    _round(last_e.get("val_mask_accuracy")), _round(last_e.get("cloze_top1")),
                    _round(last_e.get("cloze_top5"))])
    return out


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def api(wb):
    """The /training_plot endpoint (a plain typed function for gr.api)."""
    def training_plot(run_names: list[str], x: str = "step", y: str = "loss") -> dict:
        """Curves of the named runs as data: {run: {"x": [...], "y": [...]}}, the comparison table
        (`columns`, `rows`) and the plotly figure JSON. x: step | tokens | time | flops."""
        fig, rows, msg = wb.training_plot(run_names, x, y)
        series = {t.name: {"x": list(t.x), "y": list(t.y)} for t in fig.data}
        return {"series": series, "x": x, "y": y, "columns": TABLE_HEADERS, "rows": rows, "message": msg,
                "figure": fig.to_json()}
    return training_plot


def build(wb, live_every: float) -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Training", id="training"):
        metric_runs = wb.metric_run_choices()
        with gr.Row():
            run_names = gr.Dropdown(metric_runs, value=[v for _, v in metric_runs[:1]], multiselect=True,
                                    label=f"Runs under {wb.runs_dir}", scale=3)
            x = gr.Radio(list(plots.X_LABELS), value="step", label="x axis",
                         info="flops: 6 × parameters × tokens, an estimate")
            y = gr.Dropdown(METRICS_Y, value="loss", label="metric")
        with gr.Row():
            refresh = gr.Button("Refresh")
            live = gr.Checkbox(value=True, label=f"live refresh every {live_every:g} s")
        msg = gr.Markdown()
        plot = gr.Plot(label="Curves (dashed lines: each run's budget)", elem_id="training-plot")
        table = gr.Dataframe(headers=TABLE_HEADERS, label="Runs compared (latest values)", interactive=False)
        probes_ui = probes_view.build()
        timer = gr.Timer(live_every, active=True)
    return {"runs": run_names, "x": x, "y": y, "refresh": refresh, "live": live, "msg": msg, "plot": plot,
            "table": table, "timer": timer, "probes": probes_ui}


def wire(wb, ui: dict) -> tuple[list, list]:
    """The tab's events; returns the view's (inputs, outputs), which the page also runs on load (the
    probe view is wired here too, with its own load event)."""
    inputs, outputs = [ui["runs"], ui["x"], ui["y"]], [ui["plot"], ui["table"], ui["msg"]]
    ui["refresh"].click(lambda sel: gr.update(choices=wb.metric_run_choices(), value=sel), [ui["runs"]], [ui["runs"]],
                        api_visibility="private").then(wb.training_plot, inputs, outputs, api_visibility="private")
    for control in (ui["runs"], ui["x"], ui["y"]):
        control.change(wb.training_plot, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    ui["timer"].tick(wb.training_plot, inputs, outputs, api_visibility="private", show_progress="hidden")
    ui["live"].change(lambda on: gr.Timer(active=on), [ui["live"]], [ui["timer"]], api_visibility="private")
    probes_view.wire(wb, ui["probes"], ui["runs"], ui["x"], ui["timer"], ui["refresh"])
    return inputs, outputs
