"""Configuration: frozen dataclasses with the same keys as the YAML recipes.

One loader (`from_dict`) validates every section: an unknown key, a value of
the wrong type or a value outside its allowed set raises `ConfigError` (a
`ValueError`) naming the key, the bad value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text (and allowed values) as metadata; the CLI reads both."""
    md = {"help": help}
    if choices:
        md["choices"] = choices
    return field(default=default, metadata=md)


SOURCES = ("movielens-100k", "movielens-1m", "amazon", "movielens-raw", "table")
ITEM_ID_SCHEMES = ("random", "sequential", "collaborative")
USER_ID_SCHEMES = ("random", "sequential")


@dataclass(frozen=True)
class DataConfig:
    """How a raw source becomes a prepared dataset directory."""

    source: str = _f("movielens-100k", "raw data source", SOURCES)
    path: str | None = _f(None, "reviews / ratings / interactions file or folder (bundled sources: optional)")
    items_path: str | None = _f(None, "item metadata file (amazon) or items table (table)")
    images_path: str | None = _f(None, "folder of <item>.jpg|png images fetched beforehand")
    k_core: int = _f(5, "keep users and items with at least this many interactions")
    seed: int = _f(0, "seed for random IDs and sampled negatives")
    item_ids: str = _f("random", "item ID scheme (sequential leaks the answer)", ITEM_ID_SCHEMES)
    user_ids: str = _f("random", "user ID scheme", USER_ID_SCHEMES)
    n_candidates: int = _f(100, "direct task: held-out item + (n_candidates - 1) sampled negatives")
    skip_bad_rows: bool = _f(False, "skip and count malformed rows instead of failing")
    cluster_k: int = _f(20, "collaborative IDs: clusters per level of the spectral tree")
    cluster_leaf: int = _f(50, "collaborative IDs: largest leaf cluster")

    def __post_init__(self) -> None:
        if self.k_core < 1:
            raise ConfigError(f"data.k_core must be >= 1, got {self.k_core}")
        if self.n_candidates < 2:
            raise ConfigError(f"data.n_candidates must be >= 2, got {self.n_candidates}")
        if self.cluster_k < 2 or self.cluster_leaf < 1:
            raise ConfigError("data.cluster_k must be >= 2 and data.cluster_leaf >= 1")
        if self.source in ("amazon", "movielens-raw", "table") and not self.path:
            raise ConfigError(f"data.path is required for source '{self.source}'")


def _check_type(section: str, key: str, value: Any, tp: Any) -> Any:
    """Coerce/validate one value against a dataclass field type (str/int/float/bool, optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(section, key, value, inner[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{section}.{key} must be a list, got {value!r}")
        return tuple(_check_type(section, key, v, args[0]) for v in value) if args else tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{section}.{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{section}.{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{section}.{key} must be an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{section}.{key} must be an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{section}.{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{section}.{key} must be a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict | None, section: str) -> Any:
    """Build the frozen dataclass `cls` from a mapping, validating every key."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key '{section}.{unknown[0]}' (allowed: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            value = from_dict(hints[name], value, f"{section}.{name}")
        else:
            value = _check_type(section, name, value, hints[name])
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            raise ConfigError(
                f"{section}.{name} = {value!r} is not allowed (allowed: {', '.join(allowed)})"
            )
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """The YAML-ready mapping of a config dataclass (tuples become lists)."""
    def clean(v: Any) -> Any:
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    return {k: clean(v) for k, v in dataclasses.asdict(obj).items()}


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a one-line error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> Any:
    """A `--key value` override's value, parsed as YAML scalar (so 3 → int, true → bool)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
