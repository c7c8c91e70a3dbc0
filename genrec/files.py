"""Atomic outputs: a file or a directory appears complete or not at all.

Everything genrec writes (prepared datasets, feature caches, checkpoints,
result tables) goes through here: write into a temporary sibling, then
`os.replace`/`os.rename` it into place. An existing output directory is only
replaced when the caller says so and when it is genrec's own (a marker file
records what each output directory holds), never a folder with anything else.
Created files and folders follow the umask.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


MARKER = ".genrec-output.json"  # written into every output directory: what made it, and what it holds
# what each kind of output held before the marker existed (recognised by its own metadata file)
_LEGACY = {
    "dataset": ("meta.json", {"meta.json", "interactions.parquet", "items.parquet", "users.parquet", "negatives.npy",
                              "semantic.npz", "semantic.json", "features"}),
    "checkpoint": ("config.yaml", {"config.yaml", "trainable.safetensors", "lora", "item_ids.json", "tokenizer",
                                   "trainer_state.json", "optimizer.safetensors", "optimizer.json"}),
}
_DERIVED = {"features"}  # genrec writes these inside its own outputs later (a dataset's feature caches)


class OutputError(ValueError):
    """An output path genrec must not or cannot write; the message names the path."""


class OutputExistsError(OutputError):
    """The output path exists and overwriting was not asked for."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def genrec_output(path: Path) -> str | None:
    """The kind of genrec output `path` is ("dataset", "checkpoint", ...) when everything in it was
    written by genrec, else None. Recognised by the marker genrec writes, or for outputs from before
    the marker, by their own metadata file and nothing but their known files."""
    if not path.is_dir():
        return None
    names = {p.name for p in path.iterdir()}
    marker = path / MARKER
    if marker.is_file():
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
            kind, files = str(info["kind"]), set(info["files"])
        except (ValueError, KeyError, TypeError, OSError):
            return None
        return kind if names <= files | _DERIVED | {MARKER} else None
    for kind, (meta, known) in _LEGACY.items():
        if (path / meta).is_file() and names <= known:
            try:
                text = (path / meta).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if ("schema_version" in text) if kind == "dataset" else ("genrec_checkpoint" in text):
                return kind
    return None


def _need_writable_parent(path: Path, where: str) -> None:
    """The nearest existing ancestor of `path` must be a writable folder (what creating it needs)."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: {parent} is not writable")


def check_output_dir(out: str | Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Everything about an output directory, checked before any work: the absolute path it will be.

    An existing `out` is replaced only with `overwrite`, only when it is a previous genrec output
    (`genrec_output`), and never when it is or holds one of `inputs`. Its parent must be writable."""
    out = Path(os.path.abspath(out))
    where = f"cannot write output directory {out}"
    if out.parent == out:
        raise OutputError(f"{where}: it is the file-system root")
    for src in inputs:
        if src is None:
            continue
        src = Path(os.path.abspath(src))
        if src == out or out in src.parents:
            raise OutputError(f"{where}: it holds the input {src}; choose another --out")
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{where}: a file of that name exists")
        if not overwrite:
            raise OutputExistsError(f"{out} already exists (pass --overwrite to replace it)")
        if genrec_output(out) is None:
            others = sorted(p.name for p in out.iterdir())[:3]
            raise OutputError(f"{where}: --overwrite replaces only a previous genrec output, and it holds other "
                              f"files ({', '.join(others) or 'none'}); remove it yourself or choose another --out")
    _need_writable_parent(out, where)
    return out


def check_output_file(path: str | Path, ours) -> Path:
    """An output file may replace only a file genrec wrote (`ours(path)` says so); checked before any
    work, with one line naming the path. Its folder must be writable."""
    path = Path(os.path.abspath(path))
    if path.exists():
        if path.is_dir():
            raise OutputError(f"cannot write {path}: it is a directory")
        if not ours(path):
            raise OutputError(f"cannot write {path}: it exists and genrec did not write it; remove it yourself "
                              "or choose another --out")
    _need_writable_parent(path, f"cannot write {path}")
    return path


@contextlib.contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, kind: str = "output") -> Iterator[Path]:
    """Yield a temporary directory that becomes `out` when the block succeeds (see check_output_dir).
    Nothing is left behind on failure; the directory gets the umask's permissions and a marker."""
    out = check_output_dir(out, overwrite)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as e:
        raise OutputError(f"cannot write output directory {out}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / MARKER).write_text(json.dumps({"kind": kind, "files": files}), encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
