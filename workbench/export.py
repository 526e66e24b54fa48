"""A finished pre-training run's model leaves the run: `export_model` copies it (optionally as float16)
to a plain Hugging Face folder, and `model_card` writes the README.md that says what it is and exactly
how it was made, all read from the run directory (workbench.runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Sequence

from .runs import (
    COMMAND,
    CONFIG,
    METRICS,
    MODEL,
    PROBES,
    SUMMARY,
    RunError,
    halve_weights,
    is_model_dir,
    prepare_run_dir,
)


def _size_name(m: dict, model_cfg: dict) -> str:
    """The preset's name when its shape was kept, else the shape itself: a card must not call a widened
    `tiny` tiny."""
    if all(m.get(key) is None for key in ("layers", "hidden", "heads", "intermediate")):
        return m["size"]
    return f"{model_cfg['num_hidden_layers']}-layer, {model_cfg['hidden_size']}-wide"


def _recipe_rows(m: dict, summary: dict, layers: int) -> list[str]:
    """Model-card rows for the metrics and recipe fields that older runs may not have."""
    rows = []
    if "val_mask_accuracy" in summary:
        rows.append(f"| [MASK]-only validation (15% of positions, all replaced by [MASK]) | accuracy "
                    f"{summary['val_mask_accuracy']:.1%}, loss {summary['val_mask_loss']:.3f} |")
    if "cloze_top1" in summary:
        rows.append(f"| cloze probes (assets/probes, {summary.get('cloze_probes', 0)} answerable) | "
                    f"top-1 {summary['cloze_top1']:.1%}, top-5 {summary['cloze_top5']:.1%} |")
    arch = m["architecture"]
    window = m.get("local_window")
    if arch == "modernbert" and "global_every" in m and window != 0:
        window = 8 if window is None else window
        # counted from the bottom as workbench.model.layer_types does: every global_every-th layer is global
        global_layers = [str(i) for i in range(1, layers + 1) if i % m["global_every"] == 0]
        if not global_layers:  # e.g. 2 layers with a global layer every 4th -> none
            arch += f", local attention window {window} in all {layers} layers (no global layer)"
        else:
            arch += (f", local attention window {window}; global attention in layer{'s' * (len(global_layers) > 1)} "
                     f"{', '.join(global_layers)} of {layers}")
    if "output_bias" in m:
        arch += f"; initialised from the corpus: output bias {m['output_bias']}, embeddings {m['embedding_init']}"
    return rows + [f"| architecture | {arch} |"]


def model_card(run_dir: str | Path, examples: Optional[list[tuple[str, list[str]]]] = None,
               extra_rows: Sequence[tuple[str, str]] = (), name: Optional[str] = None) -> str:
    """A README.md for the final model of a pre-training run: what it is, the exact command, seeds,
    corpus, training time and validation metrics, all read from the run directory. `examples` are
    (text, top predictions) pairs to show; `extra_rows` more (name, value) rows for the table; `name`
    heads the card (default: the run's folder name; export passes the exported folder's)."""
    run = Path(run_dir)
    if not (run / SUMMARY).exists():
        raise RunError(f"{run}: no summary.json; the run has not finished")
    cfg = json.loads((run / CONFIG).read_text())
    summary = json.loads((run / SUMMARY).read_text())
    model_cfg = json.loads((run / MODEL / "config.json").read_text())
    commands = (run / COMMAND).read_text().splitlines() if (run / COMMAND).exists() else ["(not recorded)"]
    data = cfg["data"]["data"] or ["the default corpus (see assets/DATA.md)"]
    m, t, k = cfg["model"], cfg["train"], cfg["masking"]
    lines = [
        f"# {name or run.name}: a {_size_name(m, model_cfg)} masked language model ({model_cfg.get('model_type')})",
        "",
        f"Pre-trained from scratch by this project's own command; {model_cfg['num_hidden_layers']} layers, hidden "
        f"{model_cfg['hidden_size']}, {model_cfg['num_attention_heads']} heads, "
        f"vocabulary {model_cfg['vocab_size']:,}.",
        "",
        "## Made with",
        "",
        "```",
        *commands,
        "```",
        "",
        "| | |",
        "|---|---|",
        f"| corpus | {', '.join(data)} |",
        f"| tokenizer | {cfg['tokenizer']['algorithm']}, vocabulary {cfg['tokenizer']['vocab_size']:,}, "
        f"lower-case {cfg['tokenizer']['lowercase']} |",
        f"| masking | {k['mlm_probability']:.0%} of tokens ({k['mask_strategy']}), {k['mask_fraction']:.0%} [MASK] / "
        f"{k['random_fraction']:.0%} random / rest kept; masking seed {k['seed']} |",
        f"| optimisation | batch {t['batch_size']} x {t['seq_len']} tokens, peak lr {t['lr']}, {t['schedule']} "
             "schedule, "
        f"warmup {t['warmup']:.0%}, dropout {m['dropout']}, training seed {t['seed']} |",
        f"| training | {summary['steps']:,} steps, {summary['tokens']:,} tokens, {summary['train_time'] / 60:.1f} min "
             "of "
        f"training at {summary['tokens_per_s']:,.0f} tokens/s on {summary['device']} "
        f"({'fp32' if summary['precision'] == 'no' else summary['precision']}) |",
        f"| validation (fixed masks) | MLM loss {summary.get('val_loss', float('nan')):.3f}, perplexity "
        f"{summary.get('val_perplexity', float('nan')):.1f}, masked-token accuracy "
             f"{summary.get('val_accuracy', float('nan')):.1%} |",
        *_recipe_rows(m, summary, model_cfg["num_hidden_layers"]),
        *(f"| {name} | {value} |" for name, value in extra_rows),
    ]
    if examples:
        lines += ["", "## What it predicts", "", "| text | top predictions |", "|---|---|"]
        lines += [f"| `{text}` | {', '.join(f'`{p}`' for p in preds)} |" for text, preds in examples]
    return "\n".join(lines) + "\n"


def export_model(run_dir: str | Path, dest: str | Path, overwrite: bool = False, half: bool = False) -> Path:
    """Copy a run's final model (weights, config, tokenizer) to `dest`. An existing `dest` is kept
    unless `overwrite` (then moved aside to DEST.old-N, as for runs). `half` stores the floating-point
    weights in float16: half the size; the package loads them back as float32."""
    src = Path(run_dir) / MODEL
    if not is_model_dir(src):
        raise RunError(f"{run_dir}: no final model in {src}")
    if not (Path(run_dir) / SUMMARY).exists() or not (Path(run_dir) / CONFIG).exists():
        raise RunError(f"{run_dir}: not a finished pre-training run (no summary.json or config.json)")
    architectures = json.loads((src / "config.json").read_text()).get("architectures") or []
    if not any(a.endswith("ForMaskedLM") for a in architectures):
        raise RunError(f"{run_dir}: its model is not a masked language model (export is for pre-training runs)")
    if Path(dest).exists() and any(Path(dest).iterdir()) and not overwrite:
        raise RunError(f"{dest}: exists; use --overwrite to replace it (the old one is then kept as {dest}.old-N)")
    out = prepare_run_dir(dest, overwrite=overwrite, marker=False)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, out / f.name)
    for name in (SUMMARY, METRICS, PROBES):  # the summary, curve and probe records travel with the model (the app
        if (Path(run_dir) / name).exists():  # shows them for a start model whose directory holds them)
            shutil.copy2(Path(run_dir) / name, out / name)
    if half:
        halve_weights(out)
    return out
