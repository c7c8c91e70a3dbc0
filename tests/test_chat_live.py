"""Scripted conversations through the OpenAI-style chat route on the tiny recipe (a trained
checkpoint, the transformers engine): taste from the conversation, anonymous callers, follow-ups,
and "why?" / "why not?" answers judged by the claims checker."""
import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the api extra: pip install 'genrec[api]'")
pytest.importorskip("httpx", reason="the API tests need httpx: pip install 'genrec[api]'")
from fastapi.testclient import TestClient  # noqa: E402

from genrec.claims import Checker  # noqa: E402
from genrec.serving.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def live(tiny_engine):
    return TestClient(create_app(tiny_engine, timeout_s=60), base_url="http://localhost"), tiny_engine.rec


def title_of(rec, title):
    return next(i for i in range(rec.ds.n_items) if rec.ds.title(i) == title)


class Chat:
    def __init__(self, client, user=None):
        self.client, self.user, self.messages = client, user, []

    def say(self, text):
        self.messages.append({"role": "user", "content": text})
        r = self.client.post("/v1/chat/completions", json={"messages": self.messages, "user": self.user})
        assert r.status_code == 200, r.text
        body = r.json()
        self.messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
        return body["choices"][0]["message"]["content"], body["genrec"]


def ids(meta):
    return [x["id"] for x in meta["items"]]


def test_a_mentioned_title_joins_a_known_users_history(live):
    client, rec = live
    t = title_of(rec, "Toy Story")
    u = next(rec.ds.user_raw_ids[j] for j in range(rec.ds.n_users) if t not in set(rec.ds.sequence(j)))
    ts = rec.ds.item_raw_ids[t]
    _, plain = Chat(client, u).say("what should I watch next?")
    text, liked = Chat(client, u).say("I loved Toy Story, what next?")
    assert [x["id"] for x in liked["liked"]] == [ts] and "Toy Story" in text
    assert ts not in ids(liked)  # a liked title is history, not a pick
    # the model ranked with the longer history: the same user, a different answer
    assert [(x["id"], x["score"]) for x in liked["items"]] != [(x["id"], x["score"]) for x in plain["items"]]
    q = rec.query_recommend(u, 5, history=[rec.ds.item_raw_ids[i] for i in rec.history(u)] + [ts])
    assert ids(liked) == [x["id"] for x in rec.answer(q, rec.run(q))]


def test_anonymous_callers_get_answers(live):
    client, rec = live
    chat = Chat(client)
    text, meta = chat.say("what should I watch next?")
    counts = rec.ds.interactions["item"].value_counts()
    top = [rec.ds.item_raw_ids[i] for i in counts.index[:5]]
    assert meta["user"] is None and ids(meta) == top and "most popular" in text and "Who is this for" not in text
    text, meta = chat.say("something like Toy Story")  # no user at all: the title is the history
    ts = rec.ds.item_raw_ids[title_of(rec, "Toy Story")]
    q = rec.query_recommend(None, 5, history=[ts])
    assert ids(meta) == [x["id"] for x in rec.answer(q, rec.run(q))] and ts not in ids(meta)
    text, meta = chat.say("pick the best of Heat, Casino and Fargo")
    assert meta["task"] == "direct" and sorted(x["title"] for x in meta["items"]) == ["Casino", "Fargo", "Heat"]
    text, meta = chat.say("why would I like Fargo?")
    assert meta["task"] == "explanation" and "Fargo" in text


def test_dislikes_genres_counts_and_eras_hold_across_turns(live):
    client, rec = live
    u = rec.ds.user_raw_ids[9]
    chat = Chat(client, u)
    cats = rec.ds.items["category"]
    _, m = chat.say("recommend 4, no comedies please")
    assert len(m["items"]) == 4 and not any("Comedy" in cats.iat[rec.ds.item_by_raw[i]] for i in ids(m))
    first = ids(m)
    _, m = chat.say("more")  # no repeats, and the ruled-out genre stays out
    assert len(m["items"]) == 4 and not set(ids(m)) & set(first)
    assert not any("Comedy" in cats.iat[rec.ds.item_by_raw[i]] for i in ids(m))
    years = [x["year"] for x in m["items"]]
    _, m = chat.say("something older?")
    assert m["items"] and all(x["year"] < min(years) for x in m["items"])
    _, m = chat.say("ten dramas, please")
    assert len(m["items"]) == 10 and all("Drama" in cats.iat[rec.ds.item_by_raw[i]] for i in ids(m))
    titanic = rec.ds.item_raw_ids[title_of(rec, "Titanic")]
    _, m = chat.say("I didn't like Titanic. 20 dramas from the 90s")
    assert titanic not in ids(m) and [x["id"] for x in m["disliked"]] == [titanic]
    assert all(1990 <= x["year"] <= 1999 for x in m["items"])


def test_why_answers_state_only_what_is_true(live):
    """End to end: the chat's "why?" through the tiny model, each claim judged by the checker."""
    client, rec = live
    check = Checker(rec.ds)
    for j in (1, 2, 3):
        u = rec.ds.user_raw_ids[j]
        chat = Chat(client, u)
        _, m = chat.say("what should I watch next? top 3")
        for ordinal, item in zip(("first", "second", "third"), ids(m)):
            text, meta = chat.say(f"why would I like the {ordinal} one?")
            assert "]: " in text, text
            head = text.index("]: ") + 3
            verdict = check.check(text[head:], rec.ds.item_by_raw[item], rec.history(u))
            assert verdict.faithful, (text, verdict.claims)
            assert meta["grounded"] in ("model", "facts")


def test_why_not_says_where_the_title_stands(live):
    client, rec = live
    u = rec.ds.user_raw_ids[2]
    chat = Chat(client, u)
    seen = rec.ds.title(rec.history(u)[0])
    text, meta = chat.say(f"why not {seen}?")
    assert meta["task"] == "why_not" and "already in" in text
    text, meta = chat.say("why didn't you recommend Heat?")
    heat = title_of(rec, "Heat")
    q = rec.query_recommend(u, 100)
    order = [i for i, _ in rec.run(q)]
    want = f"#{order.index(heat) + 1} in user {u}’s ranking" if heat in order else f"not in user {u}’s top 100"
    assert want in text and "Heat (1995) is a" in text
    _, meta = chat.say("I didn't like Casino")
    text, _ = chat.say("why not Casino?")
    assert "didn't like" in text
