"""Baselines on genrec's identical leave-one-out split, trained to convergence.

- `pop`: most-popular (training interactions).
- `sasrec`: SASRec with full-softmax cross-entropy at every position ("SASRec+", Klenitskiy &
  Vasilev, RecSys 2023), RecTools' `SASRecModel(loss="softmax")` used as a library.
- `recbole`: RecBole's SASRec (CE loss) with RecBole's own early stopping.

Every model trains on the training interactions only, is validated after each epoch on the
validation split (all its users, genrec's protocol: full ranking, history excluded, pessimistic
ties), keeps its best epoch and stops after `--patience` epochs without a better validation
NDCG@10 — or at `--max-epochs` / `--max-minutes`, in which case the result says
`converged: false`. The best epoch is then scored on the test split with the history including the
validation item, per user (`per_user` ranks, for paired intervals).

Runs in `.venv-baselines` (`bash .ci/setup-baselines`: RecTools needs numpy < 2):

    .venv-baselines/bin/python eval/bench_baselines.py --data data/ml-100k --model sasrec --seed 0

Writes eval/runs/baseline_<model>_<dataset>_seed<seed>.json (a ledger row: `eval/ledger.py`).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genrec.baselines import popularity, score_protocol  # noqa: E402
from genrec.data.dataset import PreparedDataset  # noqa: E402
from genrec.data.splits import TRAIN  # noqa: E402
from genrec.evaluate import eval_users  # noqa: E402
from genrec.files import atomic_write_text  # noqa: E402

RUNS = ROOT / "eval" / "runs"


def protocol(ds: PreparedDataset, scores, split: str) -> dict:
    users = eval_users(ds, split, None)
    t0 = time.perf_counter()
    res = score_protocol(ds, scores, users, split)
    res["users_per_s"] = round(len(users) / max(time.perf_counter() - t0, 1e-9), 1)
    return res


def early_stopping(train_epoch, valid_scores, ds, patience: int, max_epochs: int, max_minutes: float,
                   snapshot, restore, state=None, resume: Path | None = None) -> dict:
    """The loop every trained baseline shares: one epoch, validate, keep the best, stop on patience.

    With `resume`, the loop's state (`state`: (get, set) of the model's whole training state, the
    curve, the best epoch's weights, the wall time spent so far) is written there after every epoch
    and read back on start, so an interrupted run continues; `max_minutes` counts all its sessions.
    """
    import torch
    curve, best, best_state, since, spent = [], -1.0, None, 0, 0.0
    if resume and resume.exists():
        ck = torch.load(resume, weights_only=False)
        state[1](ck["model"])
        curve, best, best_state, since, spent = ck["curve"], ck["best"], ck["best_state"], ck["since"], ck["spent"]
        torch.set_rng_state(ck["rng"])
        print(f"resumed from {resume} after epoch {len(curve)} ({spent:.0f} s)", flush=True)
    t0 = time.perf_counter() - spent

    def stop_reason() -> str | None:
        if since >= patience:
            return "early stopping"
        if curve and curve[-1]["seconds"] > max_minutes * 60:
            return "time cap"
        return None
    for epoch in range(len(curve) + 1, max_epochs + 1):
        if stop_reason():
            break
        train_epoch()
        v = protocol(ds, valid_scores, "valid")["sequential"]
        elapsed = time.perf_counter() - t0
        curve.append({"epoch": epoch, "hr@10": round(v["hr@10"], 5), "ndcg@10": round(v["ndcg@10"], 5),
                      "seconds": round(elapsed, 1)})
        print(f"epoch {epoch}: valid HR@10 {v['hr@10']:.4f} NDCG@10 {v['ndcg@10']:.4f} ({elapsed:.0f} s)",
              flush=True)
        if v["ndcg@10"] > best:
            best, best_state, since = v["ndcg@10"], snapshot(), 0
        else:
            since += 1
        if resume:
            tmp = resume.with_suffix(".tmp")
            torch.save({"model": state[0](), "curve": curve, "best": best, "best_state": best_state,
                        "since": since, "spent": elapsed, "rng": torch.get_rng_state()}, tmp)
            os.replace(tmp, resume)
    stopped = stop_reason() or "epoch cap"
    restore(best_state)
    best_epoch = max(curve, key=lambda r: r["ndcg@10"])["epoch"]
    return {"converged": stopped == "early stopping", "stopped_by": stopped, "best_epoch": best_epoch,
            "epochs_run": len(curve), "valid_curve": curve, "train_seconds": round(time.perf_counter() - t0, 1)}


def run_sasrec(ds: PreparedDataset, a) -> dict:
    """RecTools SASRecModel, softmax loss over the whole catalogue at every position."""
    import pandas as pd
    import torch
    from pytorch_lightning import seed_everything
    from rectools import Columns
    from rectools.dataset import Dataset
    from rectools.models import SASRecModel

    seed_everything(a.seed, workers=True)
    inter = ds.interactions[ds.interactions["split"] == TRAIN]
    df = pd.DataFrame({Columns.User: inter["user"].to_numpy(), Columns.Item: inter["item"].to_numpy(),
                       Columns.Weight: 1.0, Columns.Datetime: pd.to_datetime(inter["position"].to_numpy(), unit="s")})
    data = Dataset.construct(df)
    model = SASRecModel(n_blocks=2, n_heads=2, n_factors=64, dropout_rate=0.2, session_max_len=a.max_len,
                        loss="softmax", lr=1e-3, batch_size=128, epochs=1, deterministic=True,
                        recommend_torch_device="cpu")

    def train_epoch():
        model.fit_partial(data, min_epochs=1, max_epochs=1)

    def scores(split: str):
        def fn(us: list[int]) -> np.ndarray:
            prep, tm = model.data_preparator, model.torch_model
            to_int = prep.item_id_map.to_internal  # genrec item -> RecTools' internal id
            known = np.array([to_int.get(i, -1) for i in range(ds.n_items)])
            x = np.zeros((len(us), a.max_len), dtype=np.int64)
            for r, u in enumerate(us):
                h = known[ds.history(u, split)]
                h = h[h >= 0][-a.max_len:]
                if len(h):
                    x[r, -len(h):] = h
            tm.eval()
            dev = next(tm.parameters()).device  # where Lightning trained it (a GPU when there is one)
            with torch.no_grad():
                items = tm.item_model.get_all_embeddings()
                s = tm.encode_sessions({"x": torch.as_tensor(x, device=dev)}, items)[:, -1, :]  # [B, D]
                s = tm.similarity_module.session_tower_forward(s)
                full = (s @ tm.similarity_module.item_tower_forward(items).T).float().cpu().numpy()  # [B, ids]
            out = np.full((len(us), ds.n_items), -np.inf)
            out[:, known >= 0] = full[:, known[known >= 0]]  # items no training user has: never ranked
            return out
        return fn

    def snapshot():
        return copy.deepcopy(model.torch_model.state_dict())

    def get_state() -> dict:
        return {"weights": snapshot(), "adam": copy.deepcopy(model.lightning_model.optimizer.state_dict())}

    def set_state(st: dict) -> None:
        # what the first fit_partial builds, then the saved weights and Adam's moments (RecTools
        # keeps one optimizer across fit_partial calls)
        model._build_model_from_dataset(data)
        model.fit_trainer = copy.deepcopy(model._trainer)
        model.is_fitted = True
        model.lightning_model.is_fitted = True  # else its on_train_start draws fresh weights over the saved ones
        model.torch_model.load_state_dict(st["weights"])
        model.lightning_model.configure_optimizers().load_state_dict(st["adam"])

    train_info = early_stopping(train_epoch, scores("valid"), ds, a.patience, a.max_epochs, a.max_minutes,
                                snapshot, lambda st: model.torch_model.load_state_dict(st), (get_state, set_state),
                                a.resume)
    return {**train_info, "test": protocol(ds, scores("test"), "test"),
            "implementation": "RecTools 0.19 SASRecModel (loss softmax, 2 blocks, 2 heads, 64 factors, dropout 0.2, "
                              f"lr 1e-3, batch 128, max length {a.max_len})"}


def run_recbole(ds: PreparedDataset, a) -> dict:
    """RecBole's SASRec (CE loss), RecBole's trainer; validated by genrec's protocol after each epoch."""
    import tempfile

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    tmp = Path(tempfile.mkdtemp(prefix="recbole-"))
    (tmp / "genrec").mkdir()
    inter = ds.interactions
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{p}" for u, i, p in zip(inter["user"], inter["item"], inter["position"])]
    (tmp / "genrec" / "genrec.inter").write_text("\n".join(lines) + "\n")
    cfg = {"data_path": str(tmp), "dataset": "genrec", "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
           "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
           "MAX_ITEM_LIST_LENGTH": a.max_len, "train_neg_sample_args": None, "loss_type": "CE",
           "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
           "epochs": 1, "train_batch_size": 2048, "metrics": ["Hit", "NDCG"], "topk": [10],
           "valid_metric": "NDCG@10", "seed": a.seed, "reproducibility": True, "device": "cpu", "use_gpu": False,
           "show_progress": False, "checkpoint_dir": str(tmp / "saved"), "log_wandb": False, "state": "WARNING"}
    cwd = os.getcwd()
    os.chdir(tmp)  # RecBole writes log_tensorboard/ into the working directory
    try:
        config = Config(model="SASRec", config_dict=cfg)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, _, _ = data_preparation(config, dataset)
        model = SASRec(config, train_data._dataset).to("cpu")
        trainer = Trainer(config, model)
    finally:
        os.chdir(cwd)
    tok2id = dataset.field2token_id["item_id"]
    to_rb = np.array([tok2id[str(i)] for i in range(ds.n_items)])  # genrec item -> RecBole id
    epoch = [0]

    def train_epoch():
        model.train()
        trainer._train_epoch(train_data, epoch[0], show_progress=False)
        epoch[0] += 1

    def scores(split: str):
        def fn(us: list[int]) -> np.ndarray:
            seqs = [to_rb[ds.history(u, split)][-a.max_len:] for u in us]
            pad = torch.zeros(len(us), a.max_len, dtype=torch.long)
            for r, s in enumerate(seqs):
                pad[r, :len(s)] = torch.as_tensor(s)
            model.eval()
            with torch.no_grad():
                out = model.forward(pad, torch.tensor([max(len(s), 1) for s in seqs]))  # [B, H]
                return (out @ model.item_embedding.weight.T).numpy()[:, to_rb]
        return fn

    train_info = early_stopping(train_epoch, scores("valid"), ds, a.patience, a.max_epochs, a.max_minutes,
                                lambda: copy.deepcopy(model.state_dict()), model.load_state_dict)
    return {**train_info, "test": protocol(ds, scores("test"), "test"),
            "implementation": f"RecBole 1.2.1 SASRec (CE loss, its defaults, batch 2048, max length {a.max_len})"}


def main() -> None:
    ap = argparse.ArgumentParser(description="baselines trained to convergence on genrec's split (see module doc)",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data", required=True, help="prepared dataset directory (`genrec prepare`)")
    ap.add_argument("--model", choices=("pop", "sasrec", "recbole"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-len", type=int, default=50, help="history length (ML-1M: 200, as SASRec+)")
    ap.add_argument("--patience", type=int, default=5, help="epochs without a better valid NDCG@10")
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--max-minutes", type=float, default=120.0, help="time cap (then converged: false)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", type=Path, help="sasrec: the training state, written after every epoch and "
                    "continued from when it exists (an interrupted run goes on; the time cap counts all of it)")
    ap.add_argument("--out", help="result file (default eval/runs/baseline_<model>_<dataset>_seed<seed>.json)")
    a = ap.parse_args()
    if a.resume and a.model != "sasrec":
        ap.error("--resume is for --model sasrec")
    import logging
    import warnings

    import torch
    warnings.filterwarnings("ignore")  # the libraries' deprecation chatter; results are checked below
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(a.threads)
    ds = PreparedDataset.load(a.data)
    name = ds.meta["name"]
    if a.model == "pop":
        pop = popularity(ds)
        res = {"converged": True, "train_seconds": 0.0, "test": protocol(ds, lambda us: np.tile(pop, (len(us), 1)), "test"),
               "valid": protocol(ds, lambda us: np.tile(pop, (len(us), 1)), "valid")["sequential"],
               "implementation": "most popular (training interactions)"}
    else:
        res = (run_sasrec if a.model == "sasrec" else run_recbole)(ds, a)
    out = {"kind": "baseline", "dataset": name, "model": a.model, "seed": a.seed, "max_len": a.max_len,
           "patience": a.patience, "max_minutes": a.max_minutes, "threads": a.threads, "date": time.strftime("%Y-%m-%d"),
           "users": res["test"]["sequential"]["users"], **res}
    path = Path(a.out) if a.out else RUNS / f"baseline_{a.model}_{name}_seed{a.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out) + "\n")
    s = res["test"]["sequential"]
    print(f"{a.model} {name} seed {a.seed}: test HR@10 {s['hr@10']:.4f} NDCG@10 {s['ndcg@10']:.4f} "
          f"({res.get('stopped_by', 'no training')}, best epoch {res.get('best_epoch', '-')}) -> {path}")


if __name__ == "__main__":
    main()
