"""Token surprisal (pseudo-log-likelihood): the batched computation equals a hand loop over masked
copies, and the app's /surprisal endpoint returns it for one or two models."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from conftest import free_port, tiny_bert_dir, tiny_modernbert_dir

from workbench import inspection
from workbench.surprisal import masked_copies, token_surprisal

TEXT = "the president said on tuesday that he would sign the bill ."


def hand_loop(model, tok, text: str) -> list[float]:
    """log P(token_i | the rest) by masking one position of one copy at a time, batch size 1."""
    ids = tok(text, return_tensors="pt")["input_ids"][0]
    out = []
    for i, t in enumerate(ids.tolist()):
        if t in tok.all_special_ids:
            continue
        copy = ids.clone()
        copy[i] = tok.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=copy.unsqueeze(0)).logits[0, i]
        out.append(float(logits.float().log_softmax(-1)[t]))
    return out


def test_masked_copies_mask_one_position_each():
    ids = torch.tensor([2, 10, 11, 12, 3])
    got = masked_copies(ids, [1, 2, 3], mask_id=4)
    assert got.tolist() == [[2, 4, 11, 12, 3], [2, 10, 4, 12, 3], [2, 10, 11, 4, 3]]
    assert ids.tolist() == [2, 10, 11, 12, 3]  # the input is not modified


@pytest.mark.parametrize("model_dir", [tiny_bert_dir, tiny_modernbert_dir], ids=["bert", "modernbert"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_surprisal_equals_a_hand_loop_over_masked_copies(model_dir, batch_size):
    model, tok = inspection.load_mlm(model_dir())
    s = token_surprisal(model, tok, TEXT, batch_size=batch_size)
    expected = hand_loop(model, tok, TEXT)
    words = tok.convert_ids_to_tokens(tok(TEXT)["input_ids"])[1:-1]  # without [CLS] and [SEP]
    assert s.tokens == words and s.positions == list(range(1, len(words) + 1))
    assert s.logprobs == pytest.approx(expected, abs=1e-5)
    assert s.surprisal_bits == pytest.approx([-lp / math.log(2) for lp in expected], abs=1e-5)
    assert s.pll == pytest.approx(sum(expected), abs=1e-4)
    assert s.pseudo_perplexity == pytest.approx(math.exp(-sum(expected) / len(expected)), rel=1e-5)
    assert len(s.top_tokens) == len(words) and s.notice is None


def test_nothing_to_score_is_a_message():
    model, tok = inspection.load_mlm(tiny_bert_dir())
    with pytest.raises(inspection.InspectionError, match="empty"):
        token_surprisal(model, tok, "   ")


# ---- the /surprisal endpoint -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from gradio_client import Client

    from workbench import app as app_module

    runs_dir = tmp_path_factory.mktemp("surprisal") / "runs"
    shutil.copytree(tiny_modernbert_dir(), runs_dir / "modern" / "model")
    demo = app_module.build_app(model=str(tiny_bert_dir()), runs_dir=runs_dir, live_every=30)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(f"http://127.0.0.1:{port}", verbose=False), runs_dir
    finally:
        demo.close()


@pytest.mark.slow
def test_surprisal_endpoint_two_models(client):
    c, runs_dir = client
    got = c.predict(TEXT, "", "modern", api_name="/surprisal")["models"]
    assert [m["model"] for m in got] == [str(tiny_bert_dir()), str((runs_dir / "modern").resolve())]
    for m, model_dir in zip(got, (tiny_bert_dir, tiny_modernbert_dir)):
        model, tok = inspection.load_mlm(model_dir())
        assert m["logprobs"] == pytest.approx(hand_loop(model, tok, TEXT), abs=1e-5)
    html_text, plot, msg = c.predict(TEXT, "", "modern", api_name="/surprisal_view")
    assert html_text.count('class="surprisal-sentence"') == 2 and "pseudo-perplexity" in msg


@pytest.mark.slow
def test_surprisal_endpoint_refuses_bad_input(client, tmp_path):
    c, _ = client
    with pytest.raises(Exception, match="at most 128"):
        c.predict("word " * 300, "", "", api_name="/surprisal")
    shutil.copytree(tiny_bert_dir(), tmp_path / "elsewhere")
    with pytest.raises(Exception, match="refused"):
        c.predict(TEXT, str(tmp_path / "elsewhere"), "", api_name="/surprisal")
    _, plot, msg = c.predict("", "", "", api_name="/surprisal_view")
    assert plot is None and "empty" in msg
