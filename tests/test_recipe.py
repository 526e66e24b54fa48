"""The pre-training recipe's pieces: ModernBERT's local attention layers and the [MASK]-only
evaluation (hand-built masks and a stand-in model with exact expected accuracies)."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator

from workbench.config import ConfigError, MaskingConfig, ModelConfig
from workbench.masking import IGNORE_INDEX, Masker
from workbench.model import build_mlm_model
from workbench.pretrain import MASK_ONLY, MLMTask


@pytest.mark.parametrize("layers, window, every, expected", [
    (4, 0, 2, ["full"] * 4),
    (4, 8, 4, ["sliding", "sliding", "sliding", "full"]),
    (4, 8, 2, ["sliding", "full", "sliding", "full"]),
    (2, 16, 1, ["full", "full"]),
])
def test_local_window_makes_the_lower_layers_local(tokenizer, layers, window, every, expected):
    cfg = ModelConfig(size="tiny", architecture="modernbert", layers=layers, local_window=window, global_every=every)
    model = build_mlm_model(cfg, tokenizer)
    assert model.config.layer_types == [t + "_attention" for t in expected]


def test_a_local_layer_attends_only_within_its_window(tokenizer):
    torch.manual_seed(0)
    cfg = ModelConfig(size="tiny", architecture="modernbert", local_window=4, global_every=2, dropout=0.0)
    model = build_mlm_model(cfg, tokenizer).eval()
    model.set_attn_implementation("eager")
    ids = torch.randint(10, 500, (1, 12))
    with torch.no_grad():
        att = model(input_ids=ids, output_attentions=True).attentions
    sees = att[0][0, 0] > 0  # layer 0 (local), head 0: [query, key]
    distance = (torch.arange(12)[:, None] - torch.arange(12)[None, :]).abs()
    assert torch.equal(sees, distance <= 2)
    assert (att[1][0, 0] > 0).all()  # layer 1 is global


def test_local_window_is_refused_for_architectures_without_it():
    with pytest.raises(ConfigError, match="modernbert"):
        ModelConfig(architecture="bert", local_window=8).resolved()


class CopyModel(torch.nn.Module):
    """Stands in for an MLM: 'predicts' the token it sees, so it is right exactly where the input still
    shows the original token (the kept 10%, and random replacements that drew the same token)."""

    def predict(self, input_ids, labels, attention_mask=None):
        picked = labels != IGNORE_INDEX
        correct = (input_ids[picked] == labels[picked]).sum()
        return torch.tensor(float(picked.sum())), correct  # loss 1 per predicted token


def test_mask_only_evaluation_replaces_every_selected_token_and_exposes_copying(tokenizer):
    blocks = {"input_ids": torch.randint(10, len(tokenizer), (64, 32), generator=torch.Generator().manual_seed(0))}
    task = MLMTask(blocks, blocks, Masker.from_tokenizer(tokenizer, MaskingConfig()), batch_size=4, eval_batches=1)
    fixed = task.val_mask_only
    picked = fixed["labels"] != IGNORE_INDEX
    assert (fixed["input_ids"][picked] == tokenizer.mask_token_id).all()
    assert (fixed["input_ids"][~picked] == blocks["input_ids"][~picked]).all()
    assert 0.12 < picked.float().mean().item() < 0.18 and MASK_ONLY.mlm_probability == 0.15
    # the copy model's standard accuracy is the share of predicted tokens left visible; [MASK]-only is 0
    std = task.val_fixed
    std_picked = std["labels"] != IGNORE_INDEX
    visible = (std["input_ids"][std_picked] == std["labels"][std_picked]).float().mean().item()
    metrics = task.evaluate(CopyModel(), Accelerator(cpu=True))
    assert metrics["val_accuracy"] == pytest.approx(visible, abs=1e-5) and visible > 0.05
    assert metrics["val_mask_accuracy"] == 0.0
    assert metrics["val_loss"] == metrics["val_mask_loss"] == 1.0
