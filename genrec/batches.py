"""From (user, template) to tensors: rendered examples and the collator that batches them.

Training, evaluation, the Recommender API and the serving engines all build
their inputs here, so a prompt is tokenised, truncated and given its image
features the same way everywhere. Decoder-only prompts are left-padded: the
answer always follows the last position of every row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genrec.data.dataset import PreparedDataset
from genrec.data.examples import example_values
from genrec.modeling.items import text_ids
from genrec.modeling.model import GenRecModel
from genrec.prompts import Template, render


@dataclass
class Example:
    family: str
    template: Template
    user: int
    source: str
    target: str
    image_items: tuple[int, ...]
    target_item: int | None = None  # the answer, for templates whose answer is an item
    candidates: list[int] | None = None
    history: list[int] | None = None
    position: int | None = None  # the target's index in the user's whole sequence


def make_example(ds: PreparedDataset, model: GenRecModel, template: Template, user: int, split: str,
                 rng: np.random.Generator, max_history: int = 10, n_candidates: int | None = None,
                 image_items: set[int] | None = None, values: dict | None = None,
                 position: int | None = None) -> Example | None:
    """Render one example; None if the user has no usable target for this split (position: the
    training target's index in the user's sequence, random if None)."""
    v = values if values is not None else example_values(ds, template, user, split, rng, max_history, n_candidates,
                                                         position=position)
    if v is None:
        return None
    r = render(template, v, model.codec.text, image_items, k=model.recipe.model.visual_tokens,
               item_sep="" if model.codec.mode == "atomic" else ", ")
    return Example(template.family, template, user, r.source, r.target, r.image_items,
                   v["item"] if template.answer == "item" else None, v.get("candidates"), v.get("history"),
                   v.get("position"))


def pictured_mask(features: torch.Tensor) -> torch.Tensor:
    """[I] bool: items whose image was read — the rows of the CLIP feature cache that are not all
    zeros (the cache stores zeros for an item without an image, a missing file or an unreadable one)."""
    return features.ne(0).any(1)


def pictured_items(features: torch.Tensor | None) -> set[int] | None:
    """The items of `pictured_mask` as a set (None when the dataset has no features). Prompts give
    these items their visual tokens, and `items.init: title+image` mixes their picture in."""
    if features is None:
        return None
    return set(torch.nonzero(pictured_mask(features)).flatten().tolist())


class Collator:
    """Tokenise prompts (left-truncated to model.max_length) and gather their image features."""

    def __init__(self, model: GenRecModel, features: torch.Tensor | None = None):
        self.model = model
        self.tok = model.tokenizer
        self.k = model.recipe.model.visual_tokens
        self.max_length = model.recipe.model.max_length
        self.features = features  # [I, C] or None (dataset without images)
        self.pad = model.pad_id
        self.eos = self.tok.eos_token_id

    def prompt_ids(self, ex: Example) -> tuple[list[int], list[int]]:
        """(token ids, the items of the image slots that survived truncation)."""
        ids = self.tok(ex.source, add_special_tokens=self.model.is_encoder_decoder)["input_ids"]
        items = list(ex.image_items)
        if len(ids) > self.max_length:
            ids = ids[-self.max_length:]
            img = self.model.image_token_id
            n = sum(1 for t in ids if t == img)
            partial = n % self.k
            if partial:  # a slot cut in half: drop its remaining <img> tokens
                out, dropped = [], 0
                for t in ids:
                    if t == img and dropped < partial:
                        dropped += 1
                        continue
                    out.append(t)
                ids, n = out, n - partial
            items = items[len(items) - n // self.k:] if n else []
        if self.reads_at_last_item(ex):  # the prompt ends with its last history item (and its image)
            off, img = self.model.codec.offset, self.model.image_token_id
            last = max((j for j, t in enumerate(ids) if t >= off or t == img), default=None)
            if last is not None:
                ids = ids[:last + 1]
        return ids, items

    def reads_at_last_item(self, ex: Example) -> bool:
        """items.readout = last_item applies to this example: an atomic-item, decoder-only model
        answering a sequential template with an item, from a non-empty history."""
        m = self.model
        return (m.recipe.items.readout == "last_item" and m.codec.mode == "atomic" and not m.is_encoder_decoder
                and ex.family == "sequential" and ex.template.answer == "item" and bool(ex.history))

    def _feats(self, items: list[int]) -> torch.Tensor | None:
        if not items:
            return None
        if self.features is None:
            raise ValueError("prompts have image slots but no image features were loaded")
        return self.features[torch.tensor(items, dtype=torch.long)]  # [N, C]

    def _pad_left(self, rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([[value] * (width - len(r)) + r for r in rows], dtype=torch.long)

    def _pad_right(self, rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)

    def prompts(self, examples: list[Example]) -> dict:
        """Prompt-only batch (for ranking, scoring, generation)."""
        rows, items = zip(*(self.prompt_ids(e) for e in examples))
        ids = self._pad_left(list(rows), self.pad)
        mask = self._pad_left([[1] * len(r) for r in rows], 0)
        all_items = [i for its in items for i in its]
        return {"input_ids": ids, "attention_mask": mask, "image_feats": self._feats(all_items)}

    def target_ids(self, ex: Example) -> list[int]:
        return text_ids(self.tok, ex.target, space_prefix=not self.model.is_encoder_decoder)

    def lm(self, examples: list[Example]) -> dict:
        """Teacher-forced batch: decoder-only = prompt + target + eos (labels on the target);
        T5 = prompt to the encoder, target + eos as labels."""
        rows, items = zip(*(self.prompt_ids(e) for e in examples))
        targets = [self.target_ids(e) + [self.eos] for e in examples]
        all_items = [i for its in items for i in its]
        if self.model.is_encoder_decoder:
            return {"input_ids": self._pad_left(list(rows), self.pad),
                    "attention_mask": self._pad_left([[1] * len(r) for r in rows], 0),
                    "labels": self._pad_right(targets, -100), "image_feats": self._feats(all_items)}
        seqs = [r + t for r, t in zip(rows, targets)]
        labels = [[-100] * len(r) + t for r, t in zip(rows, targets)]
        return {"input_ids": self._pad_left(seqs, self.pad),
                "attention_mask": self._pad_left([[1] * len(s) for s in seqs], 0),
                "labels": self._pad_left(labels, -100), "image_feats": self._feats(all_items),
                "target_len": max(len(t) for t in targets)}


def lm_loss(model, batch: dict) -> torch.Tensor:
    """Mean token cross-entropy of the targets (`model` may be wrapped by DDP)."""
    return model(**batch).loss


def seen_before(ds: PreparedDataset, examples: list[Example], input_ids: torch.Tensor, offset: int,
                n_items: int) -> torch.Tensor:
    """[B, I] bool: for history prompts, the items each user had before the first item the prompt
    (after truncation) still shows — with the prompt's own items, the history that evaluation
    leaves out of the ranking at each target (`items.mask_seen`)."""
    out = torch.zeros(len(examples), n_items, dtype=torch.bool)
    shown = (input_ids >= offset).sum(1).tolist()  # items left in each prompt
    for b, (e, n) in enumerate(zip(examples, shown)):
        if e.position is None or e.history is None:
            raise ValueError("items.mask_seen needs history prompts with a known target position")
        before = ds.sequence(e.user)[:e.position - n]
        out[b, torch.as_tensor(np.array(before, dtype=np.int64))] = True
    return out.to(input_ids.device)


def item_loss(model, batch: dict, targets: torch.Tensor, dense: bool = False,
              seen: torch.Tensor | None = None) -> torch.Tensor:
    """Full-softmax cross-entropy over the atomic item block at the answer position
    (dense: at every item of the prompt too; seen: `seen_before`, to mask the user's history)."""
    return model(**batch, item_targets=targets, dense_items=dense, seen_before=seen).loss
