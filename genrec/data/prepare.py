"""Preparation: a raw source read, filtered, split and written as a prepared dataset directory,
with the output path checked before any work (genrec.files.check_output_dir)."""
from __future__ import annotations

from pathlib import Path

from genrec.config import DataConfig
from genrec.data.dataset import PreparedDataset
from genrec.data.loaders import load_raw
from genrec.files import check_output_dir


class _Steps:
    """A progress bar over named pipeline steps."""

    def __init__(self, total: int, quiet: bool = False):
        from genrec.runtime import bar as tqdm
        self.bar = tqdm(total=total, unit="step", disable=quiet, bar_format="{l_bar}{bar:20}| {n}/{total} [{elapsed}]")

    def __call__(self, msg: str) -> None:
        self.bar.set_description(msg)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.n = self.bar.total  # optional steps may have been skipped
        self.bar.refresh()
        self.bar.close()


def prepare_dataset(cfg: DataConfig, out: str | Path, overwrite: bool = False, quiet: bool = False) -> PreparedDataset:
    """Read `cfg`'s source and write it to `out`. An existing `out` is replaced only with `overwrite`
    and only when it is a previous genrec output that holds none of the inputs."""
    check_output_dir(out, overwrite, inputs=(cfg.path, cfg.items_path, cfg.images_path))
    steps = _Steps(7, quiet)
    try:
        steps(f"read {cfg.source}")
        raw = load_raw(cfg)
        ds = PreparedDataset.build(raw, cfg, steps)
        steps("write")
        ds.save(out, overwrite=overwrite)
    finally:
        steps.close()
    return ds
