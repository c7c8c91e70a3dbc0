"""Slot values for one (user, template) pair from a prepared dataset, and explanation targets.

`example_values()` decides *what* goes into a template's slots — which item is
the target, the history before it, the candidate list, yes/no negatives, the
explanation — and `genrec.prompts.render()` decides *how* it is written.

Explanation targets: the user's own review where the data has reviews
(Amazon format; the feature word is taken from that review). MovieLens has no
reviews, so the target is built from the item's real metadata and the
knowledge-graph facts shipped with MovieLens-100K: genres, year, a director,
writer or cast member shared with a film in the user's history, a
sequel/prequel link, awards. Every clause is a fact about the item; the
personal part is which earlier film of *this* user it connects to.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from genrec.data.dataset import PreparedDataset
from genrec.data.splits import TRAIN, VALID
from genrec.prompts import Template


def _fmt_list(xs: list[str]) -> str:
    if len(xs) <= 1:
        return "".join(xs)
    return ", ".join(xs[:-1]) + " and " + xs[-1]


def _head(ds: PreparedDataset, item: int) -> str:
    """"Title (1995)": how a metadata explanation of the item begins."""
    year = ds.items.iloc[item]["year"]
    return f"{ds.title(item)} ({int(year)})" if not pd.isna(year) else ds.title(item)


def explanation_lead(ds: PreparedDataset, item: int) -> str:
    """The words an explanation of `item` starts with, fixed before decoding: on data without
    reviews every explanation the model learnt is a metadata sentence that opens with the item's
    title and year, so generation continues from them (the answer is about this item, named as the
    catalogue names it). "" where the explanations are the users' own reviews."""
    has_reviews = ds.meta.get("has_reviews")
    if has_reviews is None:  # prepared before the flag was recorded
        has_reviews = bool(ds.interactions["review"].notna().any())
    return "" if has_reviews else _head(ds, item)


# Award words. The learnt metadata sentences state awards only as the facts' count ("winner of 3
# awards", "nominated for 2 awards"), and no fact names a prize.
_NO_AWARD_WORDS = ("winner", "winners", "won", "winning", "award-winning", "nominated", "nomination",
                   "nominee", "award", "awards")
_PRIZES = ("Oscar", "Oscars", "Academy Award", "Academy Awards", "Emmy", "Golden Globe", "BAFTA")


def explanation_bans(ds: PreparedDataset, item: int, history: np.ndarray | list[int]) -> list[str]:
    """Words an explanation of `item` may not generate, on data without reviews: a prize's name
    (the data cannot bear one out), the words of the award clause the facts do not hold (an item
    with no awards may not say "winner" or "award"; one with wins only may not say "nominated"), less
    any word its prompt's facts contain (a linked title such as "Oscar and Lucinda" may be named).
    [] where the explanations are the users' own reviews."""
    if explanation_lead(ds, item) == "":
        return []
    mine = ds.facts[item] or {}
    words = list(_PRIZES)
    if not mine.get("awards_won") and not mine.get("award_nominations"):
        words += _NO_AWARD_WORDS
    elif mine.get("awards_won"):
        words += ["nominated", "nomination", "nominee"]
    else:
        words += ["winner", "won", "award-winning"]
    facts = grounding(ds, item, history).lower()
    return [w for w in words if not re.search(rf"\b{re.escape(w.lower())}\b", facts)]


def metadata_explanation(ds: PreparedDataset, item: int, history: np.ndarray | list[int]) -> tuple[str, str]:
    """(explanation, feature word) for `item` from real metadata and KG facts."""
    rec = ds.items.iloc[item]
    genres = [g for g in str(rec["category"] or "").split("|") if g and g != "unknown"]
    feature = genres[0].lower() if genres else "story"
    head = _head(ds, item)
    kind = f"{_fmt_list([g.lower() for g in genres])} film" if genres else "film"
    text = f"{head} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    facts = ds.facts
    mine = facts[item]
    clauses = []
    if mine:
        hist = [int(h) for h in history][::-1]  # most recent first
        links = [("directed_by", "from the director of"), ("written_by", "written by the writer of"),
                 ("actor", "sharing cast with")]
        for key, phrase in links:
            mset = set(mine.get(key, []))
            if not mset:
                continue
            hit = next((h for h in hist if h != item and facts[h] and mset & set(facts[h].get(key, []))),
                       None)
            if hit is not None:
                clauses.append(f"{phrase} {ds.title(hit)}")
                break
        for key, phrase in (("sequel", "the sequel to"), ("prequel", "the prequel to")):
            # facts store: this film's `sequel` is the film that follows it
            rel = "prequel" if key == "sequel" else "sequel"
            for raw in mine.get(rel, []):
                j = ds.item_by_raw.get(raw)
                if j is not None:
                    clauses.append(f"{phrase} {ds.title(int(j))}")
                    break
        if mine.get("awards_won"):
            n = mine["awards_won"]
            clauses.append(f"winner of {n} award{'s' if n > 1 else ''}")
        elif mine.get("award_nominations"):
            n = mine["award_nominations"]
            clauses.append(f"nominated for {n} award{'s' if n > 1 else ''}")
    if clauses:
        text += ", " + _fmt_list(clauses)
    return text + ".", feature


LINK_ORDER = (("sequel", "the prequel to"), ("prequel", "the sequel to"), ("directed_by", "from the director of"),
              ("written_by", "written by the writer of"), ("actor", "sharing cast with"))  # most specific first


def review_words(ds: PreparedDataset, user: int, position: int, k: int = 3) -> list[str]:
    """The feature words (P5's explanation features) the user's reviews before `position` use most,
    most frequent first; [] for data without reviews or a caller the dataset does not know."""
    if user < 0 or "feature" not in ds.interactions.columns:
        return []
    start = ds._bounds[user]
    rows = ds.interactions["feature"].iloc[start:start + position]
    counts = Counter(w.strip().lower() for w in rows if isinstance(w, str) and w.strip())
    return [w for w, _ in counts.most_common(k)]


def grounding(ds: PreparedDataset, item: int, history: np.ndarray | list[int], max_links: int = 3,
              words: list[str] | None = None) -> str:
    """The facts an explanation of `item` for this history may use, as the prompt's {facts} slot: the
    item's title, year, genres and awards, then the true links between it and films in the history
    (a sequel or prequel, the same director, writer or cast), most specific first, most recent film
    first. Without knowledge-graph facts (Amazon): title and categories, and `words` (the user's
    review vocabulary, `review_words`) where given."""
    rec = ds.items.iloc[item]
    year = "" if pd.isna(rec["year"]) else f" ({int(rec['year'])})"
    genres = [g for g in str(rec["category"] or "").split("|") if g and g != "unknown"]
    out = [f"{ds.title(item)}{year}" + (f"; genres: {', '.join(g.lower() for g in genres)}" if genres else "")]
    mine = ds.facts[item] or {}
    if mine.get("awards_won"):
        out.append(f"won {mine['awards_won']} award{'s' if mine['awards_won'] > 1 else ''}")
    elif mine.get("award_nominations"):
        n = mine["award_nominations"]
        out.append(f"nominated for {n} award{'s' if n > 1 else ''}")
    for key, phrase in (("prequel", "the sequel to"), ("sequel", "the prequel to")):  # any catalogue film
        j = next((ds.item_by_raw[str(r)] for r in mine.get(key, []) if str(r) in ds.item_by_raw), None)
        if j is not None:
            out.append(f"{phrase} {ds.title(j)}")
    links = []
    if mine:
        hist = [int(h) for h in history][::-1]  # most recent first
        raw = ds.item_raw_ids
        for key, phrase in LINK_ORDER:
            for h in hist:
                theirs = ds.facts[h] or {}
                if h == item or not theirs:
                    continue
                if key in ("sequel", "prequel"):
                    hit = raw[h] in map(str, mine.get(key, []))
                else:
                    hit = bool(set(mine.get(key, [])) & set(theirs.get(key, [])))
                if hit and len(links) < max_links:
                    links.append(f"{phrase} {ds.title(h)}")
    if links:
        out.append("links to the user's films: " + "; ".join(links))
    if words:
        out.append("the user's reviews mention " + ", ".join(words))
    return ". ".join(out)


def explanation_for(ds: PreparedDataset, user: int, position: int) -> tuple[str, str, float]:
    """(explanation, feature, rating) for the user's interaction at `position`."""
    b = ds._bounds
    row = ds.interactions.iloc[b[user] + position]
    rating = float(row["rating"]) if row["rating"] == row["rating"] else 5.0
    review = row["review"]
    if isinstance(review, str) and review.strip():
        feature = row["feature"] if isinstance(row["feature"], str) else ""
        return review.strip(), feature, rating
    text, feature = metadata_explanation(ds, int(row["item"]), ds.sequence(user)[:position])
    return text, feature, rating


def _sample_unseen(ds: PreparedDataset, user: int, n: int, rng: np.random.Generator) -> list[int]:
    seen = set(int(x) for x in ds.sequence(user))
    out: list[int] = []
    while len(out) < n and len(seen) + len(out) < ds.n_items:
        c = int(rng.integers(ds.n_items))
        if c not in seen and c not in out:
            out.append(c)
    return out


def n_train_items(ds: PreparedDataset, user: int) -> int:
    """How many of the user's interactions are training ones: those before the validation target
    (the dataset's leave-one-out rule); training targets sit at positions 1..n-1."""
    return len(ds.history(user, VALID))


def example_values(
    ds: PreparedDataset,
    template: Template,
    user: int,
    split: str,
    rng: np.random.Generator,
    max_history: int = 20,
    n_candidates: int | None = None,
    position: int | None = None,
) -> dict | None:
    """Slot values for `template` and `user`, or None if the user has no usable target.

    split=train: the target is a training interaction at `position` (random if None,
    at least 1 so a history exists); valid/test: the held-out item. `n_candidates`
    caps the candidate list (default: the dataset's full list for valid/test).
    """
    seq = ds.sequence(user)
    if split == TRAIN:
        n_train = n_train_items(ds, user)
        if n_train < 2:
            return None
        pos = int(rng.integers(1, n_train)) if position is None else position
        if not 1 <= pos < n_train:
            raise ValueError(f"training position {pos} outside [1, {n_train}) for user {ds.user_ids[user]}")
    else:
        if len(seq) < 3:
            return None
        pos = len(seq) - (1 if split == "test" else 2)
    item = int(seq[pos])
    history = seq[max(0, pos - max_history):pos]
    v: dict = {"user": ds.user_ids[user], "history": [int(h) for h in history], "item": item,
               "title": ds.title(item), "n": 0, "position": pos}
    rec = ds.items.iloc[item]
    v["category"] = str(rec["category"] or "").replace("|", ", ")
    v["year"] = str(int(rec["year"])) if not pd.isna(rec["year"]) else ""
    if template.answer == "yes_no":
        if rng.random() < 0.5:
            v["answer"] = "yes"
        else:
            neg = _sample_unseen(ds, user, 1, rng)
            if neg:
                v["item"] = neg[0]
                v["title"] = ds.title(neg[0])
            v["answer"] = "no" if neg else "yes"
    if "candidates" in template.slots or "candidates_images" in template.slots:
        if split == TRAIN:
            n = (n_candidates or 20) - 1
            cands = [item] + _sample_unseen(ds, user, n, rng)
        else:
            cands = ds.candidates(user, split)
            if n_candidates:
                cands = cands[:n_candidates]
        order = rng.permutation(len(cands))
        v["candidates"] = [cands[i] for i in order]
        v["n"] = len(cands)
    if template.answer == "text" or {"feature", "rating", "explanation"} & template.slots:
        text, feature, rating = explanation_for(ds, user, pos)
        v["explanation"], v["feature"], v["rating"] = text, feature or "it", f"{rating:g}"
    if "facts" in template.slots:
        v["facts"] = grounding(ds, item, seq[:pos], words=review_words(ds, user, pos))
    return v
