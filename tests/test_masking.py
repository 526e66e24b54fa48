"""Focused tests of MLM corruption (in the spirit of ModernBERT's test_mlm_masking)."""

import pytest
import torch
from transformers import DataCollatorForLanguageModeling

from workbench.config import MaskingConfig
from workbench.masking import (
    IGNORE_INDEX,
    Masker,
    describe_masking,
    format_masking,
    generator_for,
    html_masking,
    mask_text,
    sample_span_lengths,
)


@pytest.fixture(scope="module")
def blocks(tokenizer, small_corpus):
    """Real packed text: 256 blocks of 128 tokens with [CLS]/[SEP] framing."""
    from workbench.pretrain import pack, tokenize

    ids = tokenize(small_corpus["train"], tokenizer)["input_ids"]
    out = pack(ids, 128, tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert len(out) >= 256
    return out[:256]


def corrupt(tokenizer, blocks, **kw):
    masker = Masker.from_tokenizer(tokenizer, MaskingConfig(**kw))
    corrupted, labels = masker(blocks, generator_for(0, 0))
    return masker, corrupted, labels


@pytest.mark.parametrize("strategy", ["token", "whole_word", "span"])
def test_rates_and_80_10_10_split(tokenizer, blocks, strategy):
    masker, corrupted, labels = corrupt(tokenizer, blocks, mask_strategy=strategy)
    predicted = labels != IGNORE_INDEX
    eligible = ~masker.special_mask(blocks)
    rate = predicted.sum() / eligible.sum()
    assert abs(rate - 0.15) < 0.01, rate
    n = predicted.sum()
    as_mask = (corrupted[predicted] == tokenizer.mask_token_id).sum() / n
    kept = (corrupted[predicted] == blocks[predicted]).sum() / n
    randomised = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(randomised - 0.1) < 0.02
    # labels hold the original ids where predicted; unpredicted positions are untouched
    assert torch.equal(labels[predicted], blocks[predicted])
    assert torch.equal(corrupted[~predicted], blocks[~predicted])


def _split(tokenizer, original, corrupted, labels) -> tuple[float, float, float, float]:
    """(selection rate, share of the selected replaced by [MASK], kept, randomised)."""
    picked = labels != IGNORE_INDEX
    n = picked.sum()
    as_mask = float((corrupted[picked] == tokenizer.mask_token_id).sum() / n)
    kept = float((corrupted[picked] == original[picked]).sum() / n)
    return float(picked.float().mean()), as_mask, kept, 1 - as_mask - kept


def test_same_statistics_as_the_transformers_collator(tokenizer, blocks):
    """The selection rate and the 80/10/10 split of the selected tokens both match the collator's."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0, return_tensors="pt")
    out = collator([{"input_ids": b} for b in blocks])
    theirs = _split(tokenizer, blocks, out["input_ids"], out["labels"])
    _, corrupted, labels = corrupt(tokenizer, blocks)
    ours = _split(tokenizer, blocks, corrupted, labels)
    assert abs(theirs[0] - ours[0]) < 0.01
    for a, b in zip(theirs[1:], ours[1:]):  # [MASK], kept, random: ~4,900 selected tokens each, std ~0.005
        assert abs(a - b) < 0.025, (theirs, ours)


def test_configurable_split_and_rate(tokenizer, blocks):
    _, corrupted, labels = corrupt(tokenizer, blocks, mlm_probability=0.3, mask_fraction=1.0, random_fraction=0.0)
    predicted = labels != IGNORE_INDEX
    assert abs(predicted.float().mean() - 0.3 * 126 / 128) < 0.01
    assert (corrupted[predicted] == tokenizer.mask_token_id).all()


@pytest.mark.parametrize("strategy", ["token", "whole_word", "span"])
def test_special_and_padding_tokens_are_never_masked(tokenizer, blocks, strategy):
    ids = blocks.clone()
    ids[:, 100:] = tokenizer.pad_token_id  # a padded tail
    masker, corrupted, labels = corrupt(tokenizer, ids, mask_strategy=strategy, mlm_probability=0.5)
    special = masker.special_mask(ids)
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(corrupted[special], ids[special])
    # random replacements never produce special tokens either
    assert not torch.isin(corrupted[~special & (corrupted != tokenizer.mask_token_id)], masker.special_ids).any()


@pytest.mark.parametrize("strategy", ["whole_word", "span"])
def test_whole_words_are_masked_together(tokenizer, blocks, strategy):
    masker, _, labels = corrupt(tokenizer, blocks, mask_strategy=strategy)
    predicted = labels != IGNORE_INDEX
    starts = masker.word_starts(blocks)
    special = masker.special_mask(blocks)
    continuation = ~starts & ~special
    multi_piece_words = 0
    for row in range(len(blocks)):
        for pos in range(1, blocks.shape[1]):
            if continuation[row, pos]:
                # every continuation piece shares the fate of the piece before it
                assert predicted[row, pos] == predicted[row, pos - 1]
                multi_piece_words += int(predicted[row, pos])
    assert multi_piece_words > 50  # the property was exercised, not vacuous


def test_token_masking_does_split_words(tokenizer, blocks):
    masker, _, labels = corrupt(tokenizer, blocks)
    predicted = labels != IGNORE_INDEX
    cont = ~masker.word_starts(blocks) & ~masker.special_mask(blocks)
    differs = (predicted[:, 1:] != predicted[:, :-1]) & cont[:, 1:]
    assert differs.any()


def test_determinism(tokenizer, blocks):
    m = Masker.from_tokenizer(tokenizer, MaskingConfig(mask_strategy="whole_word"))
    a = m(blocks, generator_for(3, 17))
    b = m(blocks, generator_for(3, 17))
    c = m(blocks, generator_for(3, 18))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_span_lengths_are_geometric_and_capped():
    lengths = sample_span_lengths(50_000, 0.2, 10, torch.Generator().manual_seed(0)).float()
    assert lengths.min() == 1 and lengths.max() == 10
    # P(L=1) = p = 0.2; mean of a geometric(0.2) clipped at 10 is sum_{k<10} (0.8)^k = 4.46
    # (SpanBERT: 3.8 words, also clipped)
    assert abs((lengths == 1).float().mean() - 0.2) < 0.01
    assert abs(lengths.mean() - sum(0.8**k for k in range(10))) < 0.05


def test_span_masking_makes_contiguous_runs(tokenizer, blocks):
    _, _, span_labels = corrupt(tokenizer, blocks, mask_strategy="span")
    _, _, tok_labels = corrupt(tokenizer, blocks, mask_strategy="token")

    def mean_run(labels):
        p = (labels != IGNORE_INDEX).int()
        starts = ((p[:, 1:] == 1) & (p[:, :-1] == 0)).sum() + p[:, 0].sum()
        return p.sum() / starts

    assert mean_run(span_labels) > 2 * mean_run(tok_labels)


def test_human_readable_views(tokenizer):
    rows = mask_text("The president of the United States signed the bill.", tokenizer,
                     MaskingConfig(mlm_probability=0.5), seed=1)
    assert rows[0]["original"] == "[CLS]" and not rows[0]["predicted"]
    assert any(r["predicted"] for r in rows)
    for r in rows:
        if r["corruption"] == "mask":
            assert r["input"] == "[MASK]"
        if r["corruption"] == "keep":
            assert r["input"] == r["original"]
    text = format_masking(rows)
    assert "original :" in text and "input    :" in text and "^" in text
    assert "<span" in html_masking(rows)
    described = describe_masking(tokenizer, [2, 10, 3], [2, tokenizer.mask_token_id, 3],
                                 [IGNORE_INDEX, 10, IGNORE_INDEX])
    assert [r["corruption"] for r in described] == ["", "mask", ""]


# ---- hand-built vocabularies: every position's fate can be checked by eye ------------------------------

PAD, CLS, SEP, MASK = 0, 1, 2, 3  # ids 4..14 are word starts, 15..19 continuation pieces ("##x")


def hand_masker(**kw) -> Masker:
    continuation = torch.zeros(20, dtype=torch.bool)
    continuation[15:] = True
    return Masker(MaskingConfig(**kw), MASK, torch.tensor([PAD, CLS, SEP, MASK]), torch.arange(4, 20), continuation)


def test_hand_built_special_tokens_and_padding_are_never_touched():
    ids = torch.tensor([[CLS, 4, 5, 6, 7, 8, 9, SEP, PAD, PAD]]).repeat(64, 1)
    for strategy in ("token", "whole_word", "span"):
        masker = hand_masker(mlm_probability=0.5, mask_strategy=strategy)
        corrupted, labels = masker(ids, generator_for(0, 0))
        special = torch.isin(ids, torch.tensor([PAD, CLS, SEP]))
        assert (labels[special] == IGNORE_INDEX).all() and torch.equal(corrupted[special], ids[special])
        assert not torch.isin(corrupted[~special], torch.tensor([PAD, CLS, SEP])).any()  # [MASK] or a word id
        picked = labels != IGNORE_INDEX
        assert picked.any() and torch.equal(labels[picked], ids[picked])


def test_hand_built_words_are_masked_whole():
    # words: 4 15 16 | 5 17 | 6 | 7 18
    ids = torch.tensor([[CLS, 4, 15, 16, 5, 17, 6, 7, 18, SEP]]).repeat(200, 1)
    masker = hand_masker(mlm_probability=0.3, mask_strategy="whole_word")
    assert masker.word_starts(ids)[0].tolist() == [False, True, False, False, True, False, True, True, False, False]
    _, labels = masker(ids, generator_for(1, 0))
    picked = labels != IGNORE_INDEX
    for word in ([1, 2, 3], [4, 5], [7, 8]):
        assert (picked[:, word] == picked[:, word[:1]]).all()  # all pieces of a word share its fate
    assert picked[:, 1].any() and not picked[:, 1].all()
