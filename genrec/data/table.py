"""A generic interactions table (CSV/TSV/semicolon-separated or Parquet: user, item, timestamp[,
rating, review]) with an optional items table (item, title[, category, year, text, image]).

Column names are mapped to genrec's: common spellings are recognised (userId, movieId, genres, ...),
anything else is given with `data.columns` ("user=UserKey,item=Sku,timestamp=when"); columns
nobody asked for are reported. The delimiter is detected (comma, tab, semicolon, pipe) and
`data.encoding` names the text encoding.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.data.raw import DataError, RawData, _find_image, _interactions, _items_frame, _need_file, _users_frame
from genrec.data.raw import _TITLE_YEAR

INTERACTION_COLUMNS = ("user", "item", "timestamp", "rating", "review", "summary")
ITEM_TABLE_COLUMNS = ("item", "title", "category", "year", "text", "image")
ALIASES = {  # lower-cased source name -> genrec's name
    "userid": "user", "user_id": "user", "reviewerid": "user", "customer_id": "user",
    "itemid": "item", "item_id": "item", "movieid": "item", "asin": "item", "product_id": "item",
    "productid": "item", "ts": "timestamp", "time": "timestamp", "datetime": "timestamp", "date": "timestamp",
    "unixreviewtime": "timestamp", "score": "rating", "stars": "rating", "overall": "rating",
    "genres": "category", "genre": "category", "categories": "category", "name": "title",
    "description": "text", "reviewtext": "review",
}


def parse_columns(spec: str | None) -> dict[str, str]:
    """"user=userId,item=movieId" -> {"userId": "user", "movieId": "item"} (source name -> genrec's)."""
    out = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not theirs or ours not in INTERACTION_COLUMNS + ITEM_TABLE_COLUMNS:
            raise DataError(f"data.columns: {part.strip()!r} is not NAME=COLUMN with NAME one of "
                            f"{', '.join(dict.fromkeys(INTERACTION_COLUMNS + ITEM_TABLE_COLUMNS))}")
        out[theirs] = ours
    return out


def _delimiter(path: Path, encoding: str) -> str:
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        head = f.read(65536)
    try:
        return csv.Sniffer().sniff(head, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def read_table_file(path: Path, encoding: str = "utf-8", skip_bad: bool = False) -> tuple[pd.DataFrame, int]:
    """(all columns as strings, rows skipped for a wrong number of fields)."""
    _need_file(path)
    if path.suffix in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path), 0
        except (ValueError, OSError) as e:
            raise DataError(f"{path}: cannot read as Parquet ({str(e).splitlines()[0]})") from None
    bad_lines: list[int] = []
    try:
        sep = _delimiter(path, encoding)
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding, engine="python",
                         on_bad_lines=(lambda line: bad_lines.append(1) and None) if skip_bad else "error")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not {encoding} text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                        "pass --encoding with the file's encoding, e.g. --encoding latin-1") from None
    except LookupError:
        raise DataError(f"data.encoding: unknown encoding {encoding!r}") from None
    except pd.errors.ParserError as e:
        msg = str(e).splitlines()[0]
        raise DataError(f"{path}: {msg} (use --skip-bad-rows to skip such rows)") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read as CSV ({str(e).splitlines()[0]})") from None
    return df, len(bad_lines)


def _rename(df: pd.DataFrame, mapping: dict[str, str], wanted: tuple[str, ...], path: Path, notes: list[str]):
    ren = {}
    for c in df.columns:
        name = mapping.get(str(c)) or (str(c) if str(c) in wanted else ALIASES.get(str(c).strip().lower()))
        if name in wanted and name not in ren.values():
            ren[c] = name
    df = df.rename(columns=ren)
    unknown = [str(c) for c in df.columns if c not in wanted]
    if unknown:
        notes.append(f"{path.name}: ignored column(s) {', '.join(unknown)} (map one with --columns NAME=COLUMN)")
    return df[[c for c in df.columns if c in wanted]]


def _need_columns(df: pd.DataFrame, path: Path, cols: list[str], found: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column '{missing[0]}' (found: {', '.join(map(str, found))}; "
                        f"map yours with --columns {missing[0]}=YOUR_COLUMN)")


def load_table(cfg) -> RawData:
    path = Path(cfg.path)
    mapping = parse_columns(cfg.columns)
    notes: list[str] = []
    raw, skipped_fields = read_table_file(path, cfg.encoding, cfg.skip_bad_rows)
    df = _rename(raw, mapping, INTERACTION_COLUMNS, path, notes).reset_index(drop=True)
    _need_columns(df, path, ["user", "item", "timestamp"], list(raw.columns))
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
    for mask, field in ((empty_id, "user/item"), (bad, "timestamp"), (bad_r, "rating")):
        if mask.any() and not cfg.skip_bad_rows:
            i = int(np.flatnonzero(mask)[0])
            line = f":{i + 2}" if path.suffix not in (".parquet", ".pq") else f" row {i}"
            val = df[field.split('/')[0]].iloc[i]
            raise DataError(f"{path}{line}: bad value in field '{field}': {val!r} (use --skip-bad-rows to skip such rows)")
    keep = ~(bad | bad_r | empty_id)
    skipped = {path.name: skipped_fields + int((~keep).sum())}
    df = df[keep].copy()
    df["timestamp"] = ts[keep]
    if rating is not None:
        df["rating"] = rating[keep]
    inter = _interactions(df, has_rating=rating is not None)
    images = Path(cfg.images_path) if cfg.images_path else None
    if cfg.items_path:
        items, n = _items_table(Path(cfg.items_path), cfg, mapping, images, notes)
        skipped[Path(cfg.items_path).name] = skipped.get(Path(cfg.items_path).name, 0) + n
    else:
        uniq = pd.unique(inter["item"])
        items = _items_frame({"item": uniq, "title": None, "image": [_find_image(images, i) for i in uniq]})
    return RawData("table", inter, items, _users_frame(inter["user"]), skipped, notes)


def _items_table(ipath: Path, cfg, mapping: dict, images: Path | None, notes: list[str]) -> tuple[pd.DataFrame, int]:
    raw, skipped = read_table_file(ipath, cfg.encoding, cfg.skip_bad_rows)
    it = _rename(raw, mapping, ITEM_TABLE_COLUMNS, ipath, notes)
    _need_columns(it, ipath, ["item", "title"], list(raw.columns))
    title, year = it["title"].astype(str), it["year"] if "year" in it else None
    if year is None:  # "Toy Story (1995)": the year comes out of the title
        m = title.str.extract(_TITLE_YEAR)
        year = pd.to_numeric(m[1], errors="coerce")
        title = m[0].where(m[0].notna(), title)
    img = []
    for item, p in zip(it["item"].astype(str), it["image"] if "image" in it else [None] * len(it)):
        if p and str(p).strip():
            q = Path(str(p))
            q = q if q.is_absolute() else ipath.parent / q
            img.append(str(q.resolve()))  # a missing file is reported by `genrec features`
        else:
            img.append(_find_image(images, item))
    cat = it["category"] if "category" in it else None
    if cat is not None:
        cat = cat.astype(str).where(cat.astype(str) != "(no genres listed)", "")
    return _items_frame({"item": it["item"], "title": title, "category": cat, "year": year,
                         "text": it["text"] if "text" in it else None, "image": img}), skipped
