"""Baselines scored under exactly genrec's protocol (same split, same exclusions, same candidates).

Any model that gives a score to every item for a user's history plugs into
`score_protocol`: most-popular here; SASRec (RecBole) in eval/bench_baselines.py.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from genrec.data.dataset import PreparedDataset
from genrec.data.splits import TRAIN
from genrec.metrics import candidate_rank, full_ranks, ranking_metrics


def popularity(ds: PreparedDataset) -> np.ndarray:
    """[I] number of training interactions per item."""
    train = ds.interactions[ds.interactions["split"] == TRAIN]["item"].to_numpy()
    return np.bincount(train, minlength=ds.n_items).astype(np.float64)


def score_protocol(ds: PreparedDataset, scores: Callable[[list[int]], np.ndarray], users: list[int],
                   split: str = "test", exclude_history: bool = True, batch_size: int = 256) -> dict:
    """Sequential full ranking and direct 1-of-N candidates from per-user item scores.

    scores(users) -> [len(users), I]. Ranks are pessimistic (an item tied with the target ranks above
    it; genrec's own evaluation uses the same rule), so a constant scorer gets no credit from ties
    and the candidates' order does not matter. Each family keeps its per-user ranks (`per_user`).
    """
    seq_ranks, dir_ranks = [], []
    for s in range(0, len(users), batch_size):
        chunk = users[s:s + batch_size]
        mat = np.asarray(scores(chunk), dtype=np.float64)  # [B, I]
        targets = [ds.target(u, split) for u in chunk]
        excl = [ds.history(u, split) for u in chunk] if exclude_history else None
        seq_ranks += full_ranks(mat, targets, excl)
        for row, u, target in zip(mat, chunk, targets):
            cands = ds.candidates(u, split)
            dir_ranks.append(candidate_rank(row[cands], cands, target))
    ids = [ds.user_raw_ids[u] for u in users]
    return {"sequential": {**ranking_metrics(seq_ranks), "users": len(seq_ranks),
                           "per_user": {"users": ids, "ranks": seq_ranks}},
            "direct": {**ranking_metrics(dir_ranks, with_mrr=False), "users": len(dir_ranks),
                       "per_user": {"users": ids, "ranks": dir_ranks}}}


def popularity_results(ds: PreparedDataset, users: list[int], split: str = "test") -> dict:
    pop = popularity(ds)
    return score_protocol(ds, lambda us: np.tile(pop, (len(us), 1)), users, split)
