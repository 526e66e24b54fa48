"""The Similarity tab (shown when a contrastive SimCSE encoder is around): cosine similarity of two
sentences, and the nearest neighbours of a sentence among a sample of the corpus."""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any, Optional

import gradio as gr

from .. import inspection, loading, runs, simcse
from ..data import load_corpus
from ..embeddings import embed
from .core import ModelCache

SIMILARITY_EXAMPLES = [
    ["the stock market fell sharply on monday .", "shares dropped steeply at the start of the week ."],
    ["the stock market fell sharply on monday .", "the team won the championship after extra time ."],
    ["police arrested a man on friday .", "a man was arrested by police on friday ."],
]
NEIGHBOUR_EXAMPLE = "the central bank raised interest rates to fight inflation ."
NEIGHBOUR_SENTENCES = 3000  # corpus sample searched by the nearest-neighbours view (embedded once per encoder)
MAX_NEIGHBOURS = 50
NO_SIMILARITY_HELP = ("No contrastive (SimCSE) encoder yet. Train one with `workbench simcse runs/demo --out "
                      "runs/demo-simcse`, "
                      "then rescan or restart the app.")


class SimilarityHandlers:
    """Workbench handlers of the tab (mixed into app.shell.Workbench). The encoders and the
    embeddings of the neighbour corpus are cached, the latter once per encoder."""

    def _init_similarity(self, neighbour_corpus: Optional[list[str]] = None) -> None:
        self.encoders = ModelCache(_load_encoder)  # path -> (encoder, tokenizer, pooling)
        # The sentences searched for nearest neighbours (by default a sample of the default corpus's
        # validation split, read on first use) and their embeddings, computed once per encoder.
        self._neighbour_texts = list(neighbour_corpus) if neighbour_corpus is not None else None
        self._corpus_lock = threading.Lock()
        self.corpus_embeddings = ModelCache(self._embed_corpus, size=4)

    def similarity_runs(self) -> list[str]:
        """SimCSE runs under runs_dir (a retrieval.json or a SimCSE config, and a model or checkpoint), newest first."""
        return [p.name for p in runs.list_runs(self.runs_dir) if is_simcse_run(p) and inspection.architectures(p)]


    def similarity_choices(self) -> list[tuple[str, str]]:
        return self._choices(self.similarity_path, "encoder", self.similarity_runs())


    def resolve_similarity(self, choice: Optional[str]) -> str:
        """A similarity picker value -> a path: empty means the start encoder, else the newest SimCSE
        run; otherwise the same rules as the model picker (runs.inside)."""
        if not choice:
            choices = self.similarity_choices()
            if not choices:
                raise inspection.InspectionError(NO_SIMILARITY_HELP)
            choice = choices[0][1]
        return self.resolve_choice(choice, allowed_extra=self.similarity_path)

    def encoder(self, choice: Optional[str]) -> tuple[str, Any, Any, str]:
        path = self.resolve_similarity(choice)
        return (path, *self.encoders.get(path))

    def neighbour_corpus(self) -> list[str]:
        """The sentences searched by the nearest-neighbours view, read once."""
        with self._corpus_lock:
            if self._neighbour_texts is None:
                try:
                    corpus = load_corpus()
                    texts = corpus["validation"]["text"] if "validation" in corpus else []
                    self._neighbour_texts = simcse.corpus_sentences(texts, NEIGHBOUR_SENTENCES)
                except Exception as e:  # the corpus is data, not input: report it, keep serving
                    raise inspection.InspectionError(
                        f"cannot read the corpus to search ({loading.first_line(e)})") from None
            if not self._neighbour_texts:
                raise inspection.InspectionError("the corpus to search has no sentences")
            return self._neighbour_texts

    def _embed_corpus(self, path: str):
        """Unit-length embeddings of the neighbour corpus under the encoder at `path` (cached per path)."""
        model, tok, pooling = self.encoders.get(path)
        return _embed(path, model, tok, self.neighbour_corpus(), pooling)

    def warm_neighbours(self) -> None:
        """Embed the corpus sample under the default encoder now (launch runs this in a thread, so the
        first search does not wait for it); problems are left for the first request to report."""
        try:
            self.corpus_embeddings.get(self.resolve_similarity(""))
        except inspection.InspectionError:
            pass

    def similarity_api(self, text_a: str, text_b: str, model: str = "") -> dict:
        """{similarity (cosine, in [-1, 1]), model, pooling, notice}. Errors raise InspectionError."""
        for name, t in (("first", text_a), ("second", text_b)):
            if not (t or "").strip():
                raise inspection.InspectionError(f"the {name} sentence is empty: type two sentences to compare")
        path, m, tok, pooling = self.encoder(model)
        limit = _limit(m, tok)
        v = _embed(path, m, tok, [text_a, text_b], pooling)
        score = min(1.0, max(-1.0, float(v[0] @ v[1])))
        return {"similarity": score, "model": path, "pooling": pooling,
                "notice": _truncation_notice(tok, [text_a, text_b], limit)}

    def neighbours_api(self, text: str, k: int = 5, model: str = "") -> dict:
        """{query, model, corpus_size, neighbours: [{rank, index, text, score}] best first, notice}."""
        if not (text or "").strip():
            raise inspection.InspectionError("the sentence is empty: type a sentence to find its neighbours")
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise inspection.InspectionError(f"k must be a whole number, got {k!r}") from None
        if not 1 <= k <= MAX_NEIGHBOURS:
            raise inspection.InspectionError(f"k must lie in 1..{MAX_NEIGHBOURS}, got {k}")
        path, m, tok, pooling = self.encoder(model)
        texts, emb = self.neighbour_corpus(), self.corpus_embeddings.get(path)
        limit = _limit(m, tok)
        q = _embed(path, m, tok, [text], pooling)[0]
        top = (emb @ q).topk(min(k, len(texts)))
        rows = [{"rank": r + 1, "index": int(i), "text": texts[int(i)], "score": round(float(s), 4)}
                for r, (s, i) in enumerate(zip(top.values, top.indices))]
        return {"query": text, "model": path, "corpus_size": len(texts), "neighbours": rows,
                "notice": _truncation_notice(tok, [text], limit)}

    def similarity_view(self, text_a: str, text_b: str, model: str):
        """(score, gauge html, message) for the page."""
        try:
            r = self.similarity_api(text_a, text_b, model)
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return None, "", f"⚠️ {html.escape(str(e))}"
        msg = f"cosine similarity **{r['similarity']:.3f}** ({r['pooling']} pooling, `{html.escape(r['model'])}`)"
        return round(r["similarity"],
                     4), _gauge_html(r["similarity"]), msg + (f"\n\nℹ️ {r['notice']}" if r["notice"] else "")

    def neighbours_view(self, text: str, k: int, model: str):
        """(table rows, message) for the page."""
        try:
            r = self.neighbours_api(text, k, model)
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return [], f"⚠️ {html.escape(str(e))}"
        rows = [[n["rank"], n["score"], n["text"]] for n in r["neighbours"]]
        msg = f"{len(rows)} nearest of {r['corpus_size']:,} sentences from the default corpus's validation split"
        return rows, msg + (f"\n\nℹ️ {r['notice']}" if r["notice"] else "")


def simcse_config(run_dir: str | Path) -> Optional[dict]:
    """The config of a SimCSE run directory (config.json of kind simcse), else None."""
    cfg = runs.run_config(run_dir)
    return cfg if cfg and cfg.get("kind") == "simcse" else None


def is_simcse_run(run_dir: str | Path) -> bool:
    """What `simcse.train_simcse` leaves: its config (kind simcse) from the start, retrieval.json at the end."""
    return (Path(run_dir) / "retrieval.json").is_file() or simcse_config(run_dir) is not None


def _pooling_of(path: str | Path) -> str:
    """The pooling a SimCSE run was trained with (for a run, its model/ or a checkpoint); mean otherwise."""
    p = Path(path)
    for d in (p, p.parent, p.parent.parent):
        cfg = simcse_config(d)
        if cfg:
            return cfg["pooling"]
    return "mean"


def _load_encoder(path: str) -> tuple:
    """(encoder, tokenizer, pooling), failures as a readable InspectionError."""
    if not Path(path).exists():
        raise inspection.InspectionError(f"{path}: no such run or model directory")
    model, tok = simcse.load_encoder(path, error=inspection.InspectionError)
    model.eval()
    return model, tok, _pooling_of(path)


def _limit(model, tok) -> int:
    """Tokens embedded per sentence: 128 (embeddings.embed's default) or less if the model is shorter."""
    return min(128, inspection.max_tokens(model, tok))


def _embed(path: str, model, tok, texts: list[str], pooling: str):
    """embeddings.embed (unit vectors) at most _limit tokens a sentence; failures as InspectionError."""
    try:
        return embed(model, tok, texts, max_length=_limit(model, tok), pooling=pooling)
    except (RuntimeError, ValueError, IndexError) as e:
        raise inspection.InspectionError(f"{path}: cannot embed with this encoder ({loading.first_line(e)})") from None


def _truncation_notice(tok, texts: list[str], limit: int) -> Optional[str]:
    n = max(len(tok(t, verbose=False)["input_ids"]) for t in texts)
    return f"a sentence has {n} tokens; only the first {limit} were used" if n > limit else None


def _gauge_html(score: float) -> str:
    """A bar from -1 to 1 filled from 0 to the score: green when positive, red when negative."""
    pos = (score + 1) / 2 * 100
    left, width = (50, pos - 50) if score >= 0 else (pos, 50 - pos)
    colour = "#16a34a" if score >= 0 else "#dc2626"
    return (f'<div class="similarity-gauge" title="cosine similarity {score:.3f}" style="position:relative;height:22px;'
            f'background:#e5e7eb;border-radius:4px;overflow:hidden">'
            f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;top:0;bottom:0;'
            f'background:{colour}"></div>'
            '<div style="position:absolute;left:50%;top:0;bottom:0;width:1px;background:#111"></div></div>'
            '<div style="display:flex;justify-content:space-between;font-size:12px"><span>-1 opposite</span>'
            '<span>0 unrelated</span><span>1 same meaning</span></div>')


def similarity_api(wb):
    """The /similarity endpoint (a plain typed function for gr.api)."""
    def similarity(text_a: str, text_b: str, model: str = "") -> dict:
        """Cosine similarity of two sentences under a contrastive encoder: {similarity, model, pooling, notice}."""
        try:
            return wb.similarity_api(text_a, text_b, model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
    return similarity


def neighbours_api(wb):
    """The /neighbours endpoint (a plain typed function for gr.api)."""
    def neighbours(text: str, k: int = 5, model: str = "") -> dict:
        """The k sentences of the corpus sample closest to the text:
        {query, model, corpus_size, neighbours: [{rank, index, text, score}], notice}."""
        try:
            return wb.neighbours_api(text, k, model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
    return neighbours


def build_and_wire(wb, choices: list[tuple[str, str]], reload_btn) -> None:
    """The tab and its events, when there is an encoder to offer (the start one or SimCSE runs)."""
    if not choices:
        return
    with gr.Tab("Similarity", id="similarity"):
        model = gr.Dropdown(choices, value=choices[0][1], label="Contrastive encoder",
                            info=f"the start encoder or a SimCSE run under {wb.runs_dir}", allow_custom_value=True)
        gr.Markdown("**How close are two sentences?** Cosine similarity of their mean-pooled embeddings.")
        with gr.Row():
            sim_a = gr.Textbox(label="Sentence A", value=SIMILARITY_EXAMPLES[0][0], elem_id="similarity-a")
            sim_b = gr.Textbox(label="Sentence B", value=SIMILARITY_EXAMPLES[0][1], elem_id="similarity-b")
        sim_btn = gr.Button("Compare", variant="primary")
        gr.Examples(SIMILARITY_EXAMPLES, inputs=[sim_a, sim_b], label="Examples")
        with gr.Row():
            score = gr.Number(label="cosine similarity", precision=4, interactive=False, scale=1,
                              elem_id="similarity-score")
            gauge = gr.HTML(elem_id="similarity-gauge")
        sim_msg = gr.Markdown()
        gr.Markdown("**Nearest neighbours** among a sample of the default corpus's validation sentences "
                    "(embedded once per encoder, on the first search).")
        with gr.Row():
            nb_text = gr.Textbox(label="Sentence", value=NEIGHBOUR_EXAMPLE, scale=4, elem_id="neighbours-text")
            nb_k = gr.Slider(1, 20, value=5, step=1, label="k")
        nb_btn = gr.Button("Find neighbours", variant="primary")
        nb_msg = gr.Markdown()
        nb_table = gr.Dataframe(headers=["rank", "score", "sentence"], label="Nearest sentences", interactive=False,
                                wrap=True, elem_id="neighbours-table")
    sim_inputs, sim_outputs = [sim_a, sim_b, model], [score, gauge, sim_msg]
    sim_btn.click(wb.similarity_view, sim_inputs, sim_outputs, api_name="similarity_view")
    for box in (sim_a, sim_b):
        box.submit(wb.similarity_view, sim_inputs, sim_outputs, api_visibility="private")
    nb_inputs = [nb_text, nb_k, model]
    nb_btn.click(wb.neighbours_view, nb_inputs, [nb_table, nb_msg], api_name="neighbours_view")
    nb_text.submit(wb.neighbours_view, nb_inputs, [nb_table, nb_msg], api_visibility="private")
    reload_btn.click(lambda c: gr.update(choices=wb.similarity_choices(), value=c), [model], [model],
                     api_visibility="private")
