"""The `workbench` command. Every command is a thin layer over a package function; flags come from
the same typed configs the Python API uses (`workbench.config`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from transformers.utils import logging as hf_logging

from . import config as C
from . import experiments, export, finetune, flags, loading, runs, simcse
from .data import corpus_stats, iter_texts, load_corpus
from .embeddings import nearest_neighbours
from .inspection import fill_mask, load_mlm
from .prepare import prepare
from .pretrain import evaluate_mlm, pretrain
from .tokenizer import load_tokenizer, tokenizer_report, train_tokenizer
from .tokenstore import describe

EXAMPLES = """examples:
  workbench corpus-stats                               statistics of the default corpus
  workbench train-tokenizer --out tok --vocab-size 8192
  workbench pretrain --preset mini --time-budget 10m --out runs/mini
  workbench pretrain --out runs/mini --resume          continue an interrupted run
  workbench evaluate runs/mini
  workbench fill-mask runs/mini "the [MASK] of the united states"
  workbench finetune runs/mini --task sentiment
  workbench benchmark runs/mini
  workbench learning-curve runs/mini --task sentiment
  workbench pretrain --architecture bert --objective mlm+sop --mask-strategy span --out runs/mini-sop
  workbench simcse runs/mini --out runs/mini-simcse --time-budget 2m
  workbench app --runs runs
"""


def _pretrain_config(args: argparse.Namespace) -> C.PretrainConfig:
    cfg = C.preset(args.preset, getattr(args, "model.architecture")) if args.preset else C.PretrainConfig()
    if args.config:
        cfg = C.load_config_file(args.config, C.PretrainConfig, base=cfg)
    return C.from_dict(C.PretrainConfig, flags.overrides_from_args(args, C.PretrainConfig), cfg)


def _add_common_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=list(C.PRETRAIN_PRESETS),
                   help="size preset: model size with matching learning rate and batch (with --architecture bert, "
                        "BERT's own rate: 1e-3 for tiny)")
    p.add_argument("--config", help="a YAML or JSON file with (part of) the configuration; flags override it")


# ---- commands ------------------------------------------------------------------------------------

def cmd_corpus_stats(args) -> int:
    cfg = _pretrain_config(args)
    corpus = load_corpus(cfg.data, seed=cfg.train.seed)
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    out = {}
    for split in corpus:
        if len(corpus[split]) == 0:
            continue
        stats = corpus_stats(corpus[split]["text"], tokenizer)
        out[split] = stats.as_dict()
        if not args.json:
            print(f"== {split}\n{stats.table()}\n")
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def cmd_train_tokenizer(args) -> int:
    cfg = _pretrain_config(args)
    out = Path(args.out)
    runs.check_output_dir(out, overwrite=args.overwrite)  # before any work; touches nothing
    corpus = load_corpus(cfg.data, seed=cfg.train.seed)
    t0 = time.perf_counter()
    tok = train_tokenizer(iter_texts(corpus), cfg.tokenizer, length=len(corpus["train"]))
    runs.prepare_output_dir(out, overwrite=args.overwrite, kind="tokenizer")  # an old one is moved to OUT.old-N
    tok.save_pretrained(str(out))
    print(f"trained a {cfg.tokenizer.algorithm} tokenizer in {time.perf_counter() - t0:.1f}s -> {out}")
    print(tokenizer_report(tok, corpus["validation"]["text"]).table())
    return 0


def cmd_prepare(args) -> int:
    cfg = C.from_dict(C.PrepareConfig, flags.overrides_from_args(args, C.PrepareConfig))
    t0 = time.perf_counter()
    m = prepare(cfg, args.tokenizer, args.out, overwrite=args.overwrite, progress=args.progress)
    print(f"token store {args.out}: {describe(m)} ({time.perf_counter() - t0:.1f}s this run)")
    print(f"train from it: workbench pretrain --data {args.out} --out runs/NAME")
    return 0


def cmd_pretrain(args) -> int:
    if args.force and not args.resume:
        raise C.ConfigError("--force only applies to --resume")
    cfg = _pretrain_config(args)
    if args.resume and args.out and (Path(args.out) / runs.CONFIG).is_file():
        # --resume starts from the run's own config; only the flags typed now change it (and are checked)
        cfg = C.load_config_file(Path(args.out) / runs.CONFIG)
        if args.preset:
            overrides = C.preset_overrides(args.preset, getattr(args, "model.architecture"))
            cfg = C.from_dict(C.PretrainConfig, overrides, cfg)
        if args.config:
            cfg = C.load_config_file(args.config, C.PretrainConfig, base=cfg)
        cfg = C.from_dict(C.PretrainConfig, flags.overrides_from_args(args, C.PretrainConfig), cfg)
    out = args.out or f"runs/{args.preset or cfg.model.size}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = pretrain(cfg, out, resume=args.resume, overwrite=args.overwrite, force=args.force)
    runs.record_command(out, ["workbench", *args.argv])
    print(json.dumps(summary, indent=2))
    print(f"\nrun directory: {out}\ntry: workbench fill-mask {out} \"the [MASK] of the united states\"")
    return 0


# Simple sentences in the default corpus' domain (2017 US and Russian political news).
EXPORT_EXAMPLES = ("president donald [MASK] said on tuesday that he would sign the bill .",
                   "the white [MASK] said the president would meet russian officials .",
                   "relations between russia and the united [MASK] have worsened .",
                   "the bill was passed by the [MASK] on thursday .",
                   "she [MASK] that the government would act .")


def cmd_export(args) -> int:
    for text in args.example or ():
        if "[MASK]" not in text:
            raise ValueError(f"--example {text!r} has no [MASK] to fill")
    out = export.export_model(args.run, args.out, overwrite=args.overwrite, half=args.half)  # checks the run first
    model, tokenizer = load_mlm(out)  # the exported copy, so the card shows what users will get
    examples = []
    for text in args.example or EXPORT_EXAMPLES:
        text = text.replace("[MASK]", tokenizer.mask_token)
        examples.append((text, [p["token"] for p in fill_mask(model, tokenizer, text, top_k=5).predictions[0]]))
    extra = []
    if args.half:
        cfg = C.load_config_file(Path(args.run) / runs.CONFIG)
        m = evaluate_mlm(out, cfg, batches=cfg.train.eval_batches)
        extra.append(("stored weights", f"float16 (loaded as float32); validation of this copy, same fixed masks: "
                      f"MLM loss {m['val_loss']:.3f}, masked-token accuracy {m['val_accuracy']:.1%}, [MASK]-only "
                      f"accuracy {m['val_mask_accuracy']:.1%}, cloze top-1 {m['cloze_top1']:.1%} / top-5 "
                      f"{m['cloze_top5']:.1%}"))
    (out / "README.md").write_text(export.model_card(args.run, examples, extra, name=out.name), encoding="utf-8")
    print(f"exported {args.run} -> {out} (model card: {out / 'README.md'})")
    return 0


def cmd_evaluate(args) -> int:
    run_config = Path(args.model) / "config.json"
    cfg = _pretrain_config(args)
    if run_config.exists() and "train" in json.loads(run_config.read_text()):
        cfg = C.from_dict(C.PretrainConfig, flags.overrides_from_args(args, C.PretrainConfig),
                          C.load_config_file(run_config))
    print(json.dumps(evaluate_mlm(args.model, cfg, batches=args.batches), indent=2))
    return 0


def cmd_fill_mask(args) -> int:
    model, tokenizer = load_mlm(args.model)
    text = args.text.replace("[MASK]", tokenizer.mask_token) if tokenizer.mask_token != "[MASK]" else args.text
    result = fill_mask(model, tokenizer, text, top_k=args.top_k)  # a dict, JSON-ready
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if result.notice:
        print(f"note: {result.notice}")
    for i, preds in enumerate(result.predictions, 1):
        print(f"mask {i}:" if len(result.predictions) > 1 else "")
        print(f"  {'rank':>4}  {'token':<20} {'probability':>11}")
        for rank, p in enumerate(preds, 1):
            bar = "#" * round(p["score"] * 30)
            print(f"  {rank:>4}  {p['token']:<20} {p['score']:>11.4f}  {bar}")
    return 0


def cmd_app(args) -> int:
    from .app import launch  # gradio takes seconds to import: only `workbench app` pays for it

    if C.parse_duration(args.max_budget) <= 0:
        raise C.ConfigError(f"--max-budget must be positive, got {args.max_budget!r}")
    launch(model=args.model, runs_dir=args.runs, host=args.host, port=args.port, share=args.share,
           classifier=args.classifier, similarity=args.similarity, max_budget=args.max_budget)
    return 0


# ---- parser --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Understand and do BERT-style pre-training: data, tokenizer, masking, "
        "pre-training, fine-tuning and inspection, on a laptop CPU or a GPU.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("corpus-stats", help="documents, characters, words, tokens and length distribution of a corpus",
                       description="Statistics of the corpus given by --data (default: the embedded news corpus).")
    _add_common_config(p)
    flags.add_arguments(p, C.PretrainConfig, skip=("tokenizer", "train", "masking", "model", "objective"))
    p.add_argument("--tokenizer", help="a tokenizer directory or hub name, to count tokens too")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_corpus_stats)

    p = sub.add_parser("train-tokenizer", help="train a WordPiece/BPE/Unigram tokenizer on a corpus",
                       description="Train a tokenizer with BERT's special tokens and save it in the transformers "
                       "layout.")
    _add_common_config(p)
    flags.add_arguments(p, C.PretrainConfig, skip=("train", "masking", "model", "objective"))
    p.add_argument("--out", required=True, help="directory to save the tokenizer to")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --out the workbench made (the old one is moved to OUT.old-N)")
    p.set_defaults(func=cmd_train_tokenizer)

    p = sub.add_parser("prepare", help="tokenize a corpus once into a token store on disk (larger than memory)",
                       description="Tokenize --data into the token store --out (flat uint16/uint32 shards, document "
                       "boundaries, a manifest), in parallel, with a progress bar. Run it again to resume an "
                       "interrupted prepare or to append sources; then train with `workbench pretrain --data STORE`.")
    p.add_argument("--tokenizer", required=True, metavar="DIR_OR_NEW", help="a tokenizer directory or hub name, or "
                   "'new' to train one (--vocab-size, --algorithm, ...) on the first --tokenizer-sample-mb of text")
    p.add_argument("--out", required=True, help="the store directory")
    p.add_argument("--overwrite", action="store_true", help="start a new store in --out (the old one is moved to "
                   "OUT.old-N)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    flags.add_arguments(p, C.PrepareConfig, skip=("data.streaming", "tokenizer.tokenizer_from"))
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("pretrain", help="pre-train a masked language model",
                       description="Pre-train a BERT masked language model from scratch (or continue from "
                       "--init-from). Stop by --max-steps, --epochs or --time-budget (the learning-rate schedule "
                       "follows the budget). Defaults shown are before --preset/--config, which override them; typed "
                       "flags override both.")
    _add_common_config(p)
    p.add_argument("--out", help="run directory (default: runs/PRESET-TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint "
                   "with the run's settings; flags may change only its length and logging (--max-steps, --time-budget, "
                   "...)")
    p.add_argument("--force", action="store_true", help="with --resume: continue even though the corpus, tokenizer, "
                   "batch size or another setting differs from the run's (the differences are listed)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in an existing --out (the old one is moved to OUT.old-N)")
    flags.add_arguments(p, C.PretrainConfig)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("export",
                       help="copy a run's final model with a model card (command, seeds, corpus, time, metrics)",
                       description="Copy RUN/model to OUT as a plain Hugging Face model directory and write "
                       "OUT/README.md: the exact command, seeds, corpus, training time, validation metrics and example "
                       "predictions.")
    p.add_argument("run", help="a finished pre-training run directory")
    p.add_argument("out", help="destination directory (e.g. assets/default-model)")
    p.add_argument("--example", action="append", help="a sentence with [MASK] to show in the card (repeatable)")
    p.add_argument("--half", action="store_true",
                   help="store the weights in float16 (half the size; workbench loads them as float32)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing OUT (the old one is kept as OUT.old-N)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="validation loss, perplexity and masked-token accuracy of a model",
                       description="Evaluate a run, checkpoint or masked-LM directory on the validation split with "
                       "fixed masks.")
    p.add_argument("model", help="run directory, checkpoint or model directory")
    p.add_argument("--batches", type=int, default=50, help="validation batches of 64 sequences")
    _add_common_config(p)
    flags.add_arguments(p, C.PretrainConfig, skip=("tokenizer", "train", "masking", "model", "objective"))
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("fill-mask", help="top-k predictions for a text with [MASK]",
                       description="Predict the masked tokens of TEXT ([MASK] is translated to the model's own mask "
                       "token).")
    p.add_argument("model", help="run directory, model directory or hub id")
    p.add_argument("text", help='e.g. "the [MASK] of the united states"')
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_fill_mask)

    p = sub.add_parser("app", help="the Gradio app: fill-mask, attention, masking playground, training curves",
                       description="Start the Gradio app on 127.0.0.1 (no public link unless --share).")
    p.add_argument("--model",
                   help="model or run directory, or hub id (default: assets/default-model when shipped, else the "
                   "newest run under --runs)")
    p.add_argument("--runs", default="runs", help="directory whose runs the app may list and open")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--classifier", help="a fine-tuned classifier for the Classify tab (default: found under --runs)")
    p.add_argument("--similarity", help="a SimCSE encoder for the Similarity tab (default: found under --runs)")
    p.add_argument("--share", action="store_true", help="ask gradio for a public share link (off by default)")
    p.add_argument("--max-budget", default="30m", help="the longest time budget of a run started from the app's "
                   "Train a model tab (e.g. 10m, 1h)")
    p.set_defaults(func=cmd_app)

    add_downstream_commands(sub)
    return parser


def add_downstream_commands(sub) -> None:
    """Fine-tuning, classification, the benchmark, the learning curve and the contrastive objective
    (their flags come from FinetuneConfig, BenchmarkConfig and SimCSEConfig)."""
    for name, add_flags, run, summary, description in (
            ("finetune", add_finetune_arguments, cmd_finetune, "fine-tune a model for text classification",
             "Fine-tune a pre-trained run/model on a built-in task (sentiment, spam, trec, bbc), a CSV/JSONL file or "
             "folder, or hf:NAME; writes a run directory with metrics, checkpoints, the final classifier, test metrics "
             "and test predictions."),
            ("classify", add_classify_arguments, cmd_classify, "label probabilities of texts from a fine-tuned model",
             "Classify TEXT(s) with a fine-tuned run directory, model directory or hub id."),
            ("benchmark", add_benchmark_arguments, cmd_benchmark, "fine-tune on every task, pre-trained vs from "
             "scratch vs bag of words (GLUE-style table, seeds, learning rates chosen on validation)",
             "Fine-tune MODEL and the same architecture from random weights on each task with the same budget. Each "
             "arm's learning rate is chosen on the validation split from its grid, then run with --seeds seeds and "
             "scored on the test split (mean and standard deviation); a TF-IDF logistic regression gives a "
             "bag-of-words row. Prints the table and the sweep and writes benchmark.json and benchmark.md."),
            ("learning-curve", add_learning_curve_arguments, cmd_learning_curve,
             "test score against training-set size, pre-trained vs from scratch", None),
            ("simcse", add_simcse_arguments, cmd_simcse, "contrastive sentence embeddings (unsupervised SimCSE) on a "
             "pre-trained encoder", "Train a pre-trained encoder with unsupervised SimCSE (each sentence twice with "
             "dropout, in-batch negatives, temperature 0.05) on corpus sentences; report same-label retrieval "
             "precision@k on a labelled task before and after.")):
        p = sub.add_parser(name, help=summary, description=description)
        add_flags(p)
        p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, cls: type):
    """A `cls` config: its defaults, then --config FILE, then the typed flags."""
    base = C.load_config_file(args.config, cls) if getattr(args, "config", None) else cls()
    return C.from_dict(cls, flags.overrides_from_args(args, cls), base)


def _add_run_arguments(parser: argparse.ArgumentParser, default_out: str, cls: type) -> None:
    """The flags every training command shares: where the run goes, a config file, overwrite/resume."""
    parser.add_argument("--out", "-o", default=None, help=f"run directory (default: {default_out})")
    parser.add_argument("--config", default=None, help=f"YAML/JSON file with {cls.__name__} values (flags override it)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing run directory (kept as RUN.old-N)")
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench finetune MODEL --task sentiment [--out RUN] [--strategy frozen] [--lr ...]`"""
    parser.add_argument("model", nargs="?", default=None, help="run directory, checkpoint, model directory or hub id")
    _add_run_arguments(parser, "runs/finetune-TASK-STRATEGY", C.FinetuneConfig)
    flags.add_arguments(parser, C.FinetuneConfig, skip=("model", "train.packing", "train.eval_batches"))


def cmd_finetune(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, C.FinetuneConfig)
    if not cfg.model:
        raise finetune.FinetuneError("no model given: workbench finetune RUN_DIR --task sentiment")
    scratch = "-scratch" if cfg.from_scratch else ""
    out = args.out or str(Path("runs") / f"finetune-{Path(cfg.task).stem.replace(':', '_')}-{cfg.strategy}{scratch}")
    s = finetune.finetune(cfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress)
    print(f"{s['task']}: test accuracy {s['test']['accuracy']:.4f}, macro-F1 {s['test']['macro_f1']:.4f} "
          f"({s['steps']} steps, {s['wall_time']:.0f}s); model in {Path(out) / runs.MODEL}")
    return 0


def add_classify_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench classify MODEL "text" ["text" ...] [--pair "second text"] [--json]`"""
    parser.add_argument("model", help="fine-tuned run directory, model directory or hub id")
    parser.add_argument("texts", nargs="+", help="text(s) to classify")
    parser.add_argument("--pair", nargs="+", default=None, help="second sentence(s) for sentence-pair tasks")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_classify(args: argparse.Namespace) -> int:
    results = loading.classify(args.model, list(args.texts), args.pair)
    if args.json:
        print(json.dumps([{"text": t, "probabilities": r} for t, r in zip(args.texts, results)], indent=2))
        return 0
    for text, probs in zip(args.texts, results):
        best = max(probs, key=probs.get)
        print(f"{best}\t{probs[best]:.3f}\t{text}")
        for label, p in sorted(probs.items(), key=lambda kv: -kv[1]):
            print(f"    {label:<20} {p:.4f}")
    return 0


def add_simcse_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench simcse MODEL --out RUN [--max-sentences N] [--temperature 0.05] [--time-budget 2m] ...`"""
    parser.add_argument("model", help="pre-trained run directory, checkpoint or model directory")
    _add_run_arguments(parser, "runs/simcse-MODELNAME", C.SimCSEConfig)
    parser.add_argument("--query", default=None,
                        help="also print the nearest corpus sentences to this text, before and after")
    flags.add_arguments(parser, C.SimCSEConfig, skip=("train.packing", "data.streaming"))


def cmd_simcse(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, C.SimCSEConfig)
    out = args.out or str(Path("runs") / f"simcse-{Path(args.model).name}")
    s = simcse.train_simcse(args.model, out, cfg, resume=args.resume, overwrite=args.overwrite,
                            progress=not args.no_progress)
    r = s["retrieval"]
    key = f"precision_at_{r['k']}"
    print(f"{r['task']} test retrieval precision@{r['k']}: before {r['before'][key]:.4f}, after {r['after'][key]:.4f} "
          f"(chance {r['after']['chance']:.4f}); {s['steps']} steps, {s['train_time']:.0f}s; model in "
          f"{Path(out) / runs.MODEL}")
    if args.query:
        corpus = load_corpus(cfg.data, seed=cfg.train.seed)
        sample = simcse.corpus_sentences(corpus["validation"]["text"], 2000, cfg.train.seed, cfg.min_words)
        for name, path in (("before", args.model), ("after", out)):
            model, tok = simcse.load_encoder(path)
            print(f"\nnearest to {args.query!r} ({name}):")
            for r in nearest_neighbours(args.query, sample, model, tok, k=5):
                print(f"  {r['score']:.3f}  {r['text'][:110]}")
    return 0


def add_benchmark_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench benchmark MODEL [--out DIR] [--quick] [--seeds N] [--tasks sentiment spam] [--no-scratch]`"""
    parser.add_argument("model", help="pre-trained run directory, model directory or hub id")
    parser.add_argument("--out", "-o", default=None,
                        help="output folder (default: MODEL/benchmark for a run directory, else runs/benchmark)")
    parser.add_argument("--config", default=None, help="YAML/JSON file with BenchmarkConfig values")
    parser.add_argument("--quick", action="store_true", help="a cheaper setting (BENCHMARK_PRESETS['quick']: "
                        + ", ".join(f"{k}={v}" for k, v in C.BENCHMARK_PRESETS["quick"].items())
                        + "); --config and flags override it")
    parser.add_argument("--overwrite", action="store_true", help="replace an output folder the workbench made "
                        "(the old one is kept as OUT.old-N)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar per run")
    # train.lr is not a flag: each arm's learning rate comes from its grid (--pretrained-lrs, --scratch-lrs)
    flags.add_arguments(parser, C.BenchmarkConfig, skip=("train.packing", "train.eval_batches", "train.lr"))


def benchmark_config_from_args(args: argparse.Namespace) -> C.BenchmarkConfig:
    """Defaults, then --quick, then --config, then the flags the user typed."""
    quick = getattr(args, "quick", False)
    base = C.from_dict(C.BenchmarkConfig, C.BENCHMARK_PRESETS["quick"]) if quick else C.BenchmarkConfig()
    if getattr(args, "config", None):
        base = C.load_config_file(args.config, C.BenchmarkConfig, base=base)
    return C.from_dict(C.BenchmarkConfig, flags.overrides_from_args(args, C.BenchmarkConfig), base)


def cmd_benchmark(args: argparse.Namespace) -> int:
    cfg = benchmark_config_from_args(args)
    default = Path(args.model) / "benchmark" if Path(args.model).is_dir() else Path("runs") / "benchmark"
    out = args.out or str(default)
    experiments.benchmark(args.model, out, cfg, overwrite=args.overwrite, progress=args.progress)
    print(f"written {Path(out) / 'benchmark.md'} and {Path(out) / 'benchmark.json'}")
    return 0


def add_learning_curve_arguments(parser: argparse.ArgumentParser) -> None:
    """`workbench learning-curve MODEL --task sentiment --sizes 100 300 1000 all --out DIR`"""
    parser.add_argument("model", help="pre-trained run directory, model directory or hub id")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"],
                        help="training-set sizes ('all' = whole)")
    parser.add_argument("--out", "-o", default="runs/learning-curve", help="output folder (runs, JSON, HTML figure)")
    parser.add_argument("--overwrite", action="store_true", help="replace an output folder the workbench made "
                        "(the old one is kept as OUT.old-N)")
    parser.add_argument("--no-scratch", action="store_true", help="skip the from-scratch baseline")
    parser.add_argument("--min-steps", type=int, default=50)


def cmd_learning_curve(args: argparse.Namespace) -> int:
    bad = [s for s in args.sizes if s.lower() not in ("all", "none", "full") and not s.isdigit()]
    if bad:
        raise C.ConfigError(f"--sizes: {', '.join(bad)} is not a whole number or 'all'")
    sizes = [None if s.lower() in ("all", "none", "full") else int(s) for s in args.sizes]
    # the task, the sizes and the model are checked before --out is made (learning_curve does both)
    results, fig = experiments.learning_curve(args.model, args.task, sizes, out_dir=args.out, overwrite=args.overwrite,
                                              scratch=not args.no_scratch, min_steps=args.min_steps)
    # plotly.js is written beside the page, so it opens offline (a CDN link would not)
    fig.write_html(str(Path(args.out) / "learning_curve.html"), include_plotlyjs="directory")
    print(f"written {Path(args.out) / 'learning_curve.json'} and learning_curve.html")
    return 0


def _short_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _short_warning
    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars; ours stay
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:
        # Our own errors (CorpusError, ConfigError, RunError, ...) are ValueErrors with a clear message.
        print(f"workbench {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
