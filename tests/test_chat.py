"""Routing plain language to task families, and resolving typed titles (real MovieLens-100K titles)."""
import pytest

from genrec.serving.chat import Router, TitleIndex, normalise


@pytest.fixture(scope="module")
def router(ml100k):
    return Router(ml100k)


def test_normalise_folds_case_articles_years_and_accents():
    assert normalise("Usual Suspects, The (1995)") == "the usual suspects"
    assert normalise("  Amélie!! ") == "amelie"
    assert normalise("Se7en") == "se7en"


@pytest.mark.parametrize("typed, title", [
    ("Toy Story", "Toy Story"), ("toy story", "Toy Story"), ("usual suspects", "The Usual Suspects"),
    ("Usual Suspects, The (1995)", "The Usual Suspects"), ("Fargoo", "Fargo"), ("casino", "Casino"),
    ("'Heat'", "Heat"), ("The Godfather: Part II", "The Godfather: Part II"),
])
def test_titles_resolve_exactly_or_fuzzily(ml100k, typed, title):
    i = TitleIndex(ml100k).resolve(typed)
    assert i is not None and ml100k.title(i) == title


def test_ids_resolve_and_nonsense_does_not(ml100k):
    idx = TitleIndex(ml100k)
    some = ml100k.item_raw_ids[10]
    assert idx.resolve(some) == 10 and idx.resolve(f"item {some}") == 10
    assert idx.resolve(f"<item_{ml100k.item_ids[10]}>") == 10  # the model's own name for it
    assert idx.resolve("qwxz blorptangle") is None and idx.resolve("") is None and idx.resolve("  ") is None


def msgs(*texts):
    roles = ["user", "assistant"]
    return [{"role": roles[j % 2], "content": t} for j, t in enumerate(texts)]


def test_sequential_with_user_from_text_hint_or_context(router, ml100k):
    u = ml100k.user_raw_ids[3]
    it = router.route(msgs(f"user {u} here, what should I watch next?"))
    assert (it.kind, it.user, it.k) == ("sequential", u, 5)
    assert router.route(msgs("recommend 3 movies"), user_hint=u).k == 3
    assert router.route(msgs("top 12 please, something to watch"), user_hint=u).k == 12
    # the user named two turns ago carries over
    it = router.route(msgs(f"hi, I am user_{u}", "Hello!", "what next?"))
    assert (it.kind, it.user) == ("sequential", u)


def test_direct_resolves_every_candidate(router, ml100k):
    u = ml100k.user_raw_ids[0]
    it = router.route(msgs("pick the best of Heat, Casino and Fargo for me"), user_hint=u)
    assert it.kind == "direct"
    assert [ml100k.title(i) for i in it.items] == ["Heat", "Casino", "Fargo"]
    it = router.route(msgs("which do you prefer: Toy Story or the usual suspects?"), user_hint=u)
    assert it.kind == "direct" and [ml100k.title(i) for i in it.items] == ["Toy Story", "The Usual Suspects"]


def test_unknown_titles_and_users_are_said_plainly(router, ml100k):
    u = ml100k.user_raw_ids[0]
    it = router.route(msgs("pick the best of Heat, Zorblax Returns and Fargo"), user_hint=u)
    assert it.kind == "say" and "Zorblax Returns" in it.text and it.unresolved == ["Zorblax Returns"]
    it = router.route(msgs("what should user 99999999 watch next?"))
    assert it.kind == "say" and "99999999" in it.text and ml100k.user_raw_ids[0] in it.text
    it = router.route(msgs("what should I watch next?"))  # nobody named: an anonymous caller
    assert (it.kind, it.user, it.likes) == ("sequential", None, [])


def test_explanation_by_title_and_by_reference_to_the_last_reply(router, ml100k):
    u = ml100k.user_raw_ids[5]
    it = router.route(msgs(f"why would user {u} like Toy Story?"))
    assert (it.kind, it.user, ml100k.title(it.items[0])) == ("explanation", u, "Toy Story")
    a, b = ml100k.item_raw_ids[7], ml100k.item_raw_ids[9]
    conv = msgs("what next?", f"Here are 2 picks:\n1. X [item {a}]\n2. Y [item {b}]", "why would I like the second one?")
    it = router.route(conv, user_hint=u)
    assert it.kind == "explanation" and it.items == [ml100k.item_by_raw[b]]
    conv[-1]["content"] = "why that one?"
    assert router.route(conv, user_hint=u).items == [ml100k.item_by_raw[a]]


def test_follow_ups_use_what_was_shown(router, ml100k):
    u = ml100k.user_raw_ids[1]
    a, b = ml100k.item_raw_ids[4], ml100k.item_raw_ids[6]
    conv = msgs("what next?", f"1. X [item {a}]\n2. Y [item {b}]", "something older?")
    it = router.route(conv, user_hint=u)
    assert it.kind == "sequential" and it.era == "older"
    assert it.items == [ml100k.item_by_raw[a], ml100k.item_by_raw[b]] and set(it.exclude) == set(it.items)
    conv[-1]["content"] = "any comedy?"
    it = router.route(conv, user_hint=u)
    assert it.kind == "sequential" and it.genres == ["comedy"]


def test_refine_filters_by_era_and_genre_and_keeps_order(router, ml100k):
    from genrec.serving.chat import Intent
    years = ml100k.items["year"]
    old = [i for i in range(200) if years.iat[i] is not None and not _na(years.iat[i]) and int(years.iat[i]) < 1960][:3]
    new = [i for i in range(200) if not _na(years.iat[i]) and int(years.iat[i]) >= 1995][:3]
    ranked = [(i, -float(n)) for n, i in enumerate(new + old)]
    out = router.refine(Intent("sequential", user="x", k=5, era="older", items=new), ranked, [])
    assert [i for i, _ in out] == old
    comedy = [i for i, _ in ranked if "comedy" in str(ml100k.items["category"].iat[i]).lower()]
    out = router.refine(Intent("sequential", user="x", k=10, genres=["comedy"]), ranked, [])
    assert [i for i, _ in out] == comedy


def _na(v):
    import pandas as pd
    return pd.isna(v)


def test_bad_messages_get_friendly_text(router):
    assert router.route([]).kind == "say"
    assert router.route(msgs("   ")).kind == "say"
    it = router.route(msgs("x" * 5000), user_hint=None)
    assert it.kind == "say" and "5,000" in it.text


def test_anything_else_is_a_free_answer(router, ml100k):
    it = router.route(msgs("hello there, how are you?"), user_hint=ml100k.user_raw_ids[0])
    assert it.kind == "free" and it.text == "hello there, how are you?"


def test_a_follow_up_keeps_the_length_of_the_list_it_refines(router, ml100k):
    shown = " ".join(f"[item {ml100k.item_raw_ids[j]}]" for j in range(3))
    conv = msgs("top 3 please, what next?", shown, "something newer?")
    assert router.route(conv, user_hint=ml100k.user_raw_ids[0]).k == 3
    conv[-1]["content"] = "something newer? top 6"
    assert router.route(conv, user_hint=ml100k.user_raw_ids[0]).k == 6


def test_items_mentioned_twice_in_a_reply_count_once(router, ml100k):
    a, b = ml100k.item_raw_ids[3], ml100k.item_raw_ids[8]
    reply = f"The best of these is X [item {a}]. Full ranking:\n1. X [item {a}]\n2. Y [item {b}]"
    it = router.route(msgs("pick one", reply, "why would I like the second one?"), user_hint=ml100k.user_raw_ids[0])
    assert it.kind == "explanation" and it.items == [ml100k.item_by_raw[b]]


def test_a_reply_heading_names_its_constraints():
    from genrec.serving.chat import Intent
    from genrec.serving.reply import _filters
    assert _filters(Intent("sequential", era="older", genres=["comedy"], years=(1980, 1989), avoid=["horror"])) == \
        (" older comedy", " from 1980–1989, no horror")
    assert _filters(Intent("sequential", years=(0, 1959))) == ("", " before 1960")
    assert _filters(Intent("sequential")) == ("", "")
