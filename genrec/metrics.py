"""Metrics as pure functions (RecBole-style names: `hr@10`, `ndcg@10`, `mrr`, `bleu4`, `rouge1`).

Ranking metrics take, per user, the 0-based rank of the single held-out item
in the model's ranked list (None when it is not in the list): leave-one-out
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


def candidate_rank(scores: Sequence[float], candidates: Sequence, target) -> int | None:
    """0-based rank of `target` among `candidates` ordered by descending score; ties keep the
    list's order (a stable sort), the rule every genrec evaluation and baseline uses."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return rank_of([candidates[i] for i in order], target)


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
