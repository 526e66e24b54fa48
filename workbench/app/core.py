"""What every tab shares: the runs directory, the start model, the model caches, and the rule
that the page may only open the start model and runs inside the runs directory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

from .. import inspection, limits, runs

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "assets" / "default-model"
NO_MODEL_HELP = ("No model to show yet. Train one with `workbench pretrain --preset mini --time-budget 2m --out "
                 "runs/demo` "
                 "(or `make demo`), then pick it above or restart with `workbench app --model runs/demo`.")


class ModelCache:
    """Loaded (model, tokenizer) pairs by path, least recently used dropped beyond `size`. One lock
    per path, so two first requests for the same checkpoint load it once."""

    def __init__(self, loader: Callable[[str], tuple], size: int = 2):
        self.loader, self.size = loader, size
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._path_locks: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a checkpoint was read from disk (tests check the caching)

    def get(self, path: str) -> tuple:
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
            lock = self._path_locks.setdefault(path, threading.Lock())
        with lock:
            try:
                with self._lock:
                    if path in self._items:
                        return self._items[path]
                item = self.loader(path)
                with self._lock:
                    self.loads += 1
                    self._items[path] = item
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
                return item
            finally:  # bounded: only locks of cached paths or of loads in progress are kept
                with self._lock:
                    for p in [p for p, lk in self._path_locks.items() if p not in self._items and not lk.locked()]:
                        del self._path_locks[p]


class WorkbenchCore:
    """The shared state of the app's handlers: the runs directory, the start model and the masked-LM
    cache. The tab modules add their handlers as mixins (`app.shell.Workbench`)."""

    def __init__(self, model: Optional[str | Path] = None, runs_dir: str | Path = "runs",
                 classifier: Optional[str | Path] = None, similarity: Optional[str | Path] = None):
        self.runs_dir = Path(runs_dir)
        self.model_path = self._pick_default(model)
        self.classifier_path = str(classifier) if classifier else None
        self.similarity_path = str(similarity) if similarity else None
        self.mlms = ModelCache(inspection.load_mlm)

    # -- models ----------------------------------------------------------------------------------
    def _pick_default(self, model: Optional[str | Path]) -> Optional[str]:
        """The model given; else assets/default-model; else the newest masked-LM run; else None."""
        if model:
            return str(model)
        if DEFAULT_MODEL.exists():
            return str(DEFAULT_MODEL)
        found = self.mlm_runs()
        return str(self.runs_dir / found[0]) if found else None

    def _runs(self, kinds: tuple[str, ...]) -> list[str]:
        out = []
        for p in runs.list_runs(self.runs_dir):
            arch = inspection.architectures(p)
            if any(a.endswith(kinds) for a in arch):
                out.append(p.name)
        return out

    def mlm_runs(self) -> list[str]:
        """Runs under runs_dir holding a masked-LM model or checkpoint, newest first."""
        return self._runs(("ForMaskedLM", "ForPreTraining"))

    def _choices(self, start: Optional[str], what: str, run_names: list[str]) -> list[tuple[str, str]]:
        """Picker entries: the start model first, then the runs (the start model's own run not twice)."""
        choices = [(f"{start} (start {what})", start)] if start else []
        for name in run_names:
            if not start or (self.runs_dir / name).resolve() != Path(start).resolve():
                choices.append((f"runs: {name}", name))
        return choices

    def model_choices(self) -> list[tuple[str, str]]:
        return self._choices(self.model_path, "model", self.mlm_runs())

    def resolve_choice(self, choice: Optional[str], allowed_extra: Optional[str] = None) -> str:
        """A picker value -> a path to load: the start model, or a run inside runs_dir. Anything
        else is refused (runs.inside), so the page cannot open arbitrary directories."""
        choice = self.within(limits.check_model_field, choice)  # a NUL byte or a huge name: a message
        if not choice:
            if not self.model_path:
                raise inspection.InspectionError(NO_MODEL_HELP)
            return self.model_path
        if choice in (self.model_path, allowed_extra):
            return str(choice)
        try:
            return str(runs.inside(self.runs_dir, choice))
        except runs.RunError:
            raise inspection.InspectionError(
                f"refused: {choice} is outside the runs directory {self.runs_dir}; the app only opens the start model "
                f"and runs under {self.runs_dir}") from None

    @staticmethod
    def within(check: Callable, *args):
        """A workbench.limits check; its LimitError becomes the InspectionError every tab shows."""
        try:
            return check(*args)
        except limits.LimitError as e:
            raise inspection.InspectionError(str(e)) from None

    def mlm(self, choice: Optional[str]):
        return self.mlms.get(self.resolve_choice(choice))

    def describe(self, choice: Optional[str]) -> str:
        """One line about the chosen model, or the reason it cannot be used."""
        try:
            model, tok = self.mlm(choice)
        except inspection.InspectionError as e:
            return f"⚠️ {e}"
        c = model.config
        path = self.resolve_choice(choice)
        line = (f"**Model** `{path}`: {type(model).__name__}, {c.num_hidden_layers} layers, "
                f"{c.num_attention_heads} heads, hidden {c.hidden_size}, vocabulary {len(tok):,}, "
                f"mask token `{tok.mask_token}`, at most {inspection.max_tokens(model, tok)} tokens")
        summary = runs.summary_of(path) if path and Path(path).exists() else None
        if summary and summary.get("val_accuracy") is not None:
            line += (f"; pre-trained {summary.get('steps', 0):,} steps, validation masked-token accuracy "
                     f"{summary['val_accuracy']:.1%}")
        return line

    def mask_token(self, choice: Optional[str] = None) -> str:
        try:
            return self.mlm(choice)[1].mask_token
        except inspection.InspectionError:
            return "[MASK]"

    def shape(self, choice: Optional[str] = None) -> tuple[int, int]:
        """(layers, heads) of the chosen model, for the attention selectors; (1, 1) without a model."""
        try:
            c = self.mlm(choice)[0].config
            return int(c.num_hidden_layers), int(c.num_attention_heads)
        except inspection.InspectionError:
            return 1, 1
