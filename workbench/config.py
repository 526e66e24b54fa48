"""Typed configuration with presets and working defaults.

Every stage has one dataclass. The CLI builds its flags from these classes (`workbench.flags`, help
from each field's comment), the notebooks and the app construct them directly, and a run directory
stores them as `config.json`, so one definition serves all three.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A configuration value a user gave us is not usable; the message says which and why."""


# The range of every numeric config field by name (one meaning in every config): (lowest, highest, lowest
# allowed, highest allowed); None = unbounded. `check_numbers` in each __post_init__ makes a bad number an
# `error:` naming its flag before any work. A numeric field without a rule must be a finite number >= 0.
NUMBER_RULES: dict[str, tuple[Optional[float], Optional[float], bool, bool]] = {
    "validation_fraction": (0, 1, True, False), "max_documents": (1, None, True, True),
    "vocab_size": (16, None, True, True), "min_frequency": (0, None, True, True),
    "mlm_probability": (0, 1, False, False), "mask_fraction": (0, 1, True, True), "random_fraction": (0, 1, True, True),
    "span_p": (0, 1, False, True), "span_max": (1, None, True, True), "seed": (0, None, True, True),
    "layers": (1, None, True, True), "hidden": (1, None, True, True), "heads": (1, None, True, True),
    "intermediate": (1, None, True, True), "max_position": (3, None, True, True), "dropout": (0, 1, True, False),
    "local_window": (0, None, True, True), "global_every": (1, None, True, True),
    "batch_size": (1, None, True, True), "grad_accum": (1, None, True, True), "seq_len": (3, None, True, True),
    "lr": (0, None, False, True), "weight_decay": (0, None, True, True), "warmup": (0, 1, True, False),
    "grad_clip": (0, None, True, True), "max_steps": (1, None, True, True), "epochs": (0, None, False, True),
    "eval_every": (0, None, True, True), "eval_batches": (0, None, True, True), "log_every": (1, None, True, True),
    "save_every": (0, None, True, True), "keep_checkpoints": (0, None, True, True), "threads": (1, None, True, True),
    "shard_mb": (0, None, False, True), "tokenizer_sample_mb": (0, None, False, True),
    "freeze_layers": (0, None, True, True), "seeds": (1, None, True, True), "train_examples": (1, None, True, True),
    "eval_examples": (1, None, True, True), "classifier_dropout": (0, 1, True, False),
    "layer_lr_decay": (0, 1, False, True), "max_sentences": (1, None, True, True), "min_words": (0, None, True, True),
    "temperature": (0, None, False, True), "k": (1, None, True, True), "snapshots": (0, None, True, True),
}


def _rule_text(lo, hi, lo_in, hi_in) -> str:
    if hi is None:
        return f"at least {lo}" if lo_in else f"greater than {lo}"
    return f"in {'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"


@functools.lru_cache(maxsize=None)  # a class's hints never change, and evaluating its string annotations is slow
def field_types(cls: type) -> dict[str, Any]:
    """{field name: type} of a dataclass (typing.get_type_hints; do not modify the dict: it is shared)."""
    return typing.get_type_hints(cls)


def check_numbers(cfg: Any) -> None:
    """ConfigError naming the flag of the first numeric field of `cfg` (a config dataclass) that is
    not a number of its type in its range (NUMBER_RULES). None is allowed where the type allows it."""
    for f in dataclasses.fields(cfg):
        t = field_types(type(cfg))[f.name]
        args = [a for a in typing.get_args(t) if a is not type(None)] if typing.get_origin(t) is typing.Union else [t]
        if len(args) != 1 or args[0] not in (int, float):
            continue
        value, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        if value is None and args != [t]:
            continue
        whole = args[0] is int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
            raise ConfigError(f"{flag} must be {'a whole number' if whole else 'a number'}, got {value!r}")
        lo, hi, lo_in, hi_in = NUMBER_RULES.get(f.name, (0, None, True, True))
        if (not math.isfinite(value) or (lo is not None and (value < lo or (value == lo and not lo_in)))
                or (hi is not None and (value > hi or (value == hi and not hi_in)))):
            raise ConfigError(f"{flag} must be {_rule_text(lo, hi, lo_in, hi_in)}, got {value!r}")


@dataclass
class DataConfig:
    """Where the text comes from and how it is split."""

    data: list[str] = field(default_factory=list)  # files, folders, hf:NAME[/CONFIG], news or movies; empty = news
    text_column: str = "text"  # the column holding text in csv/jsonl/parquet/hf data
    validation_fraction: float = 0.02  # share of documents held out, chosen deterministically
    streaming: bool = False  # iterate without loading the corpus into memory
    max_documents: Optional[int] = None  # cap for quick experiments

    def __post_init__(self) -> None:
        check_numbers(self)


@dataclass
class TokenizerConfig:
    algorithm: str = "wordpiece"  # wordpiece | bpe | unigram
    vocab_size: int = 8192  # target vocabulary size, special tokens included
    lowercase: bool = True  # lower-case (and strip accents) before splitting
    min_frequency: int = 2  # a merge/piece must occur this often to be learned
    tokenizer_from: Optional[str] = None  # reuse a tokenizer directory or hub name instead of training

    def __post_init__(self) -> None:
        check_numbers(self)


MASK_STRATEGIES = ("token", "whole_word", "span")  # what MaskingConfig.mask_strategy accepts (the app's choices)
CLASSIFIER_POOLINGS = ("auto", "cls", "mean")  # FinetuneConfig.pooling and BenchmarkConfig.pooling


@dataclass
class MaskingConfig:
    """MLM corruption. Defaults are BERT's: 15% of tokens, of which 80% [MASK], 10% random, 10% kept."""

    mlm_probability: float = 0.15  # share of tokens the model must predict
    mask_fraction: float = 0.8  # of the predicted tokens, the share replaced by [MASK]
    random_fraction: float = 0.1  # the share replaced by a random token; the rest (1 - mask - random) keeps the original token
    mask_strategy: str = "token"  # token | whole_word | span
    span_p: float = 0.2  # span masking: geometric parameter of span lengths (SpanBERT)
    span_max: int = 10  # span masking: longest span, in words
    seed: int = 0  # masks are a pure function of (seed, step)

    def __post_init__(self) -> None:
        check_numbers(self)  # each rate on its own (NUMBER_RULES); here what the rules cannot say
        if self.mask_fraction + self.random_fraction > 1.0 + 1e-9:
            raise ConfigError(
                f"mask_fraction ({self.mask_fraction}) + random_fraction ({self.random_fraction}) must lie in [0, 1]"
            )
        if self.mask_strategy not in MASK_STRATEGIES:
            raise ConfigError(f"mask_strategy must be token, whole_word or span, got {self.mask_strategy!r}")


# Size presets: (layers, hidden, heads, feed-forward).
MODEL_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "medium": (8, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
}


ARCHITECTURES = ("bert", "preln", "modernbert")  # post-LN BERT; pre-LN BERT; ModernBERT (pre-LN, RoPE, GeGLU)
RECIPE_LOCAL_WINDOW = 8  # the recipe's window (README: a 4-token window was no better at 0.5M tokens)
# The original BERT recipe (post-LN, learned positions, dropout 0.1, plain initialisation): the
# tutorials' reference and the `old` recipe of benchmarks/time_to_accuracy.py.
ORIGINAL_BERT = {"architecture": "bert", "dropout": 0.1, "output_bias": "zero", "embedding_init": "random"}


@dataclass
class ModelConfig:
    size: str = "mini"  # tiny | mini | small | medium | base (layers/hidden/heads of MODEL_PRESETS)
    # The defaults are the CPU recipe measured in README.md ("The recipe"); ORIGINAL_BERT gives BERT's.
    # bert = BertForMaskedLM; preln = RobertaPreLayerNormForMaskedLM (BERT with layer norm before each
    # block); modernbert = ModernBertForMaskedLM (pre-LN, rotary positions, GeGLU, local attention layers)
    architecture: str = "modernbert"  # modernbert (the recipe) | bert (post-LN, the original) | preln (pre-LN BERT)
    layers: Optional[int] = None  # number of transformer layers (overrides the size preset)
    hidden: Optional[int] = None  # hidden size (overrides the size preset)
    heads: Optional[int] = None  # attention heads (overrides the size preset)
    intermediate: Optional[int] = None  # feed-forward size (default 4 x hidden when hidden is set)
    max_position: int = 512  # longest input the position table allows
    dropout: float = 0.0  # hidden and attention dropout (Cramming: none while pre-training on a short budget)
    init_from: Optional[str] = None  # continue pre-training from a local directory or hub id
    # modernbert only: a fresh model's attention is a uniform average; over a small window it already
    # says which words are near the [MASK], over a whole block it says little (README: the plateau)
    local_window: Optional[int] = None  # modernbert: tokens a local-attention layer sees (8 = 4 each side); None = 8; 0 = all global
    global_every: int = 4  # modernbert with a local window: every N-th layer attends globally, the others locally
    # corpus statistics instead of noise at step 0 (workbench.warmstart); ignored with init_from
    output_bias: str = "unigram"  # unigram (output bias = log token frequencies: start at the unigram loss) | zero
    embedding_init: str = "ppmi-svd"  # ppmi-svd (token embeddings from an SVD of co-occurrence PPMI) | random

    def __post_init__(self) -> None:
        check_numbers(self)

    def attention_window(self) -> int:
        """The local-attention window this config gives (0: every layer attends globally)."""
        if self.architecture != "modernbert":
            return 0
        return RECIPE_LOCAL_WINDOW if self.local_window is None else self.local_window

    def resolved(self) -> tuple[int, int, int, int]:
        check_numbers(self)  # again: notebooks set fields after construction
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}")
        if self.size not in MODEL_PRESETS:
            raise ConfigError(f"unknown model size {self.size!r}; known: {', '.join(MODEL_PRESETS)}")
        layers, hidden, heads, ff = MODEL_PRESETS[self.size]
        hidden = self.hidden or hidden
        heads = self.heads or heads
        if hidden % heads:
            raise ConfigError(f"hidden size {hidden} is not divisible by {heads} heads")
        if self.local_window and self.architecture != "modernbert":
            raise ConfigError("--local-window needs architecture modernbert (bert and preln have no local attention "
                              "layers)")
        if self.output_bias not in ("zero", "unigram"):
            raise ConfigError(f"output_bias must be zero or unigram, got {self.output_bias!r}")
        if self.embedding_init not in ("random", "ppmi-svd"):
            raise ConfigError(f"embedding_init must be random or ppmi-svd, got {self.embedding_init!r}")
        return self.layers or layers, hidden, heads, self.intermediate or (4 * hidden if self.hidden else ff)


@dataclass
class TrainConfig:
    """The optimisation schedule shared by pre-training and fine-tuning."""

    batch_size: int = 32  # global batch (all processes, all accumulation steps)
    grad_accum: int = 1  # split each batch into this many micro-batches (same result, less memory)
    seq_len: int = 128  # tokens per sequence
    packing: bool = True  # concatenate texts into full blocks (run_mlm's group_texts); False = line by line
    lr: float = 1e-3  # peak learning rate (AdamW)
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm
    warmup: float = 0.06  # fraction of the schedule spent warming up
    schedule: str = "linear"  # linear | cosine | constant
    grad_clip: float = 1.0  # clip the global gradient norm (0 = off)
    max_steps: Optional[int] = None  # stop after this many optimizer steps
    epochs: Optional[float] = None  # stop after this many passes over the data (fractions allowed)
    time_budget: Optional[str] = None  # e.g. "10m", "90s", "1h": the schedule follows the clock
    precision: str = "auto"  # auto | bf16 | fp16 | fp32
    device: str = "auto"  # auto | cpu | cuda
    compile: bool = False  # torch.compile the model
    fast_dropout: bool = True  # on CPU, dropout masks from bulk random integers: same rate, 2x cheaper than torch's
    eval_every: int = 200  # validate every N steps and at the end (0 = never)
    eval_batches: int = 20  # validation batches (fixed masks) per evaluation
    log_every: int = 10  # write a metrics.jsonl record every N steps
    save_every: int = 500  # checkpoint every N steps (0 = only at the end)
    keep_checkpoints: int = 2  # older checkpoints are deleted
    seed: int = 0  # model initialisation, data order and dropout
    threads: Optional[int] = None  # torch intra-op threads on CPU (None = torch's default)

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.time_budget is not None and parse_duration(self.time_budget) <= 0:
            raise ConfigError(f"--time-budget must be positive, got {self.time_budget!r}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"--batch-size {self.batch_size} is not divisible by --grad-accum {self.grad_accum}")

    def budget_seconds(self) -> Optional[float]:
        return parse_duration(self.time_budget) if self.time_budget else None


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    objective: str = "mlm"  # mlm | mlm+nsp | mlm+sop
    probes: Optional[str] = None  # cloze probe file scored at every evaluation (default: assets/probes/cloze.jsonl; none = off)
    snapshots: int = 25  # keep float16 weights in RUN/snapshots/step-N at steps N, 2N, 4N, ... and the last (0 = off)

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.objective not in ("mlm", "mlm+nsp", "mlm+sop"):
            raise ConfigError(f"objective must be mlm, mlm+nsp or mlm+sop, got {self.objective!r}")
        # checked here, before any corpus loading or tokenizer training, so a typo costs nothing
        self.model.resolved()
        if self.train.seq_len > self.model.max_position:
            raise ConfigError(f"--seq-len {self.train.seq_len} is longer than the model's --max-position "
                              f"{self.model.max_position}")
        if self.objective != "mlm" and self.model.architecture != "bert" and not self.model.init_from:
            raise ConfigError(f"objective {self.objective} needs architecture bert (BertForPreTraining): add "
                              f"--architecture bert; got {self.model.architecture!r}")


@dataclass
class PrepareConfig:
    """`workbench prepare`: text -> a token store on disk (workbench.store)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # used with --tokenizer new
    seed: int = 0  # salt of the validation split (the same rule and seed as pretrain's --seed)
    shard_mb: float = 64.0  # text per shard, in MB: the unit of progress and of resume
    tokenizer_sample_mb: float = 200.0  # --tokenizer new: train it on the first N MB of text

    def __post_init__(self) -> None:
        check_numbers(self)


# Run presets: a name -> overrides applied to a default PretrainConfig.
PRETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # tiny, the 2-minute recipe (configs/recipe-2m.yaml): ~5x mini's tokens/s on 2 cores; lr 3e-3, batch 16 led the
    # 2-minute study (2e-3..5e-3, batch 32 lower); a global 2nd layer: neutral at 2 min, better at 10 (README)
    "tiny": {"model": {"size": "tiny", "global_every": 2}, "train": {"lr": 3e-3, "batch_size": 16, "seq_len": 128}},
    "mini": {"model": {"size": "mini"}, "train": {"lr": 1e-3, "batch_size": 32, "seq_len": 128}},
    "small": {"model": {"size": "small"}, "train": {"lr": 5e-4, "batch_size": 64, "seq_len": 128}},
    "medium": {"model": {"size": "medium"}, "train": {"lr": 5e-4, "batch_size": 128, "seq_len": 128}},
    "base": {"model": {"size": "base"}, "train": {"lr": 1e-4, "batch_size": 256, "seq_len": 128},
             "tokenizer": {"vocab_size": 30522}},
}
# The presets' rates are tuned for ModernBERT. Post-LN BERT at tiny's 3e-3 stays on the plateau; at 1e-3 it
# learns (README, "The original BERT wants a lower learning rate"); the other presets are at or below 1e-3.
BERT_PRESET_LRS: dict[str, float] = {"tiny": 1e-3}


def preset_overrides(name: str, architecture: Optional[str] = None) -> dict[str, Any]:
    """The preset's overrides for a model of `architecture` (None: the preset's own, ModernBERT)."""
    if name not in PRETRAIN_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRETRAIN_PRESETS)}")
    values = copy.deepcopy(PRETRAIN_PRESETS[name])
    if architecture is not None:
        values["model"]["architecture"] = architecture
        if architecture == "bert":
            values["train"]["lr"] = BERT_PRESET_LRS.get(name, values["train"]["lr"])
    return values


def preset(name: str, architecture: Optional[str] = None) -> PretrainConfig:
    """A preset's config; `architecture` also picks that architecture's learning rate (BERT_PRESET_LRS)."""
    return from_dict(PretrainConfig, preset_overrides(name, architecture))


def parse_duration(text: str | float | int) -> float:
    """'90s', '10m', '1.5h', '2m30s' or a plain number of seconds -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|s)", s)
    if not parts or "".join(n + u for n, u in parts) != s.replace(" ", ""):
        raise ConfigError(f"cannot read duration {text!r}: use forms like 90s, 10m, 1.5h, 2m30s")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


# ---- dict / file round trips -------------------------------------------------------------------

def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls: type, values: dict | None, base: Any = None) -> Any:
    """Build `cls` from a (possibly partial, nested) dict, on top of `base` or the defaults."""
    obj = base if base is not None else cls()
    values = values or {}
    names = {f.name for f in dataclasses.fields(cls)}
    if set(values) - names:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(sorted(set(values) - names))}; known: "
                          f"{', '.join(sorted(names))}")
    kwargs = {}
    types = field_types(cls)
    for f in dataclasses.fields(cls):
        current = getattr(obj, f.name)
        if f.name not in values:
            kwargs[f.name] = current
        elif dataclasses.is_dataclass(types[f.name]):
            kwargs[f.name] = from_dict(types[f.name], values[f.name], current)
        else:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def load_config_file(path: str | Path, cls: type = PretrainConfig, base: Any = None) -> Any:
    """Read a YAML or JSON config file into `cls` (partial files override `base` or the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        values = yaml.safe_load(text) or {}
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    values.pop("kind", None)  # a run's config.json records what made it (training.write_run_config)
    values.pop("corpus_fingerprint", None)  # and the text it was trained on (runs.corpus_fingerprint)
    return from_dict(cls, values, base)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")


# ---- the downstream benchmark (workbench.experiments) ---------------------------------------------

DEFAULT_TASKS = ("sentiment", "spam", "trec", "bbc")


def _floats(name: str, values) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be numbers, got {values!r}") from None
    if not out or any(v <= 0 for v in out):
        raise ConfigError(f"{name} needs at least one value, all > 0; got {values!r}")
    return out


@dataclass
class BenchmarkConfig:
    """Pre-trained vs from scratch (vs bag of words) on every task. Each arm's learning rate is chosen
    on the validation split from its own grid (one run per grid value, seed train.seed); the chosen
    rate is then run with `seeds` seeds and scored on the test split. train.lr is not used."""

    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))  # built-in tasks, files or hf:NAME
    strategy: str = "full"  # full | frozen | partial
    freeze_layers: int = 0  # partial: embeddings + this many lower layers frozen
    pooling: str = "auto"  # auto | cls | mean: ModernBERT's classifier input, both arms (FinetuneConfig.pooling)
    scratch: bool = True  # also fine-tune the randomly initialised baseline
    bow: bool = True  # also a bag-of-words logistic-regression row (scikit-learn)
    seeds: int = 3  # fine-tuning seeds per arm at its chosen learning rate (train.seed, train.seed+1, ...)
    resample: bool = False  # each seed fine-tunes on its own train_examples subsample (both arms share it), so the spread also covers which examples were labelled
    pretrained_lrs: list[float] = field(default_factory=lambda: [3e-4, 1e-3, 3e-3])  # lr grid, pre-trained (small models in 150 steps want more than BERT's 2e-5..1e-4: README)
    scratch_lrs: list[float] = field(default_factory=lambda: [3e-4, 1e-3, 3e-3])  # lr grid, from scratch
    bow_cs: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0])  # bag of words: C grid
    train_examples: Optional[int] = 2000  # cap on training examples per task (seeded subsample)
    eval_examples: Optional[int] = 500  # validation examples used to choose the learning rate and C
    keep_models: bool = False  # keep each run's checkpoint and model (~75 MB a mini run); else metrics only
    # sized for 2 CPU cores. seq_len 64 keeps 99% of sentiment, 95% of spam and all TREC examples whole (BBC:
    # headline and lead), 27% fewer tokens than 128. Validation once, at the end: the sweep selects on it.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_size=32, seq_len=64, packing=False, lr=3e-4, weight_decay=0.01, warmup=0.1, schedule="linear",
        epochs=3.0, max_steps=150, eval_every=150, log_every=20, save_every=0, keep_checkpoints=1))

    def __post_init__(self) -> None:
        check_numbers(self)
        self.pretrained_lrs = _floats("pretrained_lrs", self.pretrained_lrs)
        self.scratch_lrs = _floats("scratch_lrs", self.scratch_lrs)
        self.bow_cs = _floats("bow_cs", self.bow_cs)
        if not self.tasks or self.pooling not in CLASSIFIER_POOLINGS:
            raise ConfigError("tasks: give at least one task" if not self.tasks else
                              f"pooling must be {', '.join(CLASSIFIER_POOLINGS)}, got {self.pooling!r}")
        if self.resample and self.train_examples is None:  # all examples every time: nothing to redraw
            raise ConfigError("resample redraws the --train-examples subsample per seed: give --train-examples")


# `workbench benchmark --quick`: overrides of the defaults (typed flags still override these)
BENCHMARK_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"seeds": 2, "pretrained_lrs": [1e-3, 3e-3], "scratch_lrs": [1e-3, 3e-3], "train_examples": 1000,
              "eval_examples": 300, "train": {"max_steps": 80, "eval_every": 80}},
}


class FinetuneError(ConfigError):
    """A fine-tuning request we cannot carry out; the message is meant for the user as is."""


@dataclass
class FinetuneConfig:
    """`workbench finetune`: a pre-trained model + a labelled task -> a sequence classifier (workbench.finetune)."""

    model: str = ""  # run directory, checkpoint, model directory or hub id
    task: str = "sentiment"  # a built-in task, a CSV/JSONL file or folder, or hf:NAME
    text_column: Optional[str] = None  # user files: default "text"; hub datasets: guessed
    label_column: str = "label"
    text_pair_column: Optional[str] = None
    unseen: str = "error"  # labels absent from training at validation/test time: error | drop
    strategy: str = "full"  # full | frozen | partial
    freeze_layers: int = 0  # partial: embeddings + this many lower layers frozen
    from_scratch: bool = False  # same architecture, random weights (the baseline)
    train_examples: Optional[int] = None  # subsample the training split (seeded, nested)
    eval_examples: Optional[int] = None  # cap on validation examples per evaluation (test is always whole)
    classifier_dropout: Optional[float] = None  # None = the model's hidden dropout
    pooling: str = "auto"  # auto | cls | mean: ModernBERT's classifier input; auto = mean with local layers
    layer_lr_decay: float = 1.0  # < 1: layer-wise learning-rate decay (layer l of L gets lr * decay^(L-l))
    # eval_every=0 means once per epoch here; save_every=0 saves only at the end
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_size=32, seq_len=128, packing=False, lr=2e-4, weight_decay=0.01, warmup=0.1, schedule="linear",
        epochs=3.0, eval_every=0, log_every=10, save_every=0, keep_checkpoints=1))

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.strategy not in ("full", "frozen", "partial"):
            raise FinetuneError(f"strategy must be full, frozen or partial, got {self.strategy!r}")
        if self.pooling not in CLASSIFIER_POOLINGS:
            raise FinetuneError(f"pooling must be {', '.join(CLASSIFIER_POOLINGS)}, got {self.pooling!r}")
        if self.strategy == "full" and self.freeze_layers > 0:
            self.strategy = "partial"
        if self.strategy == "partial" and self.freeze_layers == 0:
            raise FinetuneError("strategy partial needs freeze_layers >= 1 (how many lower layers to freeze)")


@dataclass
class SimCSEConfig:
    """`workbench simcse`: unsupervised contrastive sentence embeddings on a pre-trained encoder (workbench.simcse)."""

    data: DataConfig = field(default_factory=DataConfig)  # where the unlabelled sentences come from
    max_sentences: Optional[int] = 20000  # training sentences drawn from the corpus
    min_words: int = 5
    temperature: float = 0.05
    pooling: str = "mean"  # mean | cls
    dropout: Optional[float] = None  # override the encoder's dropout (the augmentation); None keeps it
    eval_task: str = "trec"  # labelled task for retrieval precision@k (workbench.tasks)
    eval_examples: int = 500  # labelled examples per retrieval evaluation
    k: int = 10
    # SimCSE (unsupervised): batch 64, max length 32, one pass, linear decay, no warm-up
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        batch_size=64, seq_len=32, packing=False, lr=5e-5, weight_decay=0.0, warmup=0.0, schedule="linear",
        epochs=1.0, eval_every=100, eval_batches=4, log_every=10, save_every=500, keep_checkpoints=1))

    def __post_init__(self) -> None:
        check_numbers(self)
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be mean or cls, got {self.pooling!r}")
