"""What every loader returns (`RawData`) and the helpers they share: delimited text read with
line numbers, the interactions/items/users frames, titles with their year, image lookup."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd



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
    skipped: malformed rows skipped (--skip-bad-rows), by file name; notes: what the reader noticed
    and the user should hear (unknown columns, a guessed delimiter).
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())


ITEM_COLUMNS = ["item", "title", "category", "year", "text", "image", "facts"]


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


def _find_image(images: Path | None, item: str) -> str | None:
    if images is None:
        return None
    for ext in (".jpg", ".jpeg", ".png", ".webp"):
        p = images / f"{item}{ext}"
        if p.exists():
            return str(p.resolve())
    return None


