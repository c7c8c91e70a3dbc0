"""User and item ID schemes: how an entity is written as text.

Every scheme maps internal indices 0..n-1 to distinct ID strings, chosen in
the data config and saved with the prepared dataset:

- `random` — a random permutation of 1..n (the honest default);
- `sequential` — P5's numbering in order of first appearance while walking
  the users' time-ordered histories. Consecutive items of a user get
  consecutive numbers, so the next item is often "largest seen ID + 1": it
  leaks the answer and results with it must be labelled as such
  (Rajput et al. 2023; Hua et al., "How to Index Item IDs", 2023);
- `collaborative` — OpenP5's CID: recursive spectral clustering of the item
  co-occurrence graph (training interactions only); an item's ID is its path
  of cluster numbers plus its place in the leaf, e.g. "3-12-7", so items that
  are consumed together share ID prefixes.

- `semantic` — TIGER's semantic IDs: residual k-means codes of the item's
  content embedding (genrec.data.semantic); new items get IDs from content alone.

`ITEM_SCHEMES` is the registry: a new scheme is one more function taking `IdContext`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass
class IdContext:
    n: int  # number of entities
    train_sequences: list[np.ndarray]  # per user, item indices in time order (training split)
    seed: int = 0
    cluster_k: int = 20
    cluster_leaf: int = 50
    item_embeddings: np.ndarray | None = None  # [n, d] content embeddings, for content-based schemes
    item_texts: list[str] | None = None  # item content as text (semantic IDs)
    semantic_levels: int = 3
    semantic_codes: int = 32
    artifacts: dict | None = None  # what a scheme needs saved with the dataset (e.g. the semantic index)


def random_ids(ctx: IdContext) -> list[str]:
    perm = np.random.default_rng(ctx.seed).permutation(ctx.n) + 1
    return [str(int(x)) for x in perm]


def sequential_ids(ctx: IdContext) -> list[str]:
    ids: dict[int, int] = {}
    for seq in ctx.train_sequences:
        for i in seq:
            if int(i) not in ids:
                ids[int(i)] = len(ids) + 1
    nxt = len(ids) + 1
    out = []
    for i in range(ctx.n):
        if i not in ids:  # never in training: numbered after the rest
            ids[i] = nxt
            nxt += 1
        out.append(str(ids[i]))
    return out


def cooccurrence(train_sequences: list[np.ndarray], n: int) -> sp.csr_matrix:
    """Item × item count of users who interacted with both (diagonal zeroed)."""
    rows = np.concatenate([np.full(len(s), u) for u, s in enumerate(train_sequences)]) if train_sequences else []
    cols = np.concatenate(train_sequences) if train_sequences else []
    x = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                      shape=(len(train_sequences), n))
    x.data[:] = 1.0  # duplicates count once
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    return c


def cooccurrence_vectors(train_sequences: list[np.ndarray], n: int, dim: int = 64,
                         dense_up_to: int = 4000) -> np.ndarray:
    """[n, d] collaborative item vectors, d = min(dim, n - 1): the eigenvectors of the largest
    eigenvalues of the symmetrically normalised co-occurrence D^-1/2 C D^-1/2 (the spectral
    embedding OpenP5's CIDs cluster), each scaled by the square root of its eigenvalue (negative
    ones count as 0). Items consumed by the same users point the same way; an item no training
    user has (a zero row of C) gets a zero row. Deterministic up to each vector's sign, which is
    fixed so that its largest entry is positive."""
    c = cooccurrence(train_sequences, n).astype(np.float64)
    deg = np.asarray(c.sum(1)).ravel()  # [n]
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
    a = sp.diags(inv) @ c @ sp.diags(inv)  # [n, n]
    d = max(1, min(dim, n - 1))
    if n <= dense_up_to:  # dense is exact and quick at this size (MovieLens-1M: 3,706 items)
        lam, vec = np.linalg.eigh(a.toarray())
        lam, vec = lam[::-1][:d], vec[:, ::-1][:, :d]
    else:
        from scipy.sparse.linalg import eigsh

        lam, vec = eigsh(a.tocsr(), k=d, which="LA", v0=np.ones(n))
        order = np.argsort(lam)[::-1]
        lam, vec = lam[order], vec[:, order]
    sign = np.sign(vec[np.abs(vec).argmax(0), np.arange(vec.shape[1])])  # [d]
    out = vec * sign * np.sqrt(np.clip(lam, 0.0, None))  # [n, d]
    out[deg == 0] = 0.0
    return out.astype(np.float32)


def _cluster(aff: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import SpectralClustering

    n = aff.shape[0]
    k = min(k, n)
    # a tiny uniform affinity keeps the graph connected (isolated items otherwise break the eigensolver)
    aff = aff + 1e-6
    np.fill_diagonal(aff, 0.0)
    labels = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                                assign_labels="discretize").fit_predict(aff)
    return labels


def collaborative_ids(ctx: IdContext) -> list[str]:
    co = cooccurrence(ctx.train_sequences, ctx.n)
    out = [""] * ctx.n

    def recurse(items: np.ndarray, prefix: list[int]) -> None:
        if len(items) <= ctx.cluster_leaf:
            for j, i in enumerate(items):
                out[int(i)] = "-".join(map(str, prefix + [j + 1]))
            return
        aff = co[items][:, items].toarray().astype(np.float64)
        labels = _cluster(aff, ctx.cluster_k, ctx.seed)
        groups = [items[labels == c] for c in np.unique(labels)]
        if len(groups) == 1:  # degenerate split: fall back to even chunks so recursion ends
            groups = np.array_split(items, ctx.cluster_k)
        for c, g in enumerate(groups):
            recurse(g, prefix + [c + 1])

    recurse(np.arange(ctx.n), [])
    return out


def semantic_ids(ctx: IdContext) -> list[str]:
    from genrec.data.semantic import build_semantic

    if ctx.item_texts is None:
        raise ValueError("semantic IDs need item texts")
    ids, index = build_semantic(ctx.item_texts, ctx.semantic_levels, ctx.semantic_codes, seed=ctx.seed)
    if ctx.artifacts is not None:
        ctx.artifacts["semantic"] = index
    return ids


ITEM_SCHEMES: dict[str, Callable[[IdContext], list[str]]] = {
    "random": random_ids,
    "sequential": sequential_ids,
    "collaborative": collaborative_ids,
    "semantic": semantic_ids,
}
USER_SCHEMES: dict[str, Callable[[IdContext], list[str]]] = {
    "random": random_ids,
    "sequential": lambda ctx: [str(i + 1) for i in range(ctx.n)],
}
LEAKY_SCHEMES = {"sequential"}  # item schemes whose IDs leak the answer; label results


def assign_ids(scheme: str, ctx: IdContext, users: bool = False) -> list[str]:
    table = USER_SCHEMES if users else ITEM_SCHEMES
    if scheme not in table:
        raise ValueError(f"unknown {'user' if users else 'item'} ID scheme {scheme!r} (allowed: {', '.join(table)})")
    ids = table[scheme](ctx)
    if len(set(ids)) != len(ids):
        raise AssertionError(f"ID scheme {scheme!r} produced duplicate IDs")
    return ids
