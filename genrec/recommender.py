"""The public API: a trained checkpoint + its dataset, answering in items and words.

    from genrec.recommender import Recommender
    rec = Recommender.from_pretrained("genrec-quickstart/run/best")
    rec.recommend("23", k=5)                       # [{"id", "title", "score"}, ...]
    rec.choose("23", ["4011", "887", "1502"])      # the candidates, best first
    rec.explain("23", "4011")                      # a sentence
    rec.ask("user_23 watched 4011, 3531, 887. What should they watch next?")

Users and items are named by their dataset IDs (as `genrec inspect` shows them;
"user_23" and "<item_4011>" are accepted too). Item answers are always real
items: constrained decoding for text IDs, the item block for atomic tokens.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genrec.batches import Collator, make_example, pictured_items
from genrec.data.dataset import PreparedDataset
from genrec.data.examples import explanation_bans, explanation_lead, grounding, review_words
from genrec.decoding import NO_REPEAT_NGRAM, build_trie, generate_text, score_candidates, topk_items
from genrec.modeling.backbone import autocast
from genrec.modeling.model import GenRecModel
from genrec.prompts import Template, load_templates

ANONYMOUS = "new"  # the user name in prompts for a caller who is not a dataset user
ITEM_WORDS = ("recommend", "next", "which", "suggest", "what should", "pick", "choose", "watch", "buy")


def _fast(fn):
    """Run a public method under inference mode and the hardware's fast autocast (bf16 where it is fast)."""
    import functools

    @functools.wraps(fn)
    def run(self, *a, **kw):
        with torch.inference_mode(), autocast(self.model.device, self.precision):
            return fn(self, *a, **kw)
    return run


class RecommenderError(ValueError):
    """A request names an unknown user/item or asks for something impossible."""


@dataclass(frozen=True)
class Query:
    """A validated request, ready for an engine: the prompt batch and what to read out of it.

    output: "items" (top-k over the catalogue minus `exclude`), "candidates" (rank exactly
    these), or "text" (greedy text, never an item or image token)."""
    family: str
    output: str
    batch: dict
    k: int = 0
    exclude: tuple[int, ...] = ()
    candidates: tuple[int, ...] = ()
    max_new_tokens: int = 0
    ask: bool = False
    no_repeat_ngram: int = NO_REPEAT_NGRAM  # text: no n-gram of this many tokens twice (0 = off)
    lead: str = ""  # text: the answer's first words, fixed before decoding (`explanation_lead`)
    bans: tuple[str, ...] = ()  # text: words the answer may not contain (`explanation_bans`)


class Recommender:
    def __init__(self, model: GenRecModel, ds: PreparedDataset, features: torch.Tensor | None = None,
                 precision: str = "auto"):
        self.model, self.ds, self.features = model.eval(), ds, features
        self.precision = precision  # autocast for inference: auto (bf16 where fast), bf16, fp16 or no
        self.collator = Collator(model, features)
        self.templates = load_templates()
        self.images = pictured_items(features)
        self.max_history = model.recipe.tasks.max_history
        self._trie = None

    @classmethod
    def from_pretrained(cls, checkpoint: str | Path, data: str | Path | None = None,
                        device: str | None = None, precision: str = "auto",
                        merge_adapters: bool = True) -> "Recommender":
        """Load a checkpoint for answering. merge_adapters folds LoRA into the backbone's weights
        (the same answers, without the adapter's extra matmuls; not for k-bit backbones)."""
        from genrec.checkpoint import check_dataset, is_checkpoint, read_config
        from genrec.vision import recipe_features
        ck = Path(checkpoint)
        if not is_checkpoint(ck):
            raise RecommenderError(f"{ck}: not a genrec checkpoint (no config.yaml)")
        cfg = read_config(ck)
        data = data or cfg.get("data_dir")
        if not data:
            raise RecommenderError(f"{ck}: the checkpoint does not name its dataset; pass data=")
        ds = PreparedDataset.load(data)
        check_dataset(ck, ds)
        from genrec.runtime import answer_device
        quantize = (cfg.get("model") or {}).get("quantize", "none")
        model = GenRecModel.from_pretrained(ck, device=answer_device(device, quantize))
        if merge_adapters and model.recipe.model.quantize == "none":
            model.merge_lora()
        return cls(model, ds, recipe_features(model.recipe, ds, Path(data)), precision)

    # ---------------------------------------------------------------- names
    def user_index(self, user: str | int) -> int:
        """A user by the ID in the dataset's own files (or the model's name for them, user_<id>)."""
        i = self.ds.find_user(user)
        if i is None:
            raise RecommenderError(f"unknown user {str(user)!r}: this dataset has {self.ds.n_users:,} users with IDs "
                                   f"like {', '.join(self.ds.user_raw_ids[:3])} (the IDs in your files; list them "
                                   "with GET /users or Recommender.ds.user_raw_ids)")
        return i

    def item_index(self, item: str | int) -> int:
        """An item by the ID in the dataset's own files (or the model's name for it, <item_id>)."""
        i = self.ds.find_item(item)
        if i is None:
            raise RecommenderError(f"unknown item {str(item)!r}: this dataset has {self.ds.n_items:,} items with IDs "
                                   f"like {', '.join(self.ds.item_raw_ids[:3])} (the IDs in your files; list them "
                                   "with Recommender.ds.item_raw_ids)")
        return i

    def item_info(self, item: int, score: float | None = None) -> dict:
        """An item for people: its own ID, title, year; `model_id` is the model's internal name."""
        r = {"id": self.ds.item_raw_ids[item], "model_id": self.ds.item_ids[item], "title": self.ds.title(item)}
        year = self.ds.items["year"].iat[item]
        if not pd.isna(year):
            r["year"] = int(year)
        if score is not None:
            r["score"] = round(float(score), 4)
        return r

    def history(self, user: str | int) -> list[int]:
        return [int(i) for i in self.ds.sequence(self.user_index(user))]

    # ---------------------------------------------------------------- prompts
    def _template(self, family: str, answer: str) -> Template:
        return next(t for t in self.templates[family] if t.seen and t.answer == answer)

    def _prompt(self, template: Template, user: int | None, history: list[int], item: int | None = None,
                candidates: list[int] | None = None):
        """The prompt for a dataset user, or (user None) for a caller known only by the history given:
        they are written as user_new, a name no dataset user has."""
        hist = history[-self.max_history:]
        values = {"user": self.ds.user_ids[user] if user is not None else ANONYMOUS, "history": hist,
                  "item": item if item is not None else hist[-1],
                  "candidates": candidates or [], "title": self.ds.title(item if item is not None else hist[-1]),
                  "n": len(candidates or []), "answer": "yes", "explanation": "", "feature": "it", "rating": "5",
                  "category": "", "year": ""}
        if "facts" in template.slots:  # the same grounding as training and evaluation
            words = review_words(self.ds, user, len(self.ds.sequence(user))) if user is not None else []
            values["facts"] = grounding(self.ds, values["item"], history, words=words)
        ex = make_example(self.ds, self.model, template, -1 if user is None else user, "test",
                          np.random.default_rng(0), self.max_history, None, self.images, values=values)
        return ex, self.collator.prompts([ex])

    def _who(self, user: str | int | None, history: list[str] | None) -> tuple[int | None, list[int]]:
        """(user index or None, the history to use): the given history (item IDs) replaces the user's
        own; with no user, a history is required."""
        if user is None and history is None:
            raise RecommenderError("name a user or give a history (item IDs the person liked)")
        u = None if user is None else self.user_index(user)
        hist = [self.item_index(i) for i in history] if history is not None else \
            [int(i) for i in self.ds.sequence(u)]
        return u, hist

    def _check_k(self, k: int) -> None:
        if not isinstance(k, int) or k < 1:
            raise RecommenderError(f"k must be a positive integer, got {k!r}")
        if k > self.ds.n_items:
            raise RecommenderError(f"k={k} is larger than the catalogue ({self.ds.n_items:,} items)")

    # ---------------------------------------------------------------- queries
    # Every task is split in two: a validated `Query` (names resolved, prompt rendered and
    # tokenised) and its execution. The transformers path below and the serving engines run
    # the very same queries, so every engine answers with the same semantics.
    def query_recommend(self, user: str | int | None, k: int = 10, exclude_history: bool = True,
                        history: list[str] | None = None) -> Query:
        self._check_k(k)
        u, hist = self._who(user, history)
        if not hist:
            raise RecommenderError(f"user {user!r} has an empty history: give at least one item")
        if exclude_history and k > self.ds.n_items - len(set(hist)):
            raise RecommenderError(f"k={k} is more than the {self.ds.n_items - len(set(hist)):,} items this user "
                                   "has not seen; lower k or pass exclude_history=False")
        _, batch = self._prompt(self._template("sequential", "item"), u, hist)
        return Query("sequential", "items", batch, k=k, exclude=tuple(sorted(set(hist))) if exclude_history else ())

    def query_choose(self, user: str | int | None, candidates: list[str], history: list[str] | None = None) -> Query:
        if not candidates:
            raise RecommenderError("choose() needs at least one candidate item")
        u, hist = self._who(user, history)
        cands = [self.item_index(c) for c in candidates]
        if len(set(cands)) != len(cands):
            raise RecommenderError("choose() candidates must be distinct items")
        if not hist:
            raise RecommenderError("choose() needs a history: name a user or give at least one item")
        # atomic items: the candidates' scores from the sequential prompt, which ranks a candidate list
        # better than the direct prompt on validation (eval/plan.yaml); item text: the direct prompt
        fam = "sequential" if self.model.codec.mode == "atomic" else "direct"
        _, batch = self._prompt(self._template(fam, "item"), u, hist, candidates=cands)
        return Query(fam, "candidates", batch, candidates=tuple(cands))

    def query_explain(self, user: str | int | None, item: str | int, max_new_tokens: int = 40,
                      history: list[str] | None = None) -> Query:
        u, hist = self._who(user, history)
        i = self.item_index(item)
        _, batch = self._prompt(self._template("explanation", "text"), u, hist or [i], item=i)
        return Query("explanation", "text", batch, max_new_tokens=max_new_tokens, lead=explanation_lead(self.ds, i),
                     bans=tuple(explanation_bans(self.ds, i, hist or [i])))

    def query_ask(self, text: str, k: int = 5, answer: str = "auto", max_new_tokens: int = 48) -> Query:
        if not isinstance(text, str) or not text.strip():
            raise RecommenderError("ask() needs a non-empty prompt")
        if answer not in ("auto", "item", "text"):
            raise RecommenderError(f"answer must be auto, item or text, got {answer!r}")
        if answer == "auto":
            answer = "item" if any(w in text.lower() for w in ITEM_WORDS) else "text"
        ids = self.model.tokenizer(self._encode_items(text.strip()), add_special_tokens=self.model.is_encoder_decoder)
        ids = ids["input_ids"][-self.model.recipe.model.max_length:]
        if self.model.image_token_id in ids:
            raise RecommenderError("free-text prompts cannot contain the <img> placeholder")
        batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                 "image_feats": None}
        if answer == "item":
            self._check_k(k)
            return Query("sequential", "items", batch, k=k, ask=True)
        return Query("explanation", "text", batch, max_new_tokens=max_new_tokens, ask=True)

    @_fast
    def run(self, q: Query):
        """Execute a query with transformers: [(item, score)] best first, or a string."""
        self.model.set_task(q.family)
        if q.output == "items":
            if self.model.codec.mode == "text" and self._trie is None:
                self._trie = build_trie(self.model)
            return topk_items(self.model, q.batch, q.k, [list(q.exclude)] if q.exclude else None, self._trie,
                              num_beams=max(q.k, 10))[0]
        if q.output == "candidates":
            scores = score_candidates(self.model, q.batch, list(q.candidates))
            scores = (torch.tensor(scores) - torch.logsumexp(torch.tensor(scores), 0)).tolist()  # among the candidates
            order = np.argsort(-np.asarray(scores), kind="stable")
            return [(q.candidates[i], scores[i]) for i in order]
        return generate_text(self.model, q.batch, q.max_new_tokens, q.no_repeat_ngram, [q.lead], [list(q.bans)])[0]

    def answer(self, q: Query, raw):
        """The public shape of a query's result (what the API and the HTTP server return)."""
        if q.output == "text":
            return {"answer": "text", "text": raw} if q.ask else raw
        items = [self.item_info(i, s) for i, s in raw]
        return {"answer": "item", "items": items} if q.ask else items

    # ---------------------------------------------------------------- tasks
    def recommend(self, user: str | int | None, k: int = 10, exclude_history: bool = True,
                  history: list[str] | None = None) -> list[dict]:
        """Top-k next items for a user (from their history, or the `history` given; user None: a
        person known only by that history)."""
        q = self.query_recommend(user, k, exclude_history, history)
        return self.answer(q, self.run(q))

    def choose(self, user: str | int | None, candidates: list[str], history: list[str] | None = None) -> list[dict]:
        """Rank the given candidate items for a user (exact log-likelihood scores), best first."""
        q = self.query_choose(user, candidates, history)
        return self.answer(q, self.run(q))

    def explain(self, user: str | int | None, item: str | int, max_new_tokens: int = 40,
                history: list[str] | None = None) -> str:
        q = self.query_explain(user, item, max_new_tokens, history)
        return self.answer(q, self.run(q))

    def _encode_items(self, text: str) -> str:
        """Write item IDs mentioned in free text the way the model reads items."""
        if self.model.codec.mode != "atomic":
            return text
        ids = self.ds.item_by_raw
        return re.sub(r"(?<![\w<])(\d+(?:-\d+)*)(?![\w>])",
                      lambda m: self.model.codec.text(ids[m.group(1)]) if m.group(1) in ids else m.group(1), text)

    def ask(self, text: str, k: int = 5, answer: str = "auto", max_new_tokens: int = 48) -> dict:
        """Free text in; items (constrained to the catalogue) or text out.

        answer: "item", "text", or "auto" (item when the question asks for a recommendation)."""
        q = self.query_ask(text, k, answer, max_new_tokens)
        return self.answer(q, self.run(q))
