"""How an item is written vs quality: text IDs vs atomic tokens vs semantic IDs, random vs
sequential (leaky) assignment — same split, same backbone, same training budget, same test users.

For each configuration: prepare the dataset with that ID scheme (the split does not depend on
IDs: every configuration holds out the same items), train SmolLM2-135M + LoRA on the sequential
task for --steps steps, rank the whole catalogue for the same --users test users (history
excluded), and put most-popular on those users beside it (plus SASRec from
eval/results/baselines_<dataset>.json when it exists: all test users, the same split).

    .venv/bin/python eval/bench_id_schemes.py --source movielens-100k --steps 200 --users 150
    .venv/bin/python eval/bench_id_schemes.py --source movielens-1m --steps 5000 --users 6040   # GPU

Writes eval/results/id_schemes_<dataset>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"

CONFIGS = [  # label, data.item_ids, items.tokens
    ("atomic tokens, random IDs", "random", "atomic"),
    ("text IDs, random", "random", "text"),
    ("semantic IDs (RQ k-means)", "semantic", "text"),
    ("text IDs, sequential (LEAKY: P5's assignment)", "sequential", "text"),
]


def attach_sasrec(out: dict) -> dict:
    """SASRec from eval/results/baselines_<dataset>.json (eval/bench_baselines.py), when it was run:
    all test users, and this table's users when that run had `--subset` equal to them."""
    base = RESULTS / f"baselines_{out['dataset']}.json"
    sasrec = json.loads(base.read_text()).get("sasrec") if base.is_file() else None
    if not sasrec or "error" in sasrec:
        return out
    out["sasrec_all_test_users"] = sasrec.get("sequential")
    sub = sasrec.get("subset")
    if sub and sub["sequential"]["users"] == out["users"]:
        out["sasrec_same_users"] = {k: round(v, 4) for k, v in sub["sequential"].items() if k != "users"}
    out["sasrec_run"] = {"epochs": sasrec.get("epochs"), "train_seconds": sasrec.get("train_seconds")}
    return out


def render(out: dict) -> str:
    ds_name, n = out["dataset"], out["users"]
    lines = [f"# Item writing vs quality ({ds_name}, sequential full ranking, history excluded)", "",
             f"SmolLM2-135M + LoRA r8 (adapters/lora-smollm2.yaml), sequential task only, {out['steps']} steps x "
             f"{out['batch_size']} examples each, template seq-1; the same {n} test users for every genrec "
             "row and for popularity. Text and semantic IDs: trie-constrained beam search (10 beams); atomic: "
             "one forward pass over the catalogue.", "",
             "| configuration | HR@5 | HR@10 | NDCG@5 | NDCG@10 | train s | eval s |", "|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['config']} | {r['hr@5']} | {r['hr@10']} | {r['ndcg@5']} | {r['ndcg@10']} | "
                     f"{r['train_s']} | {r['eval_s']} |")
    p = out["popularity_same_users"]
    lines.append(f"| most popular (same users) | {p['hr@5']} | {p['hr@10']} | {p['ndcg@5']} | {p['ndcg@10']} | — | — |")
    s, same, run = out.get("sasrec_all_test_users"), out.get("sasrec_same_users"), out.get("sasrec_run") or {}
    budget = f"{run.get('epochs')} epochs" if run.get("epochs") else ""
    if same:
        lines.append(f"| SASRec, RecBole, {budget} (same users) | {same['hr@5']} | {same['hr@10']} | "
                     f"{same['ndcg@5']} | {same['ndcg@10']} | {run.get('train_seconds', '—')} | — |")
    if s:
        lines.append(f"| SASRec, RecBole, {budget} (all test users; eval/results/baselines_{ds_name}.json) | "
                     f"{round(s['hr@5'], 4)} | {round(s['hr@10'], 4)} | {round(s['ndcg@5'], 4)} | "
                     f"{round(s['ndcg@10'], 4)} | {run.get('train_seconds', '—')} | — |")
    else:
        lines.append("| SASRec | not run on this dataset here: a RecBole epoch on it takes 24–40 min on the 2-core "
                     "CPU (command: eval/README.md) | | | | | |")
    lines += ["", f"With {n} users one hit moves HR by {1 / n:.4f}: differences of a few hits are noise at this "
              "size, and this budget is far below what any of these needs to learn: the table measures the costs "
              "(train s, eval s) reliably and the quality only coarsely.",
              "", "Sequential assignment is P5's: IDs given in order of first appearance, so the next item's "
              "ID is often 'the largest seen + 1' — it leaks the answer and is reported only for comparison."]
    return "\n".join(lines) + "\n"


def main() -> None:
    import torch

    from genrec.files import atomic_write_text
    from genrec.baselines import popularity_results
    from genrec.batches import Collator
    from genrec.data.prepare import prepare_dataset
    from genrec.config import DataConfig, load_recipe
    from genrec.data.dataset import PreparedDataset
    from genrec.evaluate import eval_sequential, eval_users
    from genrec.modeling.backbone import autocast
    from genrec.modeling.model import GenRecModel
    from genrec.prompts import load_templates
    from genrec.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default="movielens-100k")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--users", type=int, default=150, help="test users (the same for every row)")
    ap.add_argument("--work", default="/tmp/genrec_id_schemes")
    ap.add_argument("--only", default=None, help="comma-separated config numbers (1-based) to run")
    ap.add_argument("--render", metavar="JSON", help="only rewrite an earlier run's markdown (and pick up SASRec "
                    "from eval/results/baselines_<dataset>.json, e.g. after bench_baselines.py --subset 150)")
    a = ap.parse_args()
    if a.render:
        out = attach_sasrec(json.loads(Path(a.render).read_text()))
        atomic_write_text(Path(a.render), json.dumps(out, indent=2) + "\n")
        atomic_write_text(Path(a.render).with_suffix(".md"), render(out))
        return
    work = Path(a.work)
    rows, t_all = [], time.perf_counter()
    template = next(t for t in load_templates()["sequential"] if t.id == "seq-1")
    chosen = [CONFIGS[int(j) - 1] for j in a.only.split(",")] if a.only else CONFIGS
    users = pop = ds_name = None
    for label, scheme, tokens in chosen:
        data = work / f"{a.source}-{scheme}"
        if not (data / "meta.json").is_file():
            prepare_dataset(DataConfig(source=a.source, item_ids=scheme), data, quiet=True)
        ds = PreparedDataset.load(data)
        if users is None:
            users = eval_users(ds, "test", a.users, seed=1)
            pop = popularity_results(ds, users)["sequential"]
            ds_name = ds.meta["name"]
        recipe = load_recipe(ROOT / "adapters" / "lora-smollm2.yaml", {
            "data.source": a.source, "data.item_ids": scheme, "items.tokens": tokens,
            "train.steps": a.steps, "train.batch_size": a.batch_size, "tasks.mixture": {"sequential": 1.0},
            "train.eval_every": 0, "train.eval_users": 20})
        run = work / f"run-{scheme}-{tokens}-{a.steps}"
        t0 = time.perf_counter()
        if not (run / "last" / "config.yaml").is_file():
            train(recipe, data, run, progress=False, log=lambda *x: None)
        train_s = time.perf_counter() - t0
        model = GenRecModel.from_pretrained(run / "last").eval()
        t0 = time.perf_counter()
        with torch.inference_mode(), autocast(model.device):
            res = eval_sequential(model, ds, Collator(model), template, users, "test",
                                  recipe.tasks.max_history, None, batch_size=16 if tokens == "atomic" else 1,
                                  num_beams=10)
        eval_s = time.perf_counter() - t0
        rows.append({"config": label, "item_ids": scheme, "item_tokens": tokens, **{k: round(v, 4) for k, v in
                     res.items() if k != "users"}, "users": res["users"], "train_s": round(train_s, 1),
                     "eval_s": round(eval_s, 1)})
        print(rows[-1], flush=True)
        del model
    out = attach_sasrec({"dataset": ds_name, "steps": a.steps, "batch_size": a.batch_size, "users": len(users),
                         "rows": rows, "popularity_same_users": {k: round(v, 4) for k, v in pop.items()},
                         "seconds": round(time.perf_counter() - t_all)})
    md = render(out)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"id_schemes_{ds_name}.json", json.dumps(out, indent=2) + "\n")
    atomic_write_text(RESULTS / f"id_schemes_{ds_name}.md", md)
    print(md)


if __name__ == "__main__":
    main()
