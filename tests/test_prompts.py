import numpy as np
import pytest

from genrec.prompts import FAMILIES, IMAGE_TOKEN, Template, TemplateError, load_family, load_templates, render


def test_bundled_families_have_enough_seen_and_unseen_templates():
    fams = load_templates()
    assert set(fams) == set(FAMILIES)
    for fam, ts in fams.items():
        assert sum(t.seen for t in ts) >= 8, fam
        assert sum(not t.seen for t in ts) >= 1, fam


def test_every_bundled_template_renders_on_real_data(ml100k):
    from genrec.data.examples import example_values

    rng = np.random.default_rng(0)
    images = set(range(0, ml100k.n_items, 3))
    for fam, ts in load_templates().items():
        for t in ts:
            for split in ("train", "valid", "test"):
                v = example_values(ml100k, t, 7, split, rng, max_history=6, n_candidates=10)
                out = render(t, v, lambda i: ml100k.item_ids[i], images, k=2)
                assert "{" not in out.source and out.target
                assert out.source.count(IMAGE_TOKEN) == 2 * len(out.image_items)
                assert all(i in images for i in out.image_items)
                if t.answer == "item":
                    assert out.target in ml100k.item_by_id
                if t.answer == "yes_no":
                    assert out.target in ("yes", "no")


def test_render_places_image_slots_in_order_and_only_for_items_with_images():
    t = Template("t", "sequential", True, "item", "u{user}: {history_images} -> {item_image}?", "{item}")
    out = render(t, {"user": "7", "history": [3, 4, 5], "item": 9},
                 lambda i: f"#{i}", image_items={5, 3, 9}, k=2, image_token="<I>")
    assert out.source == "u7: #3 <I><I>, #4, #5 <I><I> -> #9 <I><I>?"
    assert out.image_items == (3, 5, 9)
    assert out.target == "#9"
    # no images in the dataset: no slots at all
    assert render(t, {"user": "7", "history": [3], "item": 9}, str, None).source == "u7: 3 -> 9?"


def test_yes_no_negative_is_an_unseen_item(ml100k):
    from genrec.data.examples import example_values

    t = next(t for t in load_templates()["direct"] if t.answer == "yes_no")
    rng = np.random.default_rng(1)
    for _ in range(40):
        v = example_values(ml100k, t, 3, "test", rng)
        seen = set(ml100k.sequence(3).tolist())
        assert (v["item"] in seen) == (v["answer"] == "yes")


def test_test_candidates_hold_the_target_and_99_negatives(ml100k):
    from genrec.data.examples import example_values

    t = next(t for t in load_templates()["direct"] if t.answer == "item")
    v = example_values(ml100k, t, 11, "test", np.random.default_rng(0))
    assert len(v["candidates"]) == 100 and v["item"] in v["candidates"]
    assert v["item"] == ml100k.target(11, "test")
    assert len(set(v["candidates"]) & set(ml100k.sequence(11).tolist())) == 1


def test_movielens_explanation_uses_real_facts(ml100k):
    from genrec.data.examples import metadata_explanation

    toy = int(ml100k.items.index[ml100k.items["title"] == "Toy Story"][0])
    text, feature = metadata_explanation(ml100k, toy, [])
    assert text.startswith("Toy Story (1995) is an animation, children's and comedy film")
    assert feature == "animation"
    assert "award" in text  # Toy Story won 3 awards in the KG


def test_the_explanation_lead_is_how_the_target_begins_token_for_token(ml100k, data_dir):
    """Decoding continues from the lead, so it must be the first tokens the model was trained to
    write; on review data the targets are the users' words and there is no lead."""
    from genrec.config import DataConfig
    from genrec.data.dataset import PreparedDataset
    from genrec.data.examples import explanation_for, explanation_lead
    from genrec.data.loaders import load_raw
    from genrec.modeling.backbone import tiny_tokenizer
    from genrec.modeling.items import text_ids

    tok = tiny_tokenizer("decoder")  # byte-level BPE, as SmolLM2's
    for u in range(0, 40, 3):
        pos = len(ml100k.sequence(u)) - 1
        item = int(ml100k.sequence(u)[pos])
        lead = explanation_lead(ml100k, item)
        target = explanation_for(ml100k, u, pos)[0]
        assert lead and target.startswith(lead + " is ")
        assert lead == f"{ml100k.title(item)} ({int(ml100k.items.iloc[item]['year'])})"
        assert text_ids(tok, target, True)[:len(text_ids(tok, lead, True))] == text_ids(tok, lead, True)
    cfg = DataConfig(source="amazon", path=str(data_dir / "amazon/reviews.json"),
                     items_path=str(data_dir / "amazon/meta.json"), k_core=1, n_candidates=3)
    assert explanation_lead(PreparedDataset.build(load_raw(cfg), cfg), 0) == ""


def test_explanation_bans_never_forbid_what_the_reference_says(ml100k, data_dir):
    """Bans hold words a true explanation cannot need: no reference target contains one; an item
    without awards may not say "winner", none may name a prize, unless its prompt's facts do."""
    import re

    from genrec.config import DataConfig
    from genrec.data.dataset import PreparedDataset
    from genrec.data.examples import explanation_bans, explanation_for, grounding
    from genrec.data.loaders import load_raw

    ds, checked = ml100k, 0
    for u in range(0, ds.n_users, 4):
        seq = ds.sequence(u)
        pos = len(seq) - 1
        item, target = int(seq[pos]), explanation_for(ds, u, pos)[0].lower()
        bans = explanation_bans(ds, item, seq[:pos])
        assert "Oscar" in bans or "oscar" in grounding(ds, item, seq[:pos]).lower()
        for w in bans:
            assert not re.search(rf"\b{re.escape(w.lower())}\b", target), (w, target)
        f = ds.facts[item] or {}
        if not f.get("awards_won") and not f.get("award_nominations"):
            assert "winner" in bans and "award" in bans
            checked += 1
        elif f.get("awards_won"):
            assert "winner" not in bans and "nominated" in bans
    assert checked > 20
    oscar = next(k for k in range(ds.n_items) if ds.title(k) == "Oscar & Lucinda")
    assert "Oscar" not in explanation_bans(ds, oscar, [])  # its own title is in its facts
    cfg = DataConfig(source="amazon", path=str(data_dir / "amazon/reviews.json"),
                     items_path=str(data_dir / "amazon/meta.json"), k_core=1, n_candidates=3)
    assert explanation_bans(PreparedDataset.build(load_raw(cfg), cfg), 0, []) == []


@pytest.mark.parametrize("body, message", [
    ("family: direct\ntemplates:\n  - {id: a, answer: item, input: 'x {bogus}', target: '{item}'}\n",
     r"unknown slot '\{bogus\}'"),
    ("family: direct\ntemplates:\n  - {id: a, answer: item, input: 'x {item}'}\n", "missing 'target'"),
    ("family: direct\ntemplates:\n  - {id: a, answer: maybe, input: 'x', target: 'y'}\n", "answer 'maybe'"),
    ("family: direct\ntemplates:\n  - {id: a, answer: text, input: 'x', target: '{item_image}'}\n",
     "image slot in its target"),
    ("family: direct\ntemplates:\n  - {id: a, answer: text, input: 'x', target: 'y'}\n"
     "  - {id: a, answer: text, input: 'x', target: 'y'}\n", "duplicate template id"),
    ("family: nope\ntemplates: []\n", "family 'nope'"),
    ("family: direct\ntemplates: [\n", "not valid YAML"),
])
def test_bad_template_files(tmp_path, body, message):
    p = tmp_path / "direct.yaml"
    p.write_text(body)
    with pytest.raises(TemplateError, match=message) as e:
        load_family(p)
    assert str(p) in str(e.value)


def test_review_data_grounds_explanations_in_the_users_own_earlier_words(ml100k, tmp_path):
    """Amazon format: the facts carry the feature words the user's earlier reviews use most (P5's
    explanation features), most frequent first, never the word of the review being explained;
    MovieLens has no reviews, so its prompts are as before."""
    import json

    from genrec.config import DataConfig
    from genrec.data.dataset import PreparedDataset
    from genrec.data.examples import example_values, review_words
    from genrec.data.loaders import load_raw
    from genrec.prompts import load_templates

    meta = [{"asin": f"B{i}", "title": f"Thing {i}", "categories": [["Gear"]]} for i in range(6)]
    reviews = [{"reviewerID": u, "asin": f"B{i}", "unixReviewTime": 1300000000 + 10 * i + k, "overall": 4.0,
                "reviewText": f"review {i} by {u}", "summary": "ok"}
               for k, (u, n) in enumerate((("A1", 6), ("A2", 3))) for i in range(n)]
    (tmp_path / "meta.json").write_text("\n".join(json.dumps(m) for m in meta))
    (tmp_path / "reviews.json").write_text("\n".join(json.dumps(r) for r in reviews))
    cfg = DataConfig(source="amazon", path=str(tmp_path / "reviews.json"), items_path=str(tmp_path / "meta.json"),
                     k_core=1, n_candidates=3)
    ds = PreparedDataset.build(load_raw(cfg), cfg)
    u = ds.user_by_raw["A1"]
    b = ds._bounds[u]
    # the user's six reviews in order: the last (the test target) says "zipper"
    ds.interactions.loc[ds.interactions.index[b:b + 6], "feature"] = ["soft", "Strap", "strap", None, "soft", "zipper"]
    assert review_words(ds, u, 5) == ["soft", "strap"]  # counted case-blind; ties: first seen first
    assert review_words(ds, u, 5, k=1) == ["soft"] and review_words(ds, u, 0) == []
    t = next(t for t in load_templates()["explanation"] if "facts" in t.slots)
    facts = example_values(ds, t, u, "test", np.random.default_rng(0), 10)["facts"]
    assert facts.endswith("the user's reviews mention soft, strap") and "zipper" not in facts
    assert review_words(ds, -1, 5) == []  # a caller the dataset does not know
    assert review_words(ml100k, 0, len(ml100k.sequence(0))) == []
