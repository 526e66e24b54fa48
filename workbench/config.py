"""Typed configuration with presets and working defaults.

Every stage has one dataclass. The CLI builds its flags from these classes (`add_arguments`), the
notebooks and the app construct them directly, and a run directory stores them as `config.json`,
so one definition serves all three.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


class ConfigError(ValueError):
    """A configuration value a user gave us is not usable; the message says which and why."""


@dataclass
class DataConfig:
    """Where the text comes from and how it is split."""

    data: list[str] = field(default_factory=list)  # files, folders or hf:NAME[/CONFIG]; empty = default corpus
    text_column: str = "text"  # the column holding text in csv/jsonl/parquet/hf data
    validation_fraction: float = 0.02  # share of documents held out, chosen deterministically
    streaming: bool = False  # iterate without loading the corpus into memory
    max_documents: Optional[int] = None  # cap for quick experiments


@dataclass
class TokenizerConfig:
    algorithm: str = "wordpiece"  # wordpiece | bpe | unigram
    vocab_size: int = 8192  # target vocabulary size, special tokens included
    lowercase: bool = True  # lower-case (and strip accents) before splitting
    min_frequency: int = 2  # a merge/piece must occur this often to be learned
    tokenizer_from: Optional[str] = None  # reuse a tokenizer directory or hub name instead of training


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
        if not 0.0 < self.mlm_probability < 1.0:
            raise ConfigError(f"mlm_probability must be between 0 and 1, got {self.mlm_probability}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1.0 + 1e-9:
            raise ConfigError(
                f"mask_fraction ({self.mask_fraction}) + random_fraction ({self.random_fraction}) must lie in [0, 1]"
            )
        if self.mask_strategy not in ("token", "whole_word", "span"):
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


@dataclass
class ModelConfig:
    size: str = "mini"  # tiny | mini | small | medium | base (layers/hidden/heads of MODEL_PRESETS)
    # bert = BertForMaskedLM; preln = RobertaPreLayerNormForMaskedLM, the same encoder with layer
    # norm moved before each block, which escapes the early plateau sooner (Xiong et al. 2020; Cramming)
    architecture: str = "bert"  # bert (post-LN, the original) | preln (pre-LN) | modernbert (rotary positions, GeGLU)
    layers: Optional[int] = None  # number of transformer layers (overrides the size preset)
    hidden: Optional[int] = None  # hidden size (overrides the size preset)
    heads: Optional[int] = None  # attention heads (overrides the size preset)
    intermediate: Optional[int] = None  # feed-forward size (default 4 x hidden when hidden is set)
    max_position: int = 512  # longest input the position table allows
    dropout: float = 0.1  # hidden and attention dropout
    init_from: Optional[str] = None  # continue pre-training from a local directory or hub id

    def resolved(self) -> tuple[int, int, int, int]:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}")
        if self.size not in MODEL_PRESETS:
            raise ConfigError(f"unknown model size {self.size!r}; known: {', '.join(MODEL_PRESETS)}")
        layers, hidden, heads, ff = MODEL_PRESETS[self.size]
        hidden = self.hidden or hidden
        heads = self.heads or heads
        if hidden % heads:
            raise ConfigError(f"hidden size {hidden} is not divisible by {heads} heads")
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

    def __post_init__(self) -> None:
        if self.objective not in ("mlm", "mlm+nsp", "mlm+sop"):
            raise ConfigError(f"objective must be mlm, mlm+nsp or mlm+sop, got {self.objective!r}")
        # checked here, before any corpus loading or tokenizer training, so a typo costs nothing
        self.model.resolved()
        if self.objective != "mlm" and self.model.architecture != "bert" and not self.model.init_from:
            raise ConfigError(f"objective {self.objective} needs architecture bert (BertForPreTraining), "
                              f"got {self.model.architecture!r}")


@dataclass
class PrepareConfig:
    """`workbench prepare`: text -> a memory-mapped token store (workbench.store)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # used with --tokenizer new
    seed: int = 0  # salt of the validation split (the same rule and seed as pretrain's --seed)
    shard_mb: float = 64.0  # text per shard, in MB: the unit of progress and of resume
    tokenizer_sample_mb: float = 200.0  # --tokenizer new: train it on the first N MB of text


# Run presets: a name -> overrides applied to a default PretrainConfig.
PRETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"model": {"size": "tiny"}, "train": {"lr": 2e-3, "batch_size": 32, "seq_len": 128}},
    "mini": {"model": {"size": "mini"}, "train": {"lr": 1e-3, "batch_size": 32, "seq_len": 128}},
    "small": {"model": {"size": "small"}, "train": {"lr": 5e-4, "batch_size": 64, "seq_len": 128}},
    "medium": {"model": {"size": "medium"}, "train": {"lr": 5e-4, "batch_size": 128, "seq_len": 128}},
    "base": {"model": {"size": "base"}, "train": {"lr": 1e-4, "batch_size": 256, "seq_len": 128},
             "tokenizer": {"vocab_size": 30522}},
}


def preset(name: str) -> PretrainConfig:
    if name not in PRETRAIN_PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRETRAIN_PRESETS)}")
    return from_dict(PretrainConfig, PRETRAIN_PRESETS[name])


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


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(cls: type, values: dict | None, base: Any = None) -> Any:
    """Build `cls` from a (possibly partial, nested) dict, on top of `base` or the defaults."""
    obj = base if base is not None else cls()
    values = values or {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
    kwargs = {}
    types = _field_types(cls)
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
        import yaml

        values = yaml.safe_load(text) or {}
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return from_dict(cls, values, base)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")


# ---- argparse bridge ---------------------------------------------------------------------------

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted name, type, default) for every non-dataclass field, nested sections flattened."""
    out = []
    types = _field_types(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(types[f.name]):
            out += _leaves(types[f.name], prefix + f.name + ".")
        else:
            out.append((prefix + f.name, types[f.name], getattr(instance, f.name)))
    return out


# When two sections share a field name, the section named here keeps the short flag
# (`--seed` is the training seed; the masking seed is `--masking-seed`).
_SHORT_FLAG_OWNER = {"seed": "train.seed"}


def field_comments(cls: type) -> dict[str, str]:
    """{field: its trailing `# comment`} from a dataclass's source: the comments written for readers
    of this file double as the CLI's --help, so each field is explained once."""
    import inspect

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source shipped: flags still work, with shorter help
        return {}
    found = re.findall(r"^\s+(\w+):[^#\n]*#\s*(.+)$", source, flags=re.M)
    return {name: text.strip() for name, text in found}


def _help(dotted: str, cls: type, default: Any) -> str:
    section = cls
    for part in dotted.split(".")[:-1]:
        section = typing.get_type_hints(section)[part]
    comment = field_comments(section).get(dotted.rsplit(".", 1)[-1], "")
    shown = "none" if default is None or default == [] else default
    return f"{comment + '; ' if comment else ''}default {shown} [{dotted}]".replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `cls` (nested sections flattened), with the field's comment as its
    help. Defaults stay None so that only flags the user typed override a preset or a config file."""
    leaves = _leaves(cls)
    counts: dict[str, int] = {}
    for dotted, _, _ in leaves:
        counts[dotted.rsplit(".", 1)[-1]] = counts.get(dotted.rsplit(".", 1)[-1], 0) + 1
    for dotted, t, default in leaves:
        name = dotted.rsplit(".", 1)[-1]
        if dotted in skip or any(dotted.startswith(prefix + ".") for prefix in skip):
            continue
        if counts[name] > 1 and _SHORT_FLAG_OWNER.get(name) != dotted:
            flag = "--" + dotted.replace(".", "-").replace("_", "-")
        else:
            flag = _flag(name)
        base = _base_type(t)
        help_text = _help(dotted, cls, default)
        if base is bool:
            parser.add_argument(flag, dest=dotted, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base is list:
            parser.add_argument(flag, dest=dotted, nargs="+", default=None, help=help_text, metavar=name.upper())
        else:
            parser.add_argument(flag, dest=dotted, type=base, default=None, help=help_text, metavar=name.upper())


def _base_type(t: Any) -> type:
    origin = typing.get_origin(t)
    if origin is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return list
    return t if isinstance(t, type) else str


def overrides_from_args(args: argparse.Namespace, cls: type) -> dict:
    """Collect the flags the user typed into a nested dict for `from_dict`."""
    out: dict = {}
    for dotted, _, _ in _leaves(cls):
        value = getattr(args, dotted, None)
        if value is None:
            continue
        *sections, name = dotted.split(".")
        target = out
        for sec in sections:
            target = target.setdefault(sec, {})
        target[name] = value
    return out


# ---- the downstream benchmark (workbench.experiments) ---------------------------------------------

DEFAULT_TASKS = ("sentiment", "spam", "trec", "bbc")


def _benchmark_train_defaults() -> TrainConfig:
    # sized for a 2-core CPU: mini model (4 layers, hidden 256), whole benchmark ~10 minutes
    return TrainConfig(batch_size=32, seq_len=128, packing=False, lr=3e-4, weight_decay=0.01, warmup=0.1,
                       schedule="linear", epochs=3.0, max_steps=150, eval_every=0, log_every=20, save_every=0,
                       keep_checkpoints=1)


@dataclass
class BenchmarkConfig:
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    strategy: str = "full"
    freeze_layers: int = 0
    scratch: bool = True  # also fine-tune the randomly initialised baseline
    train_examples: Optional[int] = 2000
    eval_examples: Optional[int] = 500
    train: TrainConfig = field(default_factory=_benchmark_train_defaults)
