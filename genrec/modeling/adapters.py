"""Adapters that train inside a frozen backbone, without forking it.

- LoRA through peft (Hu et al., 2021): targets from the backbone registry.
- VIP5-style bottleneck adapters (Houlsby et al., 2019; Sung et al., 2022):
  down-project by the reduction factor, swish, up-project (zero-initialised,
  so a new adapter is the identity), residual. Attached by module name after
  self-attention, cross-attention (T5 decoder) and feed-forward of every
  block, as a child module named `adapter_bottleneck` plus a forward hook —
  the backbone's own code and parameter names stay as they are. One adapter
  set shared by all tasks, or one per task family (`set_task`).

Every trainable parameter name carries a prefix (`lora_`, `adapter_`,
`visual_proj.`, or a layer norm when unfrozen): `is_trainable_name` is the one
predicate that freezing, the optimizer and checkpoint filtering use.
"""
from __future__ import annotations

import re
import warnings

import torch
from torch import nn

from genrec.config import AdapterConfig

TRAINABLE_PREFIXES = ("lora_", "adapter_", "visual_proj.", "item_emb.")
NORM_PATTERN = re.compile(r"(layer_norm|layernorm|_norm\b|\.norm\.|final_layer_norm|input_layernorm|post_attention_layernorm)")


def is_trainable_name(name: str, train_layer_norms: bool = False) -> bool:
    if any(p in name for p in TRAINABLE_PREFIXES):
        return True
    return train_layer_norms and bool(NORM_PATTERN.search(name))


class Bottleneck(nn.Module):
    def __init__(self, dim: int, reduction: int):
        super().__init__()
        inner = max(1, dim // reduction)
        self.down = nn.Linear(dim, inner)
        self.up = nn.Linear(inner, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(nn.functional.silu(self.down(x)))  # [.., D]


class TaskState:
    """Which task family's adapters are active (per batch)."""

    def __init__(self, default: str = "shared"):
        self.task = default


def _hook(state: TaskState):
    def run(module: nn.Module, args, output):
        bank = module.adapter_bottleneck
        adapter = bank[state.task] if state.task in bank else bank["shared"]
        if isinstance(output, tuple):
            return (adapter(output[0]),) + output[1:]
        return adapter(output)
    return run


# sub-module name patterns (suffixes) where bottleneck adapters go, per backbone kind
BOTTLENECK_SITES = {
    "decoder": (r"layers\.\d+\.self_attn$", r"layers\.\d+\.mlp$"),
    # T5: layer.0 self-attention, layer.1 cross-attention (decoder) / FF (encoder), layer.2 FF (decoder)
    "t5": (r"block\.\d+\.layer\.\d+$",),
}


def add_bottlenecks(model: nn.Module, kind: str, dim: int, cfg: AdapterConfig, tasks: tuple[str, ...]) -> TaskState:
    """Attach bottleneck adapters to every matching sub-module; return the task switch."""
    state = TaskState("shared")
    names = ("shared",) if not cfg.per_task else tasks
    sites = [re.compile(p) for p in BOTTLENECK_SITES[kind]]
    n = 0
    for name, module in list(model.named_modules()):
        if any(s.search(name) for s in sites):
            bank = nn.ModuleDict({t: Bottleneck(dim, cfg.reduction) for t in names})
            ref = next(module.parameters())
            bank.to(device=ref.device, dtype=torch.float32 if ref.dtype not in (torch.float32, torch.bfloat16, torch.float16) else ref.dtype)
            module.add_module("adapter_bottleneck", bank)
            module.register_forward_hook(_hook(state))
            n += 1
    if n == 0:
        raise ValueError(f"no sub-module of this {kind} backbone matches the bottleneck sites {BOTTLENECK_SITES[kind]}")
    if cfg.per_task:
        state.task = tasks[0]
    return state


def add_lora(model: nn.Module, targets: tuple[str, ...], cfg: AdapterConfig) -> nn.Module:
    """Wrap the backbone in a peft LoRA model (B zero-initialised: outputs unchanged at start)."""
    from peft import LoraConfig, get_peft_model

    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    use = [t for t in (cfg.targets or targets) if t in present]
    if not use:
        raise ValueError(f"none of the LoRA targets {list(cfg.targets or targets)} exist in this backbone")
    lcfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=use, bias="none")
    with warnings.catch_warnings():  # peft calls a transformers property deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model, lcfg)


def set_trainable(module: nn.Module, train_layer_norms: bool) -> None:
    for name, p in module.named_parameters():
        p.requires_grad_(is_trainable_name(name, train_layer_norms))
