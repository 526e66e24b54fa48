"""The token store: `prepare`, training from its shards, and several processes reading disjoint blocks."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at, train_losses

from workbench import runs
from workbench.config import DataConfig, MaskingConfig, PrepareConfig, PretrainConfig, from_dict
from workbench.masking import Masker, generator_for
from workbench.prepare import _file_fingerprint, prepare
from workbench.pretrain import MLMTask, evaluate_mlm, pack, pretrain
from workbench.store import StoreTask, permute
from workbench.tokenizer import load_tokenizer
from workbench.tokenstore import StoreError, TokenStore, in_validation, is_store, token_dtype, tokenizer_hash

ROOT = Path(__file__).resolve().parent.parent


def write_corpus(path: Path, docs: list[str]) -> Path:
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def news_docs(small_corpus):
    return list(small_corpus["train"]["text"]) + list(small_corpus["validation"]["text"])


@pytest.fixture(scope="module")
def corpus_file(news_docs, tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("text") / "news.txt", news_docs)


def prep_cfg(*files, **kw) -> PrepareConfig:
    return PrepareConfig(data=DataConfig(data=[str(f) for f in files], validation_fraction=0.1),
                         shard_mb=kw.pop("shard_mb", 0.1), **kw)


@pytest.fixture(scope="module")
def news_store(corpus_file, tokenizer_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "news"
    prepare(prep_cfg(corpus_file), str(tokenizer_dir), out, progress=False)
    return out


def store_documents(docs: list[str], fraction: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """The split prepare makes, by its documented rule."""
    out = {"train": [], "validation": []}
    for d in docs:
        out["validation" if in_validation(d, fraction, seed) else "train"].append(d)
    return out


# ---- prepare -------------------------------------------------------------------------------------

def test_prepare_packs_the_same_blocks_as_the_in_memory_path(news_store, news_docs, tokenizer):
    ts = TokenStore(news_store)
    split = store_documents(news_docs)
    assert ts.documents("train") == len(split["train"]) and ts.documents("validation") == len(split["validation"])
    assert len(ts.manifest["splits"]["train"]["shards"]) > 2  # several shards, read across their boundaries
    ids = tokenizer(split["train"], add_special_tokens=False)["input_ids"]
    expected = pack(ids, 64, tokenizer.cls_token_id, tokenizer.sep_token_id)
    got = ts.blocks("train", np.arange(ts.num_blocks("train", 64)), 64)
    assert torch.equal(got, expected)
    # document boundaries: the end of each document's ids + [SEP] in the stream
    ends = np.concatenate(list(ts.document_ends("train")))
    assert ends.tolist() == np.cumsum([len(x) + 1 for x in ids]).tolist()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_reading_blocks_maps_no_shard_into_memory(news_store, tmp_path):
    """Blocks come from file reads: no shard is mapped (mapped pages would count in the process's
    resident memory and grow with the store), and a truncated shard is an error, not zeros."""
    ts = TokenStore(news_store)
    ts.blocks("train", np.arange(ts.num_blocks("train", 64)), 64)
    maps = Path("/proc/self/maps").read_text()
    assert str(news_store) not in maps and ".bin" not in maps
    assert 0 < len(ts._open) <= ts.max_open
    ts.close()
    assert not ts._open
    broken = tmp_path / "broken"
    shutil.copytree(news_store, broken)
    first = broken / ts.manifest["splits"]["train"]["shards"][0]["file"]
    first.write_bytes(first.read_bytes()[:10])
    with pytest.raises(StoreError, match="shorter than its manifest says"):
        TokenStore(broken).blocks("train", np.arange(2), 64)


def test_manifest_records_tokenizer_sources_counts_and_split(news_store, corpus_file, tokenizer):
    m = json.loads((news_store / "manifest.json").read_text())
    assert m["complete"] is True and m["dtype"] == "uint16"
    assert m["tokenizer"]["hash"] == tokenizer_hash(tokenizer) and m["tokenizer"]["vocab_size"] == len(tokenizer)
    assert m["validation"]["fraction"] == 0.1 and m["validation"]["seed"] == 0
    [src] = m["sources"]
    assert src["unit"] == str(corpus_file.resolve()) and src["fingerprint"] == _file_fingerprint(corpus_file)
    for split in ("train", "validation"):
        shards = m["splits"][split]["shards"]
        assert m["splits"][split]["tokens"] == sum(s["tokens"] for s in shards) == src["tokens"][split]
        assert m["splits"][split]["documents"] == sum(s["documents"] for s in shards) == src["documents"][split]
        for s in shards:
            assert (news_store / s["file"]).stat().st_size == 2 * s["tokens"]
    assert load_tokenizer(news_store / "tokenizer").get_vocab() == tokenizer.get_vocab()


def test_token_dtype_follows_the_vocabulary_size(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    assert token_dtype(65535) == np.uint16 and token_dtype(65536) == np.uint32
    vocab = {t: i for i,
             t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(70000)])}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    big = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    big.save_pretrained(str(tmp_path / "tok"))
    text = write_corpus(tmp_path / "big.txt", ["w69999 w5 w70000", "w0 w65536"])
    prepare(PrepareConfig(data=DataConfig(data=[str(text)], validation_fraction=0.0)), str(tmp_path / "tok"),
            tmp_path / "store", progress=False)
    ts = TokenStore(tmp_path / "store")
    assert ts.dtype == np.uint32
    assert ts.read("train", 0, ts.tokens()).tolist() == [70004, 10, 1, 3, 5, 65541, 3]


def test_an_interrupted_prepare_resumes_where_it_stopped(corpus_file, tokenizer_dir, tmp_path):
    prepare(prep_cfg(corpus_file), str(tokenizer_dir), tmp_path / "straight", progress=False)
    partial = prepare(prep_cfg(corpus_file), str(tokenizer_dir), tmp_path / "resumed", progress=False,
                      stop_after_chunks=2)
    assert partial["complete"] is False and partial["sources"][0]["chunks"] == 2
    with pytest.raises(StoreError, match="did not finish; run the same `workbench prepare` again"):
        TokenStore(tmp_path / "resumed")
    first = tmp_path / "resumed" / partial["splits"]["train"]["shards"][0]["file"]
    written = first.stat().st_mtime_ns
    prepare(prep_cfg(corpus_file), str(tokenizer_dir), tmp_path / "resumed", progress=False)
    assert first.stat().st_mtime_ns == written  # done chunks are not tokenized again
    a, b = TokenStore(tmp_path / "straight"), TokenStore(tmp_path / "resumed")
    for split in ("train", "validation"):
        assert a.manifest["splits"][split]["shards"] == b.manifest["splits"][split]["shards"]
        assert np.array_equal(a.read(split, 0, a.tokens(split)), b.read(split, 0, b.tokens(split)))


def test_a_store_refuses_a_second_tokenizer_and_changed_sources(news_store, corpus_file, news_docs, tmp_path):
    from workbench.config import TokenizerConfig
    from workbench.tokenizer import train_tokenizer

    other = tmp_path / "other-tok"
    train_tokenizer(news_docs[:40], TokenizerConfig(vocab_size=500)).save_pretrained(str(other))
    before = (news_store / "manifest.json").read_text()
    with pytest.raises(StoreError, match="prepared with another tokenizer"):
        prepare(prep_cfg(corpus_file), str(other), news_store, progress=False)
    cfg = from_dict(PretrainConfig, {"data": {"data": [str(news_store)]}, "tokenizer": {"tokenizer_from": str(other)}})
    with pytest.raises(StoreError, match="holds the ids of another tokenizer"):
        pretrain(cfg, tmp_path / "run", progress=False)
    changed = write_corpus(tmp_path / "news.txt", news_docs[:10])
    with pytest.raises(StoreError, match="give those sources first"):
        prepare(prep_cfg(changed), "new", news_store, progress=False)
    assert (news_store / "manifest.json").read_text() == before


def test_prepare_appends_new_sources_with_the_same_tokenizer(corpus_file, tokenizer_dir, tmp_path):
    extra = write_corpus(tmp_path / "extra.txt", ["a brand new document about tokens .", "and a second one ."])
    prepare(prep_cfg(corpus_file), str(tokenizer_dir), tmp_path / "s", progress=False)
    n = TokenStore(tmp_path / "s").tokens()
    m = prepare(prep_cfg(corpus_file, extra), "new", tmp_path / "s", progress=False)  # 'new' keeps the store's own
    assert [s["unit"] for s in m["sources"]] == [str(corpus_file.resolve()), str(extra.resolve())]
    assert TokenStore(tmp_path / "s").tokens() > n


def test_prepare_cli_and_its_errors(corpus_file, tokenizer_dir, tmp_path):
    from workbench.cli import main

    out = tmp_path / "cli-store"
    assert main(["prepare", "--data", str(corpus_file), "--tokenizer", str(tokenizer_dir), "--out", str(out),
                 "--no-progress", "--shard-mb", "0.2"]) == 0
    assert is_store(out)
    assert main(["prepare", "--data", str(tmp_path / "missing.txt"), "--tokenizer", "new", "--out",
                 str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()  # refused before any directory is made
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    assert main(["prepare", "--data", str(blank), "--tokenizer", "new", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()  # no text: refused before the folder (and a tokenizer trained on nothing)


# ---- the training order and batches --------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000, 4097])
def test_permute_is_a_bijection(n):
    out = permute(np.arange(n), n, key=12345)
    assert sorted(out.tolist()) == list(range(n))
    assert np.array_equal(permute(np.arange(n), n, key=12345), out)
    if n > 7:
        assert not np.array_equal(out, permute(np.arange(n), n, key=54321))


def store_task(news_store, tokenizer, batch_size=8, seq_len=64, rank=None, world=None, masking=None):
    cfg = from_dict(PretrainConfig,
                    {"train": {"batch_size": batch_size, "seq_len": seq_len, "eval_batches": 1, "seed": 3}})
    masker = Masker.from_tokenizer(tokenizer, masking or MaskingConfig())
    return StoreTask(TokenStore(news_store), masker, cfg.train,
                     lambda t, v: MLMTask(t, v, masker, batch_size, seed=3, eval_batches=1, probes=[]),
                     rank=rank, world=world)


def test_batches_are_a_pure_function_of_seed_and_step(news_store, tokenizer):
    a, b = store_task(news_store, tokenizer), store_task(news_store, tokenizer)
    for step in (0, 5, a.steps_per_epoch() + 1):
        x, y = a.batch(step), b.batch(step)
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(a.batch(0)["input_ids"], a.batch(1)["input_ids"])
    # one epoch visits every block at most once
    seen = np.concatenate([a.block_ids(s) for s in range(a.steps_per_epoch())])
    assert len(set(seen.tolist())) == len(seen) == a.steps_per_epoch() * 8


def test_a_store_batch_is_the_packed_blocks_masked_as_mlm_task_masks_them(news_store, news_docs, tokenizer):
    task = store_task(news_store, tokenizer)
    blocks = pack(tokenizer(store_documents(news_docs)["train"], add_special_tokens=False)["input_ids"], 64,
                  tokenizer.cls_token_id, tokenizer.sep_token_id)
    for step in (0, 7):
        ids = blocks[torch.from_numpy(task.block_ids(step))]
        corrupted, labels = task.masker(ids, generator_for(3, step))
        got = task.batch(step)
        assert torch.equal(got["input_ids"], corrupted) and torch.equal(got["labels"], labels)


def tiny_store_config(news_store, **train) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "data": {"data": [str(news_store)]},
        "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2},
        "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "log_every": 1, "eval_every": 4, "eval_batches": 1,
                  "save_every": 4, "precision": "fp32", **train}})


@pytest.mark.slow
def test_pretrain_from_a_store_trains_and_resumes_exactly(news_store, tmp_path):
    cfg = tiny_store_config(news_store, max_steps=8)
    summary = pretrain(cfg, tmp_path / "straight", progress=False)
    assert summary["steps"] == 8 and summary["tokens"] == 8 * 8 * 64 and "val_loss" in summary
    saved = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert saved["tokenizer"]["tokenizer_from"] == str(news_store / "tokenizer")
    again = evaluate_mlm(tmp_path / "straight", cfg, batches=1)  # the store's validation blocks, same fixed masks
    assert again["val_loss"] == pytest.approx(summary["val_loss"], abs=1e-3)
    with pytest.raises(Killed):
        pretrain(cfg, tmp_path / "resumed", progress=False, callbacks=(kill_at(5),))
    pretrain(cfg, tmp_path / "resumed", progress=False, resume=True)
    a, b = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5), step


@pytest.mark.slow
def test_streaming_tokenizes_into_the_run_and_trains_from_there(corpus_file, tokenizer_dir, tmp_path):
    cfg = from_dict(PretrainConfig, {
        "data": {"data": [str(corpus_file)], "streaming": True, "validation_fraction": 0.1},
        "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
        "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2},
        "train": {"batch_size": 8, "seq_len": 64, "max_steps": 2, "eval_batches": 1, "precision": "fp32"}})
    summary = pretrain(cfg, tmp_path / "run", progress=False)
    assert summary["steps"] == 2
    assert TokenStore(tmp_path / "run" / "store").tokens() > 0
    with pytest.raises(ValueError, match="streaming needs --data"):
        pretrain(from_dict(PretrainConfig, {"data": {"streaming": True}}), tmp_path / "none", progress=False)


# ---- several processes -----------------------------------------------------------------------------

def _rank_reads(rank: int, world: int, rdv: str, news_store: str, tok_dir: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{rdv}", rank=rank, world_size=world)
    task = store_task(Path(news_store), load_tokenizer(tok_dir))  # rank and world from torch.distributed
    reads, rows = {}, {}
    for step in range(6):
        r = task.process_rows()
        reads[step] = task.block_ids(step)[r].tolist()
        rows[step] = task.batch(step)["input_ids"][r].tolist()
    Path(out).write_text(json.dumps({"rank": task.rank, "world": task.world, "reads": reads, "rows": rows}))
    torch.distributed.destroy_process_group()


@pytest.mark.slow  # spawns Python processes that import torch
def test_two_processes_read_disjoint_blocks_whose_union_is_the_one_process_batch(news_store, tokenizer_dir,
                                                                                 tokenizer, tmp_path):
    import torch.multiprocessing as mp

    outs = [str(tmp_path / f"rank{r}.json") for r in range(2)]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_rank_reads,
                         args=(r, 2, str(tmp_path / "rdv"), str(news_store), str(tokenizer_dir), outs[r]))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(900)
        assert p.exitcode == 0
    got = [json.loads(Path(o).read_text()) for o in outs]
    assert [(g["rank"], g["world"]) for g in got] == [(0, 2), (1, 2)]
    one = store_task(news_store, tokenizer)
    for step in range(6):
        a, b = got[0]["reads"][str(step)], got[1]["reads"][str(step)]
        assert len(a) == len(b) == 4 and not set(a) & set(b)
        assert a + b == one.block_ids(step).tolist()
        assert got[0]["rows"][str(step)] + got[1]["rows"][str(step)] == one.batch(step)["input_ids"].tolist()


def accelerate_pretrain(args: list[str], processes: int, env=None) -> subprocess.CompletedProcess:
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no"] if processes > 1 else [sys.executable]
    return subprocess.run([*launch, "-m", "workbench.cli", "pretrain", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)


STORE_ARGS = ["--preset", "tiny", "--layers", "1", "--hidden", "64", "--heads", "2", "--batch-size", "8", "--seq-len",
              "64",
              "--precision", "fp32", "--log-every", "1", "--eval-every", "4", "--eval-batches", "1", "--dropout", "0"]


@pytest.mark.slow
def test_two_processes_from_a_store_match_one_with_the_same_global_batch(news_store, tmp_path):
    common = [*STORE_ARGS, "--data", str(news_store), "--max-steps", "4", "--save-every", "0"]
    one = accelerate_pretrain([*common, "--out", str(tmp_path / "one")], 1)
    assert one.returncode == 0, one.stderr[-2000:]
    two = accelerate_pretrain([*common, "--out", str(tmp_path / "two")], 2)
    assert two.returncode == 0, two.stderr[-2000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    a, b = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=2e-4)


KILLER = """
import os, sys
from workbench import cli, training

original = training.save_checkpoint
def save_then_die(run_dir, model, optimizer, state, accelerator, keep):
    path = original(run_dir, model, optimizer, state, accelerator, keep)
    if state.step == 4:
        os._exit(9)  # killed right after the step-4 checkpoint, on every process
    return path
training.save_checkpoint = save_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three 2-process launches; on a loaded 2-core machine the resume alone passed 900 s
def test_a_killed_two_process_run_resumes_exactly(news_store, tmp_path):
    common = [*STORE_ARGS, "--data", str(news_store), "--max-steps", "8", "--save-every", "4"]
    straight = accelerate_pretrain([*common, "--out", str(tmp_path / "straight")], 2)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    killed = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", str(killer), "pretrain", *common,
                             "--out", str(tmp_path / "resumed")], capture_output=True, text=True, cwd=ROOT)
    assert killed.returncode != 0
    assert runs.latest_checkpoint(tmp_path / "resumed").name == "step-00000004"
    assert not (tmp_path / "resumed" / "summary.json").exists()
    resumed = accelerate_pretrain([*common, "--out", str(tmp_path / "resumed"), "--resume"], 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = train_losses(tmp_path / "straight"), train_losses(tmp_path / "resumed")
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5), step


@pytest.mark.slow  # spawns Python processes that import torch
def test_gpu_check_stops_at_once_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: `make gpu-check` runs the whole check")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    assert "gpu-check: no CUDA device" in out.stderr and "CUDA build" in out.stderr
