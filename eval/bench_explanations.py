"""Explanations measured by what they claim: faithful / personal (genrec.claims) beside BLEU-4 /
ROUGE-L, for a checkpoint's seen and unseen explanation templates and the "template, no model" row
(the item's own metadata sentence), the same checkpoint decoding without the lead (the item's
"Title (year)" that every answer starts from: `genrec.data.examples.explanation_lead`), decoding
without its banned words (prizes and award words the item's facts do not support:
`genrec.data.examples.explanation_bans`), and given its prompts without their facts (ungrounded),
on the same users.

    .venv/bin/python eval/bench_explanations.py --checkpoint genrec-quickstart/run/best --split valid --users 200
    .venv/bin/python eval/bench_explanations.py --checkpoint genrec-quickstart/run/best --users 200

Writes eval/results/explanations_<dataset>.{json,md} (test) or eval/runs/explanations_<dataset>_valid.{json,md}
(validation: where decoding choices are made), with one real example per row, and every generated
sentence in eval/runs/explanations_<dataset>_<split>_texts.json.
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
    ap.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. genrec-quickstart/run/best)")
    ap.add_argument("--users", type=int, default=200, help="users per row (the same users in every row)")
    ap.add_argument("--split", choices=("valid", "test"), default="test",
                    help="valid: where decoding choices are made (eval/runs/); test: the reported table (eval/results/)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: genrec's thread policy)")
    a = ap.parse_args()
    import genrec.evaluate
    from genrec.evaluate import evaluate
    from genrec.files import atomic_write_text
    from genrec.prompts import PROMPTS_DIR
    from genrec.recommender import Recommender
    from genrec.runtime import thread_policy

    thread_policy(a.threads)
    rec = Recommender.from_pretrained(a.checkpoint)
    t0 = time.perf_counter()
    def run(prompts_dir=None) -> dict:
        return evaluate(rec.model, rec.ds, rec.features, a.split, a.users, ("explanation",), "first",
                        rec.model.recipe.tasks.max_history, progress=True,
                        prompts_dir=prompts_dir)["families"]["explanation"]
    def without(name: str, stand_in) -> dict:  # the same prompts, one decoding aid taken away
        keep = getattr(genrec.evaluate, name)
        setattr(genrec.evaluate, name, stand_in)
        try:
            return run()
        finally:
            setattr(genrec.evaluate, name, keep)
    fam = run()
    no_lead = without("explanation_lead", lambda ds, item: "")
    no_bans = without("explanation_bans", lambda ds, item, history: [])
    # the same checkpoint with the prompts' facts taken out: what the grounding itself contributes
    with tempfile.TemporaryDirectory() as tmp:
        text = (PROMPTS_DIR / "explanation.yaml").read_text(encoding="utf-8")
        (Path(tmp) / "explanation.yaml").write_text(re.sub(r" Facts: \{facts\}\.", "", text), encoding="utf-8")
        bare = run(tmp)
    rows, texts = [], {}
    for kind, results in (("grounded", fam), ("no lead", no_lead), ("no bans", no_bans), ("ungrounded", bare)):
        for tid, r in results.items():  # the templates, then the template row evaluate adds
            if tid.startswith("mean_") or (kind != "grounded" and tid == "template-no-model"):
                continue
            seen = "seen" if r["seen"] else "unseen"
            name = ("template, no model (the item's metadata sentence)" if tid == "template-no-model" else
                    f"genrec, grounded prompt {tid} ({seen})" if kind == "grounded" else
                    f"genrec, same checkpoint, prompt {tid} decoded without the lead ({seen})" if kind == "no lead" else
                    f"genrec, same checkpoint, prompt {tid} decoded without the banned words ({seen})" if kind == "no bans" else
                    f"genrec, same checkpoint, prompt {tid} without its facts ({seen})")
            rows.append({"model": name, **{k: r.get(k) for k in ("faithful", "personal", "bleu4", "rougeL", "users")},
                         "example": r["sample"]})
            if "per_user" in r:
                texts[name] = r["per_user"]
    out = {"dataset": rec.ds.meta["name"], "checkpoint": a.checkpoint, "split": a.split, "users": a.users,
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
           "note": "faithful: share of explanations whose every stated claim is true; personal: share that truly "
                   "links the item to a film in the user's history, among users where such a link exists"}
    md = [f"# Explanations on {out['dataset']} ({a.users} {a.split} users, `{a.checkpoint}`)", "",
          "| model | faithful | personal | BLEU-4 | ROUGE-L |", "|---|---|---|---|---|"]
    md += [f"| {r['model']} | {r['faithful']:.3f} | {r['personal']:.3f} | {r['bleu4']:.1f} | {r['rougeL']:.1f} |"
           for r in rows]
    md += ["", out["note"] + ".", ""] + [f"- {r['model']}: “{r['example']['prediction']}”" for r in rows]
    stem = (ROOT / "eval" / "results" / f"explanations_{out['dataset']}" if a.split == "test" else
            ROOT / "eval" / "runs" / f"explanations_{out['dataset']}_valid")
    atomic_write_text(stem.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    # every generated sentence, so a reader (or a better checker) can judge them again
    atomic_write_text(ROOT / "eval" / "runs" / f"explanations_{out['dataset']}_{a.split}_texts.json",
                      json.dumps(texts, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(stem.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
