"""The visual projector and the one `splice` that puts image tokens into a prompt.

VIP5 (Geng et al., 2023): a frozen CLIP embedding of an item image becomes k
"visual tokens" in the backbone's embedding space through a small trainable
MLP. `splice` writes them over the `<img>` placeholder embeddings of the
prompt; training, evaluation and both serving engines call this same function
(vLLM receives the result as `prompt_embeds`).
"""
from __future__ import annotations

import torch
from torch import nn


class VisualProjector(nn.Module):
    """CLIP dim C → k tokens × backbone hidden D: Linear, tanh, Linear, LayerNorm."""

    def __init__(self, clip_dim: int, hidden: int, k: int = 2):
        super().__init__()
        self.k, self.hidden = k, hidden
        self.fc1 = nn.Linear(clip_dim, hidden)
        self.fc2 = nn.Linear(hidden, k * hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(feats))  # [N, D]
        out = self.fc2(h).view(*feats.shape[:-1], self.k, self.hidden)  # [N, K, D]
        return self.norm(out)


def splice(embeds: torch.Tensor, input_ids: torch.Tensor, image_token_id: int,
           visual: torch.Tensor | None) -> torch.Tensor:
    """Replace the embeddings at `<img>` positions by visual tokens, in reading order.

    embeds: [B, T, D] token embeddings; input_ids: [B, T]; visual: [N, K, D] for the N
    image slots of the batch in row-major order (each slot is K consecutive `<img>`).
    Returns a new tensor; every other position is untouched.
    """
    mask = input_ids == image_token_id  # [B, T]
    n_slots = int(mask.sum())
    if visual is None or visual.numel() == 0:
        if n_slots:
            raise ValueError(f"prompt has {n_slots} <img> tokens but no visual tokens were given")
        return embeds
    flat = visual.reshape(-1, embeds.shape[-1]).to(embeds.dtype)  # [N*K, D]
    if flat.shape[0] != n_slots:
        raise ValueError(f"prompt has {n_slots} <img> tokens but {flat.shape[0]} visual tokens were given")
    return embeds.masked_scatter(mask.unsqueeze(-1), flat)
