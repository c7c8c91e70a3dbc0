"""Baselines scored under exactly genrec's protocol (same split, same exclusions, same candidates).

Any model that gives a score to every item for a user's history plugs into
`score_protocol`: most-popular here; SASRec (RecBole) in eval/bench_baselines.py.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genrec.data.dataset import PreparedDataset
from genrec.data.splits import TRAIN
from genrec.metrics import candidate_rank, rank_of, ranking_metrics


def popularity(ds: PreparedDataset) -> np.ndarray:
    """[I] number of training interactions per item."""
    train = ds.interactions[ds.interactions["split"] == TRAIN]["item"].to_numpy()
    return np.bincount(train, minlength=ds.n_items).astype(np.float64)


def score_protocol(ds: PreparedDataset, scores: Callable[[list[int]], np.ndarray], users: list[int],
                   split: str = "test", exclude_history: bool = True, batch_size: int = 256) -> dict:
    """Sequential full ranking and direct 1-of-N candidates from per-user item scores.

    scores(users) -> [len(users), I]. Ties are broken by item index (stable sort), which is
    arbitrary but fixed; genrec's own evaluation uses the same rule.
    """
    seq_ranks, dir_ranks = [], []
    for s in range(0, len(users), batch_size):
        chunk = users[s:s + batch_size]
        mat = np.asarray(scores(chunk), dtype=np.float64)  # [B, I]
        for row, u in zip(mat, chunk):
            target = ds.target(u, split)
            full = row.copy()
            if exclude_history:
                full[ds.history(u, split)] = -np.inf
            top = np.argsort(-full, kind="stable")[:10]
            seq_ranks.append(rank_of(top.tolist(), target))
            cands = ds.candidates(u, split)
            dir_ranks.append(candidate_rank(row[cands], cands, target))
    return {"sequential": {**ranking_metrics(seq_ranks), "users": len(seq_ranks)},
            "direct": {**ranking_metrics(dir_ranks, with_mrr=False), "users": len(dir_ranks)}}


def popularity_results(ds: PreparedDataset, users: list[int], split: str = "test") -> dict:
    pop = popularity(ds)
    return score_protocol(ds, lambda us: np.tile(pop, (len(us), 1)), users, split)
