"""Model verbs: info, train, evaluate, quickstart."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genrec.cli.base import THREADS_HELP, _load_recipe, _recipe_args, verb
from genrec.runtime import thread_policy


# ---------------------------------------------------------------- info
@verb("info", "print a recipe's trainable vs total parameters (no weights needed)", _recipe_args)
def cmd_info(ns: argparse.Namespace) -> int:
    from genrec.modeling.info import model_info

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
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true")


@verb("train", "fine-tune a recipe's adapters on a prepared dataset (runs under `accelerate launch` too)",
      _train_args)
def cmd_train(ns: argparse.Namespace) -> int:
    from genrec.train import train

    thread_policy(ns.threads)
    recipe = _load_recipe(ns)
    out = Path(ns.out)
    if out.exists() and not out.is_dir():  # checked before any work: a run folder is written at step 100
        raise ValueError(f"cannot write output directory {out}: a file of that name exists")
    from genrec.files import check_output_file
    check_output_file(out / "train_summary.json", lambda p: True)  # its parent must be writable
    import shlex
    s = train(recipe, ns.data, ns.out, resume=ns.resume, features=ns.features, progress=not ns.quiet,
              command=shlex.join(["genrec", *sys.argv[1:]]) if sys.argv[1:2] == ["train"] else None)
    best = f"best valid HR@10 {s['best_valid_hr10']:.4f} at step {s['best_step']}" if s["best_step"] else "no validation"
    counts = (f"{s['examples']:,} examples, {s['seconds']} s" if s["seconds"] is not None else
              f"{s['seconds_this_part']} s since step {s['resumed_from']}")
    from accelerate import PartialState
    if PartialState().is_main_process:  # one line for a multi-process run (the others' best is stale)
        print(f"trained {recipe.name}: {s['steps']} steps ({counts}, {s['examples_per_s']} ex/s, peak memory "
              f"{s['peak_rss_mb']:,} MB), final loss {s['final_loss']:.4f}, {best} -> {ns.out}/best, {ns.out}/last")
    return 0


# ---------------------------------------------------------------- evaluate
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_pos", nargs="*", metavar="CHECKPOINT",
                   help="checkpoint directory; two or more (one recipe, different seeds) are ranked as one "
                        "ensemble: the mean of their log-probabilities (sequential and direct families)")
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
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--quiet", action="store_true")


def load_checkpoint(ckpt: str, data: str | None, device: str | None = None):
    """(model, dataset, features) for a checkpoint, checked against the dataset."""
    from genrec.recommender import Recommender

    rec = Recommender.from_pretrained(ckpt, data, device)
    return rec.model, rec.ds, rec.features


@verb("evaluate", "HR/NDCG (sequential, direct) and BLEU/ROUGE (explanation) of a checkpoint", _evaluate_args)
def cmd_evaluate(ns: argparse.Namespace) -> int:
    import json

    from genrec.evaluate import evaluate, results_table
    from genrec.files import atomic_write_text

    thread_policy(ns.threads)
    cks = list(getattr(ns, "checkpoint_pos", None) or []) + ([ns.checkpoint] if ns.checkpoint else [])
    if not cks:
        raise ValueError("no checkpoint given: pass CHECKPOINT or --checkpoint DIR")
    ck = cks[0]
    fams = tuple(f.strip() for f in ns.families.split(",") if f.strip())
    bad = [f for f in fams if f not in ("sequential", "direct", "explanation")]
    if bad:
        raise ValueError(f"unknown family {bad[0]!r} (allowed: sequential, direct, explanation)")
    if len(cks) > 1 and "explanation" in fams:
        raise ValueError("an ensemble of checkpoints ranks items only: pass --families sequential,direct")
    if ns.users is not None and ns.users < 1:
        raise ValueError("--users must be >= 1")
    if ns.out:  # checked before the evaluation: replace only genrec's own result (and its table)
        from genrec.checkpoint import is_result_file
        from genrec.files import check_output_file
        ours = is_result_file(ns.out)
        check_output_file(ns.out, is_result_file)
        check_output_file(Path(ns.out).with_suffix(".md"), lambda p: ours)
    model, ds, feats = load_checkpoint(ck, ns.data, ns.device)
    if len(cks) > 1:
        from genrec.modeling.ensemble import Ensemble
        data = ns.data or str(ds.path)  # every member is checked against the first member's dataset
        model = Ensemble([model] + [load_checkpoint(c, data, ns.device)[0] for c in cks[1:]])
    t0 = time.perf_counter()
    res = evaluate(model, ds, feats, ns.split, ns.users, fams, ns.templates,
                   ns.max_history or model.recipe.tasks.max_history, not ns.keep_history, ns.batch_size,
                   ns.num_beams, progress=not ns.quiet)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["users_per_s"] = round(res["users"] * len(fams) / max(res["seconds"], 1e-9), 3)
    from genrec.runtime import peak_memory
    res.update(peak_memory())
    res["checkpoint"] = str(ck)
    from genrec.checkpoint import training_record
    tr = training_record(ck)
    if tr is not None:  # the run's own summary, written by genrec train beside the checkpoint
        res["training"] = tr
    if len(cks) > 1:  # each member's own training summary (their seeds ran side by side or one after another)
        res["checkpoint"] = [str(c) for c in cks]
        res["ensemble"] = {"seeds": model.seeds, "training": [training_record(c) for c in cks]}
    table = results_table(res)
    print(table)
    print(f"evaluated {res['users']} users in {res['seconds']} s, peak memory {res['peak_rss_mb']:,} MB")
    if ns.out:
        atomic_write_text(ns.out, json.dumps(res, indent=2) + "\n")
        atomic_write_text(Path(ns.out).with_suffix(".md"), table)
    return 0


# ---------------------------------------------------------------- quickstart
def _quickstart_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="genrec-quickstart", help="folder for the quickstart's outputs")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    p.add_argument("--retrain", action="store_true", help="train again even if the workdir has a run")
    p.add_argument("--explain-users", type=int, default=20, help="users for the explanation metrics")
    p.add_argument("--eval-users", type=int, default=None, help="test users for ranking metrics (default: all)")
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)


@verb("quickstart", "prepare MovieLens-100K, train SmolLM2 + LoRA for a few minutes, evaluate, show "
      "recommendations", _quickstart_args)
def cmd_quickstart(ns: argparse.Namespace) -> int:
    from genrec.quickstart import run

    if (ns.steps is not None and ns.steps < 1) or ns.explain_users < 1 or (ns.eval_users is not None and ns.eval_users < 1):
        raise ValueError("--steps, --explain-users and --eval-users must be >= 1")
    thread_policy(ns.threads)
    run(ns.workdir, ns.steps, ns.retrain, ns.explain_users, ns.eval_users)
    return 0


