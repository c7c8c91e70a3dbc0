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
    p.add_argument("--steps", type=int, default=400, help="training steps (default 400: about 9 CPU minutes)")
    p.add_argument("--retrain", action="store_true", help="train again even if the workdir has a run")
    p.add_argument("--explain-users", type=int, default=20, help="users for the explanation metrics")
    p.add_argument("--eval-users", type=int, default=None, help="test users for ranking metrics (default: all)")


@verb("quickstart", "prepare MovieLens-100K, train SmolLM2 + LoRA for a few minutes, evaluate, show "
      "recommendations", _quickstart_args)
def cmd_quickstart(ns: argparse.Namespace) -> int:
    from genrec.quickstart import run

    if ns.steps < 1 or ns.explain_users < 1 or (ns.eval_users is not None and ns.eval_users < 1):
        raise ValueError("--steps, --explain-users and --eval-users must be >= 1")
    run(ns.workdir, ns.steps, ns.retrain, ns.explain_users, ns.eval_users)
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

    data = _need_data(ns)
    ds = PreparedDataset.load(data)
    if ns.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    paths = [p if isinstance(p, str) and p else None for p in ds.items["image"]]
    out = Path(ns.out) if ns.out else default_path(data, ns.clip_model, ns.clip_pretrained)
    t0 = time.perf_counter()
    feats, rep = extract_features(paths, out, ns.clip_model, ns.clip_pretrained, ns.device, ns.batch_size,
                                  overwrite=ns.overwrite, progress=not ns.quiet)
    if rep["cache_hit"]:
        print(f"cache hit: {out} matches {ns.clip_model}/{ns.clip_pretrained} and the current images "
              f"({int(feats.mask.sum()):,} items with features) in {time.perf_counter() - t0:.2f} s")
        return 0
    for i, why in rep["failed"][:5]:
        print(f"  no features for item {ds.item_ids[i]}: {why}", file=sys.stderr)
    missing = sum(1 for _, why in rep["failed"] if why.endswith("FileNotFoundError"))
    print(f"features -> {out}: {rep['encoded']:,} images encoded, {rep['masked']:,} items masked "
          f"({rep['no_image']:,} without an image, {missing:,} missing, {len(rep['failed']) - missing:,} unreadable) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


# ---------------------------------------------------------------- info
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


@verb("info", "print a recipe's trainable vs total parameters (no weights needed)", _recipe_args)
def cmd_info(ns: argparse.Namespace) -> int:
    from genrec.modeling.model import model_info

    r = _load_recipe(ns)
    info = model_info(r)
    print(f"recipe    {r.name}: {r.description}")
    print(f"backbone  {info['backbone']} ({info['kind']}), adapter {r.adapter.type}, "
          f"k = {r.model.visual_tokens} visual tokens from {r.model.clip_model}")
    for k, v in info["groups"].items():
        print(f"  {k:<20} {v:>13,}")
    print(f"trainable {info['trainable']:,} of {info['total']:,} parameters ({info['percent']:.2f} %)")
    return 0


# ---------------------------------------------------------------- train
def _train_args(p: argparse.ArgumentParser) -> None:
    _recipe_args(p)
    p.add_argument("--data", required=True, help="prepared dataset directory (`genrec prepare`)")
    p.add_argument("--out", required=True, help="run directory: last/ and best/ checkpoints")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--features", help="CLIP feature cache (default: the dataset's for the recipe's encoder)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true")


@verb("train", "fine-tune a recipe's adapters on a prepared dataset (runs under `accelerate launch` too)",
      _train_args)
def cmd_train(ns: argparse.Namespace) -> int:
    import torch

    from genrec.train import train

    if ns.threads:
        torch.set_num_threads(ns.threads)
    recipe = _load_recipe(ns)
    import shlex
    s = train(recipe, ns.data, ns.out, resume=ns.resume, features=ns.features, progress=not ns.quiet,
              command=shlex.join(["genrec", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else None)
    best = f"best valid HR@10 {s['best_valid_hr10']:.4f} at step {s['best_step']}" if s["best_step"] else "no validation"
    print(f"trained {recipe.name}: {s['steps']} steps ({s['examples']:,} examples, {s['examples_per_s']} ex/s, "
          f"{s['seconds']} s, peak memory {s['peak_rss_mb']:,} MB), final loss {s['final_loss']:.4f}, {best} -> "
          f"{ns.out}/best, {ns.out}/last")
    return 0


# ---------------------------------------------------------------- evaluate
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_pos", nargs="?", metavar="CHECKPOINT", help="checkpoint directory")
    p.add_argument("--checkpoint", help="checkpoint directory (same as CHECKPOINT)")
    p.add_argument("--data", help="prepared dataset (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="test", choices=["test", "valid"])
    p.add_argument("--users", type=int, default=None, help="evaluate a fixed random subset of N users")
    p.add_argument("--families", default="sequential,direct,explanation")
    p.add_argument("--templates", default="first",
                   help="first (one seen + one unseen per family), first-seen, seen, unseen, all, or template ids "
                        "like seq-1,dir-4")
    p.add_argument("--max-history", type=int, default=None, help="history items per prompt (default: recipe's)")
    p.add_argument("--keep-history", action="store_true", help="do not exclude the user's earlier items from rankings")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-beams", type=int, default=None, help="text IDs: beams (default 10)")
    p.add_argument("--out", help="write results JSON here (and a .md table beside it)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--quiet", action="store_true")


def load_checkpoint(ckpt: str, data: str | None, device: str | None = None):
    """(model, dataset, features) for a checkpoint, checked against the dataset."""
    from genrec.recommender import Recommender

    rec = Recommender.from_pretrained(ckpt, data, device)
    return rec.model, rec.ds, rec.features


@verb("evaluate", "HR/NDCG (sequential, direct) and BLEU/ROUGE (explanation) of a checkpoint", _evaluate_args)
def cmd_evaluate(ns: argparse.Namespace) -> int:
    import json

    import torch

    from genrec.files import atomic_write_text
    from genrec.evaluate import evaluate, results_table

    if ns.threads:
        torch.set_num_threads(ns.threads)
    ck = getattr(ns, "checkpoint_pos", None) or ns.checkpoint
    if not ck:
        raise ValueError("no checkpoint given: pass CHECKPOINT or --checkpoint DIR")
    fams = tuple(f.strip() for f in ns.families.split(",") if f.strip())
    bad = [f for f in fams if f not in ("sequential", "direct", "explanation")]
    if bad:
        raise ValueError(f"unknown family {bad[0]!r} (allowed: sequential, direct, explanation)")
    if ns.users is not None and ns.users < 1:
        raise ValueError("--users must be >= 1")
    model, ds, feats = load_checkpoint(ck, ns.data, ns.device)
    t0 = time.perf_counter()
    res = evaluate(model, ds, feats, ns.split, ns.users, fams, ns.templates,
                   ns.max_history or model.recipe.train.max_history, not ns.keep_history, ns.batch_size,
                   ns.num_beams, progress=not ns.quiet)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["users_per_s"] = round(res["users"] * len(fams) / max(res["seconds"], 1e-9), 3)
    from genrec.train import peak_memory
    res.update(peak_memory())
    res["checkpoint"] = str(ck)
    from genrec.train import training_record
    tr = training_record(ck)
    if tr is not None:  # the run's own summary, written by genrec train beside the checkpoint
        res["training"] = tr
    table = results_table(res)
    print(table)
    print(f"evaluated {res['users']} users in {res['seconds']} s, peak memory {res['peak_rss_mb']:,} MB")
    if ns.out:
        atomic_write_text(ns.out, json.dumps(res, indent=2) + "\n")
        atomic_write_text(Path(ns.out).with_suffix(".md"), table)
    return 0


# ---------------------------------------------------------------- recommend / ask
def _recommend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory (e.g. genrec-quickstart/run/best)")
    p.add_argument("--user", required=True, help="user id (as `genrec inspect` / GET /users shows them)")
    p.add_argument("-k", type=int, default=10, help="how many items (default: 10)")
    p.add_argument("--history", help="comma-separated item ids to use instead of the user's own history")
    p.add_argument("--keep-history", action="store_true", help="allow items the user already has")
    p.add_argument("--choose", help="comma-separated candidate item ids: rank these instead (direct task)")
    p.add_argument("--explain", metavar="ITEM", help="explain why the user would like ITEM instead")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _print_items(items: list[dict], as_json: bool) -> None:
    import json
    if as_json:
        print(json.dumps(items, indent=2))
        return
    for n, x in enumerate(items, 1):
        year = f" ({x['year']})" if "year" in x else ""
        print(f"{n:>3}. {x['title']}{year}  [item {x['id']}]  score {x['score']:.4f}")


def _ids(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@verb("recommend", "top-k items for a user (or rank candidates, or explain an item) from a checkpoint",
      _recommend_args)
def cmd_recommend(ns: argparse.Namespace) -> int:
    import json

    from genrec.recommender import Recommender

    if ns.k < 1:
        raise ValueError("-k must be >= 1")
    if ns.choose and ns.explain:
        raise ValueError("give --choose or --explain, not both")
    rec = Recommender.from_pretrained(ns.checkpoint, ns.data, ns.device)
    if ns.explain:
        text = rec.explain(ns.user, ns.explain)
        print(json.dumps({"user": ns.user, "item": ns.explain, "text": text}) if ns.json else text)
    elif ns.choose:
        _print_items(rec.choose(ns.user, _ids(ns.choose)), ns.json)
    else:
        _print_items(rec.recommend(ns.user, ns.k, not ns.keep_history,
                                   _ids(ns.history) if ns.history else None), ns.json)
    return 0


def _ask_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("text", help='the prompt, e.g. "user_23 watched 4011, 3531, 887. What should they watch next?"')
    p.add_argument("-k", type=int, default=5, help="items, when the answer is items (default: 5)")
    p.add_argument("--answer", default="auto", choices=["auto", "item", "text"],
                   help="item (constrained to the catalogue), text, or auto (item when it asks for one)")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--device", help="torch device")
    p.add_argument("--json", action="store_true", help="print JSON")


@verb("ask", "a free-text prompt to a checkpoint; item answers are constrained to real items", _ask_args)
def cmd_ask(ns: argparse.Namespace) -> int:
    import json

    from genrec.recommender import Recommender

    rec = Recommender.from_pretrained(ns.checkpoint, ns.data, ns.device)
    out = rec.ask(ns.text, ns.k, ns.answer)
    if ns.json:
        print(json.dumps(out, indent=2))
    elif out["answer"] == "item":
        _print_items(out["items"], False)
    else:
        print(out["text"])
    return 0


# ---------------------------------------------------------------- serve / demo
def _serve_args(p: argparse.ArgumentParser, demo: bool = False) -> None:
    if demo:
        p.add_argument("checkpoint", nargs="?", default=None,
                       help="checkpoint directory (default: the quickstart's, genrec-quickstart/run/best)")
    else:
        p.add_argument("checkpoint", help="checkpoint directory (e.g. genrec-quickstart/run/best)")
    p.add_argument("--data", help="prepared dataset directory (default: the one the checkpoint names)")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm"],
                   help="hf: transformers, every backbone (default); vllm: decoder-only + atomic item tokens, "
                        "batches concurrent requests (needs vLLM: see README 'Serving')")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only; "
                   "any other address needs --api-key)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every route "
                   "(default: $GENREC_API_KEY; none on loopback)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another Host name a loopback server answers to (repeatable; default: localhost names only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--device", help="torch device for the hf engine (default: cuda if available, else cpu)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may wait for the engine")
    p.add_argument("--max-batch", type=int, default=32, help="most requests handed to the engine at once")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def _start_server(ns: argparse.Namespace, ck: str, banner: str) -> int:
    import torch

    from genrec.serving.engine import load_engine
    from genrec.serving.server import serve

    if not 0 < ns.port < 65536:
        raise ValueError(f"--port must be 1..65535, got {ns.port}")
    if ns.max_batch < 1 or ns.timeout <= 0:
        raise ValueError("--max-batch must be >= 1 and --timeout > 0")
    from genrec.serving.guard import check_listen
    api_key = ns.api_key or os.environ.get("GENREC_API_KEY") or None
    check_listen(ns.host, api_key)  # before loading anything
    if ns.threads:
        torch.set_num_threads(ns.threads)
    print(f"loading {ck} with the {ns.engine} engine ...", file=sys.stderr)
    engine = load_engine(ns.engine, ck, ns.data, ns.device)
    print(banner.format(url=f"http://{ns.host}:{ns.port}"), file=sys.stderr)
    try:
        serve(engine, ns.host, ns.port, ns.timeout, ns.max_batch, checkpoint=str(ck), api_key=api_key,
              allow_hosts=tuple(ns.allow_host))
    finally:
        engine.close()
    return 0


@verb("serve", "serve a checkpoint over HTTP (recommend/choose/explain/ask + OpenAI-style chat)", _serve_args)
def cmd_serve(ns: argparse.Namespace) -> int:
    return _start_server(ns, ns.checkpoint, "genrec API on {url} (docs: {url}/docs, chat page: {url}/) — Ctrl-C stops")


@verb("demo", "chat with a checkpoint in a web page (default: the quickstart's)", lambda p: _serve_args(p, True))
def cmd_demo(ns: argparse.Namespace) -> int:
    ck = ns.checkpoint or "genrec-quickstart/run/best"
    if not (Path(ck) / "config.yaml").is_file():
        hint = " (run `genrec quickstart` first to train it)" if ns.checkpoint is None else ""
        raise ValueError(f"{ck}: no genrec checkpoint there{hint}")
    return _start_server(ns, ck, "genrec chat demo: open {url}/ in a browser — Ctrl-C stops")


# ---------------------------------------------------------------- entry point
RECIPE_VERBS = {"info", "train"}  # verbs that take --section.key value overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrec", description="Multimodal generative recommendation "
                                     "with adapter-tuned language models.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (_, add_args, help) in VERBS.items():
        extra = {"epilog": recipe_keys_help(), "formatter_class": argparse.RawDescriptionHelpFormatter} \
            if name in RECIPE_VERBS else {}
        add_args(sub.add_parser(name, help=help, description=help, **extra))
    return parser


def recipe_keys_help(width: int = 100) -> str:
    """Every recipe key with its default and help text, for `genrec train --help`."""
    import textwrap

    from genrec.config import Recipe
    lines = ["recipe keys (override any of them as --section.key value, e.g. --train.steps 50):"]
    for sec in ("data", "model", "adapter", "train"):
        cls = typing.get_type_hints(Recipe)[sec]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            md = f.metadata
            text = md.get("help", "")
            if md.get("choices"):
                text += f" ({' | '.join(md['choices'])})"
            lines.append(f"  {sec}.{f.name} = {default!r}")
            lines += textwrap.wrap(text, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()  # keep the CLI's own output readable; errors still show
    argv = list(sys.argv[1:] if argv is None else argv)
    overrides: list[str] = []
    if argv and argv[0] in RECIPE_VERBS:  # pull out --section.key value pairs before argparse
        keep, i = [], 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--") and "." in a.split("=", 1)[0]:
                overrides.append(a)
                if "=" not in a and i + 1 < len(argv):
                    overrides.append(argv[i + 1])
                    i += 1
            else:
                keep.append(a)
            i += 1
        argv = keep
    ns = parser.parse_args(argv)
    ns.overrides = overrides
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
