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


def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Interrupted after 2 epochs, the run continues at epoch 3 with the saved model and best epoch,
    and stops exactly where one uninterrupted run stops."""
    pytest.importorskip("torch")
    b = bench()
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=20, n_items=24))
    scores = [0.1, 0.3, 0.2, 0.25, 0.1, 0.05]  # best at epoch 2; patience 3 ends at epoch 5
    calls = iter(scores)
    monkeypatch.setattr(b, "protocol", lambda ds, s, split: {"sequential": {"hr@10": 0, "ndcg@10": next(calls)}})
    model = {"w": 0}

    def train_epoch():
        model["w"] += 1
    state = (lambda: dict(model), lambda st: model.update(st))
    ck = tmp_path / "run.pt"
    first = b.early_stopping(train_epoch, None, ds, patience=3, max_epochs=2, max_minutes=60,
                             snapshot=lambda: model["w"], restore=lambda s: None, state=state, resume=ck)
    assert first["stopped_by"] == "epoch cap" and ck.exists()
    model["w"] = -99  # a new process: the model starts from scratch until the state is read back
    restored = {}
    out = b.early_stopping(train_epoch, None, ds, patience=3, max_epochs=50, max_minutes=60,
                           snapshot=lambda: model["w"], restore=lambda s: restored.update(w=s), state=state, resume=ck)
    assert [c["epoch"] for c in out["valid_curve"]] == [1, 2, 3, 4, 5]
    assert out["best_epoch"] == 2 and restored["w"] == 2  # the best epoch's weights, saved before the stop
    assert model["w"] == 5 and out["converged"] is True  # trained on from epoch 2's weights, not from scratch


@pytest.mark.baselines
def test_rectools_sasrec_resumes_with_its_weights_and_adam_state(tmp_path):
    pytest.importorskip("rectools", reason="RecTools lives in .venv-baselines (bash .ci/setup-baselines)")
    import torch
    b = bench()
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=60, n_items=24))
    ck = tmp_path / "sasrec.pt"
    a = SimpleNamespace(seed=0, max_len=10, patience=3, max_epochs=2, max_minutes=5, resume=ck)
    b.run_sasrec(ds, a)
    saved = torch.load(ck, weights_only=False)
    steps = saved["model"]["adam"]["state"][0]["step"].item()
    assert steps > 0 and len(saved["curve"]) == 2
    res = b.run_sasrec(ds, SimpleNamespace(**{**vars(a), "max_epochs": 3}))
    again = torch.load(ck, weights_only=False)
    assert [c["epoch"] for c in res["valid_curve"]] == [1, 2, 3]
    assert res["valid_curve"][:2] == saved["curve"]
    # the third epoch continued Adam's moments: its step count went on from the saved one
    assert again["model"]["adam"]["state"][0]["step"].item() == steps * 3 / 2
    # ... and the saved weights: a run of three epochs in one go ends where the resumed one does
    # (RecTools draws fresh weights at the start of training unless told the model is fitted)
    whole = tmp_path / "whole.pt"
    b.run_sasrec(ds, SimpleNamespace(**{**vars(a), "max_epochs": 3, "resume": whole}))
    w1, w2 = torch.load(whole, weights_only=False)["model"]["weights"], again["model"]["weights"]
    for k in (k for k in w1 if w1[k].dim() > 1):  # the matrices, which a fresh draw would replace
        assert torch.linalg.norm(w1[k] - w2[k]) <= 0.05 * torch.linalg.norm(w1[k]) + 1e-6, k


@pytest.mark.baselines
def test_rectools_sasrec_learns_the_cyclic_data_on_genrecs_protocol(tmp_path):
    pytest.importorskip("rectools", reason="RecTools lives in .venv-baselines (bash .ci/setup-baselines)")
    b = bench()
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=60, n_items=24))
    a = SimpleNamespace(seed=0, max_len=10, patience=3, max_epochs=40, max_minutes=5, resume=None)
    res = b.run_sasrec(ds, a)
    t = res["test"]["sequential"]
    assert t["users"] == 60 and len(t["per_user"]["ranks"]) == 60
    assert t["hr@10"] > 0.5  # the next item is always last + 1: a converged SASRec finds it
    assert res["best_epoch"] >= 1 and res["valid_curve"][0]["epoch"] == 1
