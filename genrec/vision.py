"""Frozen CLIP image encoder (open_clip) and the per-dataset image feature cache.

`extract_features()` encodes every item image of a prepared dataset once —
batched, with a progress bar, resumable (finished chunks are kept in
`<cache>.partial/` and skipped on a rerun) — and writes one safetensors file:
`features` [I, C] float32 and `mask` [I] (1 = the item has a usable image).
Its metadata is the provenance: encoder, pretrained tag (or checkpoint file),
preprocessing, a SHA-256 over the image files, and whether the weights were
random. Loading a cache whose provenance differs from what is asked raises;
a random-weight cache warns on every use (no pretrained CLIP exists offline
here: `--clip-pretrained none` is for testing mechanics only). Missing or
corrupt images are masked and counted, never a crash.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from genrec.files import atomic_write_bytes

FEATURES_VERSION = "1"
# encoders: open_clip architecture name -> embedding size; `genrec-tiny-clip` is registered
# with open_clip from its config (random weights only, for tests).
CLIP_ENCODERS: dict[str, dict] = {
    "ViT-B-32": {"dim": 512},
    "ViT-B-16": {"dim": 512},
    "ViT-L-14": {"dim": 768},
    "RN50": {"dim": 1024},
    "genrec-tiny-clip": {
        "dim": 32, "tiny": True,
        "config": {"embed_dim": 32,
                   "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 16},
                   "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 32, "heads": 2,
                                "layers": 1}},
    },
}
RANDOM_WARNING = ("CLIP features from RANDOM weights (--clip-pretrained none): fine for testing the "
                  "pipeline, meaningless as image content")


class VisionError(ValueError):
    """The encoder cannot be loaded or a feature cache does not match."""


def clip_dim(name: str) -> int:
    if name not in CLIP_ENCODERS:
        raise VisionError(f"unknown CLIP encoder {name!r} (known: {', '.join(CLIP_ENCODERS)})")
    return CLIP_ENCODERS[name]["dim"]


def _register_tiny(name: str) -> None:
    import open_clip

    if name in open_clip.list_models():
        return
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{name}.json"
        p.write_text(json.dumps(CLIP_ENCODERS[name]["config"]))
        open_clip.add_model_config(p)


def load_clip(name: str, pretrained: str, device: str = "cpu"):
    """(frozen model, preprocess transform) from open_clip."""
    try:
        import open_clip
    except ImportError:
        raise VisionError("image features need the vision extra: pip install 'genrec[vision]'") from None
    clip_dim(name)
    if CLIP_ENCODERS[name].get("tiny"):
        _register_tiny(name)
        if pretrained != "none":
            raise VisionError(f"{name} exists only with random weights: pass --clip-pretrained none")
    tag = None if pretrained == "none" else pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=tag, device=device)
    except Exception as e:  # open_clip raises RuntimeError/OSError/HF errors for unreachable weights
        raise VisionError(
            f"cannot load CLIP {name} weights {pretrained!r} ({str(e).splitlines()[0][:160]}); pass a local "
            "checkpoint file, or --clip-pretrained none for random weights (testing only)") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, preprocess


def pretrained_tag(pretrained: str) -> str:
    """How the weights are recorded: the open_clip tag, or a local file with its size."""
    if pretrained != "none" and Path(pretrained).is_file():
        return f"file:{Path(pretrained).resolve()}:{Path(pretrained).stat().st_size}"
    return pretrained


def _provenance(name: str, pretrained: str, preprocess, images_sha: str, n_items: int) -> dict[str, str]:
    return {"genrec_features": FEATURES_VERSION, "encoder": name, "pretrained": pretrained_tag(pretrained),
            "preprocess": " ".join(repr(preprocess).split()), "images_sha256": images_sha,
            "n_items": str(n_items), "random_weights": str(pretrained == "none").lower()}


def _hash_images(paths: list[str | None]) -> str:
    h = hashlib.sha256()
    for i, p in enumerate(paths):
        h.update(f"{i}:".encode())
        if p is None:
            h.update(b"-")
            continue
        try:
            h.update(Path(p).read_bytes())
        except OSError:
            h.update(b"!missing")
    return h.hexdigest()


@dataclass
class Features:
    features: torch.Tensor  # [I, C] float32, zeros where mask is 0
    mask: torch.Tensor  # [I] bool
    provenance: dict[str, str]
    path: Path

    @property
    def random_weights(self) -> bool:
        return self.provenance.get("random_weights") == "true"


def default_path(data_dir: str | Path, name: str, pretrained: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(pretrained).name)
    return Path(data_dir) / "features" / f"{name}-{safe}.safetensors"


def load_features(path: str | Path, expect: dict[str, str] | None = None) -> Features:
    """Read a cache; raise if any key of `expect` differs; warn if its weights were random."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise VisionError(f"{path}: no feature cache (run `genrec features` first)")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        feats, mask = f.get_tensor("features"), f.get_tensor("mask").bool()
    if meta.get("genrec_features") != FEATURES_VERSION:
        raise VisionError(f"{path}: not a genrec feature cache of version {FEATURES_VERSION}")
    for k, v in (expect or {}).items():
        if meta.get(k) != v:
            raise VisionError(f"{path}: feature cache was made with {k}={meta.get(k)!r}, "
                              f"but {v!r} is asked for; rerun `genrec features` with --overwrite")
    out = Features(feats, mask, meta, path)
    if out.random_weights:
        warnings.warn(RANDOM_WARNING, stacklevel=2)
    return out


def extract_features(
    image_paths: list[str | None],
    out: str | Path,
    name: str = "ViT-B-32",
    pretrained: str = "openai",
    device: str = "cpu",
    batch_size: int = 32,
    chunk: int = 256,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Features, dict]:
    """Encode item images (index = item) into the cache at `out`. Returns (features, report)."""
    from PIL import Image, UnidentifiedImageError
    from safetensors.torch import load_file, save
    from genrec.runtime import bar as tqdm

    out = Path(out)
    images_sha = _hash_images(image_paths)
    n = len(image_paths)
    if out.exists() and not overwrite:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cached = load_features(out)
        want = {"encoder": name, "pretrained": pretrained_tag(pretrained), "images_sha256": images_sha,
                "n_items": str(n)}
        bad = [k for k, v in want.items() if cached.provenance.get(k) != v]
        if bad:
            raise VisionError(f"{out}: existing cache differs in {bad[0]} ({cached.provenance.get(bad[0])!r} vs "
                              f"{want[bad[0]]!r}); pass --overwrite to rebuild it")
        if cached.random_weights:
            print(f"warning: {RANDOM_WARNING}", file=sys.stderr)
        return cached, {"cache_hit": True, "encoded": 0, "masked": int((~cached.mask).sum()), "failed": []}
    if out.exists():  # --overwrite replaces only a genrec feature cache, never another file
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_features(out)
        except Exception:
            raise VisionError(f"cannot write feature cache {out}: it exists and is not a genrec feature cache; "
                              "remove it yourself or choose another --out") from None
    model, preprocess = load_clip(name, pretrained, device)
    if pretrained == "none":
        print(f"warning: {RANDOM_WARNING}", file=sys.stderr)
    prov = _provenance(name, pretrained, preprocess, images_sha, n)
    dim = clip_dim(name)
    partial = out.with_name(out.name + ".partial")
    pfile = partial / "provenance.json"
    if partial.exists() and (not pfile.is_file() or json.loads(pfile.read_text()) != prov or overwrite):
        if not all(f.name == "provenance.json" or f.name.startswith("chunk-") for f in partial.iterdir()):
            raise VisionError(f"cannot use {partial}: it holds files genrec did not write; move them away")
        shutil.rmtree(partial)  # a different run's leftovers
    partial.mkdir(parents=True, exist_ok=True)
    pfile.write_text(json.dumps(prov))
    failed: list[tuple[int, str]] = []
    todo = [i for i, p in enumerate(image_paths) if p is not None]
    bar = tqdm(total=len(todo), desc=f"encode images ({name})", unit="img", disable=not progress)
    for start in range(0, n, chunk):
        cfile = partial / f"chunk-{start:08d}.safetensors"
        stop = min(n, start + chunk)
        n_imgs = sum(1 for i in range(start, stop) if image_paths[i] is not None)
        if cfile.is_file():
            bar.update(n_imgs)
            continue
        feats = torch.zeros(stop - start, dim)
        mask = torch.zeros(stop - start, dtype=torch.uint8)
        items = [i for i in range(start, stop) if image_paths[i] is not None]
        for b in range(0, len(items), batch_size):
            batch, idx = [], []
            for i in items[b:b + batch_size]:
                try:
                    with Image.open(image_paths[i]) as im:
                        batch.append(preprocess(im.convert("RGB")))
                    idx.append(i)
                except (OSError, UnidentifiedImageError, ValueError) as e:
                    failed.append((i, f"{image_paths[i]}: {type(e).__name__}"))
            if batch:
                with torch.no_grad():
                    emb = model.encode_image(torch.stack(batch).to(device)).float().cpu()  # [b, C]
                for j, i in enumerate(idx):
                    feats[i - start] = emb[j]
                    mask[i - start] = 1
            bar.update(len(items[b:b + batch_size]))
        atomic_write_bytes(cfile, save({"features": feats, "mask": mask}))
    bar.close()
    parts = [load_file(str(partial / f"chunk-{s:08d}.safetensors")) for s in range(0, n, chunk)]
    feats = torch.cat([p["features"] for p in parts]) if parts else torch.zeros(0, dim)
    mask = torch.cat([p["mask"] for p in parts]) if parts else torch.zeros(0, dtype=torch.uint8)
    atomic_write_bytes(out, save({"features": feats.contiguous(), "mask": mask.contiguous()}, metadata=prov))
    shutil.rmtree(partial, ignore_errors=True)
    report = {"cache_hit": False, "encoded": int(mask.sum()), "masked": int(n - mask.sum()),
              "no_image": n - len(todo), "failed": failed}
    return Features(feats, mask.bool(), prov, out), report


def recipe_features(recipe, ds, data_dir: str | Path, features: str | None = None):
    """The dataset's CLIP feature tensor for a recipe's encoder, or None when it has no images."""
    if not ds.meta.get("has_images"):
        return None
    path = Path(features) if features else default_path(data_dir, recipe.model.clip_model, recipe.model.clip_pretrained)
    return load_features(path, expect={"encoder": recipe.model.clip_model}).features
