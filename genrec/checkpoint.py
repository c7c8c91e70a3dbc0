"""The checkpoint format, read in one place: a checkpoint directory's `config.yaml` (the recipe plus
where it was trained), its item map checked against a dataset, and the run summary `genrec train`
writes beside it. Written by `GenRecModel.save_pretrained`; read by the model, the Recommender,
`genrec evaluate` and the quickstart."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from genrec.data.dataset import PreparedDataset
from genrec.files import genrec_output

SUMMARY_FILE = "train_summary.json"  # <run>/train_summary.json, beside <run>/best and <run>/last


class CheckpointError(ValueError):
    """A checkpoint directory is missing, damaged or from an incompatible version."""


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


def read_config(path: str | Path) -> dict:
    """A checkpoint's config.yaml as a mapping (the recipe sections plus data_dir, step, ...)."""
    f = Path(path) / "config.yaml"
    if not f.is_file():
        raise CheckpointError(f"{path}: not a genrec checkpoint (no config.yaml)")
    try:
        return yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{f}: not readable YAML ({str(e).splitlines()[0]})") from None


def is_run_dir(path: str | Path) -> bool:
    """A `genrec train --out` folder holding nothing but what training wrote (best/, last/, the summary)."""
    path = Path(path)
    if not path.is_dir():
        return False
    entries = list(path.iterdir())
    return all(e.name == SUMMARY_FILE or (e.name in ("best", "last") and genrec_output(e) == "checkpoint")
               for e in entries)


def is_result_file(path: str | Path) -> bool:
    """A JSON result `genrec evaluate --out` wrote."""
    try:
        return "families" in json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, TypeError):
        return False


def data_fingerprint(ds: PreparedDataset) -> str:
    """SHA-256 of the item ID map: a checkpoint only fits datasets with the same catalogue."""
    return hashlib.sha256("\n".join(ds.item_ids).encode()).hexdigest()[:16]


def check_dataset(ckpt: Path, ds: PreparedDataset) -> None:
    ids_file = Path(ckpt) / "item_ids.json"
    if not ids_file.is_file():
        raise CheckpointError(f"{ckpt}: no item_ids.json; cannot check it against the dataset")
    ids = json.loads(ids_file.read_text(encoding="utf-8"))
    if ids != ds.item_ids:
        raise CheckpointError(f"{ckpt} was trained on another dataset ({len(ids)} items, this one has "
                              f"{ds.n_items} with different IDs); evaluate it on the dataset it was trained on")


def training_record(ckpt: str | Path) -> dict | None:
    """What `genrec evaluate` reports about how a checkpoint was trained: the run summary that
    `train` wrote beside it (`<run>/train_summary.json`, for `<run>/best` or `<run>/last`), or None
    when there is none (a checkpoint from elsewhere, or a run still going). For a resumed run the
    seconds and examples sum all its parts (None when an older version's part went uncounted)."""
    path = Path(ckpt).parent / SUMMARY_FILE
    if not path.is_file():
        return None
    s = json.loads(path.read_text(encoding="utf-8"))
    step = read_config(ckpt).get("step") if is_checkpoint(ckpt) else None
    return {"command": s.get("command"), "train_seconds": s["seconds"], "examples": s["examples"],
            "examples_per_s": s["examples_per_s"], "steps": s["steps"], "resumed_from": s.get("resumed_from", 0),
            "best_step": s["best_step"], "checkpoint_step": step, "peak_rss_mb": s.get("peak_rss_mb"),
            "final_loss": s["final_loss"],
            "valid_by_step": [{"step": e["step"], "hr@10": e["hr@10"]} for e in s.get("evals", [])]}
