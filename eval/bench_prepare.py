"""Benchmark: `genrec prepare` on MovieLens-1M (1,000,209 ratings) — wall time and peak memory.

Targets (2-core machine): under 30 s and under 2 GB. Runs the real CLI in a
child process so its peak RSS is measured alone. Writes
eval/results/prepare_ml1m.{json,md}.

    .venv/bin/python eval/bench_prepare.py [--item-ids random|sequential|collaborative]
"""
from __future__ import annotations

import argparse
import json
import platform
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from genrec.files import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def run(item_ids: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "genrec", "prepare", "--source", "movielens-1m", "--quiet",
               "--item-ids", item_ids, "--out", f"{tmp}/ml1m"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
        wall = time.perf_counter() - t0
        peak_kb = usage.ru_maxrss
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"prepare failed: {err.strip()}")
        meta = json.loads(Path(f"{tmp}/ml1m/meta.json").read_text())
    return {"item_ids": item_ids, "wall_s": round(wall, 2), "peak_rss_mb": round(peak_kb / 1024, 1),
            "raw_interactions": meta["raw_counts"]["interactions"], "counts": meta["counts"],
            "split_sizes": meta["split_sizes"], "summary": out.strip()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--item-ids", nargs="+", default=["random", "collaborative"])
    args = ap.parse_args()
    rows = [run(s) for s in args.item_ids]
    result = {"benchmark": "prepare MovieLens-1M", "targets": {"wall_s": 30, "peak_rss_mb": 2048},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d"), "runs": rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "prepare_ml1m.json", json.dumps(result, indent=2) + "\n")
    md = ["# `genrec prepare` on MovieLens-1M", "",
          f"{result['date']}, {result['machine']['cpus']} CPUs. Target: < 30 s, < 2 GB.", "",
          "| item IDs | wall (s) | peak RSS (MB) | interactions in | users / items / interactions out |",
          "|---|---|---|---|---|"]
    for r in rows:
        c = r["counts"]
        md.append(f"| {r['item_ids']} | {r['wall_s']} | {r['peak_rss_mb']} | {r['raw_interactions']:,} | "
                  f"{c['users']:,} / {c['items']:,} / {c['interactions']:,} |")
    atomic_write_text(RESULTS / "prepare_ml1m.md", "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
