import pytest
from transformers import AutoTokenizer

from workbench.config import TokenizerConfig
from workbench.tokenizer import TokenizerError, ids_encoder, load_tokenizer, tokenizer_report, train_tokenizer


@pytest.mark.parametrize("algorithm", ["wordpiece", "bpe", "unigram"])
def test_train_save_load_in_transformers_layout(small_corpus, tmp_path, algorithm):
    tok = train_tokenizer(small_corpus["train"]["text"], TokenizerConfig(algorithm=algorithm, vocab_size=1500))
    tok.save_pretrained(str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))  # any Hugging Face code can use it
    assert 1000 <= len(loaded) <= 1500
    for special in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        assert special in loaded.get_vocab()
    enc = loaded("The Senate voted today.", "A second sentence.")
    tokens = loaded.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0
    assert loaded.mask_token == "[MASK]" and loaded.pad_token_id == 0


def test_lowercase_option(small_corpus):
    lower = train_tokenizer(small_corpus["train"]["text"][:50], TokenizerConfig(vocab_size=800))
    cased = train_tokenizer(small_corpus["train"]["text"][:50], TokenizerConfig(vocab_size=800, lowercase=False))
    assert lower.tokenize("The") == ["the"]
    assert cased.tokenize("The")[0].startswith("T")


def test_report_fertility_and_unknown_rate(tokenizer, small_corpus):
    r = tokenizer_report(tokenizer, small_corpus["validation"]["text"])
    assert r.vocab_size == len(tokenizer)
    assert 1.0 < r.fertility < 3.0
    assert r.tokens / r.words == pytest.approx(r.fertility)
    assert 0.0 <= r.unk_rate < 0.01
    chinese = tokenizer_report(tokenizer, ["漢字 テスト 한국어"])
    assert chinese.unk_rate > 0.5  # characters never seen in training are unknown
    with pytest.raises(TokenizerError):
        tokenizer_report(tokenizer, [""])


def test_unknown_algorithm_and_missing_directory(tmp_path):
    with pytest.raises(TokenizerError, match="unknown tokenizer algorithm"):
        train_tokenizer(["a b c"], TokenizerConfig(algorithm="sentencepiece"))
    with pytest.raises(TokenizerError, match="cannot load a tokenizer"):
        load_tokenizer(tmp_path / "missing")


ENCODER_TEXTS = [
    "The Quick Brown Fox, 42 times!",           # ASCII, mixed case: the shortcut
    "Café RÉSUMÉ naïve",                         # accents: the tokenizer as it is
    "a [MASK] here, [SEP] there and [mask]",     # special tokens' text, matched before lower-casing
    "only [mask] and [Mask] here",               # not special tokens' text: the shortcut
    "tabs\tand\nnew lines\x0cform feed\x00nul",  # control characters
    "",
    "UPPER lower MiXeD\u2019s",                  # non-ASCII apostrophe
]


@pytest.mark.parametrize("algorithm,lowercase", [("wordpiece", True), ("wordpiece", False), ("bpe", True),
                                                 ("unigram", True)])
def test_ids_encoder_equals_the_tokenizer(small_corpus, algorithm, lowercase):
    tok = train_tokenizer(small_corpus["train"]["text"][:50],
                          TokenizerConfig(algorithm=algorithm, vocab_size=800, lowercase=lowercase))
    backend = tok.backend_tokenizer
    expected = [e.ids for e in backend.encode_batch(ENCODER_TEXTS, add_special_tokens=False)]
    encode = ids_encoder(backend)
    assert encode.ascii_shortcut  # our normalizers (NFD+Lowercase+StripAccents, or NFC) are ASCII-transparent
    assert encode(ENCODER_TEXTS) == expected
    assert encode(ENCODER_TEXTS[:1]) == expected[:1] and encode([]) == []


def test_ids_encoder_keeps_other_normalizers(tokenizer_dir):
    from tokenizers import normalizers
    backend = load_tokenizer(tokenizer_dir).backend_tokenizer  # a copy: the session's tokenizer stays as it is
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)  # also drops control characters
    encode = ids_encoder(backend)
    assert not encode.ascii_shortcut
    assert encode(ENCODER_TEXTS) == [e.ids for e in backend.encode_batch(ENCODER_TEXTS, add_special_tokens=False)]
