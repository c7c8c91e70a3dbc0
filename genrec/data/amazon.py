"""Amazon reviews in the 5-core JSON-lines format of P5/VIP5 (reviews + optional metadata)."""
from __future__ import annotations

import ast
import gzip
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from genrec.config import DataConfig

from genrec.data.raw import DataError, RawData, _find_image, _interactions, _items_frame, _need_file, _users_frame


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
            except RecursionError:
                if skip_bad:
                    yield n, None
                    continue
                raise DataError(f"{path}:{n}: JSON nested too deeply (use --skip-bad-rows to skip such rows)") from None
            except json.JSONDecodeError:
                try:
                    rec = ast.literal_eval(line)
                except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
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


class _Bad(Exception):
    """One field of one record that cannot be used: (field, why)."""


def _text(value, field: str) -> str | None:
    """A text field as found in the wild: a string, a number, or a list whose first text is meant."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return next((str(v) for v in value if isinstance(v, (str, int, float)) and str(v).strip()), None)
    raise _Bad(field, f"expected text, got {type(value).__name__}")


def _categories(value) -> list[str]:
    """'Sports', ['Sports', 'Balls'] or [['Sports', 'Balls'], ...] (2014 dumps: category paths)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and isinstance(value[0], list):
            value = value[0]
        if all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value if str(v).strip()]
    raise _Bad("categories", f"expected text or a list of text, got {type(value).__name__}")


def _number(value, field: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise _Bad(field, f"not a number: {value!r}") from None


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
        try:
            rating = _number(rec["overall"], "overall") if rec.get("overall") is not None else np.nan
            review, summary = _text(rec.get("reviewText"), "reviewText"), _text(rec.get("summary"), "summary")
        except _Bad as e:
            if cfg.skip_bad_rows:
                skipped += 1
                continue
            raise DataError(f"{path}:{n}: field '{e.args[0]}': {e.args[1]} (use --skip-bad-rows to skip such rows)")
        rows["user"].append(str(rec["reviewerID"]))
        rows["item"].append(str(rec["asin"]))
        rows["timestamp"].append(rec["unixReviewTime"])
        rows["rating"].append(rating)
        rows["review"].append(review)
        rows["summary"].append(summary)
    inter = _interactions(pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating", "review", "summary"]))
    images = Path(cfg.images_path) if cfg.images_path else None
    meta = defaultdict(list)
    counts = {path.name: skipped}
    if cfg.items_path:
        mpath = Path(cfg.items_path)
        counts[mpath.name] = counts.get(mpath.name, 0)
        for n, rec in _json_lines(mpath, cfg.skip_bad_rows):
            try:
                if rec is None or "asin" not in rec:
                    raise _Bad("asin", "missing")
                title = _text(rec.get("title"), "title")
                cats = _categories(rec.get("categories") if rec.get("categories") is not None else rec.get("category"))
                text = _text(rec.get("description"), "description")
            except _Bad as e:
                if cfg.skip_bad_rows:
                    counts[mpath.name] += 1
                    continue
                raise DataError(f"{mpath}:{n}: field '{e.args[0]}': {e.args[1]} "
                                "(use --skip-bad-rows to skip such rows)") from None
            url = rec.get("imUrl") or rec.get("imageURLHighRes") or rec.get("imageURL") or rec.get("image")
            if isinstance(url, list):
                url = url[0] if url else None
            img = _find_image(images, str(rec["asin"]))
            if img is None and url and not str(url).startswith(("http://", "https://")) and Path(url).exists():
                img = str(Path(url).resolve())
            meta["item"].append(str(rec["asin"]))
            meta["title"].append(title)
            meta["category"].append("|".join(cats))
            meta["text"].append(text)
            meta["image"].append(img)
    items = _items_frame(meta)
    return RawData("amazon", inter, items, _users_frame(inter["user"]), counts)


