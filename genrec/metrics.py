"""Metrics as pure functions (RecBole-style names: `hr@10`, `ndcg@10`, `mrr`, `bleu4`, `rouge1`).

Ranking metrics take, per user, the 0-based rank of the single held-out item
in the model's ranked list (None when it is not in the list); ranks are
pessimistic (an item tied with the target ranks above it). Leave-one-out
has exactly one relevant item, so HR@k = P(rank < k),
NDCG@k = mean(1 / log2(rank + 2)) over hits (the ideal DCG is 1), and
MRR = mean(1 / (rank + 1)), 0 when missing. The evaluation protocol (which
candidates, whether seen items are filtered) lives in genrec.evaluate.
Text metrics use sacrebleu (BLEU-4) and Google's rouge-score (ROUGE-1/2/L F1).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def rank_of(ranked: Sequence, target) -> int | None:
    """0-based position of `target` in `ranked`, or None."""
    for i, x in enumerate(ranked):
        if x == target:
            return i
    return None


def list_rank(ranked: Sequence[tuple], target) -> int | None:
    """Pessimistic 0-based rank of `target` in a ranked list of (item, score): the number of other
    listed items whose score is >= the target's (ties count against the target). None if unlisted."""
    score = next((s for i, s in ranked if i == target), None)
    if score is None:
        return None
    return sum(1 for i, s in ranked if i != target and not s < score)


def full_ranks(scores: np.ndarray, targets: Sequence[int], exclude: Sequence[Sequence[int]] | None = None
               ) -> list[int | None]:
    """Pessimistic 0-based rank of each row's target over the whole catalogue.

    scores: [B, I]; targets: B item indices; exclude: per row, items left out of the ranking (the
    user's history). The rank is the number of other items, not excluded, whose score is >= the
    target's: an item tied with the target ranks above it, so a constant scorer ranks every
    target last. None when the target itself is excluded (it can never be recommended).
    """
    scores = np.asarray(scores, dtype=np.float64)
    out: list[int | None] = []
    for r, t in enumerate(targets):
        ex = np.asarray(list(exclude[r]) if exclude is not None else [], dtype=np.int64)
        if t in set(ex.tolist()):
            out.append(None)
            continue
        row = scores[r]
        st = row[t]
        above = ~(row < st) if not np.isnan(st) else np.ones_like(row, dtype=bool)  # NaN ranks last
        above[t] = False
        if ex.size:
            above[ex] = False
        out.append(int(above.sum()))
    return out


def candidate_rank(scores: Sequence[float], candidates: Sequence, target) -> int | None:
    """Pessimistic 0-based rank of `target` among `candidates` by descending score: the number of
    other candidates scoring >= the target (ties count against it, whatever the list's order)."""
    if target not in candidates:
        return None
    s = np.asarray(scores, dtype=np.float64)
    st = s[list(candidates).index(target)]
    if np.isnan(st):
        return len(candidates) - 1
    return int(sum(1 for c, x in zip(candidates, s) if c != target and not x < st))


def hit_rate(ranks: Sequence[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r < k) / len(ranks) if ranks else 0.0


def ndcg(ranks: Sequence[int | None], k: int) -> float:
    return sum(1.0 / math.log2(r + 2) for r in ranks if r is not None and r < k) / len(ranks) if ranks else 0.0


def mrr(ranks: Sequence[int | None]) -> float:
    return sum(1.0 / (r + 1) for r in ranks if r is not None) / len(ranks) if ranks else 0.0


def ranking_metrics(ranks: Sequence[int | None], hr_ks=(1, 5, 10), ndcg_ks=(5, 10), with_mrr=True) -> dict:
    out = {f"hr@{k}": hit_rate(ranks, k) for k in hr_ks}
    out.update({f"ndcg@{k}": ndcg(ranks, k) for k in ndcg_ks})
    if with_mrr:
        out["mrr"] = mrr(ranks)
    return out


def per_user(ranks: Sequence[int | None], metric: str) -> np.ndarray:
    """[U] each user's value of `metric` ("hr@10", "ndcg@10", ...) from their 0-based ranks."""
    name, k = metric.split("@")
    k = int(k)
    hit = np.array([r is not None and r < k for r in ranks])
    if name == "hr":
        return hit.astype(np.float64)
    if name == "ndcg":
        return np.array([1.0 / math.log2(r + 2) if h else 0.0 for r, h in zip(ranks, hit)])
    raise ValueError(f"unknown metric {metric!r} (hr@k or ndcg@k)")


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Mean of a - b over paired units (users) and its percentile bootstrap interval: users are
    resampled with replacement, the same draw for both systems, so what the users share cancels.
    Returns {"diff", "ci95": [low, high], "n"}."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_bootstrap needs two equal-length non-empty vectors, got {a.shape} and {b.shape}")
    d = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, 1000):  # chunks keep memory at 1000 x n
        idx = rng.integers(0, len(d), size=(min(1000, n_boot - s), len(d)))
        means[s:s + len(idx)] = d[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return {"diff": float(d.mean()), "ci95": [float(low), float(high)], "n": int(len(d))}


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu, default tokenisation), on the 0-100 scale."""
    import sacrebleu
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """Mean ROUGE-1/2/L F1 (Google's rouge-score, stemming on), on the 0-100 scale."""
    from rouge_score import rouge_scorer
    keys = ("rouge1", "rouge2", "rougeL")
    if not hypotheses:
        return {k: 0.0 for k in keys}
    sc = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    tot = dict.fromkeys(keys, 0.0)
    for h, r in zip(hypotheses, references):
        s = sc.score(r, h)
        for k in keys:
            tot[k] += s[k].fmeasure
    return {k: 100.0 * v / len(hypotheses) for k, v in tot.items()}
