"""Small builders shared by the training / decoding / API tests."""
from pathlib import Path

from genrec.config import AdapterConfig, DataConfig, ModelConfig, Recipe, TrainConfig
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


def tiny_recipe(backbone="tiny-llama", item_tokens="atomic", adapter="lora", **train) -> Recipe:
    tc = dict(steps=20, batch_size=8, lr=3e-3, max_history=4, eval_every=0, eval_users=20,
              precision="no", mixture={"sequential": 1.0}, candidates=5)
    tc.update(train)
    return Recipe(name="test",
                  model=ModelConfig(backbone=backbone, clip_model="genrec-tiny-clip", clip_pretrained="none",
                                    max_length=96, item_tokens=item_tokens),
                  adapter=AdapterConfig(type=adapter, r=4, alpha=8),
                  train=TrainConfig(**tc))
