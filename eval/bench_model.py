"""Model benchmarks, each measured side by side in one run (results: eval/results/model.{json,md}).

1. step ratio — one training step of GenRecModel (LoRA + visual projector, forward + backward +
   AdamW step) vs the bare frozen backbone's forward + backward on the same batch (gradient to
   the input embeddings, as the projector needs). Target <= 1.15x.
2. feature cache — `extract_features` on real photos, first run vs second run (cache hit,
   provenance verified by re-hashing the image files). Target >= 20x.
3. memory — peak RSS of a few training steps with LoRA vs full fine-tuning of the same
   backbone, each in its own process.

    .venv/bin/python eval/bench_model.py [--backbone smollm2-135m] [--steps 6] [--images 64]

CLIP weights: random (`none`) unless --clip-pretrained is given — no pretrained CLIP exists
offline here; encoding cost does not depend on the weights' values.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "eval" / "results"


def _batch(model, n_prompt_tokens: int, batch_size: int, n_images: int):
    import torch
    tok = model.tokenizer
    words = " ".join(str(1000 + i) for i in range(n_prompt_tokens))
    text = f"user_7 watched {'<img>' * model.recipe.model.visual_tokens} {words}"
    enc = tok([text] * batch_size, return_tensors="pt", truncation=True, max_length=n_prompt_tokens)
    n_slots = int((enc["input_ids"] == model.image_token_id).sum()) // model.recipe.model.visual_tokens
    from genrec.vision import clip_dim
    feats = torch.randn(n_slots, clip_dim(model.recipe.model.clip_model))
    return enc, feats


def bench_step(backbone: str, steps: int, tokens: int, batch_size: int) -> dict:
    import torch

    from genrec.config import AdapterConfig, ModelConfig, Recipe
    from genrec.modeling.model import GenRecModel

    torch.manual_seed(0)
    recipe = Recipe(model=ModelConfig(backbone=backbone, clip_pretrained="none"), adapter=AdapterConfig(type="lora"))
    model = GenRecModel(recipe)
    model.train()
    enc, feats = _batch(model, tokens, batch_size, 1)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    labels = ids.clone()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    base = model.base_model()

    def ours():
        out = model(input_ids=ids, attention_mask=mask, image_feats=feats, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def bare():
        with model.backbone.disable_adapter():
            emb = base.get_input_embeddings()(ids).detach().requires_grad_(True)
            out = base(inputs_embeds=emb, attention_mask=mask, labels=labels)
            out.loss.backward()

    times = {"genrec": [], "bare": []}
    for fn in (ours, bare):  # warm-up
        fn()
    for _ in range(steps):  # interleaved so machine noise hits both alike
        for name, fn in (("genrec", ours), ("bare", bare)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"backbone": backbone, "tokens": int(ids.shape[1]), "batch_size": batch_size, "steps": steps,
            "genrec_step_s": round(med["genrec"], 4), "bare_fwd_bwd_s": round(med["bare"], 4),
            "ratio": round(med["genrec"] / med["bare"], 3), "target": "<= 1.15"}


def bench_features(n_images: int, clip_model: str, pretrained: str) -> dict:
    import warnings

    from PIL import Image

    from genrec.vision import extract_features

    photos = Path(__import__("sklearn").__file__).parent / "datasets" / "images"
    srcs = [Image.open(photos / "china.jpg").convert("RGB"), Image.open(photos / "flower.jpg").convert("RGB")]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(n_images):  # distinct real-photo crops, each its own file
            im = srcs[i % 2]
            x, y = (i * 37) % (im.width - 240), (i * 23) % (im.height - 240)
            p = Path(d) / f"{i}.jpg"
            im.crop((x, y, x + 240, y + 240)).save(p, quality=90)
            paths.append(str(p))
        out = Path(d) / "f.safetensors"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            extract_features(paths, out, clip_model, pretrained, batch_size=32, progress=False)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, rep = extract_features(paths, out, clip_model, pretrained, batch_size=32, progress=False)
            second = time.perf_counter() - t0
    assert rep["cache_hit"]
    return {"images": n_images, "clip": f"{clip_model}/{pretrained}", "first_s": round(first, 3),
            "cache_hit_s": round(second, 4), "speedup": round(first / second, 1), "target": ">= 20"}


def _memory_child(backbone: str, mode: str, steps: int, tokens: int) -> None:
    """Run in a child process: a few steps with LoRA or full fine-tuning, then report peak RSS."""
    import resource

    import torch

    from genrec.config import AdapterConfig, ModelConfig, Recipe
    from genrec.modeling.model import GenRecModel

    recipe = Recipe(model=ModelConfig(backbone=backbone, clip_pretrained="none"),
                    adapter=AdapterConfig(type="lora" if mode == "lora" else "none"))
    model = GenRecModel(recipe)
    if mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    enc, feats = _batch(model, tokens, 4, 1)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    for _ in range(steps):
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], image_feats=feats,
                    labels=enc["input_ids"])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({"mode": mode, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "trainable": n_train}))


def bench_memory(backbone: str, steps: int, tokens: int) -> dict:
    rows = {}
    for mode in ("lora", "full"):
        r = subprocess.run([sys.executable, __file__, "--_memory-child", mode, "--backbone", backbone,
                            "--steps", str(steps), "--tokens", str(tokens)], capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        if r.returncode:
            raise SystemExit(f"memory child ({mode}) failed: {r.stderr[-2000:]}")
        rows[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    return {"backbone": backbone, "lora_peak_mb": round(rows["lora"]["peak_rss_mb"]),
            "full_peak_mb": round(rows["full"]["peak_rss_mb"]),
            "lora_trainable": rows["lora"]["trainable"], "full_trainable": rows["full"]["trainable"],
            "full_over_lora": round(rows["full"]["peak_rss_mb"] / rows["lora"]["peak_rss_mb"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description="genrec model benchmarks")
    ap.add_argument("--backbone", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--clip-model", default="ViT-B-32")
    ap.add_argument("--clip-pretrained", default="none")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on shared 2-core CPUs)")
    ap.add_argument("--_memory-child", dest="child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    if a.child:
        _memory_child(a.backbone, a.child, a.steps, a.tokens)
        return
    result = {"date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(),
              "python": platform.python_version(), "torch": torch.__version__, "threads": a.threads}}
    print("step ratio ...", flush=True)
    result["step"] = bench_step(a.backbone, a.steps, a.tokens, a.batch_size)
    print(result["step"], flush=True)
    print("feature cache ...", flush=True)
    result["features"] = bench_features(a.images, a.clip_model, a.clip_pretrained)
    print(result["features"], flush=True)
    print("memory ...", flush=True)
    result["memory"] = bench_memory(a.backbone, 3, a.tokens)
    print(result["memory"], flush=True)
    from genrec.files import atomic_write_text
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "model.json", json.dumps(result, indent=2) + "\n")
    s, f, m = result["step"], result["features"], result["memory"]
    md = f"""# Model benchmarks

{result['date']}, {result['machine']['cpus']} CPUs, torch {result['machine']['torch']}, {a.threads} thread(s).

| benchmark | measured | ratio | target |
|---|---|---|---|
| training step, {s['backbone']}, LoRA + projector vs bare frozen fwd+bwd ({s['batch_size']} x {s['tokens']} tokens) | {s['genrec_step_s']} s vs {s['bare_fwd_bwd_s']} s | {s['ratio']}x | <= 1.15x |
| `genrec features`, {f['images']} real photos, {f['clip']}: first run vs cache hit | {f['first_s']} s vs {f['cache_hit_s']} s | {f['speedup']}x | >= 20x |
| peak RSS, {m['backbone']}, LoRA vs full fine-tuning (3 AdamW steps) | {m['lora_peak_mb']} MB vs {m['full_peak_mb']} MB | full = {m['full_over_lora']}x LoRA | LoRA smaller |

CLIP weights were random (no pretrained CLIP offline); encoding cost does not depend on weight values.
Trainable parameters: LoRA {m['lora_trainable']:,}, full fine-tuning {m['full_trainable']:,}.
"""
    atomic_write_text(RESULTS / "model.md", md)
    print(md)


if __name__ == "__main__":
    main()
