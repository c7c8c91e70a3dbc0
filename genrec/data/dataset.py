"""The prepared-dataset directory: one on-disk format for every source.

Layout (schema version 1)::

    <dir>/
      meta.json             schema_version, name, source, config, counts, split sizes,
                            skipped rows, ID schemes (and whether they leak)
      interactions.parquet  user, item (int32 indices), timestamp (int64), rating (float32),
                            review, summary, feature (str|null), position (int32, 0-based
                            place in the user's time order), split (train|valid|test)
      items.parquet         item (index), raw_id, id (the ID scheme's string), title,
                            category ('|'-joined), year, text, image (path|null), facts (JSON|null)
      users.parquet         user (index), raw_id, id, attrs (JSON)
      semantic.npz/.json    only with semantic IDs: the TF-IDF/SVD/codebook index that gives
                            new items an ID from their content
      negatives.npy         int32 [n_users, n_candidates - 1]: items the user never touched,
                            sampled once with the seed (-1 pads a tiny catalogue); the direct
                            task's candidate list is the held-out item plus these

Rows of interactions.parquet are sorted by (user, position). Indices are
dense: users 0..U-1, items 0..I-1.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.files import atomic_dir
from genrec.config import DataConfig, to_dict
from genrec.data.indexing import LEAKY_SCHEMES, IdContext, assign_ids
from genrec.data.loaders import DataError, RawData
from genrec.data.splits import TEST, TRAIN, VALID, k_core, order_and_split, sample_negatives

SCHEMA_VERSION = 1


def _natural_key(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def feature_words(reviews: pd.Series) -> list[str | None]:
    """Per review, its most distinctive word (highest TF-IDF, English stop words removed).

    P5 takes the feature from Sentires aspect extraction; a TF-IDF pick keeps the
    same role (a word of the review the explanation must mention) with no extra tool.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = reviews.fillna("").astype(str)
    has = text.str.strip() != ""
    out: list[str | None] = [None] * len(text)
    if not has.any():
        return out
    vec = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z]{3,}\b", lowercase=True)
    try:
        x = vec.fit_transform(text[has])
    except ValueError:  # only stop words
        return out
    vocab = vec.get_feature_names_out()
    best = np.asarray(x.argmax(axis=1)).ravel()
    nz = np.asarray(x.max(axis=1).todense()).ravel() > 0
    for j, i in enumerate(np.flatnonzero(has.to_numpy())):
        out[i] = str(vocab[best[j]]) if nz[j] else None
    return out


@dataclass
class PreparedDataset:
    meta: dict
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    negatives: np.ndarray
    path: Path | None = field(default=None, compare=False)
    semantic: object | None = field(default=None, compare=False)  # SemanticIndex for semantic IDs

    # ---------------------------------------------------------------- building
    @classmethod
    def build(cls, raw: RawData, cfg: DataConfig, progress=None) -> "PreparedDataset":
        step = progress or (lambda msg: None)
        inter = raw.interactions.copy()
        inter["row"] = np.arange(len(inter))
        n_raw = {"users": int(inter["user"].nunique()), "items": int(inter["item"].nunique()),
                 "interactions": int(len(inter))}
        step("k-core filter")
        inter = k_core(inter, cfg.k_core)
        if inter.empty:
            raise DataError(
                f"no interactions left after {cfg.k_core}-core filtering "
                f"({n_raw['users']} users, {n_raw['items']} items, {n_raw['interactions']} interactions before); "
                "lower --k-core")
        raw_users = sorted(inter["user"].unique(), key=_natural_key)
        raw_items = sorted(inter["item"].unique(), key=_natural_key)
        uidx = pd.Series(np.arange(len(raw_users), dtype=np.int32), index=raw_users)
        iidx = pd.Series(np.arange(len(raw_items), dtype=np.int32), index=raw_items)
        inter["user"] = inter["user"].map(uidx).astype("int32")
        inter["item"] = inter["item"].map(iidx).astype("int32")
        step("order and split")
        inter = order_and_split(inter)
        if raw.interactions["review"].notna().any():
            step("feature words")
            inter["feature"] = feature_words(inter["review"])
        else:
            inter["feature"] = None
        inter = inter[["user", "item", "timestamp", "rating", "review", "summary", "feature",
                       "position", "split"]]
        inter["rating"] = inter["rating"].astype("float32")

        n_users, n_items = len(raw_users), len(raw_items)
        bounds = np.r_[0, np.cumsum(np.bincount(inter["user"].to_numpy(), minlength=n_users))]
        items_col = inter["item"].to_numpy()
        seqs = [items_col[bounds[u]:bounds[u + 1]] for u in range(n_users)]
        is_train = (inter["split"] == TRAIN).to_numpy()
        train_seqs = [items_col[bounds[u]:bounds[u + 1]][is_train[bounds[u]:bounds[u + 1]]] for u in range(n_users)]

        step(f"{cfg.item_ids} item IDs")
        meta_items = raw.items.drop_duplicates("item").set_index("item")
        texts = None
        if cfg.item_ids == "semantic":
            from genrec.data.semantic import item_text
            recs = meta_items.reindex(raw_items).reset_index(names="raw_id")
            texts = [item_text(r, json.loads(r["facts"]) if isinstance(r.get("facts"), str) else None)
                     for r in recs.to_dict("records")]
        artifacts: dict = {}
        item_ids = assign_ids(cfg.item_ids, IdContext(n_items, train_seqs, cfg.seed, cfg.cluster_k, cfg.cluster_leaf,
                                                      item_texts=texts, semantic_levels=cfg.semantic_levels,
                                                      semantic_codes=cfg.semantic_codes, artifacts=artifacts))
        user_ids = assign_ids(cfg.user_ids, IdContext(n_users, [], cfg.seed + 1), users=True)

        items = meta_items.reindex(raw_items).reset_index(names="raw_id")
        items["title"] = items["title"].where(items["title"].notna() & (items["title"].astype(str) != ""),
                                              None)
        items.insert(0, "item", np.arange(n_items, dtype=np.int32))
        items.insert(2, "id", item_ids)
        users_meta = raw.users.drop_duplicates("user").set_index("user").reindex(raw_users)
        users = pd.DataFrame({"user": np.arange(n_users, dtype=np.int32), "raw_id": raw_users,
                              "id": user_ids, "attrs": users_meta["attrs"].fillna("{}").to_numpy()})
        step("sample negatives")
        negatives = sample_negatives(seqs, n_items, cfg.n_candidates - 1, cfg.seed)
        split_sizes = {s: int((inter["split"] == s).sum()) for s in (TRAIN, VALID, TEST)}
        meta = {
            "schema_version": SCHEMA_VERSION,
            "name": raw.name,
            "source": cfg.source,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": to_dict(cfg),
            "raw_counts": n_raw,
            "counts": {"users": n_users, "items": n_items, "interactions": int(len(inter))},
            "split_sizes": split_sizes,
            "skipped_rows": int(raw.skipped_rows),
            "skipped_by_file": {k: int(v) for k, v in raw.skipped.items()},
            "notes": list(raw.notes),
            "item_id_scheme": cfg.item_ids,
            "user_id_scheme": cfg.user_ids,
            "leaky_ids": cfg.item_ids in LEAKY_SCHEMES,
            "has_images": bool(items["image"].notna().any()),
            "has_reviews": bool(inter["review"].notna().any()),
            "has_facts": bool(items["facts"].notna().any()),
        }
        return cls(meta, inter, items, users, negatives, semantic=artifacts.get("semantic"))

    # ---------------------------------------------------------------- disk
    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        with atomic_dir(out, overwrite=overwrite, kind="dataset") as tmp:
            self.interactions.to_parquet(tmp / "interactions.parquet", index=False)
            self.items.to_parquet(tmp / "items.parquet", index=False)
            self.users.to_parquet(tmp / "users.parquet", index=False)
            np.save(tmp / "negatives.npy", self.negatives, allow_pickle=False)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=2), encoding="utf-8")
            if self.semantic is not None:
                self.semantic.save(tmp)
        self.path = Path(out)
        return self.path

    @classmethod
    def load(cls, path: str | Path) -> "PreparedDataset":
        path = Path(path)
        mfile = path / "meta.json"
        if not mfile.is_file():
            raise DataError(f"{path}: not a prepared dataset (no meta.json; run `genrec prepare` first)")
        meta = json.loads(mfile.read_text(encoding="utf-8"))
        ver = meta.get("schema_version")
        if ver != SCHEMA_VERSION:
            raise DataError(f"{path}: dataset schema version {ver}, this genrec reads version "
                            f"{SCHEMA_VERSION}; prepare it again with this version")
        try:
            semantic = None
            if (path / "semantic.npz").is_file():
                from genrec.data.semantic import SemanticIndex
                semantic = SemanticIndex.load(path)
            return cls(meta, pd.read_parquet(path / "interactions.parquet"),
                       pd.read_parquet(path / "items.parquet"), pd.read_parquet(path / "users.parquet"),
                       np.load(path / "negatives.npy", allow_pickle=False), path=path, semantic=semantic)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: damaged prepared dataset ({e})") from None

    # ---------------------------------------------------------------- access
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def _bounds(self) -> np.ndarray:
        counts = np.bincount(self.interactions["user"].to_numpy(), minlength=self.n_users)
        return np.r_[0, np.cumsum(counts)]

    @cached_property
    def _items_col(self) -> np.ndarray:
        return self.interactions["item"].to_numpy()

    def sequence(self, user: int) -> np.ndarray:
        """All of the user's items in time order (train + valid + test)."""
        b = self._bounds
        return self._items_col[b[user]:b[user + 1]]

    def history(self, user: int, split: str) -> np.ndarray:
        """Items before the target of `split` (test: everything but the last; valid: but the last two)."""
        seq = self.sequence(user)
        if len(seq) < 3:
            return seq
        cut = {TEST: len(seq) - 1, VALID: len(seq) - 2, TRAIN: len(seq)}[split]
        return seq[:cut]

    def target(self, user: int, split: str) -> int | None:
        seq = self.sequence(user)
        if len(seq) < 3 or split == TRAIN:
            return None
        return int(seq[-1] if split == TEST else seq[-2])

    def candidates(self, user: int, split: str) -> list[int]:
        """The direct task's list: the held-out item first, then the user's sampled negatives."""
        neg = [int(x) for x in self.negatives[user] if x >= 0]
        t = self.target(user, split)
        return ([t] if t is not None else []) + neg

    @cached_property
    def item_by_id(self) -> dict[str, int]:
        return dict(zip(self.items["id"], self.items["item"].astype(int)))

    # IDs: the users' and items' own IDs (as written in the source files) are what people use, in
    # every API; the ID scheme's generated names (`user_ids`, `item_ids`) are the model's internal
    # names, accepted only in the form the model reads them: user_<id> and <item_<id>>.
    @cached_property
    def user_raw_ids(self) -> list[str]:
        """[U] each user's ID as written in the source files."""
        return [str(x) for x in self.users["raw_id"]]

    @cached_property
    def item_raw_ids(self) -> list[str]:
        """[I] each item's ID as written in the source files."""
        return [str(x) for x in self.items["raw_id"]]

    @cached_property
    def user_by_raw(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_raw_ids)}

    def find_user(self, key: str | int) -> int | None:
        """A user's index from their own ID, or from the model's name for them (user_<generated id>)."""
        key = str(key).strip()
        if key in self.user_by_raw:
            return self.user_by_raw[key]
        m = re.fullmatch(r"user_(.+)", key, re.I)
        return self.user_by_id.get(m.group(1)) if m else None

    def find_item(self, key: str | int) -> int | None:
        """An item's index from its own ID, or from the model's name for it (<item_<generated id>>)."""
        key = str(key).strip()
        if key in self.item_by_raw:
            return self.item_by_raw[key]
        m = re.fullmatch(r"<item_(.+)>", key)
        return self.item_by_id.get(m.group(1)) if m else None

    @cached_property
    def user_by_id(self) -> dict[str, int]:
        return dict(zip(self.users["id"], self.users["user"].astype(int)))

    @cached_property
    def item_ids(self) -> list[str]:
        return list(self.items["id"])

    @cached_property
    def user_ids(self) -> list[str]:
        return list(self.users["id"])

    @cached_property
    def item_by_raw(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.item_raw_ids)}

    @cached_property
    def facts(self) -> list[dict | None]:
        """Parsed knowledge-graph facts per item (None where the source has none)."""
        return [json.loads(f) if isinstance(f, str) else None for f in self.items["facts"]]

    def title(self, item: int) -> str:
        t = self.items["title"].iat[item]
        return str(t) if not pd.isna(t) else str(self.items["raw_id"].iat[item])
