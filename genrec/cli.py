"""`genrec <verb>` (also `python -m genrec <verb>`): one dict from verb to a typed function.

Every verb has `--help`. Options that mirror a config dataclass are generated
from its fields, so a YAML file (`--config`) and `--key value` flags use the
same names. Errors in the user's input print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import typing
from collections.abc import Callable
from pathlib import Path

from genrec.config import DataConfig, from_dict, load_yaml

VERBS: dict[str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None], str]] = {}


def verb(name: str, help: str, args: Callable[[argparse.ArgumentParser], None]):
    def deco(fn):
        VERBS[name] = (fn, args, help)
        return fn
    return deco


def _add_config_args(p: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    """One `--field-name` option per dataclass field (default None = keep the config's value)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        tp = hints[f.name]
        choices = f.metadata.get("choices")
        helptext = f"{f.metadata.get('help', '')} (default: {f.default})" + (
            f"; one of {', '.join(choices)}" if choices else "")
        if tp is bool:
            p.add_argument(flag, dest=f.name, action="store_const", const=True, default=None, help=helptext)
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=helptext)


def _config_from_args(cls: type, ns: argparse.Namespace, base: dict | None, section: str):
    data = dict(base or {})
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name, None)
        if v is not None:
            data[f.name] = v
    return from_dict(cls, data, section)


class _Steps:
    """A progress bar over named pipeline steps."""

    def __init__(self, total: int, quiet: bool = False):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, unit="step", disable=quiet, bar_format="{l_bar}{bar:20}| {n}/{total} [{elapsed}]")

    def __call__(self, msg: str) -> None:
        self.bar.set_description(msg)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.n = self.bar.total  # optional steps may have been skipped
        self.bar.refresh()
        self.bar.close()


# ---------------------------------------------------------------- prepare
def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with data keys (a recipe's `data:` section or a bare mapping)")
    p.add_argument("--out", required=True, help="output dataset directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_args(p, DataConfig)


def prepare_dataset(cfg: DataConfig, out: str | Path, overwrite: bool = False, quiet: bool = False):
    from genrec.atomic import OutputExistsError
    from genrec.data.dataset import PreparedDataset
    from genrec.data.loaders import load_raw

    if Path(out).exists() and not overwrite:  # fail before the work, not after
        raise OutputExistsError(f"{out} already exists (pass --overwrite to replace it)")
    steps = _Steps(7, quiet)
    try:
        steps(f"read {cfg.source}")
        raw = load_raw(cfg)
        ds = PreparedDataset.build(raw, cfg, steps)
        steps("write")
        ds.save(out, overwrite=overwrite)
    finally:
        steps.close()
    return ds


@verb("prepare", "read a raw source into a prepared dataset directory", _prepare_args)
def cmd_prepare(ns: argparse.Namespace) -> int:
    base = None
    if ns.config:
        base = load_yaml(ns.config)
        base = base.get("data", base)
    cfg = _config_from_args(DataConfig, ns, base, "data")
    t0 = time.perf_counter()
    ds = prepare_dataset(cfg, ns.out, ns.overwrite, ns.quiet)
    c, s = ds.meta["counts"], ds.meta["split_sizes"]
    skipped = f", {ds.meta['skipped_rows']:,} bad rows skipped" if ds.meta["skipped_rows"] else ""
    print(f"prepared {cfg.source} -> {ns.out}: {c['users']:,} users, {c['items']:,} items, "
          f"{c['interactions']:,} interactions (train {s['train']:,} / valid {s['valid']:,} / "
          f"test {s['test']:,}){skipped} in {time.perf_counter() - t0:.1f} s")
    return 0


# ---------------------------------------------------------------- inspect
def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--examples", type=int, default=2, help="rendered prompts per family (default 2)")
    p.add_argument("--prompts", default=None, help="template folder (default: the bundled prompts/)")
    p.add_argument("--seed", type=int, default=0)


def dataset_report(ds, n_examples: int = 2, prompts: str | None = None, seed: int = 0) -> str:
    import numpy as np

    from genrec.data.examples import example_values
    from genrec.prompts import load_templates, render

    m = ds.meta
    c, s, r = m["counts"], m["split_sizes"], m["raw_counts"]
    lens = np.diff(ds._bounds)
    lines = [
        f"dataset   {m['name']} (source {m['source']}, schema v{m['schema_version']}, created {m['created']})",
        f"raw       {r['users']:,} users, {r['items']:,} items, {r['interactions']:,} interactions",
        f"k-core {m['config']['k_core']}  {c['users']:,} users, {c['items']:,} items, {c['interactions']:,} interactions"
        f" (density {c['interactions'] / max(1, c['users'] * c['items']):.4f})",
        f"history   mean {lens.mean():.1f}, median {np.median(lens):.0f}, min {lens.min()}, max {lens.max()} items per user",
        f"split     train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,} (leave-one-out)",
        f"IDs       items: {m['item_id_scheme']}{'  (LEAKY: sequential IDs reveal the next item)' if m['leaky_ids'] else ''}"
        f", users: {m['user_id_scheme']}",
        f"content   images: {'yes' if m['has_images'] else 'no'}, reviews: {'yes' if m['has_reviews'] else 'no'},"
        f" knowledge-graph facts: {'yes' if m['has_facts'] else 'no'}",
        f"direct    {ds.negatives.shape[1] + 1} candidates per user (1 held-out + {ds.negatives.shape[1]} sampled)",
    ]
    if m["skipped_rows"]:
        lines.append(f"skipped   {m['skipped_rows']:,} bad rows")
    rng = np.random.default_rng(seed)
    images = set(ds.items.index[ds.items["image"].notna()]) if m["has_images"] else None
    users = rng.choice(ds.n_users, size=min(ds.n_users, n_examples), replace=False)
    for fam, templates in load_templates(prompts).items():
        lines.append(f"\n[{fam}] {sum(t.seen for t in templates)} seen + {sum(not t.seen for t in templates)} unseen templates")
        for j, u in enumerate(users):
            t = templates[j % len(templates)]
            v = example_values(ds, t, int(u), "test", rng, max_history=8, n_candidates=5)
            if v is None:
                continue
            out = render(t, v, lambda i: ds.item_ids[i], images)
            lines.append(f"  {t.id}: {out.source}\n  {' ' * len(t.id)}  -> {out.target}")
    return "\n".join(lines)


@verb("inspect", "print a prepared dataset's statistics and sample prompts", _inspect_args)
def cmd_inspect(ns: argparse.Namespace) -> int:
    from genrec.data.dataset import PreparedDataset

    print(dataset_report(PreparedDataset.load(ns.data), ns.examples, ns.prompts, ns.seed))
    return 0


# ---------------------------------------------------------------- quickstart
def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="genrec-quickstart", help="folder for the quickstart's outputs")


@verb("quickstart", "prepare the bundled MovieLens-100K and show what genrec sees", _quickstart_args)
def cmd_quickstart(ns: argparse.Namespace) -> int:
    from genrec.data.dataset import PreparedDataset

    work = Path(ns.workdir)
    data = work / "ml-100k"
    if (data / "meta.json").exists():
        print(f"using the prepared dataset in {data}")
        ds = PreparedDataset.load(data)
    else:
        t0 = time.perf_counter()
        ds = prepare_dataset(DataConfig(), data)
        print(f"prepared MovieLens-100K -> {data} in {time.perf_counter() - t0:.1f} s")
    print(dataset_report(ds))
    return 0


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrec", description="Multimodal generative recommendation "
                                     "with adapter-tuned language models.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (_, add_args, help) in VERBS.items():
        add_args(sub.add_parser(name, help=help, description=help))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not ns.verb:
        parser.print_help()
        return 2
    try:
        return VERBS[ns.verb][0](ns)
    except KeyboardInterrupt:
        print("genrec: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as e:
        if os.environ.get("GENREC_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"genrec {ns.verb}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
