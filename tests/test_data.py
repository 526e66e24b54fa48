import json
import random
import re

import datasets
import pytest

from workbench.config import DataConfig
from workbench.data import (
    CorpusError,
    clean_documents,
    clean_text,
    corpus_stats,
    load_corpus,
    split_documents,
    stream_corpus,
)


def test_default_corpus_is_real_prose_over_10mb_split_by_document():
    dd = load_corpus()
    assert set(dd) == {"train", "validation"}
    chars = sum(map(len, dd["train"]["text"])) + sum(map(len, dd["validation"]["text"]))
    assert chars > 10_000_000
    assert len(dd["validation"]) > 20
    assert not set(dd["train"]["text"]) & set(dd["validation"]["text"])
    assert not set(dd["train"]["doc_id"]) & set(dd["validation"]["doc_id"])
    assert "president" in dd["train"][0]["text"].lower() or len(dd["train"][0]["text"].split()) > 50


def test_movie_dialogue_corpus_and_mixing_keeps_the_news_split():
    from workbench.data import MOVIE_LINES_PER_DOCUMENT, _movie_documents
    docs = _movie_documents()
    lines = [d.split("\n") for d in docs]
    per_doc = MOVIE_LINES_PER_DOCUMENT
    assert all(len(x) == per_doc for x in lines[:-1]) and 0 < len(lines[-1]) <= per_doc
    # the file's first exchange, utterance and reply on lines of their own
    assert lines[0][:2] == ["you're asking me out. that's so cute. what's your name again?", "forget it."]
    assert not any("\t" in d for d in docs) and sum(map(len, docs)) > 4_000_000
    news, mixed = load_corpus(), load_corpus(DataConfig(data=["news", "movies"]))
    # a document's split hangs on its own text: adding a corpus moves no news article across the split
    assert set(news["validation"]["text"]) <= set(mixed["validation"]["text"])
    assert not set(news["validation"]["text"]) & set(mixed["train"]["text"])
    assert len(mixed["train"]) > len(news["train"]) + 2000


def test_split_is_deterministic_and_independent_of_order():
    docs = [f"document number {i} " * 5 for i in range(500)]
    a = split_documents(docs, 0.1)
    b = split_documents(list(reversed(docs)), 0.1)
    assert sorted(a["validation"]["text"]) == sorted(b["validation"]["text"])
    assert 25 <= len(a["validation"]) <= 80


def test_cleaning_whitespace_blank_lines_and_exact_duplicates():
    assert clean_text("  a \t b  \r\n\n\n c  ") == "a b\nc"
    assert clean_documents(["x  y", "x y", "", "   ", "z"]) == ["x y", "z"]


def test_cleaning_each_kind_of_space():
    assert clean_text("a b c") == "a b c"  # already clean: unchanged (the fast path)
    assert clean_text("a\tb") == "a b"
    assert clean_text("a\u00a0b\u2009c") == "a b c"  # no-break and thin spaces
    assert clean_text("a \u200b b") == "a b"  # a zero-width space inside a run
    assert clean_text("a\u3000b") == "a\u3000b"  # an ideographic space is not in the class: kept
    assert clean_text(" a\n\u3000b \n\n\n") == "a\nb"  # ... but stripped at a line's ends, as str.strip does


def _clean_text_reference(text: str) -> str:
    """clean_text as first written (one regex over every run of spaces): the fast path must not change a
    character of the output, since the validation split hashes the cleaned text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0\u2000-\u200b]+", " ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return re.sub(r"\n\s*\n+", "\n", text).strip()


def test_cleaning_equals_the_reference_on_random_whitespace():
    pieces = [" ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x85", "\u00a0", "\u2000", "\u2009", "\u200b",
              "\u2028", "\u3000", "a", "bc", "é"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert clean_text(text) == _clean_text_reference(text), repr(text)


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet"])
def test_user_files_of_each_format(tmp_path, kind):
    docs = [f"this is document {i} with some words" for i in range(30)]
    path = tmp_path / f"corpus.{kind}"
    if kind == "txt":
        path.write_text("\n\n".join(docs))
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps({"body": d}) for d in docs))
    elif kind == "csv":
        datasets.Dataset.from_dict({"body": docs}).to_csv(str(path))
    else:
        datasets.Dataset.from_dict({"body": docs}).to_parquet(str(path))
    column = "text" if kind == "txt" else "body"
    dd = load_corpus(DataConfig(data=[str(path)], text_column=column, validation_fraction=0.2))
    assert sorted(list(dd["train"]["text"]) + list(dd["validation"]["text"])) == sorted(docs)


def test_a_folder_of_files(tmp_path):
    (tmp_path / "a.txt").write_text("first line document\nsecond line document\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("third line document\n")
    dd = load_corpus(DataConfig(data=[str(tmp_path)], validation_fraction=0.0))
    assert len(dd["train"]) == 3


def test_bad_input_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt: no such file"):
        load_corpus(DataConfig(data=[str(tmp_path / "nope.txt")]))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="empty.txt: the file is empty"):
        load_corpus(DataConfig(data=[str(tmp_path / "empty.txt")]))
    (tmp_path / "blank.txt").write_text("\n\n   \n")
    with pytest.raises(CorpusError, match="empty after removing blank"):
        load_corpus(DataConfig(data=[str(tmp_path / "blank.txt")]))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CorpusError, match="t.csv: no column 'text'; columns are a, b"):
        load_corpus(DataConfig(data=[str(tmp_path / "t.csv")]))
    (tmp_path / "t.jsonl").write_text('{"a": "x"}\n')
    with pytest.raises(CorpusError, match="t.jsonl: no column 'text'"):
        load_corpus(DataConfig(data=[str(tmp_path / "t.jsonl")]))
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(CorpusError, match="unsupported file type"):
        load_corpus(DataConfig(data=[str(tmp_path / "x.docx")]))


def test_invalid_utf8_is_replaced_and_counted(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9 au lait\n\nna\xefve reader\n".encode("latin-1"))
    with pytest.warns(UserWarning, match="latin1.txt: 2 bytes are not valid UTF-8"):
        dd = load_corpus(DataConfig(data=[str(path)], validation_fraction=0.0))
    assert list(dd["train"]["text"]) == ["caf\ufffd au lait", "na\ufffdve reader"]


def test_hub_dataset_path_on_a_locally_saved_dataset(tmp_path):
    """`hf:` goes through datasets.load_dataset / load_from_disk: the code users run online."""
    train = [f"wiki line {i} about history" for i in range(40)]
    dd = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": train}),
                              validation=datasets.Dataset.from_dict(
                                  {"text": ["held out line one", "held out line two"]}))
    dd.save_to_disk(str(tmp_path / "saved"))
    out = load_corpus(DataConfig(data=[f"hf:{tmp_path / 'saved'}"]))
    assert list(out["validation"]["text"]) == ["held out line one", "held out line two"]
    assert len(out["train"]) == 40
    # a hub-style repository folder of data files (what a snapshot download leaves)
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"text": train}).to_parquet(str(repo / "data" / "train-00000.parquet"))
    out = load_corpus(DataConfig(data=[f"hf:{repo}"], validation_fraction=0.25))
    assert len(out["train"]) + len(out["validation"]) == 40


def test_hub_name_without_network_gives_a_clear_error(monkeypatch):
    # what a user without a network meets, without waiting for connection time-outs
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(CorpusError, match="hf:no-such-owner/no-such-dataset: cannot load"):
        load_corpus(DataConfig(data=["hf:no-such-owner/no-such-dataset"]))


def test_streaming_local_files(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"  line   {i}  "}) for i in range(100)))
    ds = stream_corpus(DataConfig(data=[str(path)], streaming=True))
    assert isinstance(ds, datasets.IterableDataset)
    first = [ex["text"] for _, ex in zip(range(3), ds)]
    assert first == ["line 0", "line 1", "line 2"]


def test_corpus_stats(tokenizer):
    s = corpus_stats(["one two three", "four five"], tokenizer)
    assert (s.documents, s.words, s.characters) == (2, 5, 22)
    assert s.tokens >= 5 and s.median_words == 2.5 and s.max_words == 3
    with pytest.raises(CorpusError):
        corpus_stats([])
