"""A scripted set of chat requests, each with its expected route and constraint, against the real
MovieLens-100K titles and genres. The bar is 90 % right; the misses are printed (pytest -s) and
listed in the assertion message."""
import pytest

from genrec.serving.chat import Router

USER = 0  # the known user's index in the dataset (its ID is looked up)


@pytest.fixture(scope="module")
def router(ml100k):
    return Router(ml100k)


def shown(ds, *titles):
    """An assistant reply listing these titles as the server writes them."""
    ids = [ds.item_raw_ids[find(ds, t)] for t in titles]
    return "Here are picks:\n" + "\n".join(f"{n}. {t} [item {i}]" for n, (t, i) in enumerate(zip(titles, ids), 1))


def find(ds, title):
    hits = [i for i in range(ds.n_items) if ds.title(i) == title]
    assert hits, title
    return hits[0]


LIST = ("Heat", "Fargo", "Casino")  # 1995, 1996, 1995
# (turns: user, assistant, user, ... — an assistant turn given as a tuple of titles lists them;
#  anonymous?, expected fields; titles stand for their items)
CASES = [
    (["what should I watch next?"], False, {"kind": "sequential", "k": 5}),
    (["recommend 3"], False, {"kind": "sequential", "k": 3}),
    (["recommend me ten movies"], False, {"kind": "sequential", "k": 10}),
    (["top 7 please"], False, {"kind": "sequential", "k": 7}),
    (["what next?", LIST, "give me two more"], False, {"kind": "sequential", "k": 2, "exclude": LIST}),
    (["something like Toy Story"], True, {"kind": "sequential", "user": None, "likes": ["Toy Story"]}),
    (["I loved Toy Story, what next?"], False, {"kind": "sequential", "likes": ["Toy Story"]}),
    (["I liked Heat and Casino. Any ideas?"], False, {"kind": "sequential", "likes": ["Heat", "Casino"]}),
    (["I've seen Fargo"], True, {"kind": "sequential", "likes": ["Fargo"]}),
    (["movies similar to Heat"], True, {"kind": "sequential", "likes": ["Heat"]}),
    (["I'm a fan of Star Wars"], True, {"kind": "sequential", "likes": ["Star Wars"]}),
    (["any comedies?"], False, {"kind": "sequential", "genres": ["comedy"]}),
    (["recommend a comedy"], False, {"kind": "sequential", "genres": ["comedy"]}),
    (["some sci-fi please"], False, {"kind": "sequential", "genres": ["sci-fi"]}),
    (["science fiction from the 80s"], False, {"kind": "sequential", "genres": ["sci-fi"], "years": (1980, 1989)}),
    (["a rom-com for tonight"], False, {"kind": "sequential", "genres": ["romance", "comedy"]}),
    (["romantic comedies?"], False, {"kind": "sequential", "genres": ["romance", "comedy"]}),
    (["any good thrillers?"], False, {"kind": "sequential", "genres": ["thriller"]}),
    (["cartoons for my kids"], True, {"kind": "sequential", "genres": ["animation", "children's"]}),
    (["what next?", LIST, "not horror"], False, {"kind": "sequential", "avoid": ["horror"], "k": 3}),
    (["no comedies please"], False, {"kind": "sequential", "avoid": ["comedy"]}),
    (["I hate musicals"], False, {"kind": "sequential", "avoid": ["musical"]}),
    (["I didn't like Titanic"], False, {"kind": "sequential", "dislikes": ["Titanic"], "exclude": ["Titanic"]}),
    (["what next?", LIST, "not Heat"], False, {"kind": "sequential", "dislikes": ["Heat"], "exclude": LIST}),
    (["what next?", LIST, "something older?"], False, {"kind": "sequential", "era": "older", "items": LIST}),
    (["what next?", LIST, "anything newer?"], False, {"kind": "sequential", "era": "newer", "items": LIST}),
    (["what next?", LIST, "more"], False, {"kind": "sequential", "exclude": LIST, "k": 3}),
    (["any comedies?", LIST, "more please"], False, {"kind": "sequential", "genres": ["comedy"], "exclude": LIST}),
    (["films from the 1970s"], False, {"kind": "sequential", "years": (1970, 1979)}),
    (["something before 1960"], False, {"kind": "sequential", "years": (0, 1959)}),
    (["pick the best of Heat, Casino and Fargo for me"], False, {"kind": "direct", "items": ["Heat", "Casino", "Fargo"]}),
    (["which: Toy Story or Heat?"], False, {"kind": "direct", "items": ["Toy Story", "Heat"]}),
    (["which do you prefer, Sense and Sensibility or Heat?"], False,
     {"kind": "direct", "items": ["Sense and Sensibility", "Heat"]}),
    (["between 12 Monkeys and Casino, which one?"], False, {"kind": "direct", "items": ["Twelve Monkeys", "Casino"]}),
    (["why would I like Toy Story?"], False, {"kind": "explanation", "items": ["Toy Story"]}),
    (["what next?", LIST, "why that one?"], False, {"kind": "explanation", "items": ["Heat"]}),
    (["what next?", LIST, "why the second one?"], False, {"kind": "explanation", "items": ["Fargo"]}),
    (["why not Heat?"], False, {"kind": "why_not", "items": ["Heat"]}),
    (["why didn't you recommend Casino?"], False, {"kind": "why_not", "items": ["Casino"]}),
    (["what next?", LIST, "why the first one?", ("Heat",), "why the third one?"], False,
     {"kind": "explanation", "items": ["Casino"]}),
    (["what next?", LIST, "explain the first one"], False, {"kind": "explanation", "items": ["Heat"]}),
    (["hello"], False, {"kind": "free"}),
    (["tell me a joke"], False, {"kind": "free"}),
    (["for user @U2, what next?"], True, {"kind": "sequential", "user": "@U2"}),
    (["what should user @U2 watch next?"], True, {"kind": "sequential", "user": "@U2"}),
    (["what should I watch next?"], True, {"kind": "sequential", "user": None, "likes": []}),
    (["I loved Toy Story but not horror"], True, {"kind": "sequential", "likes": ["Toy Story"], "avoid": ["horror"]}),
    (["something like Star Wars, but newer"], True,
     {"kind": "sequential", "likes": ["Star Wars"], "era": "newer", "items": ["Star Wars"]}),
    (["three westerns"], False, {"kind": "sequential", "k": 3, "genres": ["western"]}),
    (["I really enjoyed Fargo and The Usual Suspects, recommend 4 more"], False,
     {"kind": "sequential", "likes": ["Fargo", "The Usual Suspects"], "k": 4}),
    (["anything but dramas"], False, {"kind": "sequential", "avoid": ["drama"]}),
    (["I liked Heat", ("Fargo",), "what next?"], True, {"kind": "sequential", "likes": ["Heat"]}),
    (["I didn't like Heat", ("Fargo",), "actually I loved Heat"], True, {"likes": ["Heat"], "dislikes": []}),
    (["no horror", LIST, "more"], False, {"kind": "sequential", "avoid": ["horror"], "exclude": LIST}),
    (["documentaries?"], False, {"kind": "sequential", "genres": ["documentary"]}),
    (["some film noir"], False, {"kind": "sequential", "genres": ["film-noir"]}),
    (["a kids movie"], False, {"kind": "sequential", "genres": ["children's"]}),
    (["show me 5 action movies from the 90s"], False,
     {"kind": "sequential", "k": 5, "genres": ["action"], "years": (1990, 1999)}),
    (["recommend something like Fargoo"], True, {"kind": "sequential", "likes": ["Fargo"]}),
    (["I like Zorblax Returns, what next?"], False, {"kind": "sequential", "unresolved": ["Zorblax Returns"]}),
    (["pick the best of Heat, Zorblax Returns and Fargo"], False, {"kind": "say", "unresolved": ["Zorblax Returns"]}),
    (["I didn't like Casino. Something newer than Heat?"], False, {"kind": "sequential", "dislikes": ["Casino"]}),
    (["what next?", LIST, "a couple more comedies"], False, {"kind": "sequential", "k": 2, "genres": ["comedy"]}),
]


def conversation(ds, turns, anonymous):
    u2 = ds.user_raw_ids[5]
    out = []
    for j, t in enumerate(turns):
        if isinstance(t, tuple):
            out.append({"role": "assistant", "content": shown(ds, *t)})
        else:
            out.append({"role": "user" if j % 2 == 0 else "assistant", "content": t.replace("@U2", u2)})
    return out, (None if anonymous else ds.user_raw_ids[USER])


def expected_value(ds, key, value):
    if key in ("likes", "dislikes", "items", "exclude"):
        return sorted(find(ds, t) for t in value) if key == "exclude" else [find(ds, t) for t in value]
    if key == "user" and value == "@U2":
        return ds.user_raw_ids[5]
    return value


def judge(router, ds, turns, anonymous, want) -> list[str]:
    messages, hint = conversation(ds, turns, anonymous)
    it = router.route(messages, hint)
    wrong = []
    for key, value in want.items():
        got = getattr(it, key)
        exp = expected_value(ds, key, value)
        if key == "exclude":
            got = sorted(got)
            if not set(exp) <= set(got):
                wrong.append(f"{key}: {got} lacks {exp}")
            continue
        if key == "genres" or key == "avoid":
            got, exp = sorted(got), sorted(exp)
        if got != exp:
            wrong.append(f"{key}: got {got!r}, want {exp!r}")
    return wrong


def test_at_least_ninety_percent_of_the_scripted_requests_are_understood(router, ml100k):
    assert len(CASES) >= 50
    misses = []
    for turns, anonymous, want in CASES:
        wrong = judge(router, ml100k, turns, anonymous, want)
        if wrong:
            misses.append(f"{turns[-1]!r}: " + "; ".join(wrong))
    print(f"\n{len(CASES) - len(misses)}/{len(CASES)} right; misses:\n" + "\n".join(misses))
    assert len(misses) <= 0.1 * len(CASES), "\n".join(misses)


def test_the_judge_catches_a_wrong_route(router, ml100k):
    assert judge(router, ml100k, ["why not Heat?"], False, {"kind": "explanation"}) == \
        ["kind: got 'why_not', want 'explanation'"]
    assert judge(router, ml100k, ["recommend 3"], False, {"k": 4}) == ["k: got 3, want 4"]


def test_a_hostile_message_costs_a_bounded_number_of_title_lookups(router, ml100k, monkeypatch):
    """A 2,000-character list of junk (and junk after every like/dislike cue) is cut to a few pieces
    before any title lookup, so one message cannot ask for unbounded work."""
    calls = []
    real = router.titles.resolve
    monkeypatch.setattr(router.titles, "resolve", lambda text, fuzzy=True: calls.append(text) or real(text, fuzzy))
    junk = ", ".join(["qzx"] * 600)[:1990]
    router.route([{"role": "user", "content": "pick the best of " + junk}], ml100k.user_raw_ids[0])
    router.route([{"role": "user", "content": ("I loved " + "qzx, " * 30) * 8}], ml100k.user_raw_ids[0])
    assert 0 < len(calls) < 2000
