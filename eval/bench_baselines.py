"""Baselines on genrec's identical leave-one-out split: most-popular and RecBole's SASRec.

RecBole trains SASRec on the prepared dataset's own interactions, written as
RecBole atomic files with each user's position as the timestamp — so
RecBole's time-ordered leave-one-out (`LS: valid_and_test`, `order: TO`)
reproduces genrec's split exactly (checked below). Scoring then uses
genrec's protocol (`genrec.baselines.score_protocol`): full ranking with the
user's earlier items excluded, and the dataset's fixed 100-candidate lists.

Needs RecBole's runtime deps (not genrec's):
    .venv/bin/pip install colorlog colorama texttable tensorboard thop psutil
    .venv/bin/python eval/bench_baselines.py --data genrec-quickstart/ml-100k --epochs 20

Writes eval/results/baselines_<dataset>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genrec.atomic import atomic_write_text  # noqa: E402
from genrec.baselines import popularity_results, score_protocol  # noqa: E402
from genrec.data.dataset import PreparedDataset  # noqa: E402
from genrec.evaluate import eval_users  # noqa: E402

RESULTS = ROOT / "eval" / "results"


def _recbole_shims() -> None:
    # numpy 2 removed these aliases, which RecBole 1.2.1 still uses
    for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
        if not hasattr(np, old):
            setattr(np, old, new)


def run_sasrec(ds: PreparedDataset, epochs: int, users: list[int], threads: int, seed: int,
               subset: list[int] | None = None) -> dict:
    _recbole_shims()
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="recbole-"))
    name = "genrec"
    (tmp / name).mkdir()
    inter = ds.interactions
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{p}" for u, i, p in zip(inter["user"], inter["item"], inter["position"])]
    (tmp / name / f"{name}.inter").write_text("\n".join(lines) + "\n")
    cfg = {
        "data_path": str(tmp), "dataset": name, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50, "train_neg_sample_args": None, "loss_type": "CE",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "epochs": epochs, "train_batch_size": 2048, "eval_batch_size": 4096, "stopping_step": 10 ** 6,
        "eval_step": 10 ** 6, "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "seed": seed, "reproducibility": True, "device": "cpu", "use_gpu": False, "show_progress": False,
        "checkpoint_dir": str(tmp / "saved"), "log_wandb": False, "state": "WARNING",
    }
    cwd = os.getcwd()
    os.chdir(tmp)  # RecBole writes log_tensorboard/ into the working directory: keep it in the scratch dir
    try:
        config = Config(model="SASRec", config_dict=cfg)
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        model = SASRec(config, train_data._dataset).to("cpu")
        trainer = Trainer(config, model)
        t0 = time.perf_counter()
        trainer.fit(train_data, valid_data=None, saved=False, show_progress=False)
        train_s = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
    model.eval()
    tok2id = dataset.field2token_id["item_id"]
    to_rb = np.array([tok2id[str(i)] for i in range(ds.n_items)])  # genrec item -> RecBole id

    def scores(us: list[int]) -> np.ndarray:
        maxlen = config["MAX_ITEM_LIST_LENGTH"]
        seqs = [to_rb[ds.history(u, "test")][-maxlen:] for u in us]
        lens = torch.tensor([len(s) for s in seqs])
        pad = torch.zeros(len(us), maxlen, dtype=torch.long)
        for r, s in enumerate(seqs):
            pad[r, :len(s)] = torch.as_tensor(s)
        with torch.no_grad():
            out = model.forward(pad, lens)  # [B, H]
            full = (out @ model.item_embedding.weight.T).numpy()  # [B, RecBole items]
        return full[:, to_rb]

    # the split must be genrec's: RecBole's test target of each user is genrec's test item
    test_ds = test_data._dataset
    rb_users = test_ds.inter_feat["user_id"].numpy()
    rb_items = test_ds.inter_feat["item_id"].numpy()
    id2tok = dataset.field2id_token
    mismatch = sum(1 for u, i in zip(rb_users, rb_items)
                   if ds.target(int(id2tok["user_id"][u]), "test") != int(id2tok["item_id"][i]))
    t0 = time.perf_counter()
    res = score_protocol(ds, scores, users)
    if subset:
        res["subset"] = score_protocol(ds, scores, subset)
    return {**res, "epochs": epochs, "seed": seed, "train_seconds": round(train_s, 1),
            "eval_users_per_s": round(len(users) / (time.perf_counter() - t0), 1),
            "split_mismatches": int(mismatch), "recbole_test_rows": int(len(rb_users))}


def render(out: dict) -> str:
    name, users = out["dataset"], out["users"]
    md = [f"# Baselines on {name} ({users} test users, genrec's split and protocol)", "",
          "| model | seq HR@5 | seq HR@10 | seq NDCG@5 | seq NDCG@10 | direct HR@5 | direct HR@10 | direct NDCG@10 |",
          "|---|---|---|---|---|---|---|---|"]
    for key in ("popularity", "sasrec"):
        r = out.get(key)
        if not r or "error" in r:
            continue
        s, d = r["sequential"], r["direct"]
        label = key if key == "popularity" else f"SASRec (RecBole, {r['epochs']} epochs, {r['train_seconds']:.0f} s)"
        md.append(f"| {label} | {s['hr@5']:.4f} | {s['hr@10']:.4f} | {s['ndcg@5']:.4f} | {s['ndcg@10']:.4f} | "
                  f"{d['hr@5']:.4f} | {d['hr@10']:.4f} | {d['ndcg@10']:.4f} |")
        if "subset" in r:  # the users eval/bench_id_schemes.py scores
            s, d = r["subset"]["sequential"], r["subset"]["direct"]
            md.append(f"| {label}, {s['users']} users drawn as bench_id_schemes.py draws them | {s['hr@5']:.4f} | "
                      f"{s['hr@10']:.4f} | {s['ndcg@5']:.4f} | {s['ndcg@10']:.4f} | {d['hr@5']:.4f} | "
                      f"{d['hr@10']:.4f} | {d['ndcg@10']:.4f} |")
    return "\n".join(md) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description="popularity + RecBole SASRec on genrec's split")
    ap.add_argument("--data", help="prepared dataset directory (required unless --render)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--skip-sasrec", action="store_true")
    ap.add_argument("--subset", type=int, default=0,
                    help="also score N test users drawn as eval/bench_id_schemes.py draws them (seed 1)")
    ap.add_argument("--out", metavar="STEM", help="result file stem under eval/results/ (default: "
                    "baselines_<dataset>; give another one for an extra seed so the committed table stays)")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the markdown of an earlier run's JSON")
    a = ap.parse_args()
    if a.render:
        atomic_write_text(Path(a.render).with_suffix(".md"), render(json.loads(Path(a.render).read_text())))
        return
    if not a.data:
        ap.error("--data is required")
    ds = PreparedDataset.load(a.data)
    users = eval_users(ds, "test", None)
    subset = eval_users(ds, "test", a.subset, seed=1) if a.subset else None
    name = ds.meta["name"]
    out = {"dataset": name, "users": len(users), "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
           "protocol": "leave-one-out test; sequential: full ranking, history excluded; direct: dataset's "
                       "100 candidates (1 held-out + 99 sampled)",
           "popularity": popularity_results(ds, users)}
    if subset:
        out["popularity"]["subset"] = popularity_results(ds, subset)
    print("popularity", json.dumps(out["popularity"]), flush=True)
    if not a.skip_sasrec:
        try:
            out["sasrec"] = run_sasrec(ds, a.epochs, users, a.threads, a.seed, subset)
            out["sasrec"]["implementation"] = "RecBole 1.2.1 SASRec (CE loss, max length 50)"
        except ImportError as e:
            out["sasrec"] = {"error": f"RecBole could not run here: {e}"}
        print("sasrec", json.dumps(out["sasrec"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    stem = a.out or f"baselines_{name}"
    atomic_write_text(RESULTS / f"{stem}.json", json.dumps(out, indent=2) + "\n")
    md = render(out)
    atomic_write_text(RESULTS / f"{stem}.md", md)
    print(md)


if __name__ == "__main__":
    main()
