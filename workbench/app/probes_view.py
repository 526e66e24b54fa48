"""Predictions through training, in the Training tab: each cloze probe's answer probability against
step, tokens or time (RUN/probes.jsonl, written at every evaluation by workbench.watch), and a table of
the model's top-1 for every probe at every evaluation, so one can watch a run leave the plateau where
it answers `the` everywhere. API: /probes."""

from __future__ import annotations

import html
from typing import Optional

import gradio as gr
import pandas as pd

from .. import plots
from ..watch import PROBE_RECORDS, read_probe_records

ALL = "all probes"
VALUES = {"P(accepted answers)": "p_answer", "P(best-ranked answer)": "p_best"}


class ProbesHandlers:
    """Handlers of the probe view (CurvesHandlers derives from this; it supplies record_dir and
    _read_selected)."""

    def probe_runs(self) -> list[tuple[str, str]]:
        return self._record_choices(lambda d: (d / PROBE_RECORDS).exists())

    def probe_records(self, selected) -> tuple[dict[str, list[dict]], list[str]]:
        """({run: probe records}, refused names) of the chosen runs."""
        data, refused, _ = self._read_selected(selected, read_probe_records)
        return data, refused

    def probes_view(self, selected, x: str = "step", value: str = "p_answer", probe: Optional[str] = ALL):
        """(probe curves, top-1 table of the first run, probe picker update, message)."""
        data, refused = self.probe_records(selected)
        value = VALUES.get(value, value)
        if value not in VALUES.values():
            raise gr.Error(f"value must be one of {list(VALUES.values())}")
        note = []
        if x not in ("step", "tokens", "time"):
            note.append(f"probe curves are drawn against tokens (x = {x} applies to the curves above)")
            x = "tokens"
        texts = _probe_texts(data)
        ids = None if probe in (None, "", ALL) else [i for i, t in texts.items() if _label(i, t) == probe] or None
        fig = plots.probe_curves(data, x=x, value=value, probe_ids=ids)
        first = next(iter(data), None)
        rows, headers = top1_table(data[first]) if first else ([], ["probe"])
        if refused:
            note.append(f"⚠️ refused (outside the runs directory {self.runs_dir}): "
                        f"{', '.join(map(html.escape, refused))}")
        elif data and not any(data.values()):
            note.append("no probe records yet: a run writes probes.jsonl at every evaluation (`--eval-every`)")
        elif first:
            note.append(f"top-1 table: **{html.escape(first)}**, one column per evaluation (✓: an accepted answer)")
        choices = [ALL] + [_label(i, t) for i, t in sorted(texts.items())]
        picked = probe if probe in choices else ALL
        return (fig, pd.DataFrame(rows, columns=headers), gr.update(choices=choices, value=picked),
                "\n\n".join(note))

    def probes_api(self, run_names: list[str]) -> dict:
        """{runs: {run: [evaluation records]}, refused: [...]}; each record holds step, tokens, time,
        cloze_top1/top5 and `probes`: [{id, text, answers, answer, rank, p_best, p_answer, top1, top1_p}]."""
        data, refused = self.probe_records(run_names)
        return {"runs": data, "refused": refused}


def _probe_texts(data: dict[str, list[dict]]) -> dict[int, str]:
    texts: dict[int, str] = {}
    for records in data.values():
        for rec in records:
            for p in rec.get("probes", []):
                texts.setdefault(p["id"], p["text"])
    return texts


def _label(pid: int, text: str) -> str:
    return f"{pid}: {text}"


def top1_table(records: list[dict]) -> tuple[list[list], list[str]]:
    """Rows: probes (text, accepted answers); columns: the evaluations (step N); cells: the model's
    top-1 there, marked ✓ when it is an accepted answer (rank 1)."""
    headers = ["probe", "answers"] + [f"step {rec['step']}" for rec in records]
    rows: dict[int, list] = {}
    for j, rec in enumerate(records):
        for p in rec.get("probes", []):
            row = rows.setdefault(p["id"], [p["text"], ", ".join(p.get("answers", []))] + [""] * len(records))
            row[2 + j] = p["top1"] + (" ✓" if p["rank"] == 1 else "")
    return [rows[i] for i in sorted(rows)], headers


def api(wb):
    """The /probes endpoint (a plain typed function for gr.api)."""
    def probes(run_names: list[str]) -> dict:
        """Per-probe records of the named runs (or the start model) at every evaluation."""
        return wb.probes_api(run_names)
    return probes


def build() -> dict:
    """The view's components, created inside the Training tab."""
    gr.Markdown("### Predictions through training\nEach cloze probe's answer probability at every evaluation "
                "(thin lines; the thick line is the mean), and the model's first guess for each probe.")
    with gr.Row():
        value = gr.Radio(list(VALUES), value=list(VALUES)[0], label="probability")
        probe = gr.Dropdown([ALL], value=ALL, label="probe", allow_custom_value=True, scale=3)
    msg = gr.Markdown()
    plot = gr.Plot(label="Cloze probes through training", elem_id="probes-plot")
    table = gr.Dataframe(headers=["probe", "answers"], label="Top-1 per evaluation", interactive=False,
                         elem_id="probes-table")
    return {"value": value, "probe": probe, "msg": msg, "plot": plot, "table": table}


def wire(wb, ui: dict, run_names, x, timer, refresh) -> None:
    inputs = [run_names, x, ui["value"], ui["probe"]]
    outputs = [ui["plot"], ui["table"], ui["probe"], ui["msg"]]
    for control in (run_names, x, ui["value"], ui["probe"]):
        control.change(wb.probes_view, inputs, outputs, api_visibility="private", trigger_mode="always_last")
    timer.tick(wb.probes_view, inputs, outputs, api_visibility="private", show_progress="hidden")
    refresh.click(wb.probes_view, inputs, outputs, api_visibility="private")
    ui["io"] = (inputs, outputs)  # the page also runs the view on load (app.shell)
