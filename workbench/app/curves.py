"""The Training tab: curves of the runs' metrics.jsonl against steps, tokens or time, live-refreshed,
with a table of the latest values."""

from __future__ import annotations

import html
from typing import Any, Optional

import gradio as gr

from .. import plots, runs

METRICS_Y = ["loss", "val_loss", "loss+val_loss", "val_perplexity", "val_accuracy"]


class CurvesHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench)."""

    def metric_runs(self) -> list[str]:
        return [p.name for p in runs.list_runs(self.runs_dir) if (p / runs.METRICS).exists()]

    def training_plot(self, selected: Optional[list[str]], x: str = "step", y: str = "loss"):
        """(curves of the chosen runs, summary table, message). Run names are checked to lie inside
        runs_dir."""
        selected = [selected] if isinstance(selected, str) else list(selected or [])
        data, refused = {}, []
        for name in selected:
            try:
                data[name] = runs.read_metrics(runs.inside(self.runs_dir, name))
            except runs.RunError:
                refused.append(name)
        if x not in plots.X_LABELS or y not in METRICS_Y:
            raise gr.Error(f"x must be one of {list(plots.X_LABELS)} and y one of {METRICS_Y}")
        msg = ""
        if refused:
            msg = f"⚠️ refused (outside the runs directory {self.runs_dir}): {', '.join(map(html.escape, refused))}"
            gr.Warning(msg)
        elif not selected:
            msg = (f"No run chosen. Runs with metrics under `{self.runs_dir}`: "
                   f"{', '.join(self.metric_runs()) or 'none yet - start one with `workbench pretrain`'}")
        return plots.training_curves(data, x=x, y=y.split("+")), _summary_rows(data), msg


def _summary_rows(data: dict[str, list[dict]]) -> list[list]:
    out = []
    for name, recs in data.items():
        train = [r for r in recs if r.get("kind") == "train"]
        ev = [r for r in recs if r.get("kind") == "eval"]
        last_t, last_e = (train[-1] if train else {}), (ev[-1] if ev else {})
        out.append([name, max((r.get("step", 0) for r in recs), default=0),
                    max((r.get("tokens", 0) for r in recs), default=0),
                    _round(last_t.get("loss")), _round(last_e.get("val_loss")), _round(last_e.get("val_perplexity")),
                    _round(last_e.get("val_accuracy"))])
    return out


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


def api(wb):
    """The /training_plot endpoint (a plain typed function for gr.api)."""
    def training_plot(run_names: list[str], x: str = "step", y: str = "loss") -> dict:
        """Curves of the named runs as data: {run: {"x": [...], "y": [...]}} plus the plotly figure JSON."""
        fig, _, msg = wb.training_plot(run_names, x, y)
        return {"series": {t.name: {"x": list(t.x), "y": list(t.y)} for t in fig.data}, "x": x, "y": y,
                "message": msg, "figure": fig.to_json()}
    return training_plot


def build(wb, live_every: float) -> dict:
    """The tab's components, created inside the page's Blocks."""
    with gr.Tab("Training", id="training"):
        metric_runs = wb.metric_runs()
        with gr.Row():
            run_names = gr.Dropdown(metric_runs, value=metric_runs[:1], multiselect=True,
                                    label=f"Runs under {wb.runs_dir}",
                                    scale=3)
            x = gr.Radio(list(plots.X_LABELS), value="step", label="x axis")
            y = gr.Dropdown(METRICS_Y, value="loss", label="metric")
        with gr.Row():
            refresh = gr.Button("Refresh")
            live = gr.Checkbox(value=True, label=f"live refresh every {live_every:g} s")
        msg = gr.Markdown()
        plot = gr.Plot(label="Curves", elem_id="training-plot")
        table = gr.Dataframe(headers=["run", "step", "tokens", "train loss", "val loss", "val perplexity",
                                      "val accuracy"],
                             label="Latest values", interactive=False)
        timer = gr.Timer(live_every, active=True)
    return {"runs": run_names, "x": x, "y": y, "refresh": refresh, "live": live, "msg": msg, "plot": plot,
            "table": table, "timer": timer}


def wire(wb, ui: dict) -> tuple[list, list]:
    """The tab's events; returns the view's (inputs, outputs), which the page also runs on load."""
    inputs, outputs = [ui["runs"], ui["x"], ui["y"]], [ui["plot"], ui["table"], ui["msg"]]
    ui["refresh"].click(lambda sel: gr.update(choices=wb.metric_runs(), value=sel), [ui["runs"]], [ui["runs"]],
                        api_visibility="private").then(wb.training_plot, inputs, outputs, api_visibility="private")
    for control in (ui["runs"], ui["x"], ui["y"]):
        control.change(wb.training_plot, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    ui["timer"].tick(wb.training_plot, inputs, outputs, api_visibility="private", show_progress="hidden")
    ui["live"].change(lambda on: gr.Timer(active=on), [ui["live"]], [ui["timer"]], api_visibility="private")
    return inputs, outputs
