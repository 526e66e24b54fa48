"""ELECTRA (workbench.electra): replaced-token labels, seeded sampling, the discriminator's loss, the
weighted objective, shared embeddings and checkpoints on hand-built inputs with a 13-token vocabulary
and tiny models (hidden 16); a short real run whose discriminator the package's fine-tuning loads."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import BertTokenizer, ElectraForSequenceClassification

from workbench import electra, runs
from workbench.config import ORIGINAL_BERT, ConfigError, MaskingConfig, ModelConfig, PretrainConfig, from_dict
from workbench.finetune import load_for_classification
from workbench.masking import IGNORE_INDEX, Masker
from workbench.training import TrainState, load_checkpoint, save_checkpoint

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog", "##s"]
SMALL = ModelConfig(architecture="bert", layers=1, hidden=16, heads=2, intermediate=32, max_position=16, dropout=0.0)


@pytest.fixture(scope="module")
def vocab_tokenizer():
    return BertTokenizer(vocab={t: i for i, t in enumerate(VOCAB)})


@pytest.fixture()
def pair(vocab_tokenizer):
    torch.manual_seed(0)
    return electra.build_electra(SMALL, vocab_tokenizer, generator_fraction=0.5)


# ---- labels, sampling, loss -------------------------------------------------------------------------

def test_replaced_labels_equal_input_differs_from_original():
    # masked block: [CLS] the [MASK] sat on [MASK] mat [SEP]; row 2 has a random token ("dog") at a predicted slot
    input_ids = torch.tensor([[2, 5, 4, 7, 8, 4, 9, 3], [2, 11, 6, 7, 4, 5, 9, 3]])
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[0, 2], labels[0, 5] = 6, 5  # cat, the
    labels[1, 1], labels[1, 4] = 5, 8  # the (shown as dog), on
    sampled = torch.tensor([11, 5, 5, 10])  # dog for cat; the for the (sampled back); the for the; a for on
    corrupted, replaced = electra.replace_tokens(input_ids, labels, sampled)
    assert corrupted.tolist() == [[2, 5, 11, 7, 8, 5, 9, 3], [2, 5, 6, 7, 10, 5, 9, 3]]
    assert replaced.tolist() == [[0, 0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0]]
    original = torch.where(labels != IGNORE_INDEX, labels, input_ids)
    assert torch.equal(replaced.bool(), corrupted != original)  # at every position


def test_sampling_is_seeded_and_follows_the_logits():
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.5], [3.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]] * 20,
                          requires_grad=True)
    first = electra.sample_replacements(logits, torch.Generator().manual_seed(3))
    again = electra.sample_replacements(logits, torch.Generator().manual_seed(3))
    assert torch.equal(first, again) and first.shape == (60,)
    other = electra.sample_replacements(logits, torch.Generator().manual_seed(4))
    assert not torch.equal(first, other)
    certain = torch.full((3, 4), -1e4)
    certain[0, 2] = certain[1, 0] = certain[2, 3] = 0.0  # all probability on one token per row
    assert electra.sample_replacements(certain, torch.Generator().manual_seed(0)).tolist() == [2, 0, 3]


def test_discriminator_loss_is_binary_cross_entropy_over_real_positions():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.0, 3.0, -2.0, 1.5]])
    replaced = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])  # the last position of row 2 is padding
    rows = electra.discriminator_loss(logits, replaced, mask)
    expected = [F.binary_cross_entropy_with_logits(logits[0], replaced[0], reduction="sum"),
                F.binary_cross_entropy_with_logits(logits[1, :3], replaced[1, :3], reduction="sum")]
    assert torch.allclose(rows, torch.stack(expected), atol=1e-6)
    # by hand: softplus(2) + softplus(1) + softplus(0.5) + softplus(0) for row 1
    assert rows[0].item() == pytest.approx(2.126928 + 1.313262 + 0.974077 + 0.693147, abs=1e-5)


def test_discriminator_loss_matches_electra_for_pretraining(pair):
    disc = pair.discriminator.eval()
    ids = torch.tensor([[2, 5, 11, 7, 8, 5, 9, 3], [2, 10, 6, 7, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    replaced = torch.tensor([[0, 0, 1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]])
    out = disc(input_ids=ids, attention_mask=mask, labels=replaced)
    ours = electra.discriminator_loss(out.logits, replaced, mask).sum() / mask.sum()
    assert ours.item() == pytest.approx(out.loss.item(), abs=1e-6)


# ---- the models and the objective ---------------------------------------------------------------------

def test_generator_is_narrower_and_shares_the_embeddings(pair):
    gen, disc = pair.generator, pair.discriminator
    assert (gen.config.hidden_size, gen.config.num_attention_heads, gen.config.intermediate_size) == (8, 1, 16)
    assert (disc.config.hidden_size, disc.config.num_attention_heads) == (16, 2)
    assert gen.electra.embeddings is disc.electra.embeddings
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight


def test_objective_is_generator_loss_plus_50_times_discriminator_loss(pair, vocab_tokenizer):
    blocks = {"input_ids": torch.tensor([[2, 5, 6, 7, 8, 5, 9, 3], [2, 10, 11, 7, 8, 5, 9, 3],
                                         [2, 6, 12, 7, 8, 10, 9, 3], [2, 5, 11, 12, 8, 5, 6, 3]])}
    masker = Masker.from_tokenizer(vocab_tokenizer, MaskingConfig(mlm_probability=0.5))
    task = electra.ElectraTask(blocks, blocks, masker, batch_size=2, eval_batches=1, eval_batch_size=2)
    batch = task.batch(0)
    m = task.count(batch)
    assert m == int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert batch["disc_scale"].tolist() == pytest.approx([50.0 * m / 16] * 2)
    module = task.training_module(pair).eval()
    torch.manual_seed(7)
    objective = module(**batch) / m
    torch.manual_seed(7)  # the same sample, by hand
    out = module.step(batch["input_ids"], batch["labels"])
    gen = F.cross_entropy(out["gen_logits"], batch["labels"][batch["labels"] != IGNORE_INDEX])
    disc = F.binary_cross_entropy_with_logits(out["disc_logits"], out["replaced"])  # mean over all 16 tokens
    assert objective.item() == pytest.approx((gen + 50.0 * disc).item(), rel=1e-5)
    torch.manual_seed(7)
    assert torch.equal(module.step(batch["input_ids"], batch["labels"])["sampled"], out["sampled"])


def test_checkpoint_holds_shared_tensors_once_and_loads_back(pair, vocab_tokenizer, tmp_path):
    engine = SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None)  # one process, as the engine's
    ckpt = save_checkpoint(tmp_path, pair, torch.optim.AdamW(pair.parameters()), TrainState(step=3), engine, keep=1)
    saved = load_file(str(ckpt / "model.safetensors"))
    tied = pair.all_tied_weights_keys
    assert {"generator.generator_lm_head.weight", "generator.electra.embeddings.word_embeddings.weight",
            "discriminator.electra.embeddings.word_embeddings.weight"} <= set(tied)
    assert len(saved) == len(pair.state_dict()) - len(tied) + len(set(tied.values()))  # one name per shared tensor
    torch.manual_seed(1)
    fresh = electra.build_electra(SMALL, vocab_tokenizer, generator_fraction=0.5)
    assert load_checkpoint(ckpt, fresh, torch.optim.AdamW(fresh.parameters()), engine).step == 3
    for (name, a), b in zip(pair.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    assert fresh.generator.generator_lm_head.weight is fresh.discriminator.electra.embeddings.word_embeddings.weight


# ---- the pipeline -------------------------------------------------------------------------------------

def _config(tokenizer_from=None, **train) -> PretrainConfig:
    return from_dict(PretrainConfig, {"model": {**ORIGINAL_BERT, "layers": 1, "hidden": 32, "heads": 2,
                                               "intermediate": 64, "max_position": 64, "dropout": 0.0},
                                     "data": {"max_documents": 120, "validation_fraction": 0.1},
                                     "tokenizer": {"vocab_size": 2000, "tokenizer_from": tokenizer_from},
                                     "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "warmup": 0.1,
                                               "eval_every": 0, "eval_batches": 1, "log_every": 1, "save_every": 0,
                                               "device": "cpu", "precision": "fp32", "threads": 1, **train}})


def test_unsupported_settings_are_refused_before_any_folder(tmp_path):
    cfg = _config()
    cfg.model.architecture, cfg.objective = "modernbert", "mlm"
    with pytest.raises(ConfigError, match="architecture 'modernbert'"):
        electra.train_electra(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="warm starts"):
        electra.train_electra(from_dict(PretrainConfig, {"model": {"architecture": "bert"}}), tmp_path / "run")
    with pytest.raises(ConfigError, match="generator_fraction"):
        electra.ElectraConfig(generator_fraction=0.0)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_short_run_learns_and_its_discriminator_fine_tunes(small_corpus, tokenizer_dir, tmp_path):
    run = tmp_path / "run"
    summary = electra.train_electra(_config(str(tokenizer_dir), max_steps=40), run, corpus=small_corpus, progress=False)
    losses = [r["loss"] for r in runs.read_metrics(run) if r["kind"] == "train"]
    assert summary["steps"] == len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert 0 < summary["val_replaced_fraction"] <= 0.15 + 0.05 and summary["discriminator_parameters"] > 0
    assert json.loads((run / electra.SETTINGS).read_text()) == {"generator_fraction": 0.25, "disc_weight": 50.0}
    assert runs.resolve_model_dir(run)[0] == run / runs.MODEL
    model, tokenizer = load_for_classification(str(run), ["no", "yes"])
    assert isinstance(model, ElectraForSequenceClassification)
    weights = load_file(str(run / runs.MODEL / "model.safetensors"))
    layer = "electra.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[layer], weights[layer])  # the trained encoder, not a fresh one
    assert (run / electra.GENERATOR / "config.json").is_file()
