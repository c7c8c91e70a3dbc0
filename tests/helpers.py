"""Small builders shared by the training / decoding / API tests."""
from pathlib import Path

from genrec.config import AdapterConfig, DataConfig, ItemsConfig, ModelConfig, Recipe, TasksConfig, TrainConfig
from genrec.data.dataset import PreparedDataset
from genrec.data.loaders import load_raw


def cyclic_dataset(tmp: Path, n_users: int = 60, n_items: int = 24, length: int = 12) -> Path:
    """Every user walks the catalogue in order: the next item is always (last + 1) mod N.

    Trivially learnable; chance HR@1 is about 1 / N."""
    rows = ["user,item,timestamp"]
    for u in range(n_users):
        start = (u * 7) % n_items
        rows += [f"u{u},i{(start + j) % n_items},{j}" for j in range(length)]
    (tmp / "cyc.csv").write_text("\n".join(rows) + "\n")
    items = ["item,title"] + [f"i{i},Film number {i}" for i in range(n_items)]
    (tmp / "cyc_items.csv").write_text("\n".join(items) + "\n")
    cfg = DataConfig(source="table", path=str(tmp / "cyc.csv"), items_path=str(tmp / "cyc_items.csv"),
                     k_core=1, n_candidates=10)
    out = tmp / "cyc"
    PreparedDataset.build(load_raw(cfg), cfg).save(out)
    return out


ITEM_KEYS = {"item_init": "init", "seq_readout": "readout", "item_dropout": "dropout", "dense_items": "dense",
             "item_negatives": "negatives", "mask_seen": "mask_seen"}
TASK_KEYS = ("mixture", "templates", "max_history", "candidates", "user_weights")


def tiny_recipe(backbone="tiny-llama", item_tokens="atomic", adapter="lora", **kw) -> Recipe:
    """A tiny recipe; keyword arguments go to the section that owns them (items.*: by their old names)."""
    tc = dict(steps=20, batch_size=8, lr=3e-3, eval_every=0, eval_users=20, precision="no")
    tasks = dict(max_history=4, mixture={"sequential": 1.0}, candidates=5)
    items = dict(tokens=item_tokens)
    for k, v in kw.items():
        if k in ITEM_KEYS:
            items[ITEM_KEYS[k]] = v
        elif k in TASK_KEYS:
            tasks[k] = v
        else:
            tc[k] = v
    return Recipe(name="test",
                  model=ModelConfig(backbone=backbone, clip_model="genrec-tiny-clip", clip_pretrained="none",
                                    max_length=96),
                  adapter=AdapterConfig(type=adapter, r=4, alpha=8),
                  items=ItemsConfig(**items), tasks=TasksConfig(**tasks), train=TrainConfig(**tc))


def signal_on_call(monkeypatch, n: int, signals) -> None:
    """Send `signals` to this process during the n-th compute_loss call (mid-step)."""
    import os

    import genrec.train as T
    real, calls = T.compute_loss, []

    def send(*args, **kw):
        calls.append(1)
        if len(calls) == n:
            for s in signals:
                os.kill(os.getpid(), s)
        return real(*args, **kw)

    monkeypatch.setattr(T, "compute_loss", send)
