"""Predictions through training (workbench.watch): per-probe records at every evaluation equal a direct
computation on the same checkpoint, and weights-only snapshots are kept at log-spaced steps and load."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForMaskedLM

from workbench import loading, runs, watch
from workbench.config import PretrainConfig, from_dict
from workbench.pretrain import pretrain
from workbench.probes import Probe, ProbeResult, ProbeScores, answer_ids, load_probes
from workbench.tokenizer import load_tokenizer

# ---- fast: the step rule, the recorder's file format and its resume rule -----------------------


def test_snapshot_steps_double_from_the_first_and_end_with_the_last():
    assert watch.snapshot_steps(25, 4336) == [25, 50, 100, 200, 400, 800, 1600, 3200, 4336]
    assert watch.snapshot_steps(2, 8) == [2, 4, 8]
    assert watch.snapshot_steps(2, 7) == [2, 4, 7]
    assert watch.snapshot_steps(25, 10) == [10]
    assert watch.snapshot_steps(0, 100) == []
    assert [s for s in range(1, 801) if watch.is_snapshot_step(s, 25)] == [25, 50, 100, 200, 400, 800]
    assert not any(watch.is_snapshot_step(s, 0) for s in range(1, 50))


def _scores(p: float) -> ProbeScores:
    return ProbeScores([ProbeResult("a [MASK] .", ["cat"], p, 3, "the", index=4, answer="cat", p_best=p,
                                    top1_p=0.5)], unanswerable=1)


def test_recorder_writes_one_line_per_evaluation_and_a_resume_rewrites_the_later_ones(tmp_path):
    rec = watch.ProbeRecorder(tmp_path)
    rec("train", {"kind": "train", "step": 1, "tokens": 10, "time": 0.5})
    rec("eval", {"kind": "eval", "step": 1, "tokens": 10, "time": 0.5})  # nothing handed over: no line
    for step in (2, 4, 6):
        rec.take(_scores(step / 10))
        rec("eval", {"kind": "eval", "step": step, "tokens": step * 10, "time": step / 2})
    got = watch.read_probe_records(tmp_path)
    assert [r["step"] for r in got] == [2, 4, 6]
    assert got[1] == {"step": 4, "tokens": 40, "time": 2.0, "cloze_top1": 0.0, "cloze_top5": 1.0, "cloze_probes": 1,
                      "unanswerable": 1,
                      "probes": [{"id": 4, "text": "a [MASK] .", "answers": ["cat"], "answer": "cat", "p_answer": 0.4,
                                  "p_best": 0.4, "rank": 3, "top1": "the", "top1_p": 0.5}]}
    with open(tmp_path / watch.PROBE_RECORDS, "a") as f:
        f.write('{"step": 8, "probes": [')  # a kill in the middle of a line
    assert [r["step"] for r in watch.read_probe_records(tmp_path)] == [2, 4, 6]
    # resumed from the checkpoint of step 4: the first record is step 5's, so 6 and the broken line go
    again = watch.ProbeRecorder(tmp_path)
    again("train", {"kind": "train", "step": 5, "tokens": 50, "time": 2.5})
    again.take(_scores(0.9))
    again("eval", {"kind": "eval", "step": 6, "tokens": 60, "time": 3.0})
    got = watch.read_probe_records(tmp_path)
    assert [(r["step"], r["probes"][0]["p_answer"]) for r in got] == [(2, 0.2), (4, 0.4), (6, 0.9)]
    assert watch.read_probe_records(tmp_path / "nothing-here") == []


# ---- slow: a real run ----------------------------------------------------------------------------

def _run_config(tokenizer_dir, probe_file) -> PretrainConfig:
    return from_dict(PretrainConfig, {
        "data": {"max_documents": 120, "validation_fraction": 0.1},
        "tokenizer": {"tokenizer_from": str(tokenizer_dir)},
        "model": {"size": "tiny", "layers": 1, "hidden": 64, "heads": 2},
        "train": {"batch_size": 8, "seq_len": 64, "lr": 2e-3, "log_every": 1, "eval_every": 4, "eval_batches": 1,
                  "save_every": 4, "keep_checkpoints": 5, "max_steps": 8, "precision": "fp32"},
        "probes": str(probe_file), "snapshots": 3,
    })


def _direct(model, tokenizer, probe: Probe) -> dict:
    """P(answers), the best-ranked answer, its rank and probability, and the top-1, by hand."""
    ids = answer_ids(probe, tokenizer)
    enc = tokenizer(probe.text.replace("[MASK]", tokenizer.mask_token), return_tensors="pt")
    position = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero())
    with torch.no_grad():
        p = torch.softmax(model(**enc).logits[0, position].float(), -1)
    order = p.argsort(descending=True).tolist()
    best = min(ids, key=order.index)
    return {"p_answer": float(p[ids].sum()), "rank": order.index(best) + 1,
            "answer": tokenizer.convert_ids_to_tokens(best), "p_best": float(p[best]),
            "top1": tokenizer.convert_ids_to_tokens(order[0]), "top1_p": float(p[order[0]])}


@pytest.mark.slow
def test_probe_records_equal_a_direct_computation_and_snapshots_load(tmp_path, tokenizer_dir):
    probe_file = tmp_path / "probes.jsonl"
    rows = [{"text": "the [MASK] said on tuesday .", "answers": ["president", "government", "police"]},
            {"text": "he went [MASK] the house .", "answers": ["to", "into"]},
            {"text": "nothing [MASK] here .", "answers": ["qzxwvjk"]},
            {"text": "it was one of the [MASK] in the country .", "answers": ["largest", "first", "biggest"]}]
    probe_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    pretrain(_run_config(tokenizer_dir, probe_file), run, progress=False)

    records = watch.read_probe_records(run)
    assert [r["step"] for r in records] == [4, 8]
    evals = {r["step"]: r for r in runs.read_metrics(run) if r["kind"] == "eval"}
    tokenizer = load_tokenizer(run / runs.TOKENIZER)
    probes = load_probes(probe_file)  # --probes FILE is the set scored, not the shipped one
    for rec in records:
        assert (rec["tokens"], rec["time"], rec["cloze_top1"]) == (evals[rec["step"]]["tokens"],
                                                                  evals[rec["step"]]["time"],
                                                                  evals[rec["step"]]["cloze_top1"])
        assert [p["id"] for p in rec["probes"]] == [0, 1, 3] and rec["unanswerable"] == 1
        model = loading.load_model(AutoModelForMaskedLM, run / runs.CHECKPOINTS / f"step-{rec['step']:08d}").eval()
        for got in rec["probes"]:
            want = _direct(model, tokenizer, probes[got["id"]])
            assert got["text"] == rows[got["id"]]["text"]
            assert (got["rank"], got["answer"], got["top1"]) == (want["rank"], want["answer"], want["top1"])
            for key in ("p_answer", "p_best", "top1_p"):
                assert got[key] == pytest.approx(want[key], abs=1e-5), key

    # snapshots at 3 and 6 (3 * 2**k) and the last step, 8; float16 copies of the weights that load
    assert [s for s, _ in watch.snapshots(run)] == [3, 6, 8]
    snap, tok = runs.resolve_model_dir(watch.snapshot_dir(run, 8))
    assert tok == run / runs.TOKENIZER
    loaded = loading.load_model(AutoModelForMaskedLM, snap)
    final = loading.load_model(AutoModelForMaskedLM, run / runs.MODEL)
    for (name, a), b in zip(loaded.state_dict().items(), final.state_dict().values()):
        assert torch.equal(a, b.half().float()), name
    assert not (snap / "optimizer.pt").exists()
    size = sum(f.stat().st_size for f in snap.glob("*.safetensors"))
    full = sum(f.stat().st_size for f in (run / runs.MODEL).glob("*.safetensors"))
    assert size < 0.6 * full
