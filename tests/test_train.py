import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genrec.checkpoint import CheckpointError
from genrec.modeling.model import GenRecModel
from genrec.train import train
from tests.helpers import cyclic_dataset, signal_on_call, tiny_recipe


@pytest.fixture(scope="module")
def cyc(tmp_path_factory):
    return cyclic_dataset(tmp_path_factory.mktemp("cyc"))


def interrupt_on_call(monkeypatch, n: int) -> None:
    """Make the n-th compute_loss call raise KeyboardInterrupt (Ctrl-C mid-step)."""
    import genrec.train as T
    real, calls = T.compute_loss, []

    def boom(*args, **kw):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(T, "compute_loss", boom)


def trainables(path):
    from safetensors.torch import load_file
    state = load_file(str(path / "trainable.safetensors"))
    lora = path / "lora" / "adapter_model.safetensors"
    if lora.is_file():
        state.update({"lora." + k: v for k, v in load_file(str(lora)).items()})
    return state


def test_resume_reproduces_the_uninterrupted_run(cyc, tmp_path, monkeypatch):
    recipe = tiny_recipe(steps=6, eval_every=3, mixture={"sequential": 1.0, "direct": 1.0})
    a = train(recipe, cyc, tmp_path / "a", progress=False)
    # b: the same run, interrupted during step 4 (its last checkpoint is step 3), then resumed
    with monkeypatch.context() as mp:
        interrupt_on_call(mp, 4)
        with pytest.raises(KeyboardInterrupt):
            train(recipe, cyc, tmp_path / "b", progress=False, log=lambda m: None)
    assert json.loads((tmp_path / "b/last/trainer_state.json").read_text())["step"] == 3
    assert not (tmp_path / "b/train_summary.json").exists()  # written only when a run ends
    b = train(recipe, cyc, tmp_path / "b", resume=True, progress=False)
    assert b["resumed_from"] == 3
    assert json.loads((tmp_path / "b/train_summary.json").read_text())["resumed_from"] == 3
    # extending a finished run drops its summary at once (it would describe the shorter run)
    with monkeypatch.context() as mp:
        interrupt_on_call(mp, 1)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_recipe(steps=8, eval_every=3), cyc, tmp_path / "b", resume=True, progress=False, log=lambda m: None)
    assert not (tmp_path / "b/train_summary.json").exists()
    assert b["last_loss"] == pytest.approx(a["last_loss"], rel=1e-4, abs=1e-5)
    sa, sb = trainables(tmp_path / "a/last"), trainables(tmp_path / "b/last")
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6)


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


def test_interrupt_keeps_the_last_checkpoint(cyc, tmp_path, monkeypatch):
    train(tiny_recipe(steps=4, eval_every=2), cyc, tmp_path / "r", progress=False)
    before = trainables(tmp_path / "r/last")
    interrupt_on_call(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_recipe(steps=10, eval_every=2), cyc, tmp_path / "r", resume=True, progress=False,
              log=lambda m: None)
    st = json.loads((tmp_path / "r/last/trainer_state.json").read_text())
    assert st["step"] == 6  # step 5..6 ran and were saved; step 7 was interrupted before any write
    GenRecModel.from_pretrained(tmp_path / "r/last")  # loads: nothing half-written
    after = trainables(tmp_path / "r/last")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]


def test_sigterm_finishes_the_step_saves_it_and_resumes_exactly(cyc, tmp_path, monkeypatch):
    """A scheduler's SIGTERM mid-step: the step finishes, last/ is written at it (not only at the
    last evaluation), and resuming gives the uninterrupted run; the process's handlers come back.
    A second signal stops at once and keeps the previous last/."""
    import signal
    recipe = tiny_recipe(steps=5, eval_every=2)
    a = train(recipe, cyc, tmp_path / "a", progress=False)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    msgs = []
    with monkeypatch.context() as mp:
        signal_on_call(mp, 3, [signal.SIGTERM])
        with pytest.raises(KeyboardInterrupt):
            train(recipe, cyc, tmp_path / "b", progress=False, log=msgs.append)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    assert json.loads((tmp_path / "b/last/trainer_state.json").read_text())["step"] == 3
    assert msgs == [f"stopped after step 3, saved in {tmp_path / 'b/last'} — continue with --resume"]
    b = train(recipe, cyc, tmp_path / "b", resume=True, progress=False)
    assert b["resumed_from"] == 3 and b["last_loss"] == pytest.approx(a["last_loss"], rel=1e-4, abs=1e-5)
    sa, sb = trainables(tmp_path / "a/last"), trainables(tmp_path / "b/last")
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6)
    # Ctrl-C twice in step 3: no wait, step 3 is dropped, the step-2 checkpoint stays
    with monkeypatch.context() as mp:
        signal_on_call(mp, 3, [signal.SIGINT, signal.SIGINT])
        with pytest.raises(KeyboardInterrupt):
            train(recipe, cyc, tmp_path / "c", progress=False, log=msgs.append)
    assert json.loads((tmp_path / "c/last/trainer_state.json").read_text())["step"] == 2
    assert "interrupted at step 3; the last checkpoint" in msgs[-1]
    # a signal during the final step ends the run normally
    with monkeypatch.context() as mp:
        signal_on_call(mp, 5, [signal.SIGTERM])
        assert train(recipe, cyc, tmp_path / "d", progress=False)["steps"] == 5
    assert (tmp_path / "d/train_summary.json").is_file()


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


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(cyc, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {backbone: tiny-llama, clip_model: genrec-tiny-clip, clip_pretrained: none, "
                      "item_tokens: atomic, max_length: 96}\nadapter: {type: lora, r: 4}\n"
                      "train: {steps: 4, batch_size: 4, eval_every: 2, eval_users: 5, precision: 'no', "
                      "max_history: 3, mixture: {sequential: 1.0}}\n")
    # torchrun: `accelerate launch --cpu --num_processes 2` starts one process, not two
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "-m", "genrec", "train", str(recipe), "--data", str(cyc), "--out", str(tmp_path / "ddp"), "--quiet",
           "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("trained r: 4 steps") == 2  # both processes trained every step
    st = json.loads((tmp_path / "ddp/last/trainer_state.json").read_text())
    assert st["step"] == 4
    summary = json.loads((tmp_path / "ddp/train_summary.json").read_text())
    assert summary["examples"] == 4 * 4 * 2  # steps x prompts x processes
    GenRecModel.from_pretrained(tmp_path / "ddp/last")


@pytest.mark.slow
@pytest.mark.parametrize("who", ["ctrl-c to all", "SIGTERM to rank 1 only"])
def test_ddp_processes_stop_together_after_a_signal_and_save_that_step(cyc, tmp_path, who):
    """A signal while 2 DDP processes train: all stop after the same step and last/ holds it.
    Ctrl-C reaches torchrun and both workers (torchrun repeats it to them); a preemption may signal
    one worker only, and the other must learn it in the same step (else DDP hangs)."""
    import signal

    import psutil
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {backbone: tiny-llama, clip_model: genrec-tiny-clip, clip_pretrained: none, "
                      "item_tokens: atomic, max_length: 96}\nadapter: {type: lora, r: 4}\n"
                      "train: {steps: 2000, batch_size: 4, eval_every: 3, eval_users: 5, precision: 'no', "
                      "max_history: 3, mixture: {sequential: 1.0}}\n")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "genrec", "train",
           str(recipe), "--data", str(cyc), "--out", str(out), "--quiet", "--threads", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.time()
        while not (out / "last/trainer_state.json").exists():  # step 3's checkpoint: both are training
            assert p.poll() is None and time.time() - t0 < 300, "the DDP run ended or stalled before step 3"
            time.sleep(0.2)
        if who == "ctrl-c to all":
            os.killpg(p.pid, signal.SIGINT)
        else:
            ranks = {int(c.environ().get("RANK", -1)): c for c in psutil.Process(p.pid).children()}
            ranks[1].send_signal(signal.SIGTERM)
        text = "\n".join(p.communicate(timeout=120))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    m = re.search(r"stopped after step (\d+), saved in", text)
    assert m, text[-3000:]
    step = int(m.group(1))
    assert 3 <= step < 2000 and text.count("stopped after step") == 1  # reported once, by the main process
    assert json.loads((out / "last/trainer_state.json").read_text())["step"] == step
    GenRecModel.from_pretrained(out / "last")


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
