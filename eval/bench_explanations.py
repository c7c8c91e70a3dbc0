"""Explanations measured by what they claim: faithful / personal (genrec.claims) beside BLEU-4 /
ROUGE-L, for a checkpoint's seen and unseen explanation templates and the "template, no model" row
(the item's own metadata sentence), and the same checkpoint given its prompts without their facts
(ungrounded), on the same test users.

    .venv/bin/python eval/bench_explanations.py --checkpoint genrec-quickstart/run/best --users 200

Writes eval/results/explanations_<dataset>.{json,md}, with one real example per template.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    from genrec.evaluate import evaluate
    from genrec.files import atomic_write_text
    from genrec.prompts import PROMPTS_DIR
    from genrec.recommender import Recommender
    from genrec.runtime import thread_policy

    thread_policy(a.threads)
    rec = Recommender.from_pretrained(a.checkpoint)
    t0 = time.perf_counter()
    res = evaluate(rec.model, rec.ds, rec.features, "test", a.users, ("explanation",), "first",
                   rec.model.recipe.tasks.max_history, progress=True)
    fam = res["families"]["explanation"]
    # the same checkpoint with the prompts' facts taken out: what the grounding itself contributes
    with tempfile.TemporaryDirectory() as tmp:
        text = (PROMPTS_DIR / "explanation.yaml").read_text(encoding="utf-8")
        (Path(tmp) / "explanation.yaml").write_text(re.sub(r" Facts: \{facts\}\.", "", text), encoding="utf-8")
        bare = evaluate(rec.model, rec.ds, rec.features, "test", a.users, ("explanation",), "first",
                        rec.model.recipe.tasks.max_history, progress=True, prompts_dir=tmp)["families"]["explanation"]
    rows = []
    for kind, results in (("grounded", fam), ("ungrounded", bare)):
        for tid, r in results.items():  # the templates, then the template row evaluate adds
            if tid.startswith("mean_") or (kind == "ungrounded" and tid == "template-no-model"):
                continue
            name = ("template, no model (the item's metadata sentence)" if tid == "template-no-model" else
                    f"genrec, grounded prompt {tid} ({'seen' if r['seen'] else 'unseen'})" if kind == "grounded" else
                    f"genrec, same checkpoint, prompt {tid} without its facts ({'seen' if r['seen'] else 'unseen'})")
            rows.append({"model": name, **{k: r.get(k) for k in ("faithful", "personal", "bleu4", "rougeL", "users")},
                         "example": r["sample"]})
    out = {"dataset": rec.ds.meta["name"], "checkpoint": a.checkpoint, "users": a.users,
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
           "note": "faithful: share of explanations whose every stated claim is true; personal: share that truly "
                   "links the item to a film in the user's history, among users where such a link exists"}
    md = [f"# Explanations on {out['dataset']} ({a.users} test users, `{a.checkpoint}`)", "",
          "| model | faithful | personal | BLEU-4 | ROUGE-L |", "|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['faithful']:.3f} | {r['personal']:.3f} | {r['bleu4']:.1f} | {r['rougeL']:.1f} |"
           for r in rows]
    md += ["", out["note"] + ".", ""] + [f"- {r['model']}: “{r['example']['prediction']}”" for r in rows]
    stem = ROOT / "eval" / "results" / f"explanations_{out['dataset']}"
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
