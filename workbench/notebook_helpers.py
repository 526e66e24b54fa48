"""Glue that only the notebooks need: quiet output, notebook-owned run directories, a model to
inspect, a live training plot, and static PNG copies of the plotly figures for viewers that do not
run JavaScript (code hosts).

Everything here is presentation or bookkeeping; the work itself is done by the rest of the package.

    python -m workbench.notebook_helpers png notebooks/0*.ipynb

adds the PNG copies to executed notebooks before they are committed (see notebooks/README.md).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from . import runs

MARKER = ".made-by-notebook"  # runs/.NAME.made-by-notebook: runs/NAME belongs to a notebook and may be replaced


def repo_root() -> Path:
    """The repository root (the package is installed in editable mode); else the working directory's
    parent when it is `notebooks/`, else the working directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else cwd


class RepoRelativeStream:
    """A text stream that writes through to `stream` with the repository root cut out of the text, so
    that saved outputs show `runs/notebook-03/...` rather than this machine's absolute path."""

    def __init__(self, stream, root: str):
        self._stream, self._root = stream, root

    def write(self, text):
        return self._stream.write(text.replace(self._root, "") if isinstance(text, str) else text)

    def __getattr__(self, name):  # flush, set_parent, ... of the kernel's own stream
        return getattr(self._stream, name)


def shown(path: str | Path) -> str:
    """A path as a notebook shows it: relative to the repository root when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(repo_root()))
    except ValueError:
        return str(path)


def setup(renderer: str = "plotly_mimetype") -> None:
    """Plotly figures as plotly's own MIME type (JupyterLab and VS Code draw them interactively and
    offline; the file stores only the figure's data, not the 4.6 MB plotly.js), no progress
    bars or tokenizer-length warnings in saved outputs, and paths printed relative to the
    repository root (RepoRelativeStream on stdout and stderr)."""
    import datasets
    import plotly.io as pio
    import transformers

    pio.renderers.default = renderer
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    root = str(repo_root()) + os.sep
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RepoRelativeStream):
            setattr(sys, name, RepoRelativeStream(stream, root))


def notebook_run_dir(name: str) -> Path:
    """runs/<name>, for a notebook to train into: a path that does not exist yet. A directory left
    there by an earlier run of a notebook is removed first; one the notebooks did not make (a
    user's run) is never touched: that is an error naming it. Ownership is a marker file beside
    the directory (runs/.<name>.made-by-notebook), so the run directory itself stays a plain run."""
    root = repo_root() / "runs"
    path, marker = root / name, root / f".{name}{MARKER}"
    if path.exists():
        if not marker.exists():
            raise runs.RunError(f"{path} exists and was not made by a notebook: move it away or choose another name")
        shutil.rmtree(path)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("runs/%s was made by a notebook; re-running the notebook replaces it\n" % name)
    return path


# ---- a model to fine-tune or inspect ---------------------------------------------------------------

def find_model(prefer: Sequence[str] = ("assets/default-model", "runs/notebook-03",
                                        "runs/notebook-quick-model")) -> Optional[Path]:
    """The first of `prefer` (relative to the repository root) that holds a finished masked-LM model."""
    for rel in prefer:
        p = repo_root() / rel
        try:
            model_dir, _ = runs.resolve_model_dir(p)
        except runs.RunError:
            continue
        if "checkpoints" not in model_dir.parts:  # a finished model, not a half-way checkpoint
            return p
    return None


def quick_model(preset: str = "tiny", time_budget: str = "60s", device: str = "auto",
                max_documents: Optional[int] = 1000, name: str = "notebook-quick-model",
                threads: Optional[int] = 1) -> Path:
    """A model to work with: assets/default-model, else notebook 03's run, else a short pre-training
    run into runs/<name> (about `time_budget` plus ~15 s of preparation)."""
    found = find_model()
    if found is not None:
        return found
    from .config import preset as make_preset
    from .pretrain import pretrain

    cfg = make_preset(preset)
    cfg.data.max_documents = max_documents
    cfg.train.time_budget = time_budget
    cfg.train.device = device
    cfg.train.threads = threads
    cfg.train.eval_every = 0
    run_dir = notebook_run_dir(name)
    pretrain(cfg, run_dir, progress=False)
    return run_dir


# ---- live training plot ----------------------------------------------------------------------------

class LivePlot:
    """A training callback (`callback(kind, record)`) that redraws the loss curves while a run goes on.

    With anywidget installed it is a plotly FigureWidget updated in place; without it, a normal
    plotly output replaced through its display handle. Either way a static copy of the final figure
    stays in the notebook, so the curve is there for readers who open the file without a kernel."""

    def __init__(self, metrics: Sequence[str] = ("loss", "val_loss"), x: str = "step", name: str = "run",
                 min_interval: float = 0.5, title: Optional[str] = None, records: Sequence[dict] = ()):
        self.metrics, self.x, self.name, self.title = list(metrics), x, name, title
        self.records: list[dict] = list(records)  # e.g. runs.read_metrics(run) to continue a resumed run's curve
        self.min_interval = min_interval
        self._last = 0.0
        self._widget = None
        self._handle = None

    def figure(self):
        from .plots import training_curves

        fig = training_curves({self.name: self.records}, x=self.x, y=self.metrics)
        if self.title:
            fig.update_layout(title=self.title)
        return fig

    def show(self) -> "LivePlot":
        from IPython.display import display

        fig = self.figure()
        try:
            import plotly.graph_objects as go

            self._widget = go.FigureWidget(fig)  # needs anywidget (plotly >= 6)
            display(self._widget)
        except ImportError:
            # a raw MIME bundle: plotly's own display hook would ignore the display id and append
            # a new output at every update instead of replacing this one
            self._handle = display(fig._repr_mimebundle_(), raw=True, display_id=True)
        return self

    def __call__(self, kind: str, record: dict) -> None:
        if kind in ("train", "eval"):
            self.records.append(record)
        now = time.monotonic()
        if kind == "train" and now - self._last < self.min_interval:
            return
        self._last = now
        self._redraw(final=kind == "end")

    def _redraw(self, final: bool = False) -> None:
        fig = self.figure()
        if self._widget is not None:
            with self._widget.batch_update():
                if len(self._widget.data) != len(fig.data):
                    self._widget.data = ()
                    self._widget.add_traces(list(fig.data))
                else:
                    for old, new in zip(self._widget.data, fig.data):
                        old.x, old.y = new.x, new.y
            if final:
                from IPython.display import display

                display(fig)  # static copy: widget views are not stored with the notebook
        elif self._handle is not None:
            self._handle.update(fig._repr_mimebundle_(), raw=True)


# ---- static PNG copies of plotly outputs -------------------------------------------------------------

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def add_png_fallbacks(paths: Sequence[str | Path], width: int = 860,
                      chromium: str = "/usr/bin/chromium") -> dict[str, int]:
    """Give every plotly output of the notebooks an image/png rendering beside its plotly JSON, drawn
    by plotly.js in headless Chromium (Playwright). JupyterLab still shows the interactive figure
    (its renderer ranks first); a code host, which runs no JavaScript, shows the PNG. Also drops the
    stored widget state. Returns the number of figures rendered per notebook."""
    import plotly
    from playwright.sync_api import sync_playwright

    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    done: dict[str, int] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content("<html><body><div id='g'></div></body></html>")
        page.add_script_tag(path=str(plotly_js))
        for path in paths:
            nb = json.loads(Path(path).read_text(encoding="utf-8"))
            # the widget state execution stores (57 kB in notebook 5): a widget needs a running kernel anyway
            nb.get("metadata", {}).pop("widgets", None)
            n = 0
            for cell in nb.get("cells", []):
                for out in cell.get("outputs", []):
                    data = out.get("data") or {}
                    if PLOTLY_MIME not in data:
                        continue
                    spec = data[PLOTLY_MIME]
                    layout = dict(spec.get("layout") or {})
                    h = int(layout.get("height") or 450)
                    w = int(layout.get("width") or width)
                    url = page.evaluate(
                        "async ([d, l, w, h]) => Plotly.toImage({data: d, layout: l}, {format: 'png', width: w, "
                                        "height: h})",
                        [spec.get("data") or [], layout, w, h])
                    data["image/png"] = _small_png(url.split(",", 1)[1])
                    out.setdefault("metadata", {})["image/png"] = {"width": w, "height": h}
                    n += 1
            Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            done[str(path)] = n
        browser.close()
    return done



def _small_png(b64: str) -> str:
    """A base64 PNG reduced to a 256-colour palette (no dithering): plotly's flat colours and
    gradients survive, and the file is about a quarter of the size (notebook 5's PNGs: 354 kB -> 88 kB).
    Pillow is installed with gradio."""
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG",
                                                                                               optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "png" or len(argv) < 2:
        print("usage: python -m workbench.notebook_helpers png NOTEBOOK.ipynb [...]", file=sys.stderr)
        return 2
    for path, n in add_png_fallbacks(argv[1:]).items():
        print(f"{path}: {n} figures, {Path(path).stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
