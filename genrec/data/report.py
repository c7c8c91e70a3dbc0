"""A prepared dataset's statistics and sample prompts, as `genrec inspect` prints them."""
from __future__ import annotations

import numpy as np

from genrec.data.dataset import PreparedDataset
from genrec.data.examples import example_values
from genrec.prompts import load_templates, render


def dataset_report(ds: PreparedDataset, n_examples: int = 2, prompts: str | None = None, seed: int = 0) -> str:
    m = ds.meta
    c, s, r = m["counts"], m["split_sizes"], m["raw_counts"]
    lens = np.diff(ds._bounds)
    lines = [
        f"dataset   {m['name']} (source {m['source']}, schema v{m['schema_version']}, created {m['created']})",
        f"raw       {r['users']:,} users, {r['items']:,} items, {r['interactions']:,} interactions",
        f"k-core {m['config']['k_core']}  {c['users']:,} users, {c['items']:,} items, {c['interactions']:,} interactions"
        f" (density {c['interactions'] / max(1, c['users'] * c['items']):.4f})",
        f"history   mean {lens.mean():.1f}, median {np.median(lens):.0f}, min {lens.min()}, max {lens.max()} items per user",
        f"split     train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,} (leave-one-out)",
        f"IDs       items: {m['item_id_scheme']}{'  (LEAKY: sequential IDs reveal the next item)' if m['leaky_ids'] else ''}"
        f", users: {m['user_id_scheme']}",
        f"content   images: {'yes' if m['has_images'] else 'no'}, reviews: {'yes' if m['has_reviews'] else 'no'},"
        f" knowledge-graph facts: {'yes' if m['has_facts'] else 'no'}",
    ]
    n_neg = (ds.negatives >= 0).sum(axis=1) if ds.negatives.size else np.zeros(1, dtype=int)
    lo, hi, asked = int(n_neg.min()) + 1, int(n_neg.max()) + 1, ds.negatives.shape[1] + 1
    lines.append(f"direct    {lo if lo == hi else f'{lo}-{hi}'} candidates per user (1 held-out + sampled ones "
                 "the user never had)")
    if lo < asked:
        lines.append(f"warning   data.n_candidates is {asked} but this catalogue of {ds.n_items:,} items leaves "
                     f"only {lo} for some users: direct-task HR@k is not comparable with {asked}-candidate numbers")
    if m["skipped_rows"]:
        by_file = ", ".join(f"{f}: {n:,}" for f, n in (m.get("skipped_by_file") or {}).items() if n)
        lines.append(f"skipped   {m['skipped_rows']:,} bad rows ({by_file})")
    rng = np.random.default_rng(seed)
    images = set(ds.items.index[ds.items["image"].notna()]) if m["has_images"] else None
    users = rng.choice(ds.n_users, size=min(ds.n_users, n_examples), replace=False)
    for fam, templates in load_templates(prompts).items():
        lines.append(f"\n[{fam}] {sum(t.seen for t in templates)} seen + {sum(not t.seen for t in templates)} unseen templates")
        for j, u in enumerate(users):
            t = templates[j % len(templates)]
            v = example_values(ds, t, int(u), "test", rng, max_history=8, n_candidates=5)
            if v is None:
                continue
            out = render(t, v, lambda i: ds.item_ids[i], images)
            lines.append(f"  {t.id}: {out.source}\n  {' ' * len(t.id)}  -> {out.target}")
    return "\n".join(lines)
