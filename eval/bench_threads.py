"""Steady under load: the same short training alone and beside one competing CPU-bound process.

Three runs of `genrec train` (the default recipe, a few steps on MovieLens-100K), side by side in
one script: alone with genrec's default thread policy; beside a competitor with torch's own
default (all cores, OpenMP threads spinning: what genrec did before); beside a competitor with
genrec's policy (threads from the free CPUs, passive OpenMP wait). Prints seconds per step and the
slow-downs against the lone run (goal: <= 2.5x on 2 cores with the policy).

    .venv/bin/python eval/bench_threads.py --data data/ml-100k --steps 8

Writes eval/results/threads.json. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPETITOR = ("import numpy as np, time\n"
              "a = np.random.rand(600, 600)\n"
              "t = time.time()\n"
              "while time.time() - t < 3600: a @ a\n")


def run_train(data: str, steps: int, env: dict, workdir: Path, label: str, extra: tuple = ()) -> float:
    out = workdir / label
    cmd = [str(ROOT / ".venv" / "bin" / "genrec"), "train", str(ROOT / "adapters" / "lora-smollm2.yaml"),
           "--data", data, "--out", str(out), "--train.steps", str(steps), "--train.eval_every", "0",
           "--train.eval_users", "10", "--quiet", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "train_summary.json").read_text())
    return summary.get("train_seconds", wall) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=8)
    a = ap.parse_args()
    cpus = len(os.sched_getaffinity(0))
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    old_way = {**base, "OMP_WAIT_POLICY": "ACTIVE"}
    res = {"cpus": cpus, "steps": a.steps}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        res["alone_s_per_step"] = run_train(a.data, a.steps, base, tmp, "alone")
        comp = subprocess.Popen([sys.executable, "-c", COMPETITOR],
                                env={**base, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        try:
            time.sleep(3)  # the competitor is running before the policy samples /proc/stat
            res["busy_torch_default_s_per_step"] = run_train(a.data, a.steps, old_way, tmp, "old",
                                                             ("--threads", str(cpus)))
            res["busy_policy_s_per_step"] = run_train(a.data, a.steps, base, tmp, "policy")
        finally:
            comp.kill()
    res["slowdown_torch_default"] = res["busy_torch_default_s_per_step"] / res["alone_s_per_step"]
    res["slowdown_policy"] = res["busy_policy_s_per_step"] / res["alone_s_per_step"]
    print(json.dumps(res, indent=2))
    sys.path.insert(0, str(ROOT))
    from genrec.files import atomic_write_text
    atomic_write_text(ROOT / "eval" / "results" / "threads.json", json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
