import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="session")
def ml100k_dir(tmp_path_factory) -> Path:
    """The bundled MovieLens-100K, prepared once for the session (its directory)."""
    if not has_module("recbole"):
        pytest.skip("MovieLens-100K ships in the recbole wheel: pip install --no-deps recbole==1.2.1")
    from genrec.config import DataConfig
    from genrec.data.dataset import PreparedDataset
    from genrec.data.loaders import load_raw

    out = tmp_path_factory.mktemp("ml100k") / "ds"
    PreparedDataset.build(load_raw(DataConfig()), DataConfig()).save(out)
    return out


@pytest.fixture(scope="session")
def ml100k(ml100k_dir):
    from genrec.data.dataset import PreparedDataset
    return PreparedDataset.load(ml100k_dir)
