"""The headline table: genrec checkpoints next to popularity and SASRec, same split, same users.

Reads what the other steps wrote — `genrec evaluate --out X.json` for each genrec checkpoint
(its `training` block — command, train seconds, examples, peak memory — copied by `genrec evaluate`
from the run's `train_summary.json`; see eval/README.md) and
`eval/bench_baselines.py`'s `eval/results/baselines_<dataset>.json` — and writes
`eval/results/headline_<dataset>.{json,md}`. No model is run here.

    .venv/bin/python eval/headline.py --baselines eval/results/baselines_movielens-100k.json \\
        --genrec "SmolLM2-135M + LoRA, seq50 recipe=eval/results/genrec_ml100k_seq50.json"

The committed tables are regenerated from argument files, one argument per line
(`eval/headline_movielens-100k.args`, `eval/headline_movielens-1m.args`)::

    .venv/bin/python eval/headline.py @eval/headline_movielens-100k.args

Each row of the JSON names the result file(s) it was read from (`source` / `sources`).

Direct (1 held-out + 99 sampled candidates) is scored for every row from the same per-user item
scores as sequential when the model has them (SASRec, popularity, genrec with atomic items:
`candidates_from_sequential`); genrec's P5-style direct template (candidates in the prompt, no
history) is reported beside it when it was evaluated.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"
KEYS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def genrec_row(label: str, res: dict, source: str | None = None) -> dict:
    seq = res["families"]["sequential"]
    tid = next(k for k in seq if not k.startswith("mean_"))
    s = seq[tid]
    d = s.get("candidates_from_sequential")
    direct_t = res["families"].get("direct", {})
    dt = next((k for k in direct_t if not k.startswith("mean_")), None)
    tr = res.get("training", {})
    return {"model": f"genrec: {label}", "source": source, "users": res["users"], "sequential": {k: s[k] for k in KEYS},
            "direct": {k: d[k] for k in KEYS} if d else None,
            "direct_template": {"template": dt, **{k: direct_t[dt][k] for k in KEYS}} if dt else None,
            "train_seconds": tr.get("train_seconds"), "train_note": tr.get("note"),
            "eval_users_per_s": res.get("users_per_s"),
            "peak_mb": f"{tr.get('peak_rss_mb') or '—'} / {res.get('peak_rss_mb') or '—'}"}


def baseline_rows(base: dict, popularity: bool = True) -> list[dict]:
    rows = [{"model": "most popular", "users": base["users"], "sequential": base["popularity"]["sequential"],
             "direct": base["popularity"]["direct"], "train_seconds": 0}] if popularity else []
    s = base.get("sasrec")
    if s and "error" not in s:
        seed = f", seed {s['seed']}" if "seed" in s else ""
        rows.append({"model": f"SASRec (RecBole, {s['epochs']} epochs{seed})", "users": base["users"],
                     "sequential": s["sequential"], "direct": s["direct"], "train_seconds": s["train_seconds"],
                     "eval_users_per_s": s.get("eval_users_per_s")})
    return rows


def mean_row(model: str, rows: list[dict]) -> dict:
    """One row averaging `rows` (the same model at several seeds): each metric's mean, the seeds'
    HR@10 values and their sample standard deviation."""
    import statistics
    hr = [r["sequential"]["hr@10"] for r in rows]
    out = {"model": model, "users": rows[0]["users"], "seeds": len(rows), "seed_hr10": hr,
           "sources": [r["source"] for r in rows if r.get("source")],
           "hr10_sd": statistics.stdev(hr) if len(hr) > 1 else 0.0,
           "sequential": {k: statistics.fmean(r["sequential"][k] for r in rows) for k in KEYS},
           "direct": ({k: statistics.fmean(r["direct"][k] for r in rows) for k in KEYS}
                      if all(r.get("direct") for r in rows) else None)}
    secs = [r.get("train_seconds") for r in rows]
    out["train_seconds"] = round(statistics.fmean(secs)) if None not in secs else None
    return out


def render(out: dict) -> str:
    lines = [f"# Headline: genrec vs SASRec vs popularity ({out['dataset']}, {out['users']} test users)", "",
             out["protocol"] + ".", "",
             "| model | seq HR@5 | seq HR@10 | seq NDCG@5 | seq NDCG@10 | direct HR@5 | direct HR@10 | direct NDCG@10 "
             "| train s | eval users/s | peak RSS MB (train / eval) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        s, d = r["sequential"], r.get("direct") or {}
        lines.append(f"| {r['model']} | {_fmt(s['hr@5'])} | {_fmt(s['hr@10'])} | {_fmt(s['ndcg@5'])} | "
                     f"{_fmt(s['ndcg@10'])} | {_fmt(d.get('hr@5'))} | {_fmt(d.get('hr@10'))} | "
                     f"{_fmt(d.get('ndcg@10'))} | {r.get('train_seconds') if r.get('train_seconds') is not None else '—'} | "
                     f"{r.get('eval_users_per_s') or '—'} | {r.get('peak_mb') or '—'} |")
    notes = [r for r in out["rows"] if r.get("direct_template")]
    if notes:
        lines += ["", "genrec's P5-style direct template (the 100 candidates written in the prompt, no history):"]
        for r in notes:
            dt = r["direct_template"]
            lines.append(f"- {r['model']}, {dt['template']}: HR@5 {_fmt(dt['hr@5'])}, HR@10 {_fmt(dt['hr@10'])}, "
                         f"NDCG@10 {_fmt(dt['ndcg@10'])}")
    for r in out["rows"]:
        if r.get("train_note"):
            lines += ["", f"{r['model']}: {r['train_note']}"]
    for r in out["rows"]:
        if r.get("seeds"):
            lines += ["", f"{r['model']}: HR@10 per seed " + ", ".join(f"{x:.4f}" for x in r["seed_hr10"])
                      + f" (sample SD {r['hr10_sd']:.4f})"]
    best = max((r for r in out["rows"] if r["model"].startswith("genrec") and not r.get("seeds")),
               key=lambda r: r["sequential"]["hr@10"], default=None)
    sasrecs = [r for r in out["rows"] if r["model"].startswith("SASRec") and not r.get("seeds")]
    # with several SASRec seeds, the best genrec row is held to the best of them (both picked on test)
    sas = max(sasrecs, key=lambda r: r["sequential"]["hr@10"], default=None)
    if best and sas:
        met = best["sequential"]["hr@10"] >= sas["sequential"]["hr@10"]
        secs = (best.get("train_seconds"), sas.get("train_seconds"))
        budget = ("" if None in secs else f"; trained {secs[0]} s vs {secs[1]} s: a claim about these training "
                  "budgets, not about either model trained to convergence")
        of = f" (the best of {len(sasrecs)} SASRec seeds)" if len(sasrecs) > 1 else ""
        lines += ["", f"Goal genrec seq HR@10 >= SASRec's{of}: **{'met' if met else 'not met'}** "
                      f"({best['sequential']['hr@10']:.4f} vs {sas['sequential']['hr@10']:.4f}{budget})."]
    sas_mean = next((r for r in out["rows"] if r["model"].startswith("SASRec") and r.get("seeds")), None)
    for r in out["rows"]:
        if r["model"].startswith("genrec") and r.get("seeds") and sas_mean:
            g, b = r["sequential"]["hr@10"], sas_mean["sequential"]["hr@10"]
            lines += ["", f"On means over seeds ({r['model']} vs {sas_mean['model']}): "
                          f"**{'met' if g >= b else 'not met'}** ({g:.4f} vs {b:.4f})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from genrec.files import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 fromfile_prefix_chars="@")
    ap.add_argument("--baselines", required=True, help="eval/results/baselines_<dataset>.json")
    ap.add_argument("--genrec", action="append", default=[], metavar="LABEL=JSON",
                    help="a `genrec evaluate --out` result (repeatable)")
    ap.add_argument("--sasrec-seed", action="append", default=[], metavar="JSON",
                    help="another bench_baselines.py run (--seed S --out STEM): adds its SASRec row and, with "
                         "it, a row averaging the SASRec seeds (repeatable)")
    ap.add_argument("--genrec-seeds", action="append", default=[], metavar="LABEL=JSON,JSON,...",
                    help="the same genrec configuration at several training seeds: one row of their means "
                         "(the goal is then also checked on means against the SASRec seeds; repeatable)")
    a = ap.parse_args()
    base = json.loads(Path(a.baselines).read_text())
    extra = []
    for path in a.sasrec_seed:
        other = json.loads(Path(path).read_text())
        if other["dataset"] != base["dataset"] or other["users"] != base["users"]:
            ap.error(f"{path}: {other['dataset']} / {other['users']} users, the baselines have "
                     f"{base['dataset']} / {base['users']}")
        extra += baseline_rows(other, popularity=False)

    def genrec_result(path: str) -> dict:
        """A `genrec evaluate --out` result, checked to be on the baselines' test users."""
        res = json.loads(Path(path).read_text())
        if res["users"] != base["users"] or res.get("split", "test") != "test":
            ap.error(f"{path}: {res['users']} {res.get('split')} users, the baselines have {base['users']} test users")
        return res

    rows = []
    for spec in a.genrec:
        label, sep, path = spec.rpartition("=")
        if not sep or not label:
            ap.error(f"--genrec takes LABEL=JSON, got {spec!r}")
        rows.append(genrec_row(label, genrec_result(path), path))
    for spec in a.genrec_seeds:
        label, sep, paths = spec.rpartition("=")
        files = [x for x in paths.split(",") if x]
        if not sep or not label or len(files) < 2:
            ap.error(f"--genrec-seeds takes LABEL=JSON,JSON[,...] (two or more runs), got {spec!r}")
        runs = [genrec_row(label, genrec_result(path), path) for path in files]
        rows.append(mean_row(f"genrec: {label}, mean of {len(runs)} training seeds", runs))
    base_rows = baseline_rows(base) + extra
    sas_rows = [r for r in base_rows if r["model"].startswith("SASRec")]
    means = [mean_row(f"SASRec (RecBole), mean of {len(sas_rows)} seeds", sas_rows)] if len(sas_rows) > 1 else []
    out = {"dataset": base["dataset"], "users": base["users"], "protocol": base["protocol"],
           "rows": rows + base_rows + means}
    stem = RESULTS / f"headline_{base['dataset']}"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    md = render(out)
    atomic_write_text(stem.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
