"""Configuration: frozen dataclasses with the same keys as the YAML recipes.

One loader (`from_dict`) validates every section: an unknown key, a value of
the wrong type or a value outside its allowed set raises `ConfigError` (a
`ValueError`) naming the key, the bad value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _f(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field with its help text (and allowed values) as metadata; the CLI reads both."""
    md = {"help": help}
    if choices:
        md["choices"] = choices
    return field(default=default, metadata=md)


SOURCES = ("movielens-100k", "movielens-1m", "amazon", "movielens-raw", "table")
ITEM_ID_SCHEMES = ("random", "sequential", "collaborative", "semantic")
USER_ID_SCHEMES = ("random", "sequential")


@dataclass(frozen=True)
class DataConfig:
    """How a raw source becomes a prepared dataset directory."""

    source: str = _f("movielens-100k", "raw data source", SOURCES)
    path: str | None = _f(None, "reviews / ratings / interactions file or folder (bundled sources: optional)")
    items_path: str | None = _f(None, "item metadata file (amazon) or items table (table)")
    images_path: str | None = _f(None, "folder of <item>.jpg|png images fetched beforehand")
    k_core: int = _f(5, "keep users and items with at least this many interactions")
    seed: int = _f(0, "seed for random IDs and sampled negatives")
    item_ids: str = _f("random", "item ID scheme (sequential leaks the answer)", ITEM_ID_SCHEMES)
    user_ids: str = _f("random", "user ID scheme", USER_ID_SCHEMES)
    n_candidates: int = _f(100, "direct task: held-out item + (n_candidates - 1) sampled negatives")
    skip_bad_rows: bool = _f(False, "skip and count malformed rows instead of failing")
    columns: str | None = _f(None, "table: your column names, e.g. user=userId,item=movieId,timestamp=ts "
                                   "(YAML: a mapping)")
    encoding: str = _f("utf-8", "text encoding of table/CSV files (e.g. latin-1)")
    cluster_k: int = _f(20, "collaborative IDs: clusters per level of the spectral tree")
    cluster_leaf: int = _f(50, "collaborative IDs: largest leaf cluster")
    semantic_levels: int = _f(3, "semantic IDs: residual k-means levels")
    semantic_codes: int = _f(32, "semantic IDs: codes per level")

    def __post_init__(self) -> None:
        if self.k_core < 1:
            raise ConfigError(f"data.k_core must be >= 1, got {self.k_core}")
        if self.n_candidates < 2:
            raise ConfigError(f"data.n_candidates must be >= 2, got {self.n_candidates}")
        if self.cluster_k < 2 or self.cluster_leaf < 1:
            raise ConfigError("data.cluster_k must be >= 2 and data.cluster_leaf >= 1")
        if self.source in ("amazon", "movielens-raw", "table") and not self.path:
            raise ConfigError(f"data.path is required for source '{self.source}'")


def _check_type(section: str, key: str, value: Any, tp: Any) -> Any:
    """Coerce/validate one value against a dataclass field type (str/int/float/bool, optional)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(section, key, value, inner[0])
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{section}.{key} must be a list, got {value!r}")
        return tuple(_check_type(section, key, v, args[0]) for v in value) if args else tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{section}.{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{section}.{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{section}.{key} must be an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{section}.{key} must be an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{section}.{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{section}.{key} must be a string, got {value!r}")
        return str(value)
    return value


# Options removed because they measured no gain (docs/experiments.md): a recipe or checkpoint that
# still names one at its old default loads as before; any other value is refused by name.
REMOVED = {"model": {"item_tie": False, "item_rank": 0},
           "train": {"item_lr": None, "recent_windows": 0.0, "label_smoothing": 0.0, "ema": 0.0}}


def from_dict(cls: type, data: dict | None, section: str) -> Any:
    """Build the frozen dataclass `cls` from a mapping, validating every key."""
    data = translate(data or {}) if cls is Recipe else dict(data or {})
    for key, default in REMOVED.get(section.rsplit(".", 1)[-1], {}).items():  # section may carry a file prefix
        if key in data:
            value = data.pop(key)
            if value != default and not (default == 0 and value in (0, 0.0, False, None)):
                raise ConfigError(f"{section}.{key} was removed (it measured no gain; docs/experiments.md): only "
                                  f"its old default {default!r} is accepted, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    dot = f"{section}." if section else ""
    if unknown:
        raise ConfigError(f"unknown key '{dot}{unknown[0]}' (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        f = fields[name]
        if cls is DataConfig and name == "columns" and isinstance(value, dict):  # YAML mapping form
            value = ",".join(f"{k}={v}" for k, v in value.items())
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, (dict, type(None))):
                raise ConfigError(f"{section}.{name} must be a mapping, got {value!r}")
            value = from_dict(hints[name], value, f"{dot}{name}")
        else:
            value = _check_type(section or "recipe", name, value, hints[name])
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            raise ConfigError(
                f"{dot}{name} = {value!r} is not allowed (allowed: {', '.join(allowed)})"
            )
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """The YAML-ready mapping of a config dataclass (tuples become lists)."""
    def clean(v: Any) -> Any:
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    return {k: clean(v) for k, v in dataclasses.asdict(obj).items()}


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a one-line error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> Any:
    """A `--key value` override's value, parsed as YAML scalar (so 3 → int, true → bool)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


BACKBONE_DTYPES = ("float32", "bfloat16", "float16")
QUANTIZE = ("none", "4bit", "8bit")
ADAPTER_TYPES = ("lora", "bottleneck", "none")
TASK_FAMILIES = ("sequential", "direct", "explanation")


@dataclass(frozen=True)
class ModelConfig:
    """The frozen backbone, the frozen CLIP encoder and the trainable visual projector."""

    backbone: str = _f("smollm2-135m", "registry name, hub name or local directory of the language model")
    dtype: str = _f("float32", "backbone weights dtype", BACKBONE_DTYPES)
    quantize: str = _f("none", "bitsandbytes k-bit backbone (CUDA only)", QUANTIZE)
    visual_tokens: int = _f(2, "k: visual tokens per item image (VIP5: 2)")
    clip_model: str = _f("ViT-B-32", "open_clip architecture (or a genrec registry name)")
    clip_pretrained: str = _f("openai", "open_clip pretrained tag, a local checkpoint file, or 'none' (random: testing only)")
    max_length: int = _f(256, "longest prompt in tokens (longer ones are truncated from the left)")
    attention_dropout: float | None = _f(None, "decoder backbones: dropout on the frozen backbone's attention "
                                         "probabilities while training (SASRec uses 0.5); default: the "
                                         "backbone's own (0 for SmolLM2)")
    layers: int = _f(0, "decoder backbones: keep only the first k layers of the frozen backbone (SLMRec); "
                        "cost per token falls in proportion; 0 = all")
    rank_layers: int = _f(0, "decoder backbones: score items from the first k layers (early exit): ranking "
                             "passes and item-loss steps run only those, text still runs every layer; 0 = all")

    def __post_init__(self) -> None:
        if self.layers < 0:
            raise ConfigError(f"model.layers must be >= 0 (0 = all), got {self.layers}")
        if self.rank_layers < 0:
            raise ConfigError(f"model.rank_layers must be >= 0 (0 = all), got {self.rank_layers}")
        if self.layers and self.rank_layers >= self.layers:
            raise ConfigError(f"model.rank_layers={self.rank_layers} must be below model.layers={self.layers} "
                              "(the model already stops there: leave rank_layers at 0)")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ConfigError(f"model.attention_dropout must be in [0, 1), got {self.attention_dropout}")
        if self.visual_tokens < 1:
            raise ConfigError(f"model.visual_tokens must be >= 1, got {self.visual_tokens}")
        if self.max_length < 8:
            raise ConfigError(f"model.max_length must be >= 8, got {self.max_length}")


@dataclass(frozen=True)
class AdapterConfig:
    """What trains inside the frozen backbone: LoRA (peft) or VIP5-style bottleneck adapters."""

    type: str = _f("lora", "adapter kind", ADAPTER_TYPES)
    r: int = _f(8, "LoRA rank")
    alpha: int = _f(16, "LoRA alpha")
    dropout: float = _f(0.0, "LoRA dropout")
    targets: tuple[str, ...] | None = _f(None, "LoRA target modules (default: the backbone registry's)")
    reduction: int = _f(8, "bottleneck: hidden size / adapter size")
    per_task: bool = _f(False, "bottleneck: one adapter set per task family instead of shared")
    train_layer_norms: bool = _f(False, "also train the backbone's layer norms (VIP5 does)")

    def __post_init__(self) -> None:
        if self.r < 1 or self.reduction < 1:
            raise ConfigError("adapter.r and adapter.reduction must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"adapter.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """The training schedule only (the loop itself lives in genrec.train)."""

    steps: int = _f(200, "optimizer steps")
    batch_size: int = _f(4, "examples per step per process (before accumulation)")
    grad_accum: int = _f(1, "gradient accumulation steps")
    lr: float = _f(1e-3, "peak learning rate")
    warmup: float = _f(0.05, "warmup fraction of steps")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_grad_norm: float = _f(1.0, "gradient clipping")
    eval_every: int = _f(100, "validate every N steps (0 = only at the end)")
    eval_users: int = _f(200, "validation users")
    seed: int = _f(0, "training seed")
    precision: str = _f("auto", "mixed precision", ("auto", "no", "bf16", "fp16"))

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("train.steps, train.batch_size and train.grad_accum must be >= 1")


@dataclass(frozen=True)
class ItemsConfig:
    """How items are written and learnt: text IDs, or one atomic token per item with its own table."""

    tokens: str = _f("text", "text IDs as sub-words (P5/VIP5) or one atomic token per item (single-pass full "
                     "ranking)", ("text", "atomic"))
    init: str = _f("title", "atomic: each item's initial row — its title's mean token embedding, plus its CLIP "
                   "image through the projector, or plus its collaborative vector", ("title", "title+image", "title+cf"))
    readout: str = _f("last_item", "atomic, decoder-only, sequential templates: read the next item at the last "
                      "history item (as SASRec) or after the whole question", ("last_item", "answer"))
    dropout: float = _f(0.0, "atomic: dropout on the item rows while training (SASRec's embedding dropout)")
    dense: bool = _f(True, "atomic, sequential templates: also learn every history item from the tokens before it")
    negatives: int = _f(0, "atomic: 0 = full softmax over the catalogue; N = sampled softmax with N uniform "
                        "negatives per step, for very large catalogues")
    mask_seen: bool = _f(False, "atomic: leave the user's earlier items out of each target's softmax, as "
                         "evaluation leaves the history out of the ranking; needs the full softmax")

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"items.dropout must be in [0, 1), got {self.dropout}")
        if self.negatives < 0:
            raise ConfigError("items.negatives must be >= 0 (0 = full softmax)")
        if self.mask_seen and self.negatives:
            raise ConfigError("items.mask_seen masks items out of the full softmax: it needs items.negatives 0")
        if self.tokens != "atomic" and self.mask_seen:
            raise ConfigError("items.mask_seen applies to atomic item tokens (items.tokens=atomic): "
                              "items written as text have no item softmax to mask")


@dataclass(frozen=True)
class TasksConfig:
    """What a training prompt is: the task mixture, its templates and how much history it shows."""

    mixture: dict | None = _f(None, "task family -> sampling weight (default: equal)")
    templates: tuple[str, ...] | None = _f(None, "train only on these template ids (default: every seen template)")
    max_history: int = _f(10, "history items per prompt")
    candidates: int = _f(20, "direct task: candidates per training prompt (evaluation uses the dataset's list)")
    user_weights: str = _f("uniform", "how often each user is drawn: uniform, or in proportion to their training "
                           "interactions (as an epoch over every interaction does), or to max(interactions, "
                           "max_history)", ("uniform", "interactions", "windows"))

    def __post_init__(self) -> None:
        if self.max_history < 1 or self.candidates < 2:
            raise ConfigError("tasks.max_history must be >= 1 and tasks.candidates >= 2")
        for fam, w in (self.mixture or {}).items():
            if fam not in TASK_FAMILIES:
                raise ConfigError(f"tasks.mixture has unknown family {fam!r} (allowed: {', '.join(TASK_FAMILIES)})")
            if not isinstance(w, (int, float)) or w < 0:
                raise ConfigError(f"tasks.mixture.{fam} must be a number >= 0, got {w!r}")


@dataclass(frozen=True)
class Recipe:
    """A whole recipe file: adapters/<name>.yaml."""

    name: str = "recipe"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    items: ItemsConfig = field(default_factory=ItemsConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.model.rank_layers and self.items.tokens != "atomic":
            raise ConfigError("model.rank_layers scores atomic item tokens (items.tokens=atomic); text IDs are "
                              "generated through every layer")


SECTIONS = ("data", "model", "adapter", "items", "tasks", "train")
# Keys that moved when the recipe was regrouped (one section per concept): recipes and checkpoints
# written before keep loading; a recipe that gives both spellings of one key is refused.
MOVED = {"model.item_tokens": "items.tokens", "model.item_init": "items.init", "model.seq_readout": "items.readout",
         "model.item_dropout": "items.dropout", "train.dense_items": "items.dense",
         "train.item_negatives": "items.negatives", "train.mask_seen": "items.mask_seen",
         "train.mixture": "tasks.mixture", "train.templates": "tasks.templates", "train.max_history": "tasks.max_history",
         "train.candidates": "tasks.candidates", "train.user_weights": "tasks.user_weights"}


def translate(data: dict) -> dict:
    """A recipe mapping with every moved key at its new place."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for old, new in MOVED.items():
        osec, okey = old.split(".")
        nsec, nkey = new.split(".")
        if isinstance(data.get(osec), dict) and okey in data[osec]:
            value = data[osec].pop(okey)
            if data.get(nsec) is None:
                data[nsec] = {}
            target = data[nsec]
            if not isinstance(target, dict):
                raise ConfigError(f"{nsec} must be a mapping, got {target!r}")
            if nkey in target and target[nkey] != value:
                raise ConfigError(f"{old} is the old name of {new}; give one of them (got {value!r} and {target[nkey]!r})")
            target[nkey] = value
    return data


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read a recipe YAML and apply `section.key` overrides, validating everything."""
    data = load_yaml(path)
    data.setdefault("name", Path(path).stem)
    try:
        data = translate(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    for dotted, value in (overrides or {}).items():
        dotted = MOVED.get(dotted, dotted)
        section, _, key = dotted.partition(".")
        if not key:
            data[section] = value
            continue
        if section not in SECTIONS:
            raise ConfigError(f"unknown override '{dotted}' (sections: {', '.join(SECTIONS)})")
        if data.get(section) is None:
            data[section] = {}
        data[section][key] = value
    try:
        return from_dict(Recipe, data, "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
