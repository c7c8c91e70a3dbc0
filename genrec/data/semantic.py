"""Semantic item IDs (TIGER, Rajput et al. 2023): a few codes per item from residual k-means.

Content embedding: TF-IDF over the item's own text — title, categories, year,
description and, where the data has a knowledge graph, its director/writer/cast
entities as tokens — reduced by truncated SVD and L2-normalised (CLIP image
features are not used: they are computed after `prepare`, from its output). Residual k-means: level 1
clusters the embeddings, level 2 the residuals, and so on; an item's ID is its
codes joined by "-" (e.g. "12-3-27"), so similar items share prefixes and the
item trie decodes them. Items whose codes collide get one more code (1, 2, ...)
as TIGER does. A new item, never seen in any interaction, gets an ID from its
content alone (`SemanticIndex.assign`).

Everything needed for that is saved with the dataset as arrays and JSON — no pickle.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKEN = re.compile(r"(?u)\b\w[\w.']+\b")


def item_text(rec: dict, facts: dict | None) -> str:
    parts = [str(rec.get("title") or ""), str(rec.get("category") or "").replace("|", " "),
             str(rec.get("text") or "")]
    year = rec.get("year")
    if year is not None and year == year and str(year) != "<NA>":
        parts.append(f"year{int(year)} decade{int(year) // 10 * 10}")
    for key, tag in (("directed_by", "dir"), ("written_by", "wri"), ("actor", "act")):
        parts += [f"{tag}_{e.replace('.', '_')}" for e in (facts or {}).get(key, [])]
    return " ".join(parts).lower()


@dataclass
class SemanticIndex:
    vocab: dict[str, int]
    idf: np.ndarray  # [V]
    components: np.ndarray  # [d, V] SVD projection
    codebooks: list[np.ndarray]  # per level [K, d]
    used: set[str]  # assigned IDs, for collision handling of new items

    def embed(self, texts: list[str]) -> np.ndarray:
        x = np.zeros((len(texts), len(self.vocab)))
        for r, t in enumerate(texts):
            for tok in TOKEN.findall(t.lower()):
                j = self.vocab.get(tok)
                if j is not None:
                    x[r, j] += 1.0
        x *= self.idf
        x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        z = x @ self.components.T
        return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)

    def codes(self, z: np.ndarray) -> np.ndarray:
        """[N, L] residual-quantisation codes (0-based)."""
        out, r = [], z.copy()
        for cb in self.codebooks:
            c = ((r[:, None, :] - cb[None]) ** 2).sum(-1).argmin(1)
            out.append(c)
            r = r - cb[c]
        return np.stack(out, 1)

    def assign(self, text: str) -> str:
        """A fresh ID for a new item from its text (content only, no interactions)."""
        base = "-".join(str(int(c) + 1) for c in self.codes(self.embed([text]))[0])
        if base not in self.used:
            self.used.add(base)
            return base
        j = 1
        while f"{base}-{j}" in self.used:
            j += 1
        self.used.add(f"{base}-{j}")
        return f"{base}-{j}"

    def save(self, folder: Path) -> None:
        np.savez(folder / "semantic.npz", idf=self.idf, components=self.components,
                 **{f"codebook{i}": cb for i, cb in enumerate(self.codebooks)})
        (folder / "semantic.json").write_text(json.dumps({"vocab": self.vocab, "used": sorted(self.used)}))

    @classmethod
    def load(cls, folder: Path) -> "SemanticIndex":
        arr = np.load(folder / "semantic.npz", allow_pickle=False)
        meta = json.loads((folder / "semantic.json").read_text())
        n = len([k for k in arr.files if k.startswith("codebook")])
        return cls(meta["vocab"], arr["idf"], arr["components"], [arr[f"codebook{i}"] for i in range(n)],
                   set(meta["used"]))


def build_semantic(texts: list[str], levels: int = 3, codes: int = 32, dim: int = 64,
                   seed: int = 0) -> tuple[list[str], SemanticIndex]:
    """IDs for every item (unique) and the index that assigns IDs to new items."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(token_pattern=TOKEN.pattern, lowercase=True, min_df=1)
    x = vec.fit_transform(texts)
    d = max(1, min(dim, x.shape[1] - 1, x.shape[0] - 1))
    svd = TruncatedSVD(n_components=d, random_state=seed).fit(x)
    index = SemanticIndex({k: int(v) for k, v in vec.vocabulary_.items()}, vec.idf_.astype(np.float64),
                          svd.components_.astype(np.float64), [], set())
    z = index.embed(texts)
    r = z.copy()
    k = max(1, min(codes, len(texts)))
    for level in range(levels):
        km = KMeans(n_clusters=k, n_init=4, random_state=seed + level).fit(r)
        index.codebooks.append(km.cluster_centers_)
        r = r - km.cluster_centers_[km.labels_]
    c = index.codes(z)
    base = ["-".join(str(int(v) + 1) for v in row) for row in c]
    ids, count = [], {}
    for b in base:
        count[b] = count.get(b, 0) + 1
    seen: dict[str, int] = {}
    for b in base:
        if count[b] == 1:
            ids.append(b)
        else:  # collision: one more code, 1..m
            seen[b] = seen.get(b, 0) + 1
            ids.append(f"{b}-{seen[b]}")
    index.used = set(ids) | set(base)
    return ids, index
