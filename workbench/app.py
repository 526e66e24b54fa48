"""The Gradio app: fill-mask, attention, the masking playground, training curves, (when a
fine-tuned classifier is around) classification and (when a contrastive SimCSE encoder is around)
sentence similarity and nearest neighbours, for the models under a runs directory.

`build_app` only builds the Blocks (tests and notebooks launch it themselves); `launch` is what
`workbench app` calls. Design choices:
- The model picker lists runs under `runs_dir` plus the model given at start; any other path typed
  into it (or sent through the API) is refused, so a page visitor cannot make the server read
  arbitrary directories.
- Models are loaded once per checkpoint and kept (a small LRU), never per request; so are the
  embeddings of the nearest-neighbour corpus sample (once per encoder).
- Every handler turns bad input (no mask, empty or too long text, unloadable checkpoint) into a
  readable message in the page and a toast; the server keeps serving.
- The raw results are also exposed as API endpoints (/fill_mask, /attention, /training_plot,
  /similarity, /neighbours, ...) for gradio_client and scripts.
"""

from __future__ import annotations

import html
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr

from . import inspection, objectives, plots, runs
from .config import ConfigError, MaskingConfig
from .masking import html_masking

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default-model"
NO_MODEL_HELP = ("No model to show yet. Train one with `workbench pretrain --preset mini --time-budget 2m --out runs/demo` "
                 "(or `make demo`), then pick it above or restart with `workbench app --model runs/demo`.")
EXAMPLES = [
    "the {mask} of the united states",
    "the stock market {mask} sharply on monday .",
    "the company said its {mask} rose by 10 percent in the third {mask} .",
    "police said the {mask} was arrested on friday .",
]
MASKING_EXAMPLE = "the central bank raised interest rates on thursday to fight rising inflation across the country ."
ATTENTION_EXAMPLE = "the cat sat on the mat because it was tired ."
METRICS_Y = ["loss", "val_loss", "loss+val_loss", "val_perplexity", "val_accuracy"]
AVERAGE = "average"
ALL_TOKENS = "all tokens"
SIMILARITY_EXAMPLES = [
    ["the stock market fell sharply on monday .", "shares dropped steeply at the start of the week ."],
    ["the stock market fell sharply on monday .", "the team won the championship after extra time ."],
    ["police arrested a man on friday .", "a man was arrested by police on friday ."],
]
NEIGHBOUR_EXAMPLE = "the central bank raised interest rates to fight inflation ."
NEIGHBOUR_SENTENCES = 3000  # corpus sample searched by the nearest-neighbours view (embedded once per encoder)
MAX_NEIGHBOURS = 50
NO_SIMILARITY_HELP = ("No contrastive (SimCSE) encoder yet. Train one with `workbench simcse runs/demo --out runs/demo-simcse`, "
                      "then rescan or restart the app.")


class ModelCache:
    """Loaded (model, tokenizer) pairs by path, least recently used dropped beyond `size`. One lock
    per path, so two first requests for the same checkpoint load it once."""

    def __init__(self, loader: Callable[[str], tuple], size: int = 2):
        self.loader, self.size = loader, size
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._path_locks: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a checkpoint was read from disk (tests check the caching)

    def get(self, path: str) -> tuple:
        with self._lock:
            if path in self._items:
                self._items.move_to_end(path)
                return self._items[path]
            lock = self._path_locks.setdefault(path, threading.Lock())
        with lock:
            with self._lock:
                if path in self._items:
                    return self._items[path]
            item = self.loader(path)
            with self._lock:
                self.loads += 1
                self._items[path] = item
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return item


class Workbench:
    """What the app's handlers share: the runs directory, the start model, the model caches and
    recent attention results. Handlers return page updates; `*_api` methods return plain data."""

    def __init__(self, model: Optional[str | Path] = None, runs_dir: str | Path = "runs",
                 classifier: Optional[str | Path] = None, similarity: Optional[str | Path] = None,
                 neighbour_corpus: Optional[list[str]] = None):
        self.runs_dir = Path(runs_dir)
        self.model_path = self._pick_default(model)
        self.classifier_path = str(classifier) if classifier else None
        self.similarity_path = str(similarity) if similarity else None
        self.mlms = ModelCache(lambda p: inspection.load_mlm(p, attention=True))
        self.classifiers = ModelCache(inspection.load_classifier)
        self.encoders = ModelCache(_load_encoder)  # path -> (encoder, tokenizer, pooling)
        # The sentences searched for nearest neighbours (by default a sample of the default corpus's
        # validation split, read on first use) and their embeddings, computed once per encoder.
        self._neighbour_texts = list(neighbour_corpus) if neighbour_corpus is not None else None
        self._corpus_lock = threading.Lock()
        self.corpus_embeddings = ModelCache(self._embed_corpus, size=4)
        self._attention: OrderedDict[tuple[str, str], inspection.AttentionResult] = OrderedDict()
        self._att_lock = threading.Lock()

    # -- models ----------------------------------------------------------------------------------
    def _pick_default(self, model: Optional[str | Path]) -> Optional[str]:
        """The model given; else assets/default-model; else the newest masked-LM run; else None."""
        if model:
            return str(model)
        if DEFAULT_MODEL.exists():
            return str(DEFAULT_MODEL)
        found = self.mlm_runs()
        return str(self.runs_dir / found[0]) if found else None

    def _runs(self, kinds: tuple[str, ...]) -> list[str]:
        out = []
        for p in runs.list_runs(self.runs_dir):
            arch = inspection.architectures(p)
            if any(a.endswith(kinds) for a in arch):
                out.append(p.name)
        return out

    def mlm_runs(self) -> list[str]:
        """Runs under runs_dir holding a masked-LM model or checkpoint, newest first."""
        return self._runs(("ForMaskedLM", "ForPreTraining"))

    def classifier_runs(self) -> list[str]:
        return self._runs(("ForSequenceClassification",))

    def similarity_runs(self) -> list[str]:
        """SimCSE runs under runs_dir (a retrieval.json or a SimCSE config, and a model or checkpoint), newest first."""
        return [p.name for p in runs.list_runs(self.runs_dir) if is_simcse_run(p) and inspection.architectures(p)]

    def _choices(self, start: Optional[str], what: str, run_names: list[str]) -> list[tuple[str, str]]:
        """Picker entries: the start model first, then the runs (the start model's own run not twice)."""
        choices = [(f"{start} (start {what})", start)] if start else []
        for name in run_names:
            if not start or (self.runs_dir / name).resolve() != Path(start).resolve():
                choices.append((f"runs: {name}", name))
        return choices

    def similarity_choices(self) -> list[tuple[str, str]]:
        return self._choices(self.similarity_path, "encoder", self.similarity_runs())

    def metric_runs(self) -> list[str]:
        return [p.name for p in runs.list_runs(self.runs_dir) if (p / runs.METRICS).exists()]

    def model_choices(self) -> list[tuple[str, str]]:
        return self._choices(self.model_path, "model", self.mlm_runs())

    def resolve_choice(self, choice: Optional[str], allowed_extra: Optional[str] = None) -> str:
        """A picker value -> a path to load: the start model, or a run inside runs_dir. Anything
        else is refused (runs.inside), so the page cannot open arbitrary directories."""
        if not choice:
            if not self.model_path:
                raise inspection.InspectionError(NO_MODEL_HELP)
            return self.model_path
        if choice in (self.model_path, allowed_extra):
            return str(choice)
        try:
            return str(runs.inside(self.runs_dir, choice))
        except runs.RunError:
            raise inspection.InspectionError(
                f"refused: {choice} is outside the runs directory {self.runs_dir}; the app only opens the start model "
                f"and runs under {self.runs_dir}") from None

    def mlm(self, choice: Optional[str]):
        return self.mlms.get(self.resolve_choice(choice))

    def describe(self, choice: Optional[str]) -> str:
        """One line about the chosen model, or the reason it cannot be used."""
        try:
            model, tok = self.mlm(choice)
        except inspection.InspectionError as e:
            return f"⚠️ {e}"
        c = model.config
        path = self.resolve_choice(choice)
        line = (f"**Model** `{path}`: {type(model).__name__}, {c.num_hidden_layers} layers, "
                f"{c.num_attention_heads} heads, hidden {c.hidden_size}, vocabulary {len(tok):,}, "
                f"mask token `{tok.mask_token}`, at most {inspection.max_tokens(model, tok)} tokens")
        summary = runs.summary_of(path) if path and Path(path).exists() else None
        if summary and summary.get("val_accuracy") is not None:
            line += (f"; pre-trained {summary.get('steps', 0):,} steps, validation masked-token accuracy "
                     f"{summary['val_accuracy']:.1%}")
        return line

    def mask_token(self, choice: Optional[str] = None) -> str:
        try:
            return self.mlm(choice)[1].mask_token
        except inspection.InspectionError:
            return "[MASK]"

    # -- fill-mask ---------------------------------------------------------------------------------
    def fill_mask_api(self, text: str, top_k: int = 5, model: str = "") -> dict:
        """Raw fill-mask result: {mask_token, tokens, predictions[mask][rank] = {token, token_id, score,
        sequence}, notice}. Errors reach the client as a readable gr.Error."""
        try:
            m, tok = self.mlm(model)
            text, note = inspection.normalise_mask(text or "", tok)
            r = inspection.fill_mask(m, tok, text, int(top_k))
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"mask_token": tok.mask_token, "tokens": r.tokens, "predictions": r.predictions,
                "notice": "; ".join(n for n in (note, r.notice) if n) or None}

    def fill_mask_view(self, text: str, top_k: int, model: str, warn: bool = True):
        """(bars, table rows, message) for the page."""
        try:
            m, tok = self.mlm(model)
            text, note = inspection.normalise_mask(text or "", tok)
            r = inspection.fill_mask(m, tok, text, int(top_k))
        except inspection.InspectionError as e:
            if warn:
                gr.Warning(str(e))
            return None, [], f"⚠️ {html.escape(str(e))}"
        rows = [[i + 1, rank + 1, c["token"], round(c["score"], 4)] for i, cands in enumerate(r.predictions)
                for rank, c in enumerate(cands)]
        notes = [n for n in (note, r.notice) if n]
        best = " · ".join(f"mask {i + 1}: **{html.escape(c[0]['token'])}** ({c[0]['score']:.1%})" for i, c in enumerate(r.predictions))
        msg = best + ("\n\nℹ️ " + "; ".join(notes) if notes else "")
        return plots.fill_mask_bars(r.predictions), rows, msg

    # -- attention -----------------------------------------------------------------------------------
    def attention_result(self, text: str, model: str) -> inspection.AttentionResult:
        path = self.resolve_choice(model)
        key = (path, text)
        with self._att_lock:
            if key in self._attention:
                self._attention.move_to_end(key)
                return self._attention[key]
        m, tok = self.mlms.get(path)
        result = inspection.attentions(m, tok, text)
        with self._att_lock:
            self._attention[key] = result
            while len(self._attention) > 16:
                self._attention.popitem(last=False)
        return result

    def attention_api(self, text: str, model: str = "") -> dict:
        """Raw attention: {tokens, shape [layers, heads, seq, seq], weights (nested lists), notice}."""
        try:
            r = self.attention_result(text or "", model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
        return {"tokens": r.tokens, "shape": list(r.weights.shape), "weights": r.weights.round(6).tolist(), "notice": r.notice}

    def attention_view(self, text: str, layer: int, head: str, token: Optional[str], model: str, warn: bool = True):
        """(heatmap, grid of heads, head view, selected-token bars, token picker update, message)."""
        try:
            r = self.attention_result(text or "", model)
        except inspection.InspectionError as e:
            if warn:
                gr.Warning(str(e))
            return None, None, None, None, gr.update(), f"⚠️ {html.escape(str(e))}"
        layer_i = min(max(int(layer or 1), 1), r.layers) - 1
        head_i = None if head in (None, "", AVERAGE) else min(int(head), r.heads) - 1
        choices = [ALL_TOKENS] + [f"{i}: {t}" for i, t in enumerate(r.tokens)]
        index = _token_index(token, len(r.tokens))  # None: all tokens in the head view
        bar_index = index if index is not None else (1 if len(r.tokens) > 2 else 0)
        toks = r.tokens
        figs = (plots.attention_heatmap(toks, r.weights, layer_i, head_i),
                plots.attention_grid(toks, r.weights, layer_i),
                plots.head_view(toks, r.weights, layer_i, head_i, selected=index),
                plots.token_attention(toks, r.weights, bar_index, layer_i, head_i))
        msg = f"{len(toks)} tokens, {r.layers} layers × {r.heads} heads" + (f"\n\nℹ️ {r.notice}" if r.notice else "")
        return (*figs, gr.update(choices=choices, value=choices[0] if index is None else choices[index + 1]), msg)

    # -- masking playground ------------------------------------------------------------------------
    def masking_view(self, text: str, rate: float, strategy: str, mask_fraction: float, random_fraction: float,
                     seed: float, model: str):
        """(corrupted input as chips, the model's reconstruction as chips, message)."""
        try:
            cfg = MaskingConfig(mlm_probability=float(rate), mask_fraction=float(mask_fraction),
                                random_fraction=float(random_fraction), mask_strategy=strategy, seed=int(seed or 0))
            m, tok = self.mlm(model)
            rec = inspection.reconstruct(m, tok, text or "", cfg)
        except (inspection.InspectionError, ConfigError) as e:
            gr.Warning(str(e))
            return "", "", f"⚠️ {html.escape(str(e))}"
        n = sum(r["predicted"] for r in rec.rows)
        kinds = {k: sum(r["corruption"] == k for r in rec.rows) for k in ("mask", "random", "keep")}
        msg = (f"{n} of {len(rec.rows)} tokens to predict ({kinds['mask']} masked, {kinds['random']} random, "
               f"{kinds['keep']} kept); the model got " + (f"**{rec.accuracy:.0%}** right" if rec.accuracy is not None else "nothing to predict")
               + (f"\n\nℹ️ {rec.notice}" if rec.notice else ""))
        return html_masking(rec.rows), _reconstruction_html(rec.rows), msg

    # -- training curves ------------------------------------------------------------------------------
    def training_plot(self, selected: Optional[list[str]], x: str = "step", y: str = "loss"):
        """(curves of the chosen runs, summary table, message). Run names are checked to lie inside
        runs_dir."""
        selected = [selected] if isinstance(selected, str) else list(selected or [])
        data, refused = {}, []
        for name in selected:
            try:
                data[name] = runs.read_metrics(runs.inside(self.runs_dir, name))
            except runs.RunError:
                refused.append(name)
        if x not in plots.X_LABELS or y not in METRICS_Y:
            raise gr.Error(f"x must be one of {list(plots.X_LABELS)} and y one of {METRICS_Y}")
        msg = ""
        if refused:
            msg = f"⚠️ refused (outside the runs directory {self.runs_dir}): {', '.join(map(html.escape, refused))}"
            gr.Warning(msg)
        elif not selected:
            msg = (f"No run chosen. Runs with metrics under `{self.runs_dir}`: "
                   f"{', '.join(self.metric_runs()) or 'none yet - start one with `workbench pretrain`'}")
        return plots.training_curves(data, x=x, y=y.split("+")), _summary_rows(data), msg

    # -- similarity (contrastive encoders) -----------------------------------------------------------
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
                from .data import load_corpus

                try:
                    corpus = load_corpus()
                    texts = corpus["validation"]["text"] if "validation" in corpus else []
                    self._neighbour_texts = objectives.corpus_sentences(texts, NEIGHBOUR_SENTENCES)
                except Exception as e:  # the corpus is data, not input: report it, keep serving
                    raise inspection.InspectionError(f"cannot read the corpus to search ({inspection._first_line(e)})") from None
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
        return {"similarity": score, "model": path, "pooling": pooling, "notice": _truncation_notice(tok, [text_a, text_b], limit)}

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
        return round(r["similarity"], 4), _gauge_html(r["similarity"]), msg + (f"\n\nℹ️ {r['notice']}" if r["notice"] else "")

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

    # -- classification ------------------------------------------------------------------------------
    def classify_view(self, text: str, model: str) -> tuple[dict, str]:
        try:
            m, tok = self.classifiers.get(self.resolve_choice(model, allowed_extra=self.classifier_path))
            return inspection.classify(m, tok, text or ""), ""
        except inspection.InspectionError as e:
            gr.Warning(str(e))
            return {}, f"⚠️ {html.escape(str(e))}"


def simcse_config(run_dir: str | Path) -> Optional[dict]:
    """The SimCSE config of a run directory (its config.json has temperature and pooling), else None."""
    try:
        cfg = json.loads((Path(run_dir) / runs.CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and "temperature" in cfg and cfg.get("pooling") in ("mean", "cls") else None


def is_simcse_run(run_dir: str | Path) -> bool:
    """What `objectives.train_simcse` leaves: retrieval.json at the end, its config from the start."""
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
    try:
        model, tok = objectives.load_encoder(path)
    except Exception as e:  # transformers raises many types for a bad directory
        raise inspection.InspectionError(f"{path}: cannot load an encoder ({inspection._first_line(e)})") from None
    model.eval()
    return model, tok, _pooling_of(path)


def _limit(model, tok) -> int:
    """Tokens embedded per sentence: 128 (objectives.embed's default) or less if the model is shorter."""
    return min(128, inspection.max_tokens(model, tok))


def _embed(path: str, model, tok, texts: list[str], pooling: str):
    """objectives.embed (unit vectors) at most _limit tokens a sentence; failures as InspectionError."""
    try:
        return objectives.embed(model, tok, texts, max_length=_limit(model, tok), pooling=pooling)
    except (RuntimeError, ValueError, IndexError) as e:
        raise inspection.InspectionError(f"{path}: cannot embed with this encoder ({inspection._first_line(e)})") from None


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
            f'<div style="position:absolute;left:{left:.2f}%;width:{width:.2f}%;top:0;bottom:0;background:{colour}"></div>'
            '<div style="position:absolute;left:50%;top:0;bottom:0;width:1px;background:#111"></div></div>'
            '<div style="display:flex;justify-content:space-between;font-size:12px"><span>-1 opposite</span>'
            '<span>0 unrelated</span><span>1 same meaning</span></div>')


def _token_index(token: Optional[str], n: int) -> Optional[int]:
    try:
        i = int(str(token).split(":", 1)[0])
    except (TypeError, ValueError):
        return None
    return i if 0 <= i < n else None


def _reconstruction_html(rows: list[dict]) -> str:
    """The sentence as the model rebuilds it: predicted positions green when right, red when wrong
    (hover shows the original)."""
    chips = []
    for r in rows:
        if r.get("predicted"):
            ok = r.get("correct")
            style = f"background:{'#bbf7d0' if ok else '#fecaca'};border:2px solid #111"
            label = r["prediction"] if ok else f"{r['prediction']} ≠ {r['original']}"
            title = f"original: {r['original']}, model: {r['prediction']}"
        else:
            style, label, title = "background:#f3f4f6;border:1px solid #ddd", r["original"], ""
        chips.append(f'<span class="recon-chip" title="{html.escape(title)}" style="display:inline-block;margin:2px;padding:2px 5px;'
                     f'border-radius:4px;font-family:monospace;{style}">{html.escape(label)}</span>')
    return ("<div>" + "".join(chips) + '</div><div style="font-size:12px;margin-top:4px">green: the model restored '
            "the original token &nbsp; red: it guessed wrong (guess ≠ original)</div>")


def _summary_rows(data: dict[str, list[dict]]) -> list[list]:
    out = []
    for name, recs in data.items():
        train = [r for r in recs if r.get("kind") == "train"]
        ev = [r for r in recs if r.get("kind") == "eval"]
        last_t, last_e = (train[-1] if train else {}), (ev[-1] if ev else {})
        out.append([name, max((r.get("step", 0) for r in recs), default=0), max((r.get("tokens", 0) for r in recs), default=0),
                    _round(last_t.get("loss")), _round(last_e.get("val_loss")), _round(last_e.get("val_perplexity")),
                    _round(last_e.get("val_accuracy"))])
    return out


def _round(v: Any) -> Any:
    return round(v, 4) if isinstance(v, float) else v


# ---- the page ---------------------------------------------------------------------------------------

def build_app(model: Optional[str | Path] = None, runs_dir: str | Path = "runs", classifier: Optional[str | Path] = None,
              live_every: float = 10.0, similarity: Optional[str | Path] = None) -> gr.Blocks:
    """The app's Blocks, not launched. `model`: the start model (a run, checkpoint or model dir; by
    default assets/default-model, else the newest run); `classifier`: a fine-tuned classifier for the
    Classify tab (otherwise classifier runs under runs_dir are offered, and the tab is hidden when
    there are none); `similarity`: a contrastive (SimCSE) encoder for the Similarity tab (otherwise
    SimCSE runs under runs_dir are offered, and the tab is hidden when there are none);
    `live_every`: seconds between live refreshes of the training curves."""
    wb = Workbench(model, runs_dir, classifier, similarity)
    sim_choices = wb.similarity_choices()
    mask = wb.mask_token()
    layers, heads = _shape_of(wb)
    with gr.Blocks(title="Pretraining Workbench") as demo:
        demo.workbench = wb  # tests and notebooks reach the handlers through it
        # Data endpoints first: later events default their api names to their function names, and
        # gradio renames a clashing endpoint (training_plot -> training_plot_5) instead of failing.
        gr.api(_typed_fill_mask(wb), api_name="fill_mask")
        gr.api(_typed_attention(wb), api_name="attention")
        gr.api(_typed_training_plot(wb), api_name="training_plot")
        if sim_choices:
            gr.api(_typed_similarity(wb), api_name="similarity")
            gr.api(_typed_neighbours(wb), api_name="neighbours")
        gr.Markdown("# Pretraining Workbench\nLook inside a BERT-style masked language model.")
        with gr.Row():
            picker = gr.Dropdown(choices=wb.model_choices(), value=wb.model_path, label="Model",
                                 info=f"the start model or a run under {wb.runs_dir}", allow_custom_value=True, scale=4)
            reload_btn = gr.Button("↻ rescan runs", scale=1)
        model_info = gr.Markdown(wb.describe(None) if wb.model_path else f"⚠️ {NO_MODEL_HELP}")

        with gr.Tab("Fill-mask", id="fill"):
            fm_text = gr.Textbox(label="Text", placeholder=f"Type a sentence with {mask}, e.g. {EXAMPLES[0].format(mask=mask)}",
                                 value=EXAMPLES[0].format(mask=mask), elem_id="fill-text")
            with gr.Row():
                fm_k = gr.Slider(1, 20, value=5, step=1, label="top-k")
                fm_btn = gr.Button("Predict", variant="primary")
            examples = gr.Examples([[e.format(mask=mask)] for e in EXAMPLES], inputs=[fm_text], label="Examples")
            fm_msg = gr.Markdown(elem_id="fill-message")
            fm_plot = gr.Plot(label="Probabilities", elem_id="fill-plot")
            fm_table = gr.Dataframe(headers=["mask", "rank", "token", "probability"], label="Predictions",
                                    interactive=False, elem_id="fill-table")

        with gr.Tab("Attention", id="attention"):
            at_text = gr.Textbox(label="Sentence", value=ATTENTION_EXAMPLE, elem_id="attention-text")
            with gr.Row():
                at_layer = gr.Slider(1, max(layers, 2), value=1, step=1, label="Layer")  # a slider needs min < max; views clamp
                at_head = gr.Dropdown([AVERAGE] + [str(h) for h in range(1, heads + 1)], value=AVERAGE, label="Head")
                at_token = gr.Dropdown([ALL_TOKENS], value=ALL_TOKENS, label="Selected token (head view and bars)", allow_custom_value=True)
                at_btn = gr.Button("Show attention", variant="primary")
            at_msg = gr.Markdown()
            with gr.Row():
                at_heat = gr.Plot(label="Attention map", elem_id="attention-heatmap")
                at_view = gr.Plot(label="Head view", elem_id="attention-headview")
            at_bar = gr.Plot(label="Attention of the selected token")
            at_grid = gr.Plot(label="All heads of the layer")

        with gr.Tab("Masking playground", id="masking"):
            mk_text = gr.Textbox(label="Sentence", value=MASKING_EXAMPLE)
            with gr.Row():
                mk_rate = gr.Slider(0.05, 0.9, value=0.15, step=0.05, label="masking rate")
                mk_strategy = gr.Radio(["token", "whole_word", "span"], value="token", label="strategy")
                mk_seed = gr.Number(value=0, precision=0, label="seed")
            with gr.Row():
                mk_mask = gr.Slider(0, 1, value=0.8, step=0.05, label="share replaced by the mask token")
                mk_random = gr.Slider(0, 1, value=0.1, step=0.05, label="share replaced by a random token (the rest is kept)")
            mk_btn = gr.Button("Corrupt and reconstruct", variant="primary")
            mk_msg = gr.Markdown()
            gr.Markdown("**What the model sees**")
            mk_input = gr.HTML()
            gr.Markdown("**What the model puts back**")
            mk_recon = gr.HTML()

        with gr.Tab("Training", id="training"):
            metric_runs = wb.metric_runs()
            with gr.Row():
                tr_runs = gr.Dropdown(metric_runs, value=metric_runs[:1], multiselect=True, label=f"Runs under {wb.runs_dir}", scale=3)
                tr_x = gr.Radio(list(plots.X_LABELS), value="step", label="x axis")
                tr_y = gr.Dropdown(METRICS_Y, value="loss", label="metric")
            with gr.Row():
                tr_refresh = gr.Button("Refresh")
                tr_live = gr.Checkbox(value=True, label=f"live refresh every {live_every:g} s")
            tr_msg = gr.Markdown()
            tr_plot = gr.Plot(label="Curves", elem_id="training-plot")
            tr_table = gr.Dataframe(headers=["run", "step", "tokens", "train loss", "val loss", "val perplexity", "val accuracy"],
                                    label="Latest values", interactive=False)
            timer = gr.Timer(live_every, active=True)

        classifiers = ([(f"{classifier} (start classifier)", str(classifier))] if classifier else []) + \
                      [(f"runs: {n}", n) for n in wb.classifier_runs()]
        if classifiers:
            with gr.Tab("Classify", id="classify"):
                cl_model = gr.Dropdown(classifiers, value=classifiers[0][1], label="Classifier")
                cl_text = gr.Textbox(label="Text")
                cl_btn = gr.Button("Classify", variant="primary")
                cl_msg = gr.Markdown()
                cl_out = gr.Label(label="Label probabilities", num_top_classes=10)
            cl_btn.click(wb.classify_view, [cl_text, cl_model], [cl_out, cl_msg], api_name="classify")
            cl_text.submit(wb.classify_view, [cl_text, cl_model], [cl_out, cl_msg], api_visibility="private")

        if sim_choices:
            with gr.Tab("Similarity", id="similarity"):
                sim_model = gr.Dropdown(sim_choices, value=sim_choices[0][1], label="Contrastive encoder",
                                        info=f"the start encoder or a SimCSE run under {wb.runs_dir}", allow_custom_value=True)
                gr.Markdown("**How close are two sentences?** Cosine similarity of their mean-pooled embeddings.")
                with gr.Row():
                    sim_a = gr.Textbox(label="Sentence A", value=SIMILARITY_EXAMPLES[0][0], elem_id="similarity-a")
                    sim_b = gr.Textbox(label="Sentence B", value=SIMILARITY_EXAMPLES[0][1], elem_id="similarity-b")
                sim_btn = gr.Button("Compare", variant="primary")
                gr.Examples(SIMILARITY_EXAMPLES, inputs=[sim_a, sim_b], label="Examples")
                with gr.Row():
                    sim_score = gr.Number(label="cosine similarity", precision=4, interactive=False, scale=1,
                                          elem_id="similarity-score")
                    sim_gauge = gr.HTML(elem_id="similarity-gauge")
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
            sim_inputs, sim_outputs = [sim_a, sim_b, sim_model], [sim_score, sim_gauge, sim_msg]
            sim_btn.click(wb.similarity_view, sim_inputs, sim_outputs, api_name="similarity_view")
            for box in (sim_a, sim_b):
                box.submit(wb.similarity_view, sim_inputs, sim_outputs, api_visibility="private")
            nb_inputs = [nb_text, nb_k, sim_model]
            nb_btn.click(wb.neighbours_view, nb_inputs, [nb_table, nb_msg], api_name="neighbours_view")
            nb_text.submit(wb.neighbours_view, nb_inputs, [nb_table, nb_msg], api_visibility="private")
            reload_btn.click(lambda c: gr.update(choices=wb.similarity_choices(), value=c), [sim_model], [sim_model],
                             api_visibility="private")

        # -- events --------------------------------------------------------------------------------
        fm_inputs, fm_outputs = [fm_text, fm_k, picker], [fm_plot, fm_table, fm_msg]
        fm_btn.click(wb.fill_mask_view, fm_inputs, fm_outputs, api_name="fill_mask_view")
        fm_text.submit(wb.fill_mask_view, fm_inputs, fm_outputs, api_visibility="private")
        # As-you-type: only the latest pending keystroke runs; no toast while the sentence is unfinished.
        typing = dict(trigger_mode="always_last", show_progress="hidden", api_visibility="private")
        quiet = lambda t, k, m: wb.fill_mask_view(t, k, m, warn=False)  # noqa: E731
        fm_text.change(quiet, fm_inputs, fm_outputs, **typing)
        fm_k.release(quiet, fm_inputs, fm_outputs, **typing)

        at_inputs = [at_text, at_layer, at_head, at_token, picker]
        at_outputs = [at_heat, at_grid, at_view, at_bar, at_token, at_msg]
        at_btn.click(wb.attention_view, at_inputs, at_outputs, api_name="attention_view")
        at_text.submit(wb.attention_view, at_inputs, at_outputs, api_visibility="private")
        for control in (at_layer, at_head, at_token):  # .input: user changes only, not our own updates
            control.input(lambda *a: wb.attention_view(*a, warn=False), at_inputs, at_outputs, **typing)

        mk_inputs = [mk_text, mk_rate, mk_strategy, mk_mask, mk_random, mk_seed, picker]
        mk_btn.click(wb.masking_view, mk_inputs, [mk_input, mk_recon, mk_msg], api_name="masking")
        mk_text.submit(wb.masking_view, mk_inputs, [mk_input, mk_recon, mk_msg], api_visibility="private")

        tr_inputs, tr_outputs = [tr_runs, tr_x, tr_y], [tr_plot, tr_table, tr_msg]
        tr_refresh.click(lambda sel: gr.update(choices=wb.metric_runs(), value=sel), [tr_runs], [tr_runs],
                         api_visibility="private").then(wb.training_plot, tr_inputs, tr_outputs, api_visibility="private")
        for control in (tr_runs, tr_x, tr_y):
            control.change(wb.training_plot, tr_inputs, tr_outputs, api_visibility="private", trigger_mode="always_last")
        timer.tick(wb.training_plot, tr_inputs, tr_outputs, api_visibility="private", show_progress="hidden")
        tr_live.change(lambda on: gr.Timer(active=on), [tr_live], [timer], api_visibility="private")

        def on_model(choice):
            tok_mask = wb.mask_token(choice)
            lay, hd = _shape_of(wb, choice)
            return (wb.describe(choice),
                    gr.update(placeholder=f"Type a sentence with {tok_mask}, e.g. {EXAMPLES[0].format(mask=tok_mask)}"),
                    gr.update(maximum=max(lay, 2), value=1), gr.update(choices=[AVERAGE] + [str(h) for h in range(1, hd + 1)], value=AVERAGE))

        picker.change(on_model, [picker], [model_info, fm_text, at_layer, at_head], api_visibility="private")
        reload_btn.click(lambda c: gr.update(choices=wb.model_choices(), value=c), [picker], [picker], api_visibility="private")

        demo.load(wb.fill_mask_view, fm_inputs, fm_outputs, api_visibility="private")
        demo.load(wb.training_plot, tr_inputs, tr_outputs, api_visibility="private")
    return demo


# gr.api reads the signature and type hints of the function it exposes, so each endpoint is a plain
# typed function rather than a bound method with `self`.
def _typed_fill_mask(wb: Workbench):
    def fill_mask(text: str, top_k: int = 5, model: str = "") -> dict:
        """Top-k fillers for each mask token in the text."""
        return wb.fill_mask_api(text, top_k, model)
    return fill_mask


def _typed_attention(wb: Workbench):
    def attention(text: str, model: str = "") -> dict:
        """All attention weights of the text: shape [layers, heads, seq, seq]."""
        return wb.attention_api(text, model)
    return attention


def _typed_training_plot(wb: Workbench):
    def training_plot(run_names: list[str], x: str = "step", y: str = "loss") -> dict:
        """Curves of the named runs as data: {run: {"x": [...], "y": [...]}} plus the plotly figure JSON."""
        fig, _, msg = wb.training_plot(run_names, x, y)
        return {"series": {t.name: {"x": list(t.x), "y": list(t.y)} for t in fig.data}, "x": x, "y": y,
                "message": msg, "figure": fig.to_json()}
    return training_plot


def _typed_similarity(wb: Workbench):
    def similarity(text_a: str, text_b: str, model: str = "") -> dict:
        """Cosine similarity of two sentences under a contrastive encoder: {similarity, model, pooling, notice}."""
        try:
            return wb.similarity_api(text_a, text_b, model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
    return similarity


def _typed_neighbours(wb: Workbench):
    def neighbours(text: str, k: int = 5, model: str = "") -> dict:
        """The k sentences of the corpus sample closest to the text: {query, model, corpus_size, neighbours: [{rank, index, text, score}], notice}."""
        try:
            return wb.neighbours_api(text, k, model)
        except inspection.InspectionError as e:
            raise gr.Error(str(e)) from None
    return neighbours


def _shape_of(wb: Workbench, choice: Optional[str] = None) -> tuple[int, int]:
    """(layers, heads) of the chosen model, for the attention selectors; (1, 1) without a model."""
    try:
        c = wb.mlm(choice)[0].config
        return int(c.num_hidden_layers), int(c.num_attention_heads)
    except inspection.InspectionError:
        return 1, 1


def launch(model: Optional[str | Path] = None, runs_dir: str | Path = "runs", host: str = "127.0.0.1", port: int = 7860,
           share: bool = False, classifier: Optional[str | Path] = None, similarity: Optional[str | Path] = None,
           **launch_kwargs: Any):
    """Build and serve the app (what `workbench app` runs). Loopback only unless `host` says
    otherwise; no public share link unless asked. `similarity`: a contrastive (SimCSE) encoder for
    the Similarity tab (SimCSE runs under runs_dir are found without it)."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this machine can use the app")
    demo = build_app(model, runs_dir, classifier, similarity=similarity)
    if demo.workbench.similarity_choices():
        threading.Thread(target=demo.workbench.warm_neighbours, daemon=True, name="warm-neighbours").start()
    demo.queue(default_concurrency_limit=2)
    return demo.launch(server_name=host, server_port=port, share=share, **launch_kwargs)
