"""The evaluation protocol (the metric math is in genrec.metrics).

- sequential: full ranking over the whole catalogue for the held-out item of
  each user (leave-one-out); the user's earlier items are excluded from the
  ranking by default (as RecBole's full-ranking protocol does) —
  HR@{1,5,10}, NDCG@{5,10}, MRR.
- direct: the dataset's fixed candidate list per user (the held-out item plus
  99 sampled never-touched items, drawn once at `prepare` with the seed),
  ranked by each candidate's log-likelihood — HR@{1,5,10}, NDCG@{5,10}.
- explanation: greedy generation against the target — BLEU-4, ROUGE-1/2/L.

Only templates whose answer is an item (sequential, direct) or text
(explanation) are evaluated; each template is reported on its own, and seen
and unseen templates are averaged separately.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from genrec.runtime import bar as tqdm

from genrec.batches import Collator, make_example, pictured_items
from genrec.data.dataset import PreparedDataset
from genrec.data.examples import explanation_bans, explanation_for, explanation_lead, metadata_explanation
from genrec.decoding import (atomic_logits, build_trie, candidate_scores_atomic, generate_text, score_candidates,
                             topk_items)
from genrec.metrics import bleu4, candidate_rank, full_ranks, list_rank, ranking_metrics, rouge
from genrec.modeling.backbone import autocast
from genrec.modeling.model import GenRecModel
from genrec.prompts import Template, load_templates


def eval_users(ds: PreparedDataset, split: str, n: int | None, seed: int = 0) -> list[int]:
    """Users with a held-out item; a fixed random subset of `n` of them (all if None)."""
    users = [u for u in range(ds.n_users) if ds.target(u, split) is not None]
    if n is not None and n < len(users):
        users = sorted(np.random.default_rng(seed).choice(users, size=n, replace=False).tolist())
    return users


def _examples(ds, model, t: Template, users, split, max_history, images, seed):
    rng = np.random.default_rng(seed)
    return [make_example(ds, model, t, u, split, rng, max_history, None, images) for u in users]


def eval_sequential(model: GenRecModel, ds: PreparedDataset, collator: Collator, t: Template, users: list[int],
                    split: str = "test", max_history: int = 10, images=None, batch_size: int = 16,
                    exclude_history: bool = True, k: int = 10, num_beams: int | None = None,
                    progress: bool = False, seed: int = 0) -> dict:
    """Full ranking of the held-out item. Atomic items also rank the dataset's candidate list from the
    same logits (`candidates_from_sequential`: the direct task answered from the history prompt, the
    way sequential baselines such as SASRec are scored on it)."""
    exs = _examples(ds, model, t, users, split, max_history, images, seed)
    atomic = model.codec.mode == "atomic"
    trie = build_trie(model) if not atomic else None
    ranks, cand_ranks = [], []
    for s in tqdm(range(0, len(exs), batch_size), desc=f"sequential {t.id}", disable=not progress, leave=False):
        chunk = exs[s:s + batch_size]
        excl = [list(ds.history(e.user, split)) for e in chunk] if exclude_history else None
        if atomic:  # exact pessimistic rank over the whole catalogue from one pass
            logits = atomic_logits(model, collator.prompts(chunk)).float().cpu().numpy()  # [B, I]
            ranks += full_ranks(logits, [e.target_item for e in chunk], excl)
            for row, e in zip(logits, chunk):
                cands = ds.candidates(e.user, split)
                cand_ranks.append(candidate_rank(row[cands].tolist(), cands, e.target_item))
        else:
            top = topk_items(model, collator.prompts(chunk), k, excl, trie, num_beams)
            ranks += [list_rank(row, e.target_item) for row, e in zip(top, chunk)]
    out = {**ranking_metrics(ranks), "users": len(ranks), "per_user": _per_user(ds, exs, ranks)}
    if cand_ranks:
        out["candidates_from_sequential"] = {**ranking_metrics(cand_ranks, with_mrr=False),
                                             "per_user": _per_user(ds, exs, cand_ranks)}
    return out


def _per_user(ds: PreparedDataset, exs, ranks) -> dict:
    """Each user's 0-based rank (null: not in the returned list), keyed by the users' IDs in the source files, so
    two evaluations of the same split can be paired user by user (genrec.metrics.paired_bootstrap)."""
    return {"users": [ds.user_raw_ids[e.user] for e in exs], "ranks": list(ranks)}


def eval_direct(model: GenRecModel, ds: PreparedDataset, collator: Collator, t: Template, users: list[int],
                split: str = "test", max_history: int = 10, images=None, progress: bool = False,
                seed: int = 0, batch_size: int = 16) -> dict:
    exs = _examples(ds, model, t, users, split, max_history, images, seed)
    ranks = []
    step = batch_size if model.codec.mode == "atomic" else 1  # atomic: candidates read off one pass
    for s in tqdm(range(0, len(exs), step), desc=f"direct {t.id}", disable=not progress, leave=False):
        chunk = exs[s:s + step]
        if model.codec.mode == "atomic":
            scores_rows = candidate_scores_atomic(model, collator.prompts(chunk), [e.candidates for e in chunk])
        else:
            scores_rows = [score_candidates(model, collator.prompts(chunk), chunk[0].candidates)]
        ranks += [candidate_rank(scores, e.candidates, e.target_item) for e, scores in zip(chunk, scores_rows)]
    return {**ranking_metrics(ranks, with_mrr=False), "users": len(ranks),
            "candidates": len(exs[0].candidates) if exs else 0, "per_user": _per_user(ds, exs, ranks)}


def eval_explanation(model: GenRecModel, ds: PreparedDataset, collator: Collator, t: Template, users: list[int],
                     split: str = "test", max_history: int = 10, images=None, batch_size: int = 8,
                     max_new_tokens: int = 40, progress: bool = False, seed: int = 0) -> dict:
    exs = _examples(ds, model, t, users, split, max_history, images, seed)
    hyps, refs = [], []
    for s in tqdm(range(0, len(exs), batch_size), desc=f"explanation {t.id}", disable=not progress, leave=False):
        chunk = exs[s:s + batch_size]
        items = [int(ds.sequence(e.user)[e.position]) for e in chunk]
        leads = [explanation_lead(ds, i) for i in items]
        bans = [explanation_bans(ds, i, ds.sequence(e.user)[:e.position]) for i, e in zip(items, chunk)]
        hyps += generate_text(model, collator.prompts(chunk), max_new_tokens, leads=leads, bans=bans)
        refs += [e.target for e in chunk]
    return {"bleu4": bleu4(hyps, refs), **rouge(hyps, refs), **_claims(ds, exs, hyps), "users": len(hyps),
            "sample": {"prediction": hyps[0], "target": refs[0]} if hyps else None,
            "per_user": {"users": [ds.user_raw_ids[e.user] for e in exs], "texts": hyps}}


def _claims(ds: PreparedDataset, exs, texts: list[str]) -> dict:
    """faithful / personal (genrec.claims) of explanations of each example's item, where the dataset has
    knowledge-graph facts to judge them by (MovieLens-100K); {} elsewhere."""
    if not any(f for f in ds.facts):
        return {}
    from genrec.claims import score
    items = [int(ds.sequence(e.user)[e.position]) for e in exs]
    hists = [[int(h) for h in ds.sequence(e.user)[:e.position]] for e in exs]
    return score(ds, items, hists, texts)


def template_explanations(ds: PreparedDataset, users: list[int], split: str = "test") -> dict:
    """The "template, no model" row: each held-out item's own metadata sentence (title, year, genres,
    its knowledge-graph facts; no link to the user's history) scored against the references, so a
    reader sees what BLEU/ROUGE reward on metadata-built references. Reviews (Amazon) are not
    templated: there the row scores the reference-free sentence the same way."""
    hyps, refs, exs = [], [], []
    for u in users:
        item = ds.target(u, split)
        if item is None:
            continue
        pos = len(ds.sequence(u)) - (1 if split == "test" else 2)
        hyps.append(metadata_explanation(ds, item, [])[0])
        refs.append(explanation_for(ds, u, pos)[0])
        exs.append(SimpleNamespace(user=u, position=pos))
    return {"seen": None, "bleu4": bleu4(hyps, refs), **rouge(hyps, refs), **_claims(ds, exs, hyps),
            "users": len(hyps),
            "sample": {"prediction": hyps[0], "target": refs[0]} if hyps else None}


def evaluate(model: GenRecModel, ds: PreparedDataset, features: torch.Tensor | None = None, split: str = "test",
             n_users: int | None = None, families=("sequential", "direct", "explanation"),
             templates: str = "first", max_history: int = 10, exclude_history: bool = True,
             batch_size: int = 16, num_beams: int | None = None, progress: bool = True, seed: int = 0,
             prompts_dir=None, precision: str = "auto") -> dict:
    """All requested families. templates: first (one seen + one unseen per family), first-seen,
    seen, unseen, all, or comma-separated template ids."""
    model.eval()
    with autocast(model.device, precision):
        return _evaluate(model, ds, features, split, n_users, families, templates, max_history, exclude_history,
                         batch_size, num_beams, progress, seed, prompts_dir)


def _evaluate(model, ds, features, split, n_users, families, templates, max_history, exclude_history,
              batch_size, num_beams, progress, seed, prompts_dir) -> dict:
    collator = Collator(model, features)
    images = pictured_items(features)
    users = eval_users(ds, split, n_users, seed)
    out: dict = {"dataset": ds.meta["name"], "split": split, "users": len(users), "exclude_history": exclude_history,
                 "ties": "pessimistic", "item_tokens": model.codec.mode, "train_seed": model.recipe.train.seed,
                 "families": {}}
    for fam, ts in load_templates(prompts_dir).items():
        if fam not in families:
            continue
        want = "text" if fam == "explanation" else "item"
        ts = [t for t in ts if t.answer == want]
        if templates == "first":
            ts = [t for t in ts if t.seen][:1] + [t for t in ts if not t.seen][:1]
        elif templates == "first-seen":
            ts = [t for t in ts if t.seen][:1]
        elif templates in ("seen", "unseen"):
            ts = [t for t in ts if t.seen == (templates == "seen")]
        elif templates != "all":  # explicit template ids, comma-separated
            want_ids = {x.strip() for x in templates.split(",")}
            ts = [t for t in ts if t.id in want_ids]
        res = {}
        for t in ts:
            model.set_task(fam)
            if fam == "sequential":
                r = eval_sequential(model, ds, collator, t, users, split, max_history, images, batch_size,
                                    exclude_history, 10, num_beams, progress, seed)
            elif fam == "direct":
                r = eval_direct(model, ds, collator, t, users, split, max_history, images, progress, seed,
                                batch_size)
            else:
                r = eval_explanation(model, ds, collator, t, users, split, max_history, images,
                                     max(1, batch_size // 2), progress=progress, seed=seed)
            res[t.id] = {"seen": t.seen, **r}
        if fam == "explanation" and ts:
            res["template-no-model"] = template_explanations(ds, users, split)
        per_template = list(res.values())
        for kind in ("seen", "unseen"):
            rows = [r for r in per_template if r["seen"] == (kind == "seen")]
            if rows:
                keys = [k for k, v in rows[0].items() if isinstance(v, float)]
                res[f"mean_{kind}"] = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        out["families"][fam] = res
    return out


def results_table(results: dict) -> str:
    """Markdown: one row per family/template with its metrics."""
    lines = []
    for fam, res in results["families"].items():
        rows = {k: v for k, v in res.items() if not k.startswith("mean_")}
        if not rows:
            continue
        keys = [k for k, v in next(iter(rows.values())).items() if isinstance(v, float)]
        lines += [f"\n**{fam}** ({results['split']}, {results['users']} users)\n",
                  "| template | seen | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
        for tid, r in rows.items():
            seen = {True: "yes", False: "no", None: "—"}[r["seen"]]
            lines.append(f"| {tid} | {seen} | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
        also = {tid: r["candidates_from_sequential"] for tid, r in rows.items() if "candidates_from_sequential" in r}
        if also:  # atomic items: the direct task's candidate list ranked by the sequential prompt's logits
            ck = [k for k, v in next(iter(also.values())).items() if isinstance(v, float)]
            lines += [f"\n**direct candidates ranked from the sequential prompt** ({results['split']}, "
                      f"{results['users']} users)\n", "| template | " + " | ".join(ck) + " |", "|---|" + "---|" * len(ck)]
            lines += [f"| {tid} | " + " | ".join(f"{r[k]:.4f}" for k in ck) + " |" for tid, r in also.items()]
    return "\n".join(lines).strip() + "\n"
