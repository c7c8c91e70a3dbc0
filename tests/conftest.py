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


@pytest.fixture(scope="session")
def tiny_checkpoint(ml100k_dir, tmp_path_factory) -> Path:
    """The tiny recipe trained 3 steps on MovieLens-100K with all three task families, once per session
    (the serving, chat and browser tests read it; none writes to it)."""
    from genrec.train import train
    from tests.helpers import tiny_recipe

    tmp = tmp_path_factory.mktemp("tiny-run")
    train(tiny_recipe(steps=3, mixture={"sequential": 1, "direct": 1, "explanation": 1}), ml100k_dir, tmp / "run",
          progress=False)
    return tmp / "run/last"


@pytest.fixture(scope="session")
def tiny_engine(tiny_checkpoint):
    """The transformers engine on `tiny_checkpoint`."""
    from genrec.recommender import Recommender
    from genrec.serving.engine import HFEngine
    return HFEngine(Recommender.from_pretrained(tiny_checkpoint, device="cpu"))
