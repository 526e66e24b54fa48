"""ELECTRA pre-training: replaced-token detection (Clark et al., 2020), on the shared engine.

    [CLS] the  cat   sat on the  mat [SEP]     original block
    [CLS] the [MASK] sat on the [MASK] [SEP]   masked by the package's Masker (15% of positions)
              generator (a small MLM) samples a token at every masked position
    [CLS] the  dog   sat on the  mat [SEP]     the discriminator's input ("mat" was sampled back)
      0    0    1     0  0   0    0    0       labels: replaced = (input != original), every position

The generator is transformers' `ElectraForMaskedLM` at `generator_fraction` of the discriminator's
width (hidden size, heads, feed-forward; same depth); the discriminator is `ElectraForPreTraining`.
They share one embeddings module (token, position and segment tables: the paper shares token and
position embeddings), and the generator's output layer is tied to the token table. The sample is
drawn from the generator's softmax without gradient, so the discriminator's loss does not reach the
generator except through the shared embeddings. A sampled token equal to the original counts as
original. The objective is

    L = (1 / M) sum_masked CE_generator  +  lambda * (1 / T) sum_tokens BCE_discriminator,  lambda = 50

with M masked positions and T real (non-padding) tokens in the global batch. As in workbench.pairs,
the task's count is M and each row carries `disc_scale` = lambda * M / T, so the engine's division
by M gives exactly L however the batch is split over processes or accumulation steps.

`train_electra(cfg, out_dir)` runs it like `workbench.pretrain` (same corpus, tokenizer, packing,
masking and engine) and writes RUN/model/ (the discriminator: what fine-tuning uses, loaded by
`workbench.finetune` as ElectraForSequenceClassification), RUN/generator/ (the generator, a masked
LM for fill-mask) and RUN/electra.json (these settings). The models are BERT-shaped (post-LN,
learned positions): the config must say `architecture: bert`, without warm starts, `init_from`, a
sentence-pair objective or a token store. Runs are not resumable (no --resume here). The run's
cloze probes and weight snapshots (`probes`, `snapshots`) are MLM tools and are not used.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import datasets
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_model

from . import loading, runs, store
from .config import ConfigError, ModelConfig, PretrainConfig, check_numbers, to_dict
from .data import load_corpus
from .dropout import fast_cpu_dropout
from .masking import IGNORE_INDEX, Masker
from .model import parameter_count
from .pretrain import MLMTask, make_blocks, prepare_tokenizer
from .tokenizer import load_tokenizer
from .training import Callback, finish_run, make_accelerator, start_run, train, write_run_config

GENERATOR = "generator"  # RUN/generator/: the generator (ElectraForMaskedLM) and the tokenizer
SETTINGS = "electra.json"  # RUN/electra.json: the ElectraConfig of the run


@dataclass
class ElectraConfig:
    """What ELECTRA adds to a PretrainConfig (the discriminator's size is cfg.model's)."""

    generator_fraction: float = 0.25  # generator width (hidden, heads, feed-forward) as a share of the discriminator's
    disc_weight: float = 50.0  # lambda: weight of the discriminator's loss against the generator's MLM loss

    def __post_init__(self) -> None:
        check_numbers(self)
        if not 0.0 < self.generator_fraction <= 1.0:
            raise ConfigError(f"generator_fraction must be in (0, 1], got {self.generator_fraction!r}")


# ---- the two models -------------------------------------------------------------------------------

def electra_configs(cfg: ModelConfig, tokenizer, generator_fraction: float = 0.25):
    """(discriminator, generator) transformers ElectraConfigs: the discriminator at cfg's size, the
    generator as deep, `generator_fraction` as wide; both embed into the discriminator's width."""
    layers, hidden, heads, ff = cfg.resolved()
    common = dict(vocab_size=len(tokenizer), embedding_size=hidden, num_hidden_layers=layers,
                  max_position_embeddings=cfg.max_position, hidden_dropout_prob=cfg.dropout,
                  attention_probs_dropout_prob=cfg.dropout, pad_token_id=tokenizer.pad_token_id, type_vocab_size=2)
    g_heads = max(1, round(heads * generator_fraction))
    g_hidden = max(1, round(hidden * generator_fraction / g_heads)) * g_heads
    disc = transformers.ElectraConfig(hidden_size=hidden, num_attention_heads=heads, intermediate_size=ff, **common)
    gen = transformers.ElectraConfig(hidden_size=g_hidden, num_attention_heads=g_heads,
                                     intermediate_size=max(1, round(ff * generator_fraction)), **common)
    return disc, gen


class ElectraPair(torch.nn.Module):
    """The generator and the discriminator as one module for the engine (one optimizer, one
    checkpoint). `save_pretrained` writes both into one safetensors file, each shared tensor once."""

    def __init__(self, generator: transformers.ElectraForMaskedLM, discriminator: transformers.ElectraForPreTraining):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        shared = discriminator.electra.embeddings
        generator.electra.embeddings = shared
        generator.generator_lm_head.weight = shared.word_embeddings.weight  # re-tied to the shared table

    @property
    def all_tied_weights_keys(self) -> dict[str, str]:
        """Every state-dict name whose tensor also has another name (the shared embeddings, the tied
        output layer): a checkpoint holds one of them, and training.load_checkpoint accepts the
        others as missing (loading one fills them all)."""
        names: dict[int, list[str]] = {}
        for name, t in self.state_dict(keep_vars=True).items():
            names.setdefault(id(t), []).append(name)
        return {n: group[0] for group in names.values() if len(group) > 1 for n in group}

    def save_pretrained(self, path: str | Path, safe_serialization: bool = True, **_) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_model(self, str(path / "model.safetensors"))  # drops the duplicate names of shared tensors


def build_electra(cfg: ModelConfig, tokenizer, generator_fraction: float = 0.25) -> ElectraPair:
    disc_cfg, gen_cfg = electra_configs(cfg, tokenizer, generator_fraction)
    return ElectraPair(transformers.ElectraForMaskedLM(gen_cfg), transformers.ElectraForPreTraining(disc_cfg))


def load_electra(run_dir: str | Path) -> ElectraPair:
    """The trained pair of an ELECTRA run (RUN/generator and RUN/model), in eval mode."""
    run = Path(run_dir)
    gen = loading.load_model(transformers.ElectraForMaskedLM, run / GENERATOR, what="an ELECTRA generator")
    disc = loading.load_model(transformers.ElectraForPreTraining, run / runs.MODEL, what="an ELECTRA discriminator")
    return ElectraPair(gen, disc).eval()


# ---- one step: mask -> sample -> detect ----------------------------------------------------------

def sample_replacements(logits: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One token id per row of `logits` [positions, vocab], drawn from softmax(logits) with
    `generator` (default: torch's global RNG, which the engine seeds and checkpoints). No gradient
    flows through the draw."""
    with torch.no_grad():
        return torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator).squeeze(1)


def replace_tokens(input_ids: torch.Tensor, labels: torch.Tensor,
                   sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the discriminator's input, replaced labels): the original block (labels where set, else the
    input) with the masked positions, in row-major order, set to `sampled`; labels are 1.0 where
    that input differs from the original, 0.0 elsewhere (a sample equal to the original is 0)."""
    picked = labels != IGNORE_INDEX
    original = torch.where(picked, labels, input_ids)
    corrupted = original.clone()
    corrupted[picked] = sampled.to(corrupted.dtype)
    return corrupted, (corrupted != original).float()


def discriminator_loss(logits: torch.Tensor, replaced: torch.Tensor,
                       attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Binary cross-entropy per row [batch], summed over the row's real positions (all positions,
    special tokens included, as in ElectraForPreTraining; padding excluded)."""
    bce = F.binary_cross_entropy_with_logits(logits.float(), replaced.float(), reduction="none")
    if attention_mask is not None:
        bce = bce * attention_mask
    return bce.sum(1)


class ElectraLoss(torch.nn.Module):
    """forward(**batch) -> sum of the generator's cross-entropy at the masked positions plus
    disc_scale times each row's discriminator BCE (see the module docstring)."""

    def __init__(self, pair: ElectraPair):
        super().__init__()
        self.pair = pair

    def step(self, input_ids, labels, attention_mask=None, sampler: Optional[torch.Generator] = None) -> dict:
        """The pieces of one step: the generator's logits and targets at the masked positions (the
        output layer runs on those only), the sample, and the discriminator's logits and labels."""
        gen = self.pair.generator
        hidden = gen.electra(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        picked = labels != IGNORE_INDEX
        gen_logits = gen.generator_lm_head(gen.generator_predictions(hidden[picked]))
        sampled = sample_replacements(gen_logits, sampler)
        disc_input, replaced = replace_tokens(input_ids, labels, sampled)
        disc_logits = self.pair.discriminator(input_ids=disc_input, attention_mask=attention_mask).logits
        return {"gen_logits": gen_logits, "targets": labels[picked], "sampled": sampled, "disc_input": disc_input,
                "replaced": replaced, "disc_logits": disc_logits}

    def forward(self, input_ids, labels, disc_scale, attention_mask=None, **_) -> torch.Tensor:
        out = self.step(input_ids, labels, attention_mask)
        gen = F.cross_entropy(out["gen_logits"].float(), out["targets"], reduction="sum")
        disc = discriminator_loss(out["disc_logits"], out["replaced"], attention_mask)
        return gen + (disc_scale.float() * disc).sum()


@dataclass
class ElectraTask(MLMTask):
    """MLMTask's blocks, masks and fixed validation masks; batches add `disc_scale`, the module is
    ElectraLoss, and evaluation scores both models."""

    disc_weight: float = 50.0

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        out = super().batch(step)
        real = max(1, self.tokens(out))
        scale = self.disc_weight * self.count(out) / real
        out["disc_scale"] = torch.full((len(out["input_ids"]),), scale, dtype=torch.float32)
        return out

    def training_module(self, model) -> torch.nn.Module:
        return ElectraLoss(model)

    def evaluate(self, module, accelerator) -> dict[str, float]:
        """On the fixed validation masks, with a fixed sampling seed: the generator's MLM loss and
        accuracy, the discriminator's BCE and accuracy over all real tokens and on the replaced ones,
        the share of tokens replaced (1 minus it is the accuracy of always answering 'original'), and
        val_loss, the objective (generator loss + disc_weight x discriminator loss)."""
        fixed = self.val_fixed
        if len(fixed["input_ids"]) == 0:
            return {}
        core = accelerator.unwrap_model(module)
        device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
        sampler = torch.Generator(device=device).manual_seed(self.seed + 7919)
        # generator loss, correct, masked; discriminator loss, correct, tokens; replaced, replaced found
        sums = [0.0] * 8
        size = self.eval_batch_size
        for start in range(rank * size, len(fixed["input_ids"]), world * size):
            b = {k: v[start:start + size].to(device) for k, v in fixed.items()}
            out = core.step(b["input_ids"], b["labels"], b.get("attention_mask"), sampler)
            real = b["attention_mask"].float() if "attention_mask" in b else torch.ones_like(out["replaced"])
            right = ((out["disc_logits"] > 0).float() == out["replaced"]).float() * real
            parts = (F.cross_entropy(out["gen_logits"].float(), out["targets"], reduction="sum"),
                     (out["gen_logits"].argmax(-1) == out["targets"]).sum(), len(out["targets"]),
                     discriminator_loss(out["disc_logits"], out["replaced"], real).sum(), right.sum(), real.sum(),
                     (out["replaced"] * real).sum(), (right * out["replaced"]).sum())
            sums = [total + float(x) for total, x in zip(sums, parts)]
        sums = accelerator.reduce(torch.tensor(sums, device=device, dtype=torch.float64), "sum").tolist()
        g_loss, g_right, masked, d_loss, d_right, tokens, replaced, found = sums
        g_loss, d_loss = g_loss / max(masked, 1), d_loss / max(tokens, 1)
        return {"val_loss": round(g_loss + self.disc_weight * d_loss, 5), "val_generator_loss": round(g_loss, 5),
                "val_generator_accuracy": round(g_right / max(masked, 1), 5), "val_disc_loss": round(d_loss, 5),
                "val_disc_accuracy": round(d_right / max(tokens, 1), 5),
                "val_replaced_accuracy": round(found / max(replaced, 1), 5),
                "val_replaced_fraction": round(replaced / max(tokens, 1), 5)}


# ---- the pipeline ---------------------------------------------------------------------------------

def check_supported(cfg: PretrainConfig) -> None:
    """ConfigError listing what ELECTRA cannot honour, before any work is done or folder made."""
    m, problems = cfg.model, []
    if m.architecture != "bert":
        problems.append(f"architecture {m.architecture!r}: its models are BERT-shaped Electra classes (use bert)")
    if m.output_bias != "zero" or m.embedding_init != "random":
        problems.append("corpus warm starts (output_bias, embedding_init) are for MLM models: use zero and random")
    if m.init_from:
        problems.append("init_from: it trains a generator and a discriminator from scratch")
    if cfg.objective != "mlm":
        problems.append(f"objective {cfg.objective!r}: replaced-token detection is its own objective (use mlm)")
    if store.wanted(cfg.data):
        problems.append("token stores and --streaming: it reads an in-memory corpus")
    if problems:
        raise ConfigError("ELECTRA cannot use " + "; ".join(problems))


def train_electra(cfg: PretrainConfig, out_dir: str | Path, electra: Optional[ElectraConfig] = None, *,
                  overwrite: bool = False, callbacks: tuple[Callback, ...] = (), progress: bool = True,
                  corpus: Optional[datasets.DatasetDict] = None) -> dict:
    """ELECTRA pre-training as configured (stop by cfg.train's max_steps, epochs or time_budget);
    returns the engine's summary (final validation metrics included) with parameter counts. The
    discriminator lands in RUN/model/, ready for `workbench.finetune`."""
    electra = electra or ElectraConfig()
    check_supported(cfg)
    accelerator = make_accelerator(cfg.train)
    corpus = corpus if corpus is not None else load_corpus(cfg.data, seed=cfg.train.seed)
    run_dir = start_run(out_dir, accelerator, overwrite=overwrite)
    t0 = time.perf_counter()
    if accelerator.is_main_process:
        with runs.atomic_output(run_dir / runs.TOKENIZER) as tmp:
            prepare_tokenizer(cfg, corpus).save_pretrained(str(tmp))
        write_run_config(run_dir, cfg, "pretrain")
        runs.write_atomic(run_dir / SETTINGS, json.dumps(to_dict(electra), indent=2) + "\n")
    accelerator.wait_for_everyone()
    tokenizer = load_tokenizer(run_dir / runs.TOKENIZER)
    with accelerator.main_process_first():
        train_blocks = make_blocks(corpus["train"], tokenizer, cfg.train, "tokenize train")
        val_blocks = make_blocks(corpus["validation"], tokenizer, cfg.train, "tokenize validation")
    task = ElectraTask(train_blocks, val_blocks, Masker.from_tokenizer(tokenizer, cfg.masking), cfg.train.batch_size,
                       seed=cfg.train.seed, eval_batches=cfg.train.eval_batches, disc_weight=electra.disc_weight)
    torch.manual_seed(cfg.train.seed)
    pair = build_electra(cfg.model, tokenizer, electra.generator_fraction)
    sizes = {"parameters": parameter_count(pair), "discriminator_parameters": parameter_count(pair.discriminator),
             "generator_parameters": parameter_count(pair.generator)}
    accelerator.print(f"ELECTRA: {len(train_blocks['input_ids']):,} blocks of {cfg.train.seq_len} tokens; "
                      f"discriminator {sizes['discriminator_parameters'] / 1e6:.2f}M, generator (hidden "
                      f"{pair.generator.config.hidden_size}) {sizes['generator_parameters'] / 1e6:.2f}M parameters, "
                      f"{sizes['parameters'] / 1e6:.2f}M together (shared embeddings); prepared in "
                      f"{time.perf_counter() - t0:.1f}s")
    with ExitStack() as faster:
        if cfg.train.fast_dropout and accelerator.device.type == "cpu":
            # the engine swaps in the fast CPU dropout through one model's config; here each model has its own
            for model in (pair.generator, pair.discriminator):
                faster.enter_context(fast_cpu_dropout(model))
        summary = train(pair, task, cfg.train, run_dir, callbacks=callbacks, accelerator=accelerator,
                        progress=progress, desc="electra")
    finish_run(run_dir, accelerator, model=pair.discriminator, tokenizer=tokenizer)
    if accelerator.is_main_process:
        with loading.quiet_transformers(), runs.atomic_output(run_dir / GENERATOR) as tmp:
            pair.generator.save_pretrained(str(tmp))
            tokenizer.save_pretrained(str(tmp))
    accelerator.wait_for_everyone()
    summary.update(sizes, run_dir=str(run_dir))
    return summary

