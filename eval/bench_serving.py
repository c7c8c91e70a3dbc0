"""Serving throughput and latency: vLLM engine vs transformers engine, same checkpoint, one run.

Each engine is served by the real HTTP server (`genrec serve`'s app, uvicorn on loopback) in a
child process of this script, one after the other; clients in this process POST /recommend
(k=10, a spread of users, one keep-alive connection per client) from 1, 8 and 32 threads. Reports recommendations/s and p50/p95 latency per
level and the vLLM/hf throughput ratio. Run it where both engines import (.venv-vllm on CPU):

    .venv-vllm/bin/python eval/bench_serving.py --checkpoint runs/X/best

Targets (issue: serving): vLLM >= 3x the hf engine's throughput at 32 clients on CPU (>= 5x on a
GPU); p50 of a single recommendation with the SmolLM2-135M default under 300 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def child(ns) -> None:
    """Serve one engine on loopback until stdin closes; print READY <url> <load seconds>."""
    from genrec.serving.engine import load_engine
    from genrec.serving.server import create_app
    from tests.browser import LiveServer

    t0 = time.perf_counter()
    engine = load_engine(ns.engine, ns.checkpoint, ns.data, "cpu")
    load_s = time.perf_counter() - t0
    with LiveServer(create_app(engine, timeout_s=600, max_batch=ns.max_batch)) as live:
        print(f"READY {live.url} {load_s:.1f}", flush=True)
        sys.stdin.read()
    engine.close()


def load(url: str, engine: str, clients: list[int], n_req: int) -> dict:
    """Clients in this process (the server has its own): POST /recommend from 1, 8, 32 threads."""
    import httpx

    users = httpx.get(f"{url}/users", params={"limit": 10_000}).json()["ids"]
    with httpx.Client(timeout=600) as warm:
        for j in range(3):
            warm.post(f"{url}/recommend", json={"user": users[j], "k": 10}).raise_for_status()
    levels = []
    for c in clients:
        n = max(n_req, c * 2)
        bodies = [{"user": users[(j * 7) % len(users)], "k": 10} for j in range(n)]
        local = threading.local()

        def one(body):
            if not hasattr(local, "c"):
                local.c = httpx.Client(timeout=600)
            s = time.perf_counter()
            local.c.post(f"{url}/recommend", json=body).raise_for_status()
            return time.perf_counter() - s
        s = time.perf_counter()
        with ThreadPoolExecutor(c) as pool:
            lat = list(pool.map(one, bodies))
        wall = time.perf_counter() - s
        levels.append({"clients": c, "requests": n, "recs_per_s": round(n / wall, 2),
                       "p50_ms": round(1000 * statistics.median(lat), 1), "p95_ms": round(1000 * pct(lat, 95), 1)})
        print(f"  {engine}: {c:>2} clients  {levels[-1]}", file=sys.stderr, flush=True)
    return {"engine": engine, "levels": levels}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True,
                    help="a checkpoint vLLM can serve (decoder-only backbone, atomic items)")
    ap.add_argument("--data", default=None, help="prepared dataset (default: the checkpoint's)")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--requests", type=int, default=48, help="requests per level (at least 2 per client)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "eval/results/serving.json"))
    ap.add_argument("--engine", help=argparse.SUPPRESS)  # child mode
    ns = ap.parse_args()
    ns.clients = [int(c) for c in ns.clients.split(",")]
    if ns.engine:
        return child(ns)
    from genrec.files import atomic_write_text

    res = {"checkpoint": ns.checkpoint, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
           "engines": {}}
    for engine in ("hf", "vllm"):
        print(f"[{engine}] loading and serving {ns.checkpoint}", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--engine", engine, "--checkpoint", ns.checkpoint,
               "--max-batch", str(ns.max_batch)] + (["--data", ns.data] if ns.data else [])
        log = open(Path(tempfile.gettempdir()) / f"genrec_bench_serving.{engine}.log", "w")
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
        try:
            line = []
            for raw in p.stdout:  # libraries may print to stdout before the server is up
                if raw.startswith("READY "):
                    line = raw.split()
                    break
            if not line:
                sys.exit(f"{engine} server failed to start; see {log.name}")
            res["engines"][engine] = load(line[1], engine, ns.clients, ns.requests)
            res["engines"][engine]["load_s"] = float(line[2])
        finally:
            p.stdin.close()
            p.wait(60)
            log.close()
    hf = {lv["clients"]: lv for lv in res["engines"]["hf"]["levels"]}
    vl = {lv["clients"]: lv for lv in res["engines"]["vllm"]["levels"]}
    res["throughput_ratio_vllm_over_hf"] = {c: round(vl[c]["recs_per_s"] / hf[c]["recs_per_s"], 2) for c in hf}
    rows = ["| clients | hf recs/s | hf p50 ms | hf p95 ms | vLLM recs/s | vLLM p50 ms | vLLM p95 ms | vLLM / hf |",
            "|---|---|---|---|---|---|---|---|"]
    for c in ns.clients:
        rows.append(f"| {c} | {hf[c]['recs_per_s']} | {hf[c]['p50_ms']} | {hf[c]['p95_ms']} | {vl[c]['recs_per_s']} "
                    f"| {vl[c]['p50_ms']} | {vl[c]['p95_ms']} | {res['throughput_ratio_vllm_over_hf'][c]}× |")
    table = "\n".join(rows)
    from genrec.checkpoint import read_config
    from genrec.config import translate
    cfg = translate(read_config(Path(ns.checkpoint)))
    model = {**cfg.get("model", {}), "item_tokens": cfg.get("items", {}).get("tokens", "text")}
    res["model"] = {k: model.get(k) for k in ("backbone", "item_tokens", "max_length")}
    res["adapter"] = cfg.get("adapter", {}).get("type")
    md = (f"# Serving: vLLM vs transformers engine\n\ncheckpoint `{ns.checkpoint}` ({model.get('backbone')} + "
          f"{res['adapter']}, {model.get('item_tokens')} item tokens; the adapter's training length does not change "
          f"speed), {res['machine']}, "
          f"POST /recommend k=10 over HTTP on loopback, {ns.requests}+ requests per level.\n\n{table}\n")
    print(table)
    atomic_write_text(ns.out, json.dumps(res, indent=2) + "\n")
    atomic_write_text(Path(ns.out).with_suffix(".md"), md)


if __name__ == "__main__":
    main()
