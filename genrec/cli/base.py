"""The verb registry and what every verb shares: options generated from the config dataclasses,
recipe overrides (`--section.key value`), the thread option."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable

from genrec.config import from_dict

THREADS_HELP = "torch CPU threads (default: the CPUs not already busy with other processes)"
VERBS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str]] = {}


def verb(name: str, help: str, args: Callable[[argparse.ArgumentParser], None]):
    def deco(fn):
        VERBS[name] = (fn, args, help)
        return fn
    return deco


def _add_config_args(p: argparse.ArgumentParser, cls: type, section: str = "data") -> None:
    """One option per dataclass field, spelt `--section.key` as every verb's recipe overrides are
    (`--data.k_core 5`); the short `--k-core` form is kept as an alias (default None = keep the
    config's value)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flags = (f"--{section}.{f.name}", "--" + f.name.replace("_", "-"))
        tp = hints[f.name]
        choices = f.metadata.get("choices")
        helptext = f"{f.metadata.get('help', '')} (default: {f.default})" + (
            f"; one of {', '.join(choices)}" if choices else "")
        if tp is bool:
            p.add_argument(*flags, dest=f.name, action="store_const", const=True, default=None, help=helptext)
        else:
            p.add_argument(*flags, dest=f.name, default=None, metavar=f.name.upper(), help=helptext)


def _config_from_args(cls: type, ns: argparse.Namespace, base: dict | None, section: str):
    data = dict(base or {})
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name, None)
        if v is not None:
            data[f.name] = v
    return from_dict(cls, data, section)


def _recipe_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe_pos", nargs="?", metavar="RECIPE", help="recipe YAML (adapters/*.yaml)")
    p.add_argument("--recipe", help="recipe YAML (same as RECIPE)")


def parse_overrides(rest: list[str]) -> dict:
    """`--section.key value` / `--section.key=value` pairs → {"section.key": value}."""
    from genrec.config import parse_override

    out, i = {}, 0
    while i < len(rest):
        a = rest[i]
        if not a.startswith("--") or "." not in a:
            raise ValueError(f"unexpected argument {a!r} (overrides look like --train.steps 50)")
        key, eq, val = a[2:].partition("=")
        if not eq:
            if i + 1 >= len(rest):
                raise ValueError(f"override {a} needs a value")
            val = rest[i + 1]
            i += 1
        out[key.replace("-", "_")] = parse_override(val)
        i += 1
    return out


def _load_recipe(ns: argparse.Namespace):
    from genrec.config import load_recipe

    path = getattr(ns, "recipe_pos", None) or ns.recipe
    if not path:
        raise ValueError("no recipe given: pass RECIPE or --recipe adapters/<name>.yaml")
    return load_recipe(path, parse_overrides(getattr(ns, "overrides", [])))


