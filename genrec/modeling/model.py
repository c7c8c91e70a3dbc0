"""`GenRecModel`: frozen backbone + visual projector + adapters, with save/load.

The forward pass embeds the prompt tokens, `splice`s the projected CLIP
features over the `<img>` placeholders and calls the backbone with
`inputs_embeds` (the T5 encoder's, or the decoder's). Nothing of the
backbone's code is copied.

A checkpoint directory holds only what trained, plus what rebuilds the rest::

    config.yaml             the recipe (model + adapter + data + train sections)
    trainable.safetensors   visual projector, bottleneck adapters, unfrozen norms
    lora/                   peft adapter folder (adapter_config.json + weights), for LoRA
    item_ids.json           the dataset's item ID map, when saved with one
    tokenizer/              the tokenizer with genrec's added tokens

No pickle anywhere.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from genrec.atomic import atomic_dir
from genrec.config import TASK_FAMILIES, Recipe, from_dict, to_dict
from genrec.modeling.adapters import add_bottlenecks, add_lora, is_trainable_name, set_trainable
from genrec.modeling.backbone import Backbone, load_backbone
from genrec.modeling.projector import VisualProjector, splice
from genrec.prompts import IMAGE_TOKEN
from genrec.vision import clip_dim

CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint directory is missing, damaged or from an incompatible version."""


class GenRecModel(nn.Module):
    def __init__(self, recipe: Recipe, backbone: Backbone | None = None):
        super().__init__()
        self.recipe = recipe
        bb = backbone or load_backbone(recipe.model.backbone, recipe.model.dtype, recipe.model.quantize)
        self.kind, self.tokenizer, self.tiny = bb.kind, bb.tokenizer, bb.tiny
        tok = self.tokenizer
        if IMAGE_TOKEN not in tok.get_vocab():
            tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
        self.image_token_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
        model = bb.model
        old_rows = model.get_input_embeddings().num_embeddings
        if len(tok) > old_rows:
            # the <img> input row is never read (splice overwrites it); new rows are set to the
            # mean embedding so that building a model is deterministic. Frozen like the rest.
            model.resize_token_embeddings(len(tok), mean_resizing=False)
            with torch.no_grad():
                for emb in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
                            if e is not None}.values():
                    emb.weight[old_rows:] = emb.weight[:old_rows].mean(0)
            for p in model.parameters():
                p.requires_grad_(False)
        ref = model.get_input_embeddings().weight
        proj_dtype = ref.dtype if ref.dtype in (torch.float32, torch.bfloat16, torch.float16) else torch.float32
        self.visual_proj = VisualProjector(clip_dim(recipe.model.clip_model), bb.hidden,
                                           recipe.model.visual_tokens).to(ref.device, proj_dtype)
        a = recipe.adapter
        self.task_state = None
        if a.type == "bottleneck":
            self.task_state = add_bottlenecks(model, bb.kind, bb.hidden, a, TASK_FAMILIES)
        elif a.type == "lora":
            model = add_lora(model, bb.lora_targets, a)
        self.backbone = model
        set_trainable(self, a.train_layer_norms)

    # ---------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.visual_proj.fc1.weight.device

    @property
    def is_encoder_decoder(self) -> bool:
        return self.kind == "t5"

    def base_model(self) -> nn.Module:
        """The transformers model (under peft's wrapper when LoRA is on)."""
        m = self.backbone
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def set_task(self, family: str) -> None:
        """Route bottleneck adapters to a task family's set (no-op when shared or LoRA)."""
        if self.task_state is not None:
            self.task_state.task = family

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def parameter_counts(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.parameters())
        train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return train, total

    # ---------------------------------------------------------------- forward
    def embed(self, input_ids: torch.Tensor, image_feats: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with visual tokens spliced in. image_feats: [N, C] per image slot."""
        emb = self.base_model().get_input_embeddings()(input_ids)  # [B, T, D]
        visual = self.visual_proj(image_feats.to(self.visual_proj.fc1.weight.dtype)) \
            if image_feats is not None and image_feats.numel() else None  # [N, K, D]
        return splice(emb, input_ids, self.image_token_id, visual)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                image_feats: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                decoder_input_ids: torch.Tensor | None = None, **kw):
        embeds = self.embed(input_ids, image_feats)
        if self.is_encoder_decoder:
            return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                                 decoder_input_ids=decoder_input_ids, **kw)
        return self.backbone(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kw)

    # ---------------------------------------------------------------- serving
    def merge_lora(self) -> None:
        """Fold LoRA into the backbone weights (serving: one plain model, no adapter math)."""
        if hasattr(self.backbone, "merge_and_unload"):
            self.backbone = self.backbone.merge_and_unload()

    # ---------------------------------------------------------------- checkpoints
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Projector, bottleneck adapters and unfrozen norms (LoRA is saved by peft)."""
        tln = self.recipe.adapter.train_layer_norms
        return {n: p.detach().contiguous().cpu() for n, p in self.named_parameters()
                if is_trainable_name(n, tln) and "lora_" not in n}

    def save_pretrained(self, out: str | Path, item_ids: list[str] | None = None,
                        overwrite: bool = True, extra: dict | None = None) -> Path:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            cfg = {"genrec_checkpoint": CHECKPOINT_VERSION, **to_dict(self.recipe), **(extra or {})}
            (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            save_file(self.trainable_state(), str(tmp / "trainable.safetensors"))
            if hasattr(self.backbone, "save_pretrained") and self.recipe.adapter.type == "lora" \
                    and hasattr(self.backbone, "peft_config"):
                self.backbone.save_pretrained(str(tmp / "lora"))
            if item_ids is not None:
                (tmp / "item_ids.json").write_text(json.dumps(item_ids), encoding="utf-8")
            self.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        return Path(out)

    @classmethod
    def from_pretrained(cls, path: str | Path, backbone: Backbone | None = None,
                        device: str | torch.device | None = None) -> "GenRecModel":
        path = Path(path)
        cfg_file = path / "config.yaml"
        if not cfg_file.is_file():
            raise CheckpointError(f"{path}: not a genrec checkpoint (no config.yaml)")
        raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
        version = raw.pop("genrec_checkpoint", None)
        if version != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {version}, this genrec reads {CHECKPOINT_VERSION}")
        raw = {k: v for k, v in raw.items() if k in ("name", "description", "data", "model", "adapter", "train")}
        recipe = from_dict(Recipe, raw, str(cfg_file))
        model = cls(recipe, backbone)
        if recipe.adapter.type == "lora":
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file as lf
            lw = path / "lora" / "adapter_model.safetensors"
            if not lw.is_file():
                raise CheckpointError(f"{path}: LoRA weights missing ({lw})")
            res = set_peft_model_state_dict(model.backbone, lf(str(lw)))
            if getattr(res, "unexpected_keys", None):
                raise CheckpointError(f"{path}: LoRA weights do not fit this backbone "
                                      f"(e.g. {res.unexpected_keys[0]})")
        state = load_file(str(path / "trainable.safetensors"))
        own = model.trainable_state()
        missing = sorted(set(own) - set(state))
        extra = sorted(set(state) - set(own))
        shape = [k for k in own if k in state and own[k].shape != state[k].shape]
        if missing or extra or shape:
            why = (f"missing {missing[0]}" if missing else f"unexpected {extra[0]}" if extra else
                   f"{shape[0]} has shape {tuple(state[shape[0]].shape)}, expected {tuple(own[shape[0]].shape)}")
            raise CheckpointError(f"{path}: trainable weights do not fit the model built from its config ({why})")
        model.load_state_dict(state, strict=False)
        if device is not None:
            model.to(device)
        return model


def model_info(recipe: Recipe) -> dict:
    """Trainable vs total parameters, built on the meta device (no weights, no download)."""
    from genrec.modeling.backbone import build_from_config
    from genrec.modeling.registry import BACKBONES

    name = recipe.model.backbone
    if name not in BACKBONES:
        raise ValueError(f"`info` counts registry backbones only ({', '.join(BACKBONES)}); got {name!r}")
    bb = build_from_config(name, device="meta")
    if bb.tokenizer is None:  # real backbones: a stand-in tokenizer is enough to count parameters
        from genrec.modeling.backbone import tiny_tokenizer
        bb = replace(bb, tokenizer=tiny_tokenizer(bb.kind))
    r = replace(recipe, model=replace(recipe.model, quantize="none"))
    m = GenRecModel(r, bb)
    train, total = m.parameter_counts()
    groups: dict[str, int] = {}
    for n, p in m.trainable_parameters():
        key = "visual projector" if n.startswith("visual_proj.") else "LoRA" if "lora_" in n else \
            "bottleneck adapters" if "adapter_" in n else "layer norms"
        groups[key] = groups.get(key, 0) + p.numel()
    return {"backbone": name, "kind": bb.kind, "trainable": train, "total": total,
            "percent": 100.0 * train / total, "groups": groups}
