"""`genrec info`: a recipe's trainable vs total parameters, from a model built without weights."""
from __future__ import annotations

from dataclasses import replace

from genrec.config import Recipe
from genrec.modeling.model import GenRecModel

def model_info(recipe: Recipe, n_items: int = 1000) -> dict:
    """Trainable vs total parameters, built on the meta device (no weights, no download).

    Atomic item tokens add an [n_items, D] trainable table; `n_items` sizes it."""
    from genrec.modeling.backbone import build_from_config
    from genrec.modeling.registry import BACKBONES

    name = recipe.model.backbone
    if name not in BACKBONES:
        raise ValueError(f"`info` counts registry backbones only ({', '.join(BACKBONES)}); got {name!r}")
    bb = build_from_config(name, device="meta")
    if bb.tokenizer is None:  # real backbones: a stand-in tokenizer is enough to count parameters
        from genrec.modeling.backbone import tiny_tokenizer
        bb = replace(bb, tokenizer=tiny_tokenizer(bb.kind))
    r = replace(recipe, model=replace(recipe.model, quantize="none", rank_layers=0))  # the exit moves no weight
    atomic = r.items.tokens == "atomic"
    counted = replace(r, items=replace(r.items, tokens="text", mask_seen=False))  # the item table: counted below
    m = GenRecModel(counted, bb)
    train, total = m.parameter_counts()
    groups: dict[str, int] = {}
    for n, p in m.trainable_parameters():
        key = "visual projector" if n.startswith("visual_proj.") else "LoRA" if "lora_" in n else \
            "bottleneck adapters" if "adapter_" in n else \
            "layer norms"
        groups[key] = groups.get(key, 0) + p.numel()
    if atomic:  # an [I, D] trainable table beside the frozen vocabulary
        table = n_items * (2 * bb.hidden + 1)
        groups[f"atomic item table ({n_items:,} items)"] = table
        train, total = train + table, total + table
    return {"backbone": name, "kind": bb.kind, "trainable": train, "total": total,
            "percent": 100.0 * train / total, "groups": groups}
