"""eval/bench_baselines.py: early stopping on validation, and RecTools' SASRec on genrec's protocol.

The RecTools test needs `.venv-baselines` (`bash .ci/setup-baselines`); elsewhere it skips."""
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from genrec.data.dataset import PreparedDataset
from tests.helpers import cyclic_dataset

ROOT = Path(__file__).resolve().parent.parent


def bench():
    spec = importlib.util.spec_from_file_location("bench_baselines", ROOT / "eval" / "bench_baselines.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_baselines"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_early_stopping_keeps_the_best_epoch_and_stops_on_patience(tmp_path, monkeypatch):
    b = bench()
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=20, n_items=24))
    curve = iter([0.1, 0.3, 0.2, 0.25, 0.1, 0.9])  # NDCG@10 by epoch: best at epoch 2, patience 3 ends at 5
    state = {"epoch": 0, "restored": None}

    def fake_protocol(ds, scores, split):
        v = next(curve)
        return {"sequential": {"hr@10": v, "ndcg@10": v}}
    monkeypatch.setattr(b, "protocol", fake_protocol)

    def train_epoch():
        state["epoch"] += 1
    out = b.early_stopping(train_epoch, None, ds, patience=3, max_epochs=50, max_minutes=60,
                           snapshot=lambda: state["epoch"], restore=lambda s: state.update(restored=s))
    assert out["best_epoch"] == 2 and out["epochs_run"] == 5 and state["restored"] == 2
    assert out["converged"] is True and out["stopped_by"] == "early stopping"
    curve2 = iter([0.1, 0.2, 0.3])
    monkeypatch.setattr(b, "protocol", lambda ds, s, split: {"sequential": {"hr@10": 0, "ndcg@10": next(curve2)}})
    out = b.early_stopping(train_epoch, None, ds, patience=3, max_epochs=3, max_minutes=60,
                           snapshot=lambda: 0, restore=lambda s: None)
    assert out["converged"] is False and out["stopped_by"] == "epoch cap"  # still improving: not converged


@pytest.mark.baselines
def test_rectools_sasrec_learns_the_cyclic_data_on_genrecs_protocol(tmp_path):
    pytest.importorskip("rectools", reason="RecTools lives in .venv-baselines (bash .ci/setup-baselines)")
    b = bench()
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=60, n_items=24))
    a = SimpleNamespace(seed=0, max_len=10, patience=3, max_epochs=40, max_minutes=5)
    res = b.run_sasrec(ds, a)
    t = res["test"]["sequential"]
    assert t["users"] == 60 and len(t["per_user"]["ranks"]) == 60
    assert t["hr@10"] > 0.5  # the next item is always last + 1: a converged SASRec finds it
    assert res["best_epoch"] >= 1 and res["valid_curve"][0]["epoch"] == 1
