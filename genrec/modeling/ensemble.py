"""Several trained checkpoints of one recipe ranked as one model.

Two one-thread runs of different seeds fit a 2-core machine side by side; ranking by the mean of
their log-probabilities over the catalogue (each member normalised on its own; the same order as
the mean of their logits) is a two-member ensemble: no more training, one more forward pass per prompt. Atomic item tokens only, and only
the families that rank items from those scores (sequential, direct): text generation has no
averaged answer.
"""
from __future__ import annotations

from genrec.config import to_dict
from genrec.modeling.model import GenRecModel


def _recipe_without_seed(model: GenRecModel) -> dict:
    r = to_dict(model.recipe)
    r.get("train", {}).pop("seed", None)
    return r


class Ensemble:
    """Members of one recipe (different training seeds); everything but the scores is the first member's."""

    def __init__(self, members: list[GenRecModel]):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two checkpoints")
        first = members[0]
        for m in members:
            if m.codec.mode != "atomic":
                raise ValueError(f"ensembles rank atomic item tokens only; a member uses {m.codec.mode!r} items")
        base = _recipe_without_seed(first)
        for i, m in enumerate(members[1:], 1):
            if _recipe_without_seed(m) != base:
                raise ValueError(f"checkpoint {i + 1} was trained with another recipe than the first; an ensemble's "
                                 "members differ only in their training seed")
            if m.codec.item_ids != first.codec.item_ids:
                raise ValueError(f"checkpoint {i + 1} has another item catalogue than the first")
        self.members = list(members)

    def __getattr__(self, name):  # recipe, codec, tokenizer, device, ... : the first member's
        return getattr(self.__dict__["members"][0], name)

    @property
    def seeds(self) -> list[int]:
        return [m.recipe.train.seed for m in self.members]

    def eval(self) -> "Ensemble":
        for m in self.members:
            m.eval()
        return self

    def set_task(self, family: str) -> None:
        for m in self.members:
            m.set_task(family)
