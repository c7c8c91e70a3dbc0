"""One process with N threads vs N processes with one thread each, on the CPU.

The same short training (a ranking recipe, B prompts an optimizer step) run twice, one after the
other in one script: `genrec train --threads N` in one process, then
`torchrun --nproc_per_node N -m genrec train --threads 1 --train.batch_size B/N` (DDP on gloo: the
same B prompts and one optimizer step per step, each process drawing its own; `accelerate launch
--cpu --num_processes N` starts one process here, not N). Prints
seconds per step of each and their ratio. One torch process keeps only part of a second core
busy (Python, the data, kernels that run on one thread), so on a CPU one process per core is the
way to use them all.

    .venv/bin/python eval/bench_processes.py --data data/ml-100k --steps 40

Writes eval/results/processes.json. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ["adapters/lora-smollm2-seq50-mask.yaml", "--model.layers", "10"]


def seconds_per_step(launch: list[str], data: str, steps: int, out: Path, extra: list[str]) -> float:
    cmd = [*launch, "train", str(ROOT / RECIPE[0]), *RECIPE[1:], "--data", data, "--out", str(out),
           "--train.steps", str(steps), "--train.eval_every", "0", "--train.eval_users", "1", "--quiet", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return json.loads((out / "train_summary.json").read_text())["seconds"] / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="data/ml-100k", help="a prepared dataset (genrec prepare)")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="N: threads, then processes")
    ap.add_argument("--batch-size", type=int, default=8, help="B: prompts an optimizer step (divisible by N)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "processes.json"))
    a = ap.parse_args()
    n, b = a.cores, a.batch_size
    if n < 2 or b % n:
        raise SystemExit(f"bench_processes: needs --cores >= 2 dividing --batch-size (got {n} and {b})")
    bin_ = ROOT / ".venv" / "bin"
    with tempfile.TemporaryDirectory() as tmp:
        one = seconds_per_step([str(bin_ / "genrec")], a.data, a.steps, Path(tmp) / "one",
                               ["--threads", str(n), "--train.batch_size", str(b)])
        many = seconds_per_step([str(bin_ / "torchrun"), "--nproc_per_node", str(n), "-m", "genrec"],
                                a.data, a.steps, Path(tmp) / "many",
                                ["--threads", "1", "--train.batch_size", str(b // n)])
    res = {"cores": n, "prompts_per_step": b, "steps": a.steps, "data": a.data,
           "recipe": " ".join(RECIPE), "one_process_s_per_step": round(one, 3),
           "processes_s_per_step": round(many, 3), "speedup": round(one / many, 2)}
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(f"1 process x {n} threads: {one:.3f} s a step; {n} processes x 1 thread: {many:.3f} s a step "
          f"({one / many:.2f}x) -> {a.out}")


if __name__ == "__main__":
    main()
