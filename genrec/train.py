"""The training loop: one explicit loop on accelerate, no callbacks.

Each optimizer step draws `grad_accum` micro-batches; a micro-batch is one
task family (sampled by the recipe's mixture weights), one seen template of
it, and `batch_size` random users, each at a random training position. The
draw is a pure function of (seed, process, step, micro-batch), so `--resume`
continues exactly where the run stopped and each process of a multi-process
run (`accelerate launch`) sees different examples. Items answered by an
atomic token train with cross-entropy over the whole item block; every other
target (text IDs, yes/no, explanations) with the token cross-entropy.

Checkpoints (`<out>/last`, `<out>/best`) are written atomically: an
interrupted run leaves the previous one intact. Ctrl-C or SIGTERM lets the
step in flight finish and writes `last/` at it (a second one stops at once).
`last/` also holds `trainer_state.json` + `optimizer.safetensors` for resuming.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from genrec.runtime import bar as tqdm

from genrec.files import atomic_write_text
from genrec.batches import Collator, item_loss, lm_loss, make_example, pictured_items, pictured_mask, seen_before
from genrec.config import TASK_FAMILIES, Recipe, to_dict
from genrec.data.dataset import PreparedDataset
from genrec.data.examples import n_train_items
from genrec.data.indexing import cooccurrence_vectors
from genrec.decoding import on_device
from genrec.evaluate import eval_sequential, eval_users
from genrec.modeling.backbone import best_precision
from genrec.checkpoint import SUMMARY_FILE, CheckpointError, check_dataset, data_fingerprint
from genrec.modeling.model import GenRecModel
from genrec.runtime import peak_memory, safe_attention_backward, solo_work
from genrec.prompts import load_templates
from genrec.vision import recipe_features


# ---------------------------------------------------------------- optimizer state without pickle
def _save_optimizer(opt: torch.optim.Optimizer, sched, path: Path) -> None:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "scalars": {}}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta["scalars"][f"{pid}.{k}"] = v
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(path / "optimizer.safetensors"))
    meta["scheduler"] = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    (path / "optimizer.json").write_text(json.dumps(meta), encoding="utf-8")


def _load_optimizer(opt: torch.optim.Optimizer, sched, path: Path) -> None:
    tensors = load_file(str(path / "optimizer.safetensors"))
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    state: dict = {}
    for key, v in tensors.items():
        if key == "rng.torch" or key.startswith("ema."):  # ema.*: runs of the removed train.ema
            continue
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sd = sched.state_dict()
    sd.update(meta["scheduler"])
    sched.load_state_dict(sd)
    torch.set_rng_state(tensors["rng.torch"])


# ---------------------------------------------------------------- sampling
def mixture(recipe: Recipe) -> tuple[list[str], np.ndarray]:
    w = recipe.tasks.mixture or {f: 1.0 for f in TASK_FAMILIES}
    fams = [f for f in TASK_FAMILIES if w.get(f, 0) > 0]
    if not fams:
        raise ValueError("tasks.mixture gives every task family weight 0")
    p = np.array([float(w[f]) for f in fams])
    return fams, p / p.sum()


def user_probabilities(ds, users: np.ndarray, tc) -> np.ndarray | None:
    """Each training user's chance to be drawn per prompt under tasks.user_weights (None: uniform,
    drawn with the plain integer draw so uniform recipes keep their exact random stream)."""
    if tc.user_weights == "uniform":
        return None
    targets = np.array([max(n_train_items(ds, int(u)) - 1, 0) for u in users], dtype=np.float64)
    w = targets if tc.user_weights == "interactions" else np.maximum(targets, tc.max_history) * (targets > 0)
    if w.sum() <= 0:
        raise ValueError("no training examples could be drawn (every user's history is too short)")
    return w / w.sum()


def sample_batch(ds, model, templates, fams, probs, users, recipe, images, seed, process, step, micro,
                 user_p: np.ndarray | None = None):
    """The micro-batch for (step, micro): deterministic, no state carried between calls. `user_p`: each
    user's draw probability (`user_probabilities`), None = uniform."""
    rng = np.random.default_rng([seed, process, step, micro])
    fam = fams[int(rng.choice(len(fams), p=probs))]
    seen = [t for t in templates[fam] if t.seen and (not recipe.tasks.templates or t.id in recipe.tasks.templates)]
    t = seen[int(rng.integers(len(seen)))]
    exs = []
    tries = 0
    while len(exs) < recipe.train.batch_size and tries < 20 * recipe.train.batch_size:
        tries += 1
        u = int(users[rng.integers(len(users))] if user_p is None else users[rng.choice(len(users), p=user_p)])
        e = make_example(ds, model, t, u, "train", rng, recipe.tasks.max_history, recipe.tasks.candidates,
                         images)
        if e is not None:
            exs.append(e)
    if not exs:
        raise ValueError("no training examples could be drawn (every user's history is too short)")
    return fam, t, exs


def compute_loss(model, raw: GenRecModel, collator: Collator, t, exs, device, ds) -> torch.Tensor:
    """`model` is what accelerate prepared (maybe DDP-wrapped), `raw` the GenRecModel inside; `ds`
    (the dataset) gives items.mask_seen each user's items before the prompt."""
    if raw.codec.mode == "atomic" and t.answer == "item":
        batch = on_device(collator.prompts(exs), device)
        sequence = t.family == "sequential"  # history = a sequence
        dense = raw.recipe.items.dense and sequence
        seen = None
        if raw.recipe.items.mask_seen and sequence:
            seen = seen_before(ds, exs, batch["input_ids"], raw.codec.offset, len(raw.codec))
        return item_loss(model, batch, torch.tensor([e.target_item for e in exs], device=device), dense, seen)
    return lm_loss(model, on_device(collator.lm(exs), device))


# ---------------------------------------------------------------- the loop
def collaborative_vectors(ds: PreparedDataset, dim: int = 64) -> np.ndarray:
    """[I, d] co-occurrence vectors of the items from the training interactions only (each user's
    items before the validation target), for items.init=title+cf."""
    seqs = [ds.sequence(u)[:n_train_items(ds, u)] for u in range(ds.n_users)]
    return cooccurrence_vectors(seqs, ds.n_items, dim)


def last_step(out: str | Path) -> int | None:
    """The step `<out>/last` holds (what `--resume` continues from), or None when there is none."""
    state = Path(out) / "last" / "trainer_state.json"
    return json.loads(state.read_text(encoding="utf-8"))["step"] if state.is_file() else None


def train(recipe: Recipe, data_dir: str | Path, out: str | Path, resume: bool = False, features: str | None = None,
          progress: bool = True, log=print, command: str | None = None,
          resume_hint: str = "continue with --resume") -> dict:
    """Train `recipe` on the prepared dataset at `data_dir` into `out` (see the module docstring).
    Returns the run's summary, also written to `<out>/train_summary.json` (with `command`, the
    command line to record, and the validation scores by step) for `genrec evaluate` to report.
    `resume_hint` ends the message an interruption logs (how the caller's user continues)."""
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    data_dir, out = Path(data_dir), Path(out)
    ds = PreparedDataset.load(data_dir)
    tc = recipe.train
    last = out / "last"
    state = {"step": 0, "best_hr10": -1.0, "best_step": None, "evals": [], "seconds": 0.0, "examples": 0}
    if resume:
        if not (last / "trainer_state.json").is_file():
            raise CheckpointError(f"{last}: nothing to resume (no trainer_state.json)")
        state = json.loads((last / "trainer_state.json").read_text(encoding="utf-8"))
        state.setdefault("seconds", None)  # written by a version that kept no counts: totals unknown
        state.setdefault("examples", None)
        check_dataset(last, ds)
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")

    from accelerate.state import AcceleratorState
    # accelerate keeps one global state per process; a second train() call in the same process
    # (a notebook, the tests) may ask for another precision, so drop the old one (not the
    # distributed setup, which `accelerate launch` made and which stays valid)
    AcceleratorState._reset_state(reset_partial_state=False)
    from accelerate.utils import DistributedDataParallelKwargs
    # a step trains one task family, so some trainable parts (the item block, the projector) get
    # no gradient in some steps; DDP must be told, or it stops at the first such step
    acc = Accelerator(mixed_precision=best_precision(tc.precision), gradient_accumulation_steps=tc.grad_accum,
                      cpu=not torch.cuda.is_available(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    safe_attention_backward(acc.device.type)
    if resume and acc.is_main_process:  # a finished run's summary no longer describes the run being extended
        (out / SUMMARY_FILE).unlink(missing_ok=True)
    torch.manual_seed(tc.seed)
    from genrec.baselines import popularity
    feats = recipe_features(recipe, ds, data_dir, features)
    images = pictured_items(feats)
    if recipe.items.init == "title+image" and recipe.items.tokens == "atomic" and feats is None:
        raise ValueError("items.init=title+image needs item images, and this dataset has none "
                         "(use items.init=title)")
    model = GenRecModel(recipe, item_ids=ds.item_ids, titles=[ds.title(i) for i in range(ds.n_items)],
                        item_counts=popularity(ds),
                        item_images=(feats, pictured_mask(feats)) if feats is not None else None,
                        item_cf=collaborative_vectors(ds) if recipe.items.init == "title+cf" else None)
    if resume:
        model.load_trainables(last)
    collator = Collator(model, feats)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, int(tc.warmup * tc.steps), tc.steps)
    if resume:
        _load_optimizer(opt, sched, last)
    # the schedule is not given to accelerate: its wrapper steps a scheduler once per process at
    # every optimizer step (it assumes the step count was divided by the processes), so with 2
    # processes the cosine ended halfway and the rate climbed back to its peak
    model, opt = acc.prepare(model, opt)
    raw = acc.unwrap_model(model)
    templates = load_templates()
    fams, probs = mixture(recipe)
    if recipe.tasks.templates:
        known = {t.id: f for f, ts in templates.items() for t in ts}
        bad = [t for t in recipe.tasks.templates if t not in known]
        if bad:
            raise ValueError(f"tasks.templates: unknown template {bad[0]!r} (see prompts/*.yaml)")
        fams_with = {known[t] for t in recipe.tasks.templates}
        missing = [f for f in fams if f not in fams_with]
        if missing:
            raise ValueError(f"tasks.templates names no template of family {missing[0]!r}, which tasks.mixture "
                             "samples; add one or set its weight to 0")
    users = np.array([u for u in range(ds.n_users) if len(ds.sequence(u)) >= 4])
    user_p = user_probabilities(ds, users, recipe.tasks)
    val_users = eval_users(ds, "valid", tc.eval_users, tc.seed)
    val_t = next(t for t in templates["sequential"] if t.seen and t.answer == "item")
    meta = {"data_dir": str(data_dir.resolve()), "data_fingerprint": data_fingerprint(ds)}

    # 16 prompts a batch keeps a CPU's memory small; a GPU at 16 waits on kernel launches
    val_batch = 16 if acc.device.type == "cpu" else 128

    def validate() -> dict:
        raw.eval()
        # the other processes of this machine wait meanwhile: on a CPU, use their threads too
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if acc.num_processes > 1 else 1
        with torch.no_grad(), acc.autocast(), solo_work(local, acc.device.type):
            raw.set_task("sequential")
            r = eval_sequential(raw, ds, Collator(raw, feats), val_t, val_users, "valid", recipe.tasks.max_history,
                                images, batch_size=val_batch, progress=False, seed=tc.seed)
        raw.train()
        r.pop("per_user", None)  # checkpoints keep the metrics, not 943+ per-user ranks
        r.get("candidates_from_sequential", {}).pop("per_user", None)
        return r

    def save(step: int, res: dict | None) -> None:
        if not acc.is_main_process:
            return
        if res is not None and res["hr@10"] > state["best_hr10"]:
            # best/ first, then last/ (whose trainer_state names it): an interruption in between
            # resumes from the older last/ and redoes this evaluation
            state.update(best_hr10=res["hr@10"], best_step=step)
            raw.save_pretrained(out / "best", extra={**meta, "step": step, "valid": res})
        # the time and examples of every part so far (None: a checkpoint of a version that kept no count)
        st = {**state, "step": step, "recipe": to_dict(recipe), **_totals(state, n_ex, time.perf_counter() - t0)}

        def extra(tmp: Path) -> None:
            (tmp / "trainer_state.json").write_text(json.dumps(st, indent=2), encoding="utf-8")
            _save_optimizer(opt.optimizer if hasattr(opt, "optimizer") else opt, sched, tmp)
        raw.save_pretrained(last, extra=meta, write_extra=extra)

    model.train()
    start = state["step"]
    bar = tqdm(total=tc.steps, initial=start, desc="train", unit="step", disable=not (progress and acc.is_main_process))
    t0, n_ex, smooth, lv = time.perf_counter(), 0, None, None
    step = start
    several = acc.num_processes > 1
    stop, restore = _stop_after_step(several, acc.is_main_process)
    try:
        for step in range(start + 1, tc.steps + 1):
            for micro in range(tc.grad_accum):
                fam, t, exs = sample_batch(ds, raw, templates, fams, probs, users, recipe, images, tc.seed,
                                           acc.process_index, step, micro, user_p)
                raw.set_task(fam)
                with acc.accumulate(model), acc.autocast():
                    loss = compute_loss(model, raw, collator, t, exs, acc.device, ds)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(trainable, tc.max_grad_norm)
                    opt.step()
                    # once per optimizer step taken (not after an fp16 step skipped), whatever the processes
                    if acc.sync_gradients and not opt.step_was_skipped:
                        sched.step()
                    opt.zero_grad(set_to_none=True)
                n_ex += len(exs) * acc.num_processes  # every process trains a batch of the same size
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise FloatingPointError(f"loss became {lv} at step {step}; lower train.lr")
                smooth = lv if smooth is None else 0.9 * smooth + 0.1 * lv  # the bar's running loss
            state["step"] = step
            rate = n_ex / max(1e-9, time.perf_counter() - t0)
            bar.set_postfix(loss=f"{smooth:.3f}", ex_s=f"{rate:.1f}", lr=f"{sched.get_last_lr()[0]:.1e}")
            bar.update(1)
            # several processes decide together (a signal may reach them in different steps)
            halt = acc.reduce(torch.tensor([float(bool(stop))], device=acc.device)).item() > 0 if several \
                else bool(stop)
            evaluated = (tc.eval_every and step % tc.eval_every == 0) or step == tc.steps
            if evaluated:
                res = validate() if acc.is_main_process and val_users else None
                if res is not None:
                    state["evals"].append({"step": step, "loss": smooth, **{k: res[k] for k in ("hr@10", "ndcg@10")}})
                    bar.write(f"step {step}: loss {smooth:.4f}, valid HR@10 {res['hr@10']:.4f} NDCG@10 "
                              f"{res['ndcg@10']:.4f} ({res['users']} users)")
                save(step, res)
                acc.wait_for_everyone()
            elif halt:
                save(step, None)
                acc.wait_for_everyone()  # no process leaves (and makes a launcher kill the rest) before the save
            if halt and step < tc.steps:
                raise KeyboardInterrupt(stop[0] if stop else "a signal to another process")
    except KeyboardInterrupt:
        bar.close()
        done = last_step(out)
        if acc.is_main_process:
            log(f"stopped after step {step}, saved in {last} — {resume_hint}" if done == step else
                f"interrupted at step {step}; " + (f"the last checkpoint ({last}, step {done}) is intact — "
                f"{resume_hint}" if done is not None else "no checkpoint was written yet"))
        raise
    finally:
        restore()
    bar.close()
    elapsed = time.perf_counter() - t0
    # seconds and examples sum every part of a resumed run; the rate is this part's
    summary = {"steps": tc.steps, "resumed_from": start, **_totals(state, n_ex, elapsed),
               "seconds_this_part": round(elapsed, 1), "examples_per_s": round(n_ex / max(elapsed, 1e-9), 2), "final_loss": smooth, "last_loss": lv,
               "best_valid_hr10": state["best_hr10"], "best_step": state["best_step"], "out": str(out),
               **peak_memory()}
    if acc.is_main_process:
        atomic_write_text(out / SUMMARY_FILE, json.dumps({**summary, "command": command, "evals": state["evals"]},
                                                         indent=2) + "\n")
    return summary


def _totals(state: dict, examples: int, seconds: float) -> dict:
    """Examples and seconds of the earlier parts of a run (in `state`) plus this part's; None where an
    earlier part was not counted."""
    ex, s = state["examples"], state["seconds"]
    return {"examples": None if ex is None else ex + examples, "seconds": None if s is None else round(s + seconds, 1)}


def _stop_after_step(several: bool, announce: bool = True):
    """Ctrl-C or SIGTERM (a scheduler's preemption, `kill`, a container stop) while training.
    The first signal lets the step in flight finish, then the loop writes last/ at that step and
    stops, so `--resume` loses nothing. One process: a second signal stops at once (the last
    checkpoint stays intact). Several processes: they agree after every step whether any was
    signalled, so all stop after the same step; later signals are ignored, because a launcher
    repeats the user's signal to its workers (torchrun forwards it, then kills workers that are
    still running 30 s later). Returns the list that holds the first signal's name and the
    function that puts the previous handlers back. Only the main thread may set handlers;
    elsewhere nothing changes."""
    import signal
    import threading
    stop: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        return stop, lambda: None

    def on_signal(signum, frame):
        name = signal.Signals(signum).name
        if stop and several:
            return
        if stop:
            raise KeyboardInterrupt(name)
        stop.append(name)
        if announce:
            print(f"\n{name}: stopping after this step and saving it" + ("" if several else " (again to stop at once)"),
                  file=sys.stderr)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    return stop, lambda: [signal.signal(s, h) for s, h in old.items()]
