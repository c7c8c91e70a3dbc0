"""Stopping and resuming `genrec train`: signals mid-step, checkpoints, resume, DDP processes."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from genrec.modeling.model import GenRecModel
from genrec.train import train
from tests.helpers import cyclic_dataset, signal_on_call, tiny_recipe


@pytest.fixture(scope="module")
def cyc(tmp_path_factory):
    return cyclic_dataset(tmp_path_factory.mktemp("cyc"))


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
        signal_on_call(mp, 4, [signal.SIGINT, signal.SIGINT])
        with pytest.raises(KeyboardInterrupt):
            train(recipe, cyc, tmp_path / "b", progress=False, log=lambda m: None)
    assert json.loads((tmp_path / "b/last/trainer_state.json").read_text())["step"] == 3
    assert not (tmp_path / "b/train_summary.json").exists()  # written only when a run ends
    b = train(recipe, cyc, tmp_path / "b", resume=True, progress=False)
    assert b["resumed_from"] == 3
    # a resumed run counts every part: the same examples as the uninterrupted run, and its time is the
    # first part's (saved at step 3) plus this part's
    first = json.loads((tmp_path / "b/last/trainer_state.json").read_text())  # now step 6, both parts
    assert b["examples"] == a["examples"] == first["examples"]
    assert b["seconds"] > b["seconds_this_part"] > 0 and a["seconds"] == a["seconds_this_part"]
    assert json.loads((tmp_path / "b/train_summary.json").read_text())["resumed_from"] == 3
    # extending a finished run drops its summary at once (it would describe the shorter run)
    with monkeypatch.context() as mp:
        signal_on_call(mp, 1, [signal.SIGINT, signal.SIGINT])
        with pytest.raises(KeyboardInterrupt):
            train(tiny_recipe(steps=8, eval_every=3), cyc, tmp_path / "b", resume=True, progress=False, log=lambda m: None)
    assert not (tmp_path / "b/train_summary.json").exists()
    assert b["last_loss"] == pytest.approx(a["last_loss"], rel=1e-4, abs=1e-5)
    sa, sb = trainables(tmp_path / "a/last"), trainables(tmp_path / "b/last")
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-4, atol=1e-6)


def test_interrupt_keeps_the_last_checkpoint(cyc, tmp_path, monkeypatch):
    train(tiny_recipe(steps=4, eval_every=2), cyc, tmp_path / "r", progress=False)
    before = trainables(tmp_path / "r/last")
    signal_on_call(monkeypatch, 3, [signal.SIGINT, signal.SIGINT])  # Ctrl-C twice
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
    # one summary line for the run (the other process's best score is stale); both processes trained
    # every step, or DDP's gradient all-reduce would have hung or failed them
    assert r.stdout.count("trained r: 4 steps") == 1 and re.search(r"best valid HR@10 0\.\d{4} at step [24]", r.stdout)
    st = json.loads((tmp_path / "ddp/last/trainer_state.json").read_text())
    assert st["step"] == 4
    summary = json.loads((tmp_path / "ddp/train_summary.json").read_text())
    assert summary["examples"] == 4 * 4 * 2  # steps x prompts x processes
    # the cosine schedule takes one step per optimizer step (not one per process): after the last
    # of 4 steps it has taken 4 and the rate is at its end, zero (8 steps would have climbed back)
    opt = json.loads((tmp_path / "ddp/last/optimizer.json").read_text())
    assert opt["scheduler"]["last_epoch"] == 4
    assert opt["param_groups"][0]["lr"] == 0.0
    GenRecModel.from_pretrained(tmp_path / "ddp/last")


@pytest.mark.slow
@pytest.mark.parametrize("who", ["ctrl-c to all", "SIGTERM to rank 1 only"])
def test_ddp_processes_stop_together_after_a_signal_and_save_that_step(cyc, tmp_path, who):
    """A signal while 2 DDP processes train: all stop after the same step and last/ holds it.
    Ctrl-C reaches torchrun and both workers (torchrun repeats it to them); a preemption may signal
    one worker only, and the other must learn it in the same step (else DDP hangs)."""
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
