"""The run ledger: `eval/runs.csv`, one row per evaluation ever reported, rebuilt from the result files.

    .venv/bin/python eval/ledger.py          # rebuild eval/runs.csv (after any new result file)

Result files are read from `eval/runs/` (single runs) and `eval/results/` (what a table cites):
`genrec evaluate --out` JSON, `eval/bench_baselines.py` JSON, and the older baseline files
(RecBole SASRec at a fixed epoch count). Columns:

- `config`: the recipe file and its overrides, as the training command gave them;
- `selected_by`: `valid` when the run was pre-registered in `eval/plan.yaml` (or is a baseline
  early-stopped on validation), `test` for configurations chosen while test numbers were visible
  (every genrec run before the plan), `none` for fixed configurations with no choice made (most
  popular, the fixed-epoch RecBole runs, the quickstart's default recipe; a result file may say so
  itself with a `selected_by` field), `probe` for a validation-only lever probe registered in
  `eval/plan.yaml` before its number (`kind: probes` files; no test number exists for it, and
  only HR@10 / NDCG@10 at its last validation are known);
- `ties`: `pessimistic` (the target ranks below every item with an equal score) or `first`
  (older files: ties went to the target when it came first);
- `converged`: baselines only: `true` when early stopping on validation ended the training.
"""
from __future__ import annotations

import csv
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "eval" / "runs.csv"
SOURCES = (ROOT / "eval" / "runs", ROOT / "eval" / "results")
COLUMNS = ["dataset", "model", "config", "seed", "split", "selected_by", "hr@5", "hr@10", "ndcg@5", "ndcg@10",
           "users", "ties", "converged", "train_seconds", "eval_users_per_s", "result_file", "commit"]
DATASET_BY_USERS = {943: "movielens-100k", 6040: "movielens-1m"}  # files written before `dataset` was recorded
DROP = {"--data", "--out", "--threads", "--train.seed", "--features"}  # not part of a configuration


def config_of(command: str) -> tuple[str, int]:
    """(recipe + overrides, training seed) from a `genrec train ...` command line."""
    train = command.split(";")[0]
    words = shlex.split(train)
    seed, out, i = 0, [], 0
    while i < len(words):
        w = words[i]
        if w in ("genrec", "train", "--resume", "--quiet") or w.endswith("/genrec"):
            i += 1
            continue
        key, eq, val = w.partition("=")
        if w.startswith("--") and not eq and i + 1 < len(words):
            val, i = words[i + 1], i + 1
        if key == "--train.seed":
            seed = int(val)
        if key.startswith("--") and key not in DROP:
            out.append(f"{key} {val}")
        elif not key.startswith("--"):
            out.append(w)
        i += 1
    return " ".join(out), seed


def planned(plan: dict, dataset: str, config: str, seed: int) -> bool:
    entries = ((plan.get(dataset) or {}).get("genrec") or []) + ((plan.get("quickstart") or {}).get("candidates") or [])
    for entry in entries:
        if entry["recipe"] == config and seed in entry["seeds"]:
            return True
    return False


def genrec_rows(res: dict, rel: str, plan: dict) -> list[dict]:
    dataset = res.get("dataset") or DATASET_BY_USERS.get(res["users"], "unknown")
    tr = res.get("training") or {}
    config, seed = config_of(tr["command"]) if tr.get("command") else ("unknown", res.get("train_seed", 0))
    secs = tr.get("train_seconds", "")
    if res.get("ensemble"):  # `genrec evaluate A B`: one row, named by its members' seeds
        seeds = res["ensemble"]["seeds"]
        config, seed = f"ensemble of seeds {'+'.join(map(str, seeds))}: {config}", seeds[0]
        # the members trained side by side (one core each): the machine's wall time is the longest member's
        secs = max(m["train_seconds"] for m in res["ensemble"]["training"])
    new = res.get("ties") == "pessimistic"
    seq = res["families"]["sequential"]
    t = seq[next(k for k in seq if not k.startswith("mean_"))]
    return [{"dataset": dataset, "model": "genrec", "config": config, "seed": seed, "split": res.get("split", "test"),
             "selected_by": res.get("selected_by") or ("valid" if new and planned(plan, dataset, config, seed) else "test"),
             **{k: t[k] for k in ("hr@5", "hr@10", "ndcg@5", "ndcg@10")}, "users": t["users"],
             "ties": "pessimistic" if new else "first", "converged": "",
             "train_seconds": secs, "eval_users_per_s": res.get("users_per_s", ""),
             "result_file": rel}]


def baseline_rows(res: dict, rel: str) -> list[dict]:
    rows = []
    if res.get("kind") == "baseline":  # eval/bench_baselines.py
        cfg = f"{res['model']} max_len {res['max_len']} patience {res['patience']}" if res["model"] != "pop" else "pop"
        common = {"dataset": res["dataset"], "model": res["model"], "config": cfg, "seed": res["seed"],
                  "selected_by": "valid" if res["model"] != "pop" else "none", "ties": "pessimistic",
                  "converged": str(res["converged"]).lower() if res["model"] != "pop" else "", "train_seconds": res["train_seconds"],
                  "result_file": rel}
        s = res["test"]["sequential"]
        rows.append({**common, "split": "test", **{k: s[k] for k in ("hr@5", "hr@10", "ndcg@5", "ndcg@10")},
                     "users": s["users"], "eval_users_per_s": res["test"].get("users_per_s", "")})
        return rows
    for key, model in (("popularity", "pop"), ("sasrec", "recbole")):  # the older fixed-epoch files
        r = res.get(key)
        if not r or "error" in r:
            continue
        s = r["sequential"]
        rows.append({"dataset": res["dataset"], "model": model,
                     "config": "pop" if model == "pop" else f"recbole {r['epochs']} epochs, no validation",
                     "seed": r.get("seed", 0), "split": "test", "selected_by": "none",
                     **{k: s[k] for k in ("hr@5", "hr@10", "ndcg@5", "ndcg@10")}, "users": s["users"],
                     "ties": "first", "converged": "" if model == "pop" else "false",
                     "train_seconds": r.get("train_seconds", 0), "eval_users_per_s": r.get("eval_users_per_s", ""),
                     "result_file": rel})
    return rows


def probe_rows(res: dict, rel: str) -> list[dict]:
    """One row per probe: its last validation (what the probe's rule read)."""
    rows = []
    for p in res["probes"]:
        config, seed = config_of(p["command"])
        last = p["valid"][-1]
        rows.append({"dataset": res["dataset"], "model": "genrec", "config": config, "seed": seed, "split": "valid",
                     "selected_by": "probe", "hr@5": "", "hr@10": last["hr@10"], "ndcg@5": "",
                     "ndcg@10": last["ndcg@10"], "users": p["users"], "ties": "pessimistic", "converged": "",
                     "train_seconds": p["train_seconds"], "eval_users_per_s": "", "result_file": rel})
    return rows


def _follow(path: Path, what: str) -> dict[str, str]:
    """`git log --follow` of one file: {commit: its --name-status or --numstat line}, newest first."""
    out = subprocess.run(["git", "log", "--follow", "--format=commit %h", what, "--", str(path)],
                         cwd=ROOT, capture_output=True, text=True).stdout.splitlines()
    entries, commit = {}, None
    for line in out:
        if line.startswith("commit "):
            commit = line.split()[1]
        elif line.strip() and commit:
            entries[commit] = line
    return entries


def first_commit(path: Path) -> str:
    """The commit that wrote the result file's measurement: the code that produced it.

    History is walked newest first through moves (renames, and copies ≥ 95 % identical: a file moved
    away while a new measurement took its old name, as eval/results/quickstart.json is re-measured in
    place) and small edits (under 10 changed lines: a note or label added). The first entry that adds
    the file, rewrites it, or copies it from a file it merely resembles (git's --follow pairs a new
    run's JSON with an older, similar one) wins.
    """
    status, numstat = _follow(path, "--name-status"), _follow(path, "--numstat")
    commit = "uncommitted"
    for commit, line in status.items():
        kind = line.split("\t")[0]
        added, deleted = (numstat.get(commit, "0\t0").split("\t") + ["0"])[:2]
        changed = sum(int(n) if n.isdigit() else 10 for n in (added, deleted))
        if kind == "A" or (kind == "M" and changed >= 10) or (kind[:1] == "C" and int(kind[1:] or 0) < 95):
            return commit
    return commit


def build(plan: dict) -> list[dict]:
    rows = []
    for folder in SOURCES:
        for path in sorted(folder.glob("*.json")):
            res = json.loads(path.read_text())
            rel = str(path.relative_to(ROOT))
            if "families" in res and "sequential" in res["families"]:
                new = genrec_rows(res, rel, plan)
            elif "genrec" in res and "train" in res:  # a `genrec quickstart` results.json
                q = {**res["genrec"], "training": {"command": "genrec quickstart adapters/lora-smollm2.yaml "
                                                   f"--train.steps {res['train']['steps']}",
                                                   "train_seconds": res["train"]["seconds"]}}
                new = genrec_rows(q, rel, plan)
                new[0]["config"] += " (" + res["note"].split(":")[0] + ")" if res.get("note") else ""
                if res.get("selected_by"):  # the file says how its recipe was chosen
                    new[0]["selected_by"] = res["selected_by"]
                elif not res.get("note"):  # the default recipe as the quickstart runs it: no choice was made
                    new[0]["selected_by"] = "none"
            elif res.get("kind") == "probes":
                new = probe_rows(res, rel)
            elif res.get("kind") == "baseline" or "popularity" in res:
                new = baseline_rows(res, rel)
            else:  # benchmark tables (speed, memory), the headline itself: not evaluations of a run
                continue
            commit = first_commit(path)
            rows += [{**r, "commit": commit} for r in new]
    for r in rows:
        for k in ("hr@5", "hr@10", "ndcg@5", "ndcg@10"):
            r[k] = f"{r[k]:.4f}" if r[k] != "" else ""
    return rows


def read(path: Path | None = None) -> list[dict]:
    with open(path or LEDGER, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    from genrec.files import atomic_write_text

    plan = yaml.safe_load((ROOT / "eval" / "plan.yaml").read_text())
    rows = build(plan)
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(LEDGER, buf.getvalue())
    by = {}
    for r in rows:
        by[r["selected_by"]] = by.get(r["selected_by"], 0) + 1
    print(f"{LEDGER.relative_to(ROOT)}: {len(rows)} rows (" + ", ".join(f"{v} selected_by={k}" for k, v in by.items())
          + ")")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
