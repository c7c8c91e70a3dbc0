"""Data verbs: prepare, inspect, features."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genrec.cli.base import THREADS_HELP, _add_config_args, _config_from_args, verb
from genrec.config import DataConfig, load_yaml
from genrec.runtime import thread_policy


# ---------------------------------------------------------------- prepare
def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file with data keys (a recipe's `data:` section or a bare mapping)")
    p.add_argument("--out", required=True, help="output dataset directory (written atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_config_args(p, DataConfig)


@verb("prepare", "read a raw source into a prepared dataset directory", _prepare_args)
def cmd_prepare(ns: argparse.Namespace) -> int:
    from genrec.data.prepare import prepare_dataset

    base = None
    if ns.config:
        base = load_yaml(ns.config)
        base = base.get("data", base)
    cfg = _config_from_args(DataConfig, ns, base, "data")
    t0 = time.perf_counter()
    ds = prepare_dataset(cfg, ns.out, ns.overwrite, ns.quiet)  # checks --out before any work
    c, s = ds.meta["counts"], ds.meta["split_sizes"]
    by_file = ", ".join(f"{f}: {n:,}" for f, n in (ds.meta.get("skipped_by_file") or {}).items() if n)
    skipped = f", {ds.meta['skipped_rows']:,} bad rows skipped ({by_file})" if ds.meta["skipped_rows"] else ""
    for note in ds.meta.get("notes") or []:
        print(f"note: {note}", file=sys.stderr)
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


@verb("inspect", "print a prepared dataset's statistics and sample prompts", _inspect_args)
def cmd_inspect(ns: argparse.Namespace) -> int:
    from genrec.data.report import dataset_report

    from genrec.data.dataset import PreparedDataset

    print(dataset_report(PreparedDataset.load(ns.data), ns.examples, ns.prompts, ns.seed))
    return 0


# ---------------------------------------------------------------- features
def _features_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_pos", nargs="?", metavar="DATA", help="prepared dataset directory")
    p.add_argument("--data", help="prepared dataset directory (same as DATA)")
    p.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--clip-pretrained", default="openai",
                   help="open_clip pretrained tag, a local checkpoint file, or 'none' for RANDOM weights "
                        "(testing only; no pretrained CLIP is available offline)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", help="cache file (default <data>/features/<model>-<pretrained>.safetensors)")
    p.add_argument("--overwrite", action="store_true", help="rebuild an existing cache")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true")


def _need_data(ns: argparse.Namespace) -> str:
    d = getattr(ns, "data_pos", None) or ns.data
    if not d:
        raise ValueError("no dataset given: pass DATA or --data DIR (a `genrec prepare` output)")
    return d


@verb("features", "encode every item image once with a frozen CLIP model (cached, resumable)", _features_args)
def cmd_features(ns: argparse.Namespace) -> int:
    from genrec.data.dataset import PreparedDataset
    from genrec.vision import default_path, extract_features

    thread_policy(ns.threads)
    data = _need_data(ns)
    ds = PreparedDataset.load(data)
    if ns.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    paths = [p if isinstance(p, str) and p else None for p in ds.items["image"]]
    out = Path(ns.out) if ns.out else default_path(data, ns.clip_model, ns.clip_pretrained)
    from genrec.files import check_output_file
    check_output_file(out, lambda p: True)  # a path genrec can write (whether it may replace it: extract_features)
    t0 = time.perf_counter()
    feats, rep = extract_features(paths, out, ns.clip_model, ns.clip_pretrained, ns.device, ns.batch_size,
                                  overwrite=ns.overwrite, progress=not ns.quiet)
    if rep["cache_hit"]:
        print(f"cache hit: {out} matches {ns.clip_model}/{ns.clip_pretrained} and the current images "
              f"({int(feats.mask.sum()):,} items with features) in {time.perf_counter() - t0:.2f} s")
        return 0
    for i, why in rep["failed"][:5]:
        print(f"  no features for item {ds.item_raw_ids[i]}: {why}", file=sys.stderr)
    missing = sum(1 for _, why in rep["failed"] if why.endswith("FileNotFoundError"))
    print(f"features -> {out}: {rep['encoded']:,} images encoded, {rep['masked']:,} items masked "
          f"({rep['no_image']:,} without an image, {missing:,} missing, {len(rep['failed']) - missing:,} unreadable) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


