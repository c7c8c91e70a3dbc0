"""Share of the CPU's peak: FLOPs counted from the model's shapes over wall time, for training steps
and for one-pass ranking, beside a matrix product measured in the same run on the same threads.

    .venv/bin/python eval/bench_flops.py --recipe adapters/lora-smollm2.yaml --data data/ml-100k --threads 1
    (recipe overrides as in `genrec train`: ... --model.layers 10)

What is counted (a floor: norms, softmax, activations, the optimizer and data handling are not):
- each decoder token: 2 x the weights of every matrix product in the layers (LoRA's included) and
  attention's 2 x layers x hidden x context (causal: QK^T and AV over the tokens before it);
- training: the backward through frozen weights (input gradients: 1x the forward again) plus the
  trainable weights' gradients (LoRA, item rows: 1x their forward again), so ~2x-3x the forward;
- the output layer: the vocabulary head at every token for text targets; the atomic item head
  (2 x hidden x items) at each scored position, dense item positions included.
Writes eval/results/flops.json (and .md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def matmul_peak(dtype, seconds: float = 1.5, sizes=(512, 1024, 2048)) -> float:
    """GFLOP/s of the fastest n^3 matrix product in `dtype` on the current threads (over a few sizes)."""
    import torch
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        for _ in range(2):
            a @ b
        k, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            k += 1
        best = max(best, 2 * n ** 3 * k / (time.perf_counter() - t0) / 1e9)
    return best


def shapes(model) -> dict:
    """Weights per token of the layers' matrix products (frozen and trainable), and the sizes that matter."""
    import torch
    cfg = model.base_model().config
    frozen = trainable = 0
    for name, m in model.backbone.named_modules():
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name:
            if m.weight.requires_grad:
                trainable += m.weight.numel()
            else:
                frozen += m.weight.numel()
    return {"frozen": frozen, "trainable": trainable, "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "vocab": cfg.vocab_size, "items": len(model.codec) if model.codec.mode == "atomic" else 0}


def forward_flops(s: dict, lengths: list[int]) -> tuple[float, float, float]:
    """(frozen, trainable, attention) forward FLOPs of a batch of sequences of these lengths."""
    tokens = sum(lengths)
    return 2.0 * s["frozen"] * tokens, 2.0 * s["trainable"] * tokens, \
        sum(2.0 * s["layers"] * s["hidden"] * n * n for n in lengths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="adapters/lora-smollm2.yaml")
    ap.add_argument("--data", default="data/ml-100k")
    ap.add_argument("--steps", type=int, default=12, help="timed training steps (after 2 untimed)")
    ap.add_argument("--users", type=int, default=128, help="test users ranked (timed)")
    ap.add_argument("--threads", type=int, default=1)
    a, rest = ap.parse_known_args()
    from genrec.cli.base import parse_overrides
    from genrec.config import load_recipe
    try:  # a mistyped option or value: argparse's one line, not a traceback
        recipe = load_recipe(a.recipe, parse_overrides(rest))
    except (ValueError, OSError) as e:  # ConfigError is a ValueError
        ap.error(str(e))

    import numpy as np
    import torch

    from genrec.baselines import popularity
    from genrec.batches import Collator
    from genrec.data.dataset import PreparedDataset
    from genrec.decoding import topk_items
    from genrec.evaluate import eval_users
    from genrec.files import atomic_write_text
    from genrec.modeling.backbone import autocast, best_precision
    from genrec.modeling.model import GenRecModel
    from genrec.prompts import load_templates
    from genrec.train import compute_loss, mixture, sample_batch

    torch.set_num_threads(a.threads)
    ds = PreparedDataset.load(a.data)
    model = GenRecModel(recipe, item_ids=ds.item_ids, titles=[ds.title(i) for i in range(ds.n_items)],
                        item_counts=popularity(ds))
    s = shapes(model)
    collator = Collator(model, None)
    precision = best_precision(recipe.train.precision)
    peak = {"bf16": matmul_peak(torch.bfloat16, sizes=(512,)), "fp32": matmul_peak(torch.float32)}
    dev = torch.device("cpu")

    # ---- training: the recipe's own batches (task mixture, templates, history), forward + backward + AdamW
    templates, (fams, probs) = load_templates(), mixture(recipe)
    users = np.arange(ds.n_users)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=recipe.train.lr)
    model.train()
    flops, seconds, examples, prep = 0.0, 0.0, 0, 0.0
    for step in range(a.steps + 2):
        p0 = time.perf_counter()
        fam, t, exs = sample_batch(ds, model, templates, fams, probs, users, recipe, None, 0, 0, step, 0)
        prep_dt = time.perf_counter() - p0
        model.set_task(fam)
        item_path = model.codec.mode == "atomic" and t.answer == "item"
        batch = collator.prompts(exs) if item_path else collator.lm(exs)
        lengths = batch["attention_mask"].sum(1).tolist()
        t0 = time.perf_counter()
        with autocast(dev, precision):
            loss = compute_loss(model, model, collator, t, exs, dev, ds)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if step < 2:
            continue
        prep += prep_dt
        fz, tr, att = forward_flops(s, lengths)
        f = 2 * fz + 3 * tr + 3 * att  # forward, input gradients through everything, weight gradients of trainables
        if item_path:
            ids = batch["input_ids"]
            dense = recipe.items.dense and fam == "sequential"
            scored = int((ids >= model.codec.offset).sum()) + len(exs) if dense else len(exs)
            f += 3 * 2.0 * s["hidden"] * s["items"] * scored
        else:
            f += 2 * 2.0 * s["hidden"] * s["vocab"] * sum(lengths)
        flops, seconds, examples = flops + f, seconds + dt, examples + len(exs)
    train = {"steps": a.steps, "examples": examples, "seconds": round(seconds, 2), "sampling_seconds": round(prep, 2),
             "examples_per_s": round(examples / seconds, 2),
             "gflop_per_example": round(flops / examples / 1e9, 3), "gflop_per_s": round(flops / seconds / 1e9, 1)}

    # ---- ranking: the seen sequential template over test users, one pass, top-10 of the whole catalogue
    model.eval()
    t = next(t for t in templates["sequential"] if t.seen and t.answer == "item")
    from genrec.batches import make_example
    us = eval_users(ds, "test", a.users, 0)
    exs = [e for e in (make_example(ds, model, t, u, "test", np.random.default_rng(0), recipe.tasks.max_history,
                                    None, None) for u in us) if e is not None]
    flops, seconds = 0.0, 0.0
    with torch.inference_mode(), autocast(dev, precision):
        model.set_task("sequential")
        topk_items(model, collator.prompts(exs[:16]), 10)  # warm-up
        for i in range(0, len(exs), 16):
            chunk = exs[i:i + 16]
            batch = collator.prompts(chunk)
            t0 = time.perf_counter()
            topk_items(model, batch, 10, [list(ds.history(e.user, "test")) for e in chunk])
            seconds += time.perf_counter() - t0
            fz, tr, att = forward_flops(s, batch["attention_mask"].sum(1).tolist())
            head = 2.0 * s["hidden"] * (s["items"] or s["vocab"]) * len(chunk)
            flops += fz + tr + att + head
    rank = {"users": len(exs), "seconds": round(seconds, 2), "users_per_s": round(len(exs) / seconds, 1),
            "gflop_per_user": round(flops / len(exs) / 1e9, 3), "gflop_per_s": round(flops / seconds / 1e9, 1)}

    key = "bf16" if precision == "bf16" else "fp32"
    peak[key] = max(peak[key], matmul_peak(torch.bfloat16 if key == "bf16" else torch.float32))  # again, after
    ref = peak[key]
    name = " ".join([a.recipe, *rest])
    out = {"recipe": name, "dataset": ds.meta["name"], "threads": a.threads, "precision": precision,
           "matmul_peak_gflop_per_s": {k: round(v, 1) for k, v in peak.items()}, "shapes": s,
           "train": {**train, "share_of_peak": round(train["gflop_per_s"] / ref, 3)},
           "rank": {**rank, "share_of_peak": round(rank["gflop_per_s"] / ref, 3)},
           "note": "FLOPs counted from shapes (a floor); peak = the fastest square matrix product (512-2048) in the "
                   "run's precision on the same threads, measured before and after in the same run"}
    md = [f"# Share of peak: `{name}` on {out['dataset']}, {a.threads} thread(s), {precision}", "",
          f"Matrix product peak: bf16 {out['matmul_peak_gflop_per_s']['bf16']} GFLOP/s, fp32 "
          f"{out['matmul_peak_gflop_per_s']['fp32']} GFLOP/s. Drawing and rendering the training examples took "
          f"{train['sampling_seconds']} s beside {train['seconds']} s of model work (not counted above).", "",
          "| work | GFLOP per unit | GFLOP/s | share of peak | units/s |", "|---|---|---|---|---|",
          f"| training (per example) | {train['gflop_per_example']} | {train['gflop_per_s']} | "
          f"{out['train']['share_of_peak']:.0%} | {train['examples_per_s']} |",
          f"| ranking (per user, whole catalogue) | {rank['gflop_per_user']} | {rank['gflop_per_s']} | "
          f"{out['rank']['share_of_peak']:.0%} | {rank['users_per_s']} |", "", out["note"] + "."]
    stem = ROOT / "eval" / "results" / "flops"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
