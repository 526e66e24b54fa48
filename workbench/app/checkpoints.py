"""The checkpoint picker the Fill-mask and Attention tabs share: for a run, its weights-only snapshots
(RUN/snapshots/step-N, workbench.watch) and its checkpoints, so the same sentence can be read at step
50, 400 and 4,000. A choice is a path relative to the picked model's directory and must stay inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import gradio as gr

from .. import inspection, limits, runs, watch

FINAL = ""  # the picked model itself (a run's final model, else its latest checkpoint)


class CheckpointHandlers:
    """Mixed into the tab handlers that read a model (FillMaskHandlers, AttentionHandlers)."""

    def checkpoint_choices(self, choice: Optional[str]) -> list[tuple[str, str]]:
        """(label, value) entries: the model as picked, then every snapshot and checkpoint of its run,
        by step."""
        out = [("final model (as picked)", FINAL)]
        try:
            base = Path(self.resolve_choice(choice))
        except inspection.InspectionError:
            return out
        if not base.is_dir():
            return out
        found = [(step, f"step {step:,} (snapshot, float16)", p) for step, p in watch.snapshots(base)]
        for ckpt in runs.checkpoints(base):
            found.append((int(ckpt.name.split("-")[1]), f"step {int(ckpt.name.split('-')[1]):,} (checkpoint)", ckpt))
        for _, label, p in sorted(found, key=lambda t: (t[0], t[1])):
            out.append((label, p.relative_to(base).as_posix()))
        return out

    def checkpoint_path(self, choice: Optional[str], checkpoint: Optional[str] = FINAL) -> str:
        """The directory to load: the picked model, or one of its run's snapshots/checkpoints (a path
        inside the picked model's directory; anything else is refused)."""
        base = self.resolve_choice(choice)
        checkpoint = self.within(limits.check_model_field, checkpoint)
        if not checkpoint:
            return base
        try:
            path = runs.inside(base, checkpoint)
        except runs.RunError:
            raise inspection.InspectionError(f"refused: checkpoint {checkpoint} is outside {base}") from None
        if not runs.is_model_dir(path):
            raise inspection.InspectionError(f"{checkpoint}: no such snapshot or checkpoint in {base}")
        return str(path)

    def mlm_at(self, choice: Optional[str], checkpoint: Optional[str] = FINAL):
        """(model, tokenizer) of the picked model at the chosen checkpoint, from the shared cache."""
        return self.mlms.get(self.checkpoint_path(choice, checkpoint))

    def checkpoint_label(self, choice: Optional[str], checkpoint: Optional[str] = FINAL) -> str:
        name = Path(self.resolve_choice(choice)).name
        return f"{name} @ {Path(checkpoint).name}" if checkpoint else name


def wire_checkpoints(wb, picker, ckpt) -> None:
    """On load and on a model picker's change, its checkpoint picker lists that run's snapshots and
    checkpoints (and goes back to the model as picked)."""
    gr.on(None, lambda c: gr.update(choices=wb.checkpoint_choices(c), value=FINAL), [picker], [ckpt],
          api_visibility="private")
