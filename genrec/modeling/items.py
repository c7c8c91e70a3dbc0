"""How an item is written into a prompt and read out of the model.

- `text`: the ID string as ordinary sub-word tokens (P5/VIP5). Targets are
  token sequences; decoding needs a prefix trie and beam search.
- `atomic`: one new token `<item_ID>` per item. The backbone's vocabulary is
  untouched: atomic tokens get ids after it and their embeddings live in a
  separate trainable table (`item_emb.`, initialised from the mean embedding
  of the item's title tokens). The same table is the output layer for items,
  so one forward pass scores the whole catalogue exactly.
"""
from __future__ import annotations

import torch
from torch import nn

ITEM_TOKEN = "<item_{}>"


class ItemTable(nn.Module):
    """Atomic item tokens: input embeddings, output embeddings and an output bias, all [I, ...].

    Input rows start from the item's title embedding (the prompt can read what an item is);
    output rows start at zero and the bias at the centred log training frequency, so an
    untrained model ranks exactly like most-popular and training learns the personal part."""

    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_items, dim))  # input side
        self.out = nn.Parameter(torch.zeros(n_items, dim))  # output side
        self.bias = nn.Parameter(torch.zeros(n_items))

    @torch.no_grad()
    def init(self, rows: torch.Tensor) -> None:
        """Set the initial input rows [I, D]."""
        self.weight.copy_(rows)

    def in_rows(self) -> torch.Tensor:
        """The input-side item matrix [I, D]."""
        return self.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(idx, self.weight)  # [.., D]

    def out_rows(self) -> torch.Tensor:
        """The output-side item matrix [I, D]."""
        return self.out

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[.., I] every item's score from hidden states [.., D]."""
        return hidden.to(self.out.dtype) @ self.out.T + self.bias  # [.., I]


def item_cross_entropy(table: ItemTable, h: torch.Tensor, y: torch.Tensor, seen: torch.Tensor | None = None,
                       n_neg: int = 0, training: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(loss, logits) of the item block: full softmax, or (training with n_neg = N > 0) a sampled
    softmax over the batch's distinct targets plus N uniform negatives, where an accidental hit (a
    sampled item equal to the row's target) is masked out (logits None then). seen [N, I] bool:
    items left out of each row's full softmax (its target never is)."""
    rows = table.out_rows()
    n_items = rows.shape[0]
    if seen is not None and n_neg and training:
        raise ValueError("seen-item masking needs the full softmax (items.negatives 0)")
    if not training or not n_neg or n_neg >= n_items:
        logits = table.logits(h).float()  # [N, I]
        if seen is not None:
            seen = seen.clone()
            seen[torch.arange(len(y), device=y.device), y] = False  # a repeated item stays a valid target
            logits = logits.masked_fill(seen, float("-inf"))
        return nn.functional.cross_entropy(logits, y), logits
    neg = torch.randint(0, n_items, (n_neg,), device=y.device)  # [S]
    cand = torch.cat([y.unique(), neg])  # [C]
    logits = (h.to(rows.dtype) @ rows[cand].T + table.bias[cand]).float()
    is_target = cand.unsqueeze(0) == y.unsqueeze(1)  # [N, C]
    first = is_target.float().argmax(1)  # the column of each row's own target (its first occurrence)
    dup = is_target.clone()
    dup[torch.arange(len(y), device=y.device), first] = False
    logits = logits.masked_fill(dup, float("-inf"))
    return nn.functional.cross_entropy(logits, first), None


def items_so_far(input_ids: torch.Tensor, offset: int, n_items: int) -> torch.Tensor:
    """[B, T, I] bool: the atomic items (token ids offset..offset+I-1) among each row's tokens up to
    and including position t."""
    idx = torch.where(input_ids >= offset, input_ids - offset, n_items)  # [B, T] (n_items: not an item)
    hot = torch.zeros(*input_ids.shape, n_items + 1, dtype=torch.int32, device=input_ids.device)
    hot.scatter_(2, idx.unsqueeze(-1), 1)  # [B, T, I + 1]
    return hot.cumsum(1)[..., :n_items] > 0  # [B, T, I]


class ItemCodec:
    """Item index -> prompt text, and the token ids of an item as a target."""

    def __init__(self, mode: str, item_ids: list[str], tokenizer, offset: int | None = None,
                 space_prefix: bool = True):
        self.mode, self.item_ids, self.tokenizer = mode, list(item_ids), tokenizer
        self.offset = offset  # first atomic token id
        # decoder-only targets continue the prompt after a space (byte-level BPE folds it into the token)
        self.space_prefix = space_prefix

    def text(self, item: int) -> str:
        return ITEM_TOKEN.format(self.item_ids[item]) if self.mode == "atomic" else self.item_ids[item]

    def target_ids(self, item: int) -> list[int]:
        if self.mode == "atomic":
            return [self.offset + item]
        return text_ids(self.tokenizer, self.item_ids[item], self.space_prefix)

    def __len__(self) -> int:
        return len(self.item_ids)


def text_ids(tokenizer, text: str, space_prefix: bool) -> list[int]:
    """Token ids of a target text as it follows a prompt."""
    return tokenizer((" " + text) if space_prefix else text, add_special_tokens=False)["input_ids"]


def add_atomic_tokens(tokenizer, item_ids: list[str]) -> int:
    """Add one token per item; returns the id of the first (they are contiguous)."""
    toks = [ITEM_TOKEN.format(i) for i in item_ids]
    before = len(tokenizer)
    existing = tokenizer.convert_tokens_to_ids(toks[0]) if toks else None
    if existing is not None and existing != tokenizer.unk_token_id and existing >= before - len(toks):
        return existing  # already added (a saved tokenizer)
    tokenizer.add_tokens(toks, special_tokens=True)
    first = tokenizer.convert_tokens_to_ids(toks[0])
    last = tokenizer.convert_tokens_to_ids(toks[-1])
    if last - first != len(toks) - 1:
        raise ValueError("atomic item tokens did not get contiguous ids")
    return first


def title_init(embedding: nn.Embedding, tokenizer, titles: list[str]) -> torch.Tensor:
    """[I, D] rows: the mean input embedding of each title's tokens (the overall mean if empty)."""
    w = embedding.weight.detach().float()
    mean = w.mean(0)
    rows = []
    for t in titles:
        ids = tokenizer(t or "", add_special_tokens=False)["input_ids"]
        ids = [i for i in ids if i < w.shape[0]]
        rows.append(w[ids].mean(0) if ids else mean)
    return torch.stack(rows) if rows else torch.zeros(0, w.shape[1])


def mix_init(rows: torch.Tensor, extra: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Title rows [I, D] plus a second view of each item [I, D] (its projected image, its
    collaborative vector), rescaled to the title row's norm so neither part swamps the other;
    items without it (has [I] False) keep their title row. Returns new rows."""
    p = extra.float()
    scale = rows.norm(dim=-1, keepdim=True) / p.norm(dim=-1, keepdim=True).clamp(min=1e-12)  # [I, 1]
    mixed = 0.5 * (rows + p * scale)  # [I, D]
    return torch.where(has.unsqueeze(-1), mixed, rows)


def cf_rows(vectors: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """Collaborative item vectors [I, d] into the backbone's width: [I, D] through a fixed random
    Gaussian map [d, D] (seeded; inner products are kept in expectation, Johnson-Lindenstrauss)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(vectors.shape[1], dim, generator=g) / dim ** 0.5  # [d, D]
    return vectors.float() @ m
