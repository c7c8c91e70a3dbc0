import dataclasses
import json
from pathlib import Path

import pytest
import torch

from genrec.checkpoint import CheckpointError
from genrec.modeling.model import GenRecModel
from genrec.train import train
from tests.helpers import cyclic_dataset, tiny_recipe


@pytest.fixture(scope="module")
def cyc(tmp_path_factory):
    return cyclic_dataset(tmp_path_factory.mktemp("cyc"))


def test_tiny_model_learns_the_cyclic_pattern(cyc, tmp_path):
    from genrec.data.dataset import PreparedDataset
    from genrec.evaluate import evaluate

    # one template: a 2-layer random backbone does not generalise across wordings in a few hundred steps
    s = train(tiny_recipe(steps=200, lr=5e-3, batch_size=16, eval_every=100, templates=("seq-1",)), cyc,
              tmp_path / "run", progress=False)
    ds = PreparedDataset.load(cyc)
    model = GenRecModel.from_pretrained(tmp_path / "run/best")
    res = evaluate(model, ds, None, "test", None, ("sequential",), "first", 4, progress=False)
    seq = res["families"]["sequential"]["seq-1"]
    chance = 1 / ds.n_items
    assert seq["hr@1"] > 10 * chance, (seq, s)  # chance is about 0.04


def test_training_bad_inputs(cyc, tmp_path, ml100k):
    train(tiny_recipe(steps=2), cyc, tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="already holds a run: pass --resume"):
        train(tiny_recipe(steps=2), cyc, tmp_path / "r", progress=False)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(tiny_recipe(steps=2), cyc, tmp_path / "empty", resume=True, progress=False)
    from genrec.checkpoint import check_dataset
    with pytest.raises(CheckpointError, match="trained on another dataset"):
        check_dataset(tmp_path / "r/last", ml100k)


def test_cli_train_then_evaluate(cyc, tmp_path, capsys, monkeypatch):
    import sys

    from genrec.cli import main
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {backbone: tiny-llama, clip_model: genrec-tiny-clip, clip_pretrained: none, "
                      "item_tokens: text, max_length: 96}\nadapter: {type: lora, r: 4}\n"
                      "train: {steps: 3, batch_size: 4, eval_every: 0, eval_users: 5, precision: 'no', max_history: 3}\n")
    args = ["train", str(recipe), "--data", str(cyc), "--out", str(tmp_path / "run"), "--quiet", "--train.steps", "4"]
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/genrec", *args])  # as the console script sees it
    assert main(args) == 0
    assert "trained r: 4 steps" in capsys.readouterr().out
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "run/best"), "--users", "6", "--quiet", "--out", str(out),
                 "--families", "sequential,direct"]) == 0
    res = json.loads(out.read_text())
    assert res["users"] == 6 and set(res["families"]) == {"sequential", "direct"}
    # the run's summary (written by train beside best/ and last/) comes along as the training block
    summary = json.loads((tmp_path / "run/train_summary.json").read_text())
    tr = res["training"]
    assert summary["steps"] == tr["steps"] == tr["checkpoint_step"] == 4 and tr["resumed_from"] == 0
    assert tr["train_seconds"] == summary["seconds"] > 0 and tr["examples"] == summary["examples"] == 16
    assert tr["best_step"] == 4 and [e["step"] for e in tr["valid_by_step"]] == [4]  # eval_every 0: at the end
    assert tr["valid_by_step"][0]["hr@10"] == summary["evals"][0]["hr@10"]
    assert tr["command"] == summary["command"] == f"genrec train {recipe} --data {cyc} --out {tmp_path / 'run'} " \
        "--quiet --train.steps 4"
    assert out.with_suffix(".md").read_text().startswith("**sequential**")
    assert main(["evaluate", str(tmp_path / "run/best"), "--families", "bogus"]) == 2
    assert "unknown family 'bogus'" in capsys.readouterr().err
    assert main(["train", str(recipe), "--data", str(cyc), "--out", str(tmp_path / "x"), "--train.stepz", "4"]) == 2
    assert "unknown key 'train.stepz'" in capsys.readouterr().err


def test_training_with_a_sampled_softmax_runs_end_to_end(tmp_path):
    data = cyclic_dataset(tmp_path)
    out = train(tiny_recipe(steps=3, item_negatives=8), data, tmp_path / "run", progress=False)
    assert out["steps"] == 3 and (tmp_path / "run/last/config.yaml").is_file()
    assert 50 < out["peak_rss_mb"] < 64 * 1024  # MB: a Python process with torch loaded, on this machine
    import yaml
    saved = yaml.safe_load((tmp_path / "run/last/config.yaml").read_text())
    assert saved["items"]["negatives"] == 8 and "item_lr" not in saved["train"]


def test_item_init_title_plus_image_on_a_dataset_without_images_is_a_clear_error(tmp_path):
    rec = tiny_recipe(steps=1)
    rec = dataclasses.replace(rec, items=dataclasses.replace(rec.items, init="title+image"))
    with pytest.raises(ValueError, match="items.init=title\\+image needs item images"):
        train(rec, cyclic_dataset(tmp_path), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_item_init_title_plus_cf_starts_from_the_training_cooccurrence(tmp_path):
    """Through `train` with a zero learning rate (full warmup over one step) the saved rows are the
    initial ones: with title+cf every item differs from its title row, and items that follow one another
    in the cyclic data (always co-consumed) start closer than items half the catalogue apart."""
    from safetensors.torch import load_file

    from genrec.data.dataset import PreparedDataset
    from genrec.train import collaborative_vectors
    data = cyclic_dataset(tmp_path)
    rows = {}
    for init in ("title", "title+cf"):
        rec = tiny_recipe(steps=1, warmup=1.0)
        rec = dataclasses.replace(rec, items=dataclasses.replace(rec.items, init=init))
        train(rec, data, tmp_path / init, progress=False)
        rows[init] = load_file(str(tmp_path / init / "last/trainable.safetensors"))["item_emb.weight"]
    assert not (rows["title"] == rows["title+cf"]).all(1).any()
    ds = PreparedDataset.load(data)
    v = collaborative_vectors(ds)  # training interactions only: the valid / test items are not in it
    assert v.shape[0] == ds.n_items
    cos = torch.nn.functional.cosine_similarity
    ix = [ds.item_by_raw[f"i{k}"] for k in range(24)]
    vt = torch.as_tensor(v)
    near = torch.stack([cos(vt[ix[k]], vt[ix[(k + 1) % 24]], dim=0) for k in range(24)])
    far = torch.stack([cos(vt[ix[k]], vt[ix[(k + 12) % 24]], dim=0) for k in range(24)])  # never co-consumed
    assert near.mean() > 0.5 and near.mean() > far.mean() + 0.5
    from genrec.modeling.items import cf_rows, mix_init
    expect = mix_init(rows["title"], cf_rows(vt, rows["title"].shape[1]), vt.abs().sum(1) > 0)
    torch.testing.assert_close(rows["title+cf"], expect, rtol=1e-5, atol=1e-6)


def test_last_checkpoint_names_the_best_even_when_the_final_evaluation_is_the_best(tmp_path):
    import yaml
    out = train(tiny_recipe(steps=2, eval_every=0), cyclic_dataset(tmp_path), tmp_path / "run", progress=False)
    st = json.loads((tmp_path / "run/last/trainer_state.json").read_text())
    best = yaml.safe_load((tmp_path / "run/best/config.yaml").read_text())
    assert out["best_step"] == st["best_step"] == best["step"] == 2  # the only evaluation is at the end
    assert st["best_hr10"] == best["valid"]["hr@10"]


def _uneven_dataset(tmp_path):
    """Three users with 5, 12 and 30 interactions (2, 9 and 27 training targets after the
    leave-one-out split keeps the last two for valid/test and the first has no history)."""
    from genrec.config import DataConfig
    from genrec.data.dataset import PreparedDataset
    from genrec.data.loaders import load_raw

    rows = ["user,item,timestamp"]
    for u, n in enumerate((5, 12, 30)):
        rows += [f"u{u},i{(u * 11 + j) % 40},{j}" for j in range(n)]
    (tmp_path / "uneven.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "uneven_items.csv").write_text("\n".join(["item,title"] + [f"i{i},Film {i}" for i in range(40)]) + "\n")
    cfg = DataConfig(source="table", path=str(tmp_path / "uneven.csv"), items_path=str(tmp_path / "uneven_items.csv"),
                     k_core=1, n_candidates=10)
    PreparedDataset.build(load_raw(cfg), cfg).save(tmp_path / "ds")
    return PreparedDataset.load(tmp_path / "ds")


def test_user_weights_draw_users_in_proportion_to_their_targets_or_windows(tmp_path):
    import numpy as np

    from genrec.config import TasksConfig
    from genrec.prompts import load_templates
    from genrec.train import mixture, sample_batch, user_probabilities

    ds = _uneven_dataset(tmp_path)
    users = np.arange(ds.n_users)
    from genrec.data.examples import n_train_items
    order = np.argsort([n_train_items(ds, u) for u in users])  # the 5-, 12- and 30-interaction users
    assert [n_train_items(ds, u) for u in users[order]] == [3, 10, 28]
    assert user_probabilities(ds, users, TasksConfig(user_weights="uniform")) is None
    p_int = user_probabilities(ds, users, TasksConfig(user_weights="interactions", max_history=4))
    p_win = user_probabilities(ds, users, TasksConfig(user_weights="windows", max_history=4))
    p_win10 = user_probabilities(ds, users, TasksConfig(user_weights="windows", max_history=10))
    np.testing.assert_allclose(p_int[order], np.array([2, 9, 27]) / 38)  # targets 2, 9, 27
    np.testing.assert_allclose(p_win[order], np.array([4, 9, 27]) / 40)  # max(targets, 4)
    np.testing.assert_allclose(p_win10[order], np.array([10, 10, 27]) / 47)  # max(targets, 10)

    templates = load_templates()
    counts = {}
    for w, p in (("uniform", None), ("interactions", p_int)):
        recipe = tiny_recipe(user_weights=w, max_history=4, templates=("seq-1",), batch_size=8)
        model = GenRecModel(recipe, item_ids=ds.item_ids, titles=[ds.title(i) for i in range(ds.n_items)])
        fams, probs = mixture(recipe)
        c = np.zeros(ds.n_users)
        for step in range(100):
            _, _, exs = sample_batch(ds, model, templates, fams, probs, users, recipe, None, 0, 0, step, 0, p)
            for e in exs:
                c[e.user] += 1
        counts[w] = c[order] / c.sum()
    np.testing.assert_allclose(counts["uniform"], [1 / 3] * 3, atol=0.04)  # 800 draws: SD ~0.017
    np.testing.assert_allclose(counts["interactions"], np.array([2, 9, 27]) / 38, atol=0.04)

    import yaml
    train(tiny_recipe(steps=2, user_weights="windows"), tmp_path / "ds", tmp_path / "run", progress=False)
    assert yaml.safe_load((tmp_path / "run/best/config.yaml").read_text())["tasks"]["user_weights"] == "windows"


def test_moved_keys_load_from_either_place_and_both_is_an_error(tmp_path):
    from genrec.config import ConfigError, load_recipe
    tiny = Path(__file__).resolve().parent.parent / "adapters" / "tiny.yaml"
    r = load_recipe(tiny, {"train.mask_seen": True, "train.max_history": 7, "model.item_tokens": "atomic"})
    assert (r.items.mask_seen, r.tasks.max_history, r.items.tokens) == (True, 7, "atomic")
    old = tmp_path / "old.yaml"
    old.write_text("model: {item_tokens: atomic, item_dropout: 0.2}\ntrain: {steps: 3, mixture: {sequential: 1}}\n")
    r = load_recipe(old)
    assert (r.items.tokens, r.items.dropout, r.tasks.mixture, r.train.steps) == ("atomic", 0.2, {"sequential": 1}, 3)
    both = tmp_path / "both.yaml"
    both.write_text("items: {tokens: text}\nmodel: {item_tokens: atomic}\n")
    with pytest.raises(ConfigError, match="model.item_tokens is the old name of items.tokens"):
        load_recipe(both)


def test_unknown_user_weights_is_a_config_error():
    from genrec.config import ConfigError, TasksConfig, load_recipe
    with pytest.raises(ConfigError, match="user_weights"):
        load_recipe(Path(__file__).resolve().parent.parent / "adapters" / "tiny.yaml", {"tasks.user_weights": "sqrt"})
    TasksConfig(user_weights="windows")


def test_mask_seen_marks_the_users_items_before_the_prompt_and_trains(cyc, tmp_path):
    """seen_before: the items the user had before the first item the prompt shows (by hand on the
    cyclic data); a short run with items.mask_seen trains and records the key; config errors."""
    import numpy as np

    from genrec.batches import Collator, make_example, seen_before
    from genrec.config import ConfigError
    from genrec.data.dataset import PreparedDataset
    from genrec.modeling.backbone import build_from_config
    from genrec.modeling.model import GenRecModel
    from genrec.prompts import load_templates

    ds = PreparedDataset.load(cyc)
    rec = tiny_recipe(mask_seen=True)
    m = GenRecModel(rec, build_from_config("tiny-llama"), item_ids=list(ds.item_ids),
                    titles=[ds.title(i) for i in range(ds.n_items)])
    t = next(t for t in load_templates()["sequential"] if t.answer == "item" and t.seen)
    rng = np.random.default_rng(0)
    exs = [make_example(ds, m, t, u, "train", rng, max_history=3, position=p) for u, p in ((0, 6), (5, 2))]
    batch = Collator(m).prompts(exs)
    got = seen_before(ds, exs, batch["input_ids"], m.codec.offset, ds.n_items)
    seq0, seq5 = ds.sequence(0), ds.sequence(5)
    want = torch.zeros(2, ds.n_items, dtype=torch.bool)
    want[0, list(seq0[:3])] = True  # position 6, 3 items shown (3, 4, 5): items 0..2 came before
    want[1, list(seq5[:0])] = True  # position 2, both earlier items shown: nothing before them
    assert exs[0].position == 6 and exs[1].position == 2
    assert torch.equal(got, want) and int(got.sum()) == 3
    summary = train(rec, cyc, tmp_path / "r", progress=False, log=lambda *_: None)
    assert summary["steps"] == 20
    import yaml
    assert yaml.safe_load((tmp_path / "r/last/config.yaml").read_text())["items"]["mask_seen"] is True
    with pytest.raises(ConfigError, match="items.mask_seen"):
        tiny_recipe(mask_seen=True, item_negatives=4)
    with pytest.raises(ConfigError, match="items.mask_seen applies to atomic"):
        tiny_recipe(item_tokens="text", mask_seen=True)


def test_removed_options_load_at_their_old_default_and_are_refused_otherwise(tmp_path):
    """train.ema / label_smoothing / item_lr / recent_windows and model.item_tie / item_rank were
    removed; a checkpoint written before (its config.yaml names them at their defaults) loads and
    scores exactly as the same checkpoint without them; another value is a one-line error."""
    import yaml

    from genrec.config import ConfigError, ModelConfig, TrainConfig, from_dict
    from genrec.recommender import Recommender
    data = cyclic_dataset(tmp_path)
    train(tiny_recipe(steps=2), data, tmp_path / "run", progress=False)
    ck = tmp_path / "run/last"
    rec = Recommender.from_pretrained(ck, device="cpu")
    u = rec.ds.user_raw_ids[0]
    want = rec.recommend(u, 5)
    cfg = yaml.safe_load((ck / "config.yaml").read_text())
    # the layout before the recipe was regrouped: items.* and tasks.* lived in model and train
    items, tasks = cfg.pop("items"), cfg.pop("tasks")
    cfg["model"].update(item_tokens=items["tokens"], item_init=items["init"], seq_readout=items["readout"],
                        item_dropout=items["dropout"])
    cfg["train"].update(dense_items=items["dense"], item_negatives=items["negatives"], mask_seen=items["mask_seen"],
                        **tasks)
    cfg["model"].update(item_tie=False, item_rank=0)
    cfg["train"].update(ema=0.0, label_smoothing=0.0, item_lr=None, recent_windows=0.0)
    (ck / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    old = Recommender.from_pretrained(ck, device="cpu")
    assert old.recommend(u, 5) == want and old.model.recipe == rec.model.recipe
    for section, key, value in (("train", "ema", 0.995), ("train", "label_smoothing", 0.1),
                                ("model", "item_tie", True), ("model", "item_rank", 64)):
        cls = TrainConfig if section == "train" else ModelConfig
        with pytest.raises(ConfigError, match=f"{section}.{key} was removed"):
            from_dict(cls, {key: value}, section)
