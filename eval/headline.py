"""The headline table of a dataset, generated from the ledger (`eval/runs.csv`); runs no model.

    .venv/bin/python eval/ledger.py && .venv/bin/python eval/headline.py movielens-100k

Rows (at most 8; the rest are named below the table): most popular; each converged baseline
(mean over its seeds); genrec's pre-registered configurations of `eval/plan.yaml` (mean over their
seeds, best validation HR@10 first); for context, the earlier headline rows, labelled with how
they were chosen. The `comparison` pairs genrec's best pre-registered configuration (by validation
HR@10) with the baseline whose validation NDCG@10 is best: per-user HR@10 / NDCG@10 averaged over
each side's seeds, paired bootstrap over test users (genrec.metrics.paired_bootstrap). genrec is
called ahead or behind only when the 95 % interval of the HR@10 difference excludes zero.

Writes eval/results/headline_<dataset>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KEYS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")
NAMES = {"pop": "most popular", "sasrec": "SASRec+ (RecTools, softmax, early-stopped)",
         "recbole": "SASRec (RecBole, CE, early-stopped)"}


def per_user_ranks(result_file: str, split: str = "test") -> dict[str, int | None]:
    """user ID -> 0-based rank of the held-out item, from a result file that kept them."""
    res = json.loads((ROOT / result_file).read_text())
    if res.get("kind") == "baseline":
        pu = res[split]["sequential"]["per_user"]
    else:
        seq = res["families"]["sequential"]
        pu = seq[next(k for k in seq if not k.startswith("mean_"))]["per_user"]
    return dict(zip(pu["users"], pu["ranks"]))


def user_values(files: list[str], metric: str) -> dict[str, float]:
    """Per-user `metric` averaged over runs (seeds) of one configuration."""
    from genrec.metrics import per_user
    runs = [per_user_ranks(f) for f in files]
    users = sorted(set.intersection(*(set(r) for r in runs)))
    vals = np.mean([per_user([r[u] for u in users], metric) for r in runs], axis=0)
    return dict(zip(users, vals.tolist()))


def valid_score(result_file: str, key: str, row: dict | None = None, ledger: list[dict] = ()) -> float | None:
    """The best validation score a run was selected by (baselines: NDCG@10 by epoch; an ensemble of
    checkpoints: its own validation row in the ledger, `row` being its test row)."""
    res = json.loads((ROOT / result_file).read_text())
    if res.get("ensemble"):
        v = [r for r in ledger if r["split"] == "valid" and r["model"] == "genrec" and r["config"] == row["config"]
             and str(r["seed"]) == str(row["seed"])]
        return float(v[0][key]) if v else None
    if res.get("kind") == "baseline":
        curve = res.get("valid_curve") or []
        return max((c[key] for c in curve), default=(res.get("valid") or {}).get(key))
    by = (res.get("training") or {}).get("valid_by_step") or []
    return max((c[key] for c in by if key in c), default=None)


def group_row(label: str, rows: list[dict], **extra) -> dict:
    f = [float(r[k]) for r in rows for k in ("hr@10",)]
    secs = [float(r["train_seconds"]) for r in rows if r["train_seconds"] not in ("", None)]
    conv = {r["converged"] for r in rows}
    return {"model": label, "config": rows[0]["config"], "selected_by": rows[0]["selected_by"],
            "ties": rows[0]["ties"], "seeds": sorted(int(r["seed"]) for r in rows),
            "converged": (conv == {"true"}) if conv - {""} else None,
            **{k: statistics.fmean(float(r[k]) for r in rows) for k in KEYS},
            "hr@10_seed_sd": statistics.stdev(f) if len(f) > 1 else 0.0, "users": int(rows[0]["users"]),
            "train_seconds": round(statistics.fmean(secs)) if secs else None,
            "eval_users_per_s": rows[0]["eval_users_per_s"] or None,
            "result_files": [r["result_file"] for r in rows], **extra}


def build(dataset: str, ledger: list[dict], plan: dict, context: list[dict]) -> dict:
    test = [r for r in ledger if r["dataset"] == dataset and r["split"] == "test"]
    rows, baselines = [], []
    pop = [r for r in test if r["model"] == "pop" and r["ties"] == "pessimistic"]
    if pop:
        rows.append(group_row(NAMES["pop"], pop[:1]))
    for model in ("sasrec", "recbole"):
        rs = [r for r in test if r["model"] == model and r["selected_by"] == "valid"]
        rs = list({r["seed"]: r for r in sorted(rs, key=lambda r: float(r["train_seconds"] or 0))}.values())
        if rs:  # a seed run again for longer (resumed past an earlier cap) replaces its shorter run
            row = group_row(NAMES[model] + ("" if all(r["converged"] == "true" for r in rs) else ", not converged"), rs)
            row["valid_ndcg@10"] = statistics.fmean(valid_score(f, "ndcg@10") for f in row["result_files"])
            rows.append(row)
            baselines.append(row)
    genrec = []
    for entry in (plan.get(dataset) or {}).get("genrec") or []:
        # `results`: the entry's result files begin so (two entries with one recipe but different code)
        rs = [r for r in test if r["model"] == "genrec" and r["config"] == entry["recipe"]
              and r["selected_by"] == "valid" and int(r["seed"]) in entry["seeds"]
              and r["result_file"].startswith(entry.get("results", ""))]
        if rs:
            scores = [valid_score(r["result_file"], "hr@10", r, ledger) for r in rs]
            row = group_row(entry.get("label") or f"genrec: {Path(entry['recipe']).name}", rs, planned_seeds=entry["seeds"],
                            valid_hr10=statistics.fmean(s for s in scores if s is not None) if any(scores) else None)
            genrec.append(row)
    # best validated first, so that the rows past the table's eighth are the lowest validated
    genrec.sort(key=lambda r: -(r.get("valid_hr10") or 0))
    rows += genrec
    for c in context:  # earlier headline rows, shown with how they were chosen
        rs = [r for r in test if r["result_file"] in c["files"] and r["model"] != "pop"]
        if rs:
            rows.append(group_row(c["label"] + (" [ties went to the target]" if rs[0]["ties"] == "first" else ""), rs))
    out = {"dataset": dataset, "users": rows[0]["users"] if rows else 0,
           "protocol": "leave-one-out; sequential full ranking over the catalogue with the user's history excluded; "
                       "pessimistic ties (ties: first = older files, where a tie went to the target)",
           "rows": rows[:8], "omitted": [r["model"] for r in rows[8:]], "comparison": None}
    if genrec and baselines:
        g = genrec[0]  # the best validated
        b = max(baselines, key=lambda r: r["valid_ndcg@10"])
        out["comparison"] = compare(g, b)
    return out


def compare(g: dict, b: dict) -> dict:
    from genrec.metrics import paired_bootstrap
    res = {"genrec": g["model"], "baseline": b["model"], "baseline_chosen_by": "validation NDCG@10",
           "seeds_to_run": sorted(set(g.get("planned_seeds") or g["seeds"]) - set(g["seeds"]))}
    for metric in ("hr@10", "ndcg@10"):
        gv, bv = user_values(g["result_files"], metric), user_values(b["result_files"], metric)
        users = sorted(set(gv) & set(bv))
        r = paired_bootstrap([gv[u] for u in users], [bv[u] for u in users], n_boot=10_000, seed=0)
        res[f"diff_{metric}"] = r["diff"]
        res["ci95" if metric == "hr@10" else "ci95_ndcg@10"] = r["ci95"]
        res["users"] = r["n"]
    lo, hi = res["ci95"]
    res["verdict"] = "ahead" if lo > 0 else "behind" if hi < 0 else "level (the interval includes zero)"
    return res


def _fmt(x, nd=4) -> str:
    return "—" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def render(out: dict) -> str:
    lines = [f"# {out['dataset']}: test, {out['users']} users", "", out["protocol"] + ".", "",
             "| model | selected by | converged | seeds | HR@10 | NDCG@10 | HR@5 | NDCG@5 | train s | eval users/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        sd = f" ± {r['hr@10_seed_sd']:.4f}" if len(r["seeds"]) > 1 else ""
        conv = {True: "yes", False: "no", None: "—"}[r["converged"]]
        seeds = ",".join(map(str, r["seeds"]))
        if sorted(r.get("planned_seeds") or r["seeds"]) != r["seeds"]:  # registered seeds not all run yet
            seeds += " of " + ",".join(map(str, sorted(r["planned_seeds"])))
        lines.append(f"| {r['model']} | {r['selected_by']} | {conv} | {seeds} | "
                     f"{r['hr@10']:.4f}{sd} | {r['ndcg@10']:.4f} | {r['hr@5']:.4f} | {r['ndcg@5']:.4f} | "
                     f"{_fmt(r['train_seconds'])} | {_fmt(r['eval_users_per_s'])} |")
    if out.get("omitted"):  # past the table's 8 rows: named, never dropped silently
        lines += ["", "Not shown (rows of eval/runs.csv): " + "; ".join(out["omitted"]) + "."]
    c = out["comparison"]
    if c:
        lines += ["", f"{c['genrec']} vs {c['baseline']} (chosen by {c['baseline_chosen_by']}), paired over "
                      f"{c['users']} test users: HR@10 {c['diff_hr@10']:+.4f} (95 % CI {c['ci95'][0]:+.4f} to "
                      f"{c['ci95'][1]:+.4f}), NDCG@10 {c['diff_ndcg@10']:+.4f} (95 % CI {c['ci95_ndcg@10'][0]:+.4f} "
                      f"to {c['ci95_ndcg@10'][1]:+.4f}): **{c['verdict']}**."]
        if c.get("seeds_to_run"):
            lines[-1] += (f" Provisional: registered seed(s) {', '.join(map(str, c['seeds_to_run']))} of genrec's "
                          "configuration not yet run.")
    else:
        lines += ["", "No paired comparison: genrec has no pre-registered run with per-user ranks on this dataset yet."]
    lines += ["", "± is the sample SD of HR@10 over training seeds; selected by `test` = chosen while test numbers "
                  "were visible (before eval/plan.yaml). Every run is a row of eval/runs.csv."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from genrec.files import atomic_write_text
    sys.path.insert(0, str(ROOT / "eval"))
    from ledger import read

    ap = argparse.ArgumentParser(description="headline table of a dataset from eval/runs.csv (see module doc)",
                                 fromfile_prefix_chars="@")
    ap.add_argument("dataset", help="movielens-100k, movielens-1m, ... (as the ledger names it)")
    ap.add_argument("--context", action="append", default=[], metavar="LABEL=FILE,FILE",
                    help="an earlier row to show for context (result files of one configuration; repeatable)")
    a = ap.parse_args()
    plan = yaml.safe_load((ROOT / "eval" / "plan.yaml").read_text())
    context = []
    for spec in a.context:
        label, sep, files = spec.rpartition("=")
        if not sep or not label:
            ap.error(f"--context takes LABEL=FILE,FILE, got {spec!r}")
        context.append({"label": label, "files": [x for x in files.split(",") if x]})
    ledger = read()
    if not any(r["dataset"] == a.dataset for r in ledger):
        ap.error(f"no ledger row for dataset {a.dataset!r} (have: {sorted({r['dataset'] for r in ledger})})")
    out = build(a.dataset, ledger, plan, context)
    stem = ROOT / "eval" / "results" / f"headline_{a.dataset}"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    md = render(out)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
