"""Prompt templates as data: load `prompts/*.yaml`, render one example. Knows nothing of models.

A template file holds one task family (VIP5: sequential, direct, explanation)::

    family: sequential
    templates:
      - id: seq-1
        seen: true          # false = held out for zero-shot evaluation
        answer: item        # item | yes_no | text: what the target is
        input: "{user} watched {history_images}. What next?"
        target: "{item}"

`render()` is the one pure function that turns a template and a user's slot
values into (source text, target text, the item behind each image slot).
Item and history slots are written through an `item_text` function, so the
ID scheme (text IDs, atomic tokens, semantic IDs) is the caller's choice.
An image slot becomes `k` copies of the image token; items without an image
get no slot.
"""
from __future__ import annotations

import string
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("sequential", "direct", "explanation")
ANSWERS = ("item", "yes_no", "text")
IMAGE_TOKEN = "<img>"
# slots holding text; slots holding item indices; slots that also place images
TEXT_SLOTS = {"user", "title", "feature", "rating", "answer", "explanation", "category", "year", "n", "facts"}
ITEM_SLOTS = {"item", "history", "candidates"}
IMAGE_SLOTS = {"item_image": "item", "history_images": "history", "candidates_images": "candidates"}
SLOTS = TEXT_SLOTS | ITEM_SLOTS | set(IMAGE_SLOTS)
# a wheel carries prompts/ inside the package; a source checkout has it at the top level
_PKG = Path(__file__).resolve().parent
PROMPTS_DIR = _PKG / "_data" / "prompts" if (_PKG / "_data" / "prompts").is_dir() else _PKG.parent / "prompts"


class TemplateError(ValueError):
    """A template file is malformed or uses an unknown slot."""


@dataclass(frozen=True)
class Template:
    id: str
    family: str
    seen: bool
    answer: str
    input: str
    target: str

    @property
    def slots(self) -> set[str]:
        return _slots(self.input) | _slots(self.target)


@dataclass(frozen=True)
class Rendered:
    source: str
    target: str
    image_items: tuple[int, ...]  # one item index per image slot, in order of appearance


def _slots(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def _check_template(raw: Any, where: str, family: str) -> Template:
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: a template must be a mapping, got {type(raw).__name__}")
    for key in ("id", "input", "target", "answer"):
        if key not in raw or raw[key] in (None, ""):
            raise TemplateError(f"{where}: template {raw.get('id', '?')!r} is missing '{key}'")
    unknown = set(raw) - {"id", "seen", "answer", "input", "target"}
    if unknown:
        raise TemplateError(f"{where}: template {raw['id']!r} has unknown key '{sorted(unknown)[0]}'")
    if raw["answer"] not in ANSWERS:
        raise TemplateError(f"{where}: template {raw['id']!r} answer {raw['answer']!r} "
                            f"is not one of {', '.join(ANSWERS)}")
    t = Template(id=str(raw["id"]), family=family, seen=bool(raw.get("seen", True)),
                 answer=raw["answer"], input=str(raw["input"]), target=str(raw["target"]))
    try:
        slots = t.slots
    except ValueError as e:
        raise TemplateError(f"{where}: template {t.id!r} has a malformed slot ({e})") from None
    bad = sorted(slots - SLOTS)
    if bad:
        raise TemplateError(f"{where}: template {t.id!r} uses unknown slot '{{{bad[0]}}}' "
                            f"(allowed: {', '.join(sorted(SLOTS))})")
    if _slots(t.target) & set(IMAGE_SLOTS):
        raise TemplateError(f"{where}: template {t.id!r} has an image slot in its target")
    return t


def load_family(path: str | Path) -> list[Template]:
    """Read one template file; raises `TemplateError` naming the file and template."""
    path = Path(path)
    if not path.is_file():
        raise TemplateError(f"{path}: no such template file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise TemplateError(f"{path}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict) or "templates" not in data:
        raise TemplateError(f"{path}: expected keys 'family' and 'templates'")
    family = data.get("family", path.stem)
    if family not in FAMILIES:
        raise TemplateError(f"{path}: family {family!r} is not one of {', '.join(FAMILIES)}")
    out = [_check_template(t, str(path), family) for t in data["templates"] or []]
    ids = [t.id for t in out]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise TemplateError(f"{path}: duplicate template id {sorted(dup)[0]!r}")
    return out


def load_templates(folder: str | Path | None = None) -> dict[str, list[Template]]:
    """All families in `folder` (default: the bundled prompts/), keyed by family."""
    folder = Path(folder) if folder else PROMPTS_DIR
    out: dict[str, list[Template]] = {}
    for fam in FAMILIES:
        p = folder / f"{fam}.yaml"
        if p.exists():
            out[fam] = load_family(p)
    if not out:
        raise TemplateError(f"{folder}: no template files ({', '.join(f + '.yaml' for f in FAMILIES)})")
    return out


def render(
    template: Template,
    values: Mapping[str, Any],
    item_text: Callable[[int], str],
    image_items: Container[int] | None = None,
    k: int = 2,
    image_token: str = IMAGE_TOKEN,
    item_sep: str = ", ",
) -> Rendered:
    """Fill a template. Pure: same inputs, same output.

    values: text slots as strings; `item` as an item index; `history` and
    `candidates` as sequences of item indices. `image_items`: the items that
    have an image (None = no images in this dataset). `item_sep` joins the items of a list
    (atomic item tokens need none: one token per item keeps prompts short).
    """
    placed: list[int] = []

    def fill(text: str, images_allowed: bool) -> str:
        out = []
        for literal, name, spec, conv in string.Formatter().parse(text):
            out.append(literal)
            if name is None:
                continue
            if name not in values and IMAGE_SLOTS.get(name) not in values:
                raise TemplateError(f"template {template.id!r}: no value for slot '{{{name}}}'")
            if name in TEXT_SLOTS:
                out.append(format(values[name], spec or ""))
            elif name in ITEM_SLOTS or name in IMAGE_SLOTS:
                src = IMAGE_SLOTS.get(name, name)
                items = [values[src]] if src == "item" else list(values[src])
                parts = []
                for i in items:
                    s = item_text(int(i))
                    if images_allowed and name in IMAGE_SLOTS and image_items is not None and i in image_items:
                        s = f"{s} {image_token * k}"
                        placed.append(int(i))
                    parts.append(s)
                out.append(item_sep.join(parts))
        return "".join(out)

    source = fill(template.input, True)
    target = fill(template.target, False)
    return Rendered(source, target, tuple(placed))
