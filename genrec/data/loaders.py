"""Loaders: every supported raw source → one `RawData` (string ids, time stamps, item metadata).

Sources: the bundled MovieLens-100K and MovieLens-1M, raw MovieLens folders
(genrec.data.movielens), the Amazon review 5-core format of P5/VIP5
(genrec.data.amazon) and a generic CSV/TSV/Parquet table (genrec.data.table).
Nothing is downloaded. Bad input raises `DataError` naming the file, line and field.
"""
from __future__ import annotations

from genrec.config import DataConfig
from genrec.data.amazon import load_amazon
from genrec.data.movielens import load_movielens_1m, load_movielens_100k, load_movielens_raw
from genrec.data.raw import DataError, RawData, english_title
from genrec.data.table import load_table

__all__ = ["DataError", "RawData", "english_title", "load_raw", "LOADERS"]

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
