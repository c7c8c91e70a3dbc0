"""How an item is written decides what genrec costs: atomic tokens vs text IDs vs titles.

Side by side, one run, same backbone (SmolLM2-135M + LoRA), same data (MovieLens-1M test users):

1. evaluation throughput (users/s) of sequential full ranking: atomic single pass (one forward
   per batch of users, exact over the catalogue) vs text-ID trie-constrained beam search
   (10 beams, top-10). Target >= 50x.
2. training throughput (examples/s): atomic short prompts vs title prompts (each history item
   written by its title, as text prompts with titles are), steps interleaved. Target >= 4x.

Costs do not depend on the adapter's values, so untrained adapters are used; for ranking, LoRA
is merged into the backbone on both sides, as `Recommender.from_pretrained` loads a checkpoint.
One row per history length N (longer histories make title prompts grow ~7 tokens per item,
atomic ones 1). Writes eval/results/items.{json,md}.

    .venv/bin/python eval/bench_items.py --data data/ml-1m --max-history 10 20 50
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"


def main() -> None:
    import numpy as np
    import torch

    from genrec.files import atomic_write_text
    from genrec.batches import Collator, make_example
    from genrec.config import load_recipe
    from genrec.data.dataset import PreparedDataset
    from genrec.decoding import build_trie, topk_items
    from genrec.evaluate import eval_users
    from genrec.modeling.backbone import autocast, load_backbone
    from genrec.modeling.model import GenRecModel
    from genrec.prompts import load_templates
    from genrec.train import compute_loss

    ap = argparse.ArgumentParser(description="item-writing cost benchmark")
    ap.add_argument("--data", required=True, help="prepared dataset (MovieLens-1M for the headline)")
    ap.add_argument("--beam-users", type=int, default=8)
    ap.add_argument("--atomic-users", type=int, default=256)
    ap.add_argument("--atomic-batch", type=int, default=16, help="users per forward pass for atomic ranking")
    ap.add_argument("--train-steps", type=int, default=12, help="measured steps per side (8 examples each)")
    ap.add_argument("--max-history", type=int, nargs="+", default=[20],
                    help="history lengths to measure (one row each), e.g. 10 20 50")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    ds = PreparedDataset.load(a.data)
    templates = load_templates()
    t = next(t for t in templates["sequential"] if t.seen and t.answer == "item")
    titles = [ds.title(i) for i in range(ds.n_items)]
    result = {"data": ds.meta["name"], "items": ds.n_items, "date": time.strftime("%Y-%m-%d"),
              "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "template": t.id, "rows": []}

    def measure(max_history: int) -> dict:
        base = load_recipe(ROOT / "adapters" / "lora-smollm2.yaml", {"tasks.max_history": max_history,
                                                                       "model.max_length": 1024})

        def model_for(mode: str) -> GenRecModel:
            torch.manual_seed(0)
            r = replace(base, items=replace(base.items, tokens=mode))
            return GenRecModel(r, load_backbone(r.model.backbone), item_ids=ds.item_ids, titles=titles)

        # ---- 1. evaluation throughput (both as genrec answers: LoRA merged, as Recommender loads it)
        rng = np.random.default_rng(0)
        timing = {}
        for mode, n in (("atomic", a.atomic_users), ("text", a.beam_users)):
            m = model_for(mode).eval()
            m.merge_lora()
            users = eval_users(ds, "test", n, seed=1)
            col = Collator(m)
            exs = [make_example(ds, m, t, u, "test", rng, max_history) for u in users]
            trie = build_trie(m) if mode == "text" else None
            bs = a.atomic_batch if mode == "atomic" else 1
            with torch.inference_mode(), autocast(m.device):
                topk_items(m, col.prompts(exs[:bs]), 10, None, trie, num_beams=10)  # warm-up
                t0 = time.perf_counter()
                for s in range(0, len(exs), bs):
                    chunk = exs[s:s + bs]
                    topk_items(m, col.prompts(chunk), 10, [list(ds.history(e.user, "test")) for e in chunk], trie,
                               num_beams=10)
                el = time.perf_counter() - t0
            tokens = float(np.mean([len(col.prompt_ids(e)[0]) for e in exs]))
            timing[mode] = {"users": len(exs), "seconds": round(el, 2), "users_per_s": round(len(exs) / el, 3),
                            "prompt_tokens": round(tokens, 1)}
            print(max_history, mode, timing[mode], flush=True)
            del m
        row = {"max_history": max_history,
               "eval": {"atomic_single_pass": timing["atomic"], "text_id_beam_search": timing["text"],
                        "speedup": round(timing["atomic"]["users_per_s"] / timing["text"]["users_per_s"], 1),
                        "target": ">= 50x"}}

        # ---- 2. training throughput: atomic short prompts vs title prompts, steps interleaved
        # (atomic, titles, atomic, ...) so a slow spell on this shared machine hits both sides alike
        users = eval_users(ds, "test", 8 * (a.train_steps + 1), seed=2)
        sides = {}
        for label in ("atomic", "titles"):
            m = model_for("text" if label == "titles" else "atomic")
            if label == "titles":
                m.codec.text = lambda i: titles[i]  # every history item written by its title
            m.train()
            col = Collator(m)
            opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            # full-length histories (the test target), trained on like any example; same users both sides
            rng = np.random.default_rng(0)
            exs_all = [make_example(ds, m, t, u, "test", rng, max_history) for u in users]
            sides[label] = (m, col, opt, exs_all, [])
        for s in range(a.train_steps + 1):
            for label, (m, col, opt, exs_all, times) in sides.items():
                batch = exs_all[8 * s: 8 * s + 8]
                t0 = time.perf_counter()
                with autocast(m.device):
                    loss = compute_loss(m, m, col, t, batch, m.device)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if s:  # the first step warms up
                    times.append(time.perf_counter() - t0)
        train = {}
        for label, (m, col, opt, exs_all, times) in sides.items():
            tokens = float(np.mean([len(col.prompt_ids(e)[0]) + len(col.target_ids(e)) for e in exs_all]))
            train[label] = {"examples_per_s": round(8 * len(times) / sum(times), 2),
                            "tokens_per_example": round(tokens, 1), "steps": len(times)}
            print(max_history, label, train[label], flush=True)
        del sides
        row["train"] = {**train, "speedup": round(train["atomic"]["examples_per_s"] /
                                                  train["titles"]["examples_per_s"], 2), "target": ">= 4x"}
        return row

    for h in a.max_history:
        result["rows"].append(measure(h))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "items.json", json.dumps(result, indent=2) + "\n")
    lines = [f"# Item tokens: cost of ranking and training ({result['data']}, {result['items']:,} items)", "",
             f"{result['date']}, {result['cpus']} CPUs, {result['threads']} torch thread(s), SmolLM2-135M + LoRA "
             f"(merged for ranking, as `Recommender` loads it), bf16 autocast where the CPU has it, template "
             f"{result['template']}, test users' full histories cut to the last N items.", "",
             "| history N | measurement | atomic tokens | text IDs / titles | ratio | target |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        e, tr = row["eval"], row["train"]
        at, tx = e["atomic_single_pass"], e["text_id_beam_search"]
        lines.append(f"| {row['max_history']} | sequential full ranking, users/s | {at['users_per_s']} (one pass, "
                     f"{at['users']} users, {at['prompt_tokens']} prompt tokens) | {tx['users_per_s']} (beam search "
                     f"10x10, {tx['users']} users, {tx['prompt_tokens']} prompt tokens) | {e['speedup']}x | >= 50x |")
        lines.append(f"| {row['max_history']} | training, examples/s | {tr['atomic']['examples_per_s']} "
                     f"({tr['atomic']['tokens_per_example']} tokens/example) | {tr['titles']['examples_per_s']} "
                     f"(title prompts, {tr['titles']['tokens_per_example']} tokens/example) | {tr['speedup']}x | >= 4x |")
    md = "\n".join(lines) + "\n"
    atomic_write_text(RESULTS / "items.md", md)
    print(md)

if __name__ == "__main__":
    main()
