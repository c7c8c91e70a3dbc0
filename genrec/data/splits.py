"""k-core filtering, per-user chronological order and the leave-one-out split.

Order within a user is (timestamp, original row order): about half of all
MovieLens ratings share a timestamp with another rating of the same user, so a
stable tie-break is what makes the split reproducible. Leave-one-out (as in
P5, VIP5 and SASRec): a user's last interaction is the test item, the second
last the validation item, the rest are training. Users with fewer than 3
interactions (only possible with k_core < 3) keep all of them in training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TRAIN, VALID, TEST = "train", "valid", "test"


def k_core(inter: pd.DataFrame, k: int) -> pd.DataFrame:
    """Drop users and items with fewer than `k` interactions, repeatedly, until none is left."""
    if k <= 1:
        return inter
    while True:
        uc = inter["user"].map(inter["user"].value_counts())
        ic = inter["item"].map(inter["item"].value_counts())
        keep = (uc >= k) & (ic >= k)
        if keep.all():
            return inter
        inter = inter[keep]


def order_and_split(inter: pd.DataFrame) -> pd.DataFrame:
    """Sort by (user, timestamp, original row order); add `position` and `split` columns.

    `inter` must carry a `row` column with the original file order.
    """
    inter = inter.sort_values(["user", "timestamp", "row"], kind="stable").reset_index(drop=True)
    pos = inter.groupby("user", sort=False).cumcount().to_numpy()
    n = inter["user"].map(inter["user"].value_counts()).to_numpy()
    split = np.full(len(inter), TRAIN, dtype=object)
    enough = n >= 3
    split[enough & (pos == n - 1)] = TEST
    split[enough & (pos == n - 2)] = VALID
    inter["position"] = pos.astype("int32")
    inter["split"] = split
    return inter


def sample_negatives(
    sequences: list[np.ndarray], n_items: int, n_neg: int, seed: int
) -> np.ndarray:
    """For each user, `n_neg` distinct items the user never interacted with (any split).

    Returns int32 [U, n_neg], padded with -1 when the catalogue has fewer free items.
    Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    out = np.full((len(sequences), n_neg), -1, dtype=np.int32)
    for u, seq in enumerate(sequences):
        seen = np.zeros(n_items, dtype=bool)
        seen[seq] = True
        free = n_items - int(seen.sum())
        want = min(n_neg, free)
        if want == 0:
            continue
        if want * 4 < free:  # rejection sampling is cheap when the user saw little
            got: list[int] = []
            have = set()
            while len(got) < want:
                for c in rng.integers(0, n_items, size=2 * want):
                    c = int(c)
                    if not seen[c] and c not in have:
                        have.add(c)
                        got.append(c)
                        if len(got) == want:
                            break
            out[u, :want] = got
        else:
            out[u, :want] = rng.choice(np.flatnonzero(~seen), size=want, replace=False)
    return out
