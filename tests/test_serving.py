"""The HTTP API on the transformers engine: every route's contract, a bounded fuzz of bad
requests (the server must answer 4xx and keep serving), the OpenAI-style chat route."""
import json
import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the api extra: pip install 'genrec[api]'")
httpx = pytest.importorskip("httpx", reason="the API tests need httpx: pip install 'genrec[api]'")
from fastapi.testclient import TestClient  # noqa: E402

from genrec.serving.engine import HFEngine  # noqa: E402
from genrec.serving.server import create_app  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def engine(tiny_engine):
    return tiny_engine


@pytest.fixture(scope="module")
def client(engine):
    return TestClient(create_app(engine, timeout_s=60), base_url="http://localhost")


def test_health_and_lookups(client, engine):
    ds = engine.rec.ds
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["engine"] == "hf" and h["items"] == ds.n_items and h["users"] == ds.n_users
    iid = ds.item_raw_ids[0]
    it = client.get(f"/items/{iid}").json()
    assert it["id"] == iid and it["title"] == "Toy Story" and it["year"] == 1995 and "Comedy" in it["genres"]
    u = ds.user_raw_ids[0]
    r = client.get(f"/users/{u}", params={"limit": 5}).json()
    seq = [ds.item_raw_ids[i] for i in ds.sequence(0)]
    assert r["id"] == u and r["n_interactions"] == len(seq) and [x["id"] for x in r["history"]] == seq[-5:]
    assert client.get("/users", params={"limit": 3}).json()["ids"] == ds.user_raw_ids[:3]
    for path in ("/items/nope", "/users/nope", "/items/nope/image"):
        r = client.get(path)
        assert r.status_code == 404 and "unknown" in r.json()["error"]["message"]


def test_recommend_choose_explain_ask(client, engine):
    ds = engine.rec.ds
    u = ds.user_raw_ids[2]
    seen = {ds.item_raw_ids[i] for i in ds.sequence(2)}
    r = client.post("/recommend", json={"user": u, "k": 7})
    assert r.status_code == 200
    items = r.json()["items"]
    ids = [x["id"] for x in items]
    scores = [x["score"] for x in items]
    assert len(set(ids)) == 7 and not set(ids) & seen and set(ids) <= set(ds.item_raw_ids)
    assert scores == sorted(scores, reverse=True)
    # same answer as the Python API (one semantics)
    assert ids == [x["id"] for x in engine.rec.recommend(u, 7)]
    cands = ds.item_raw_ids[10:16]
    r = client.post("/choose", json={"user": u, "candidates": cands}).json()["items"]
    assert sorted(x["id"] for x in r) == sorted(cands)
    assert math.isclose(sum(math.exp(x["score"]) for x in r), 1.0, rel_tol=1e-3)  # probabilities among the candidates
    r = client.post("/explain", json={"user": u, "item": cands[0], "max_new_tokens": 8}).json()
    assert r["item"]["id"] == cands[0] and isinstance(r["text"], str)
    r = client.post("/ask", json={"text": f"user_{u} watched {cands[0]}, {cands[1]}. What next?", "k": 3}).json()
    assert r["answer"] == "item" and len(r["items"]) == 3 and {x["id"] for x in r["items"]} <= set(ds.item_raw_ids)
    r = client.post("/ask", json={"text": "hello", "answer": "text", "max_new_tokens": 4}).json()
    assert r["answer"] == "text" and isinstance(r["text"], str)


def test_chat_completions_plain_and_streamed(client, engine):
    ds = engine.rec.ds
    u = ds.user_raw_ids[4]
    body = {"model": "genrec", "messages": [{"role": "user", "content": "what should I watch next? top 3"}], "user": u}
    r = client.post("/v1/chat/completions", json=body).json()
    content = r["choices"][0]["message"]["content"]
    shown = [x["id"] for x in r["genrec"]["items"]]
    assert r["object"] == "chat.completion" and r["genrec"]["task"] == "sequential" and len(shown) == 3
    assert all(f"[item {i}]" in content for i in shown) and not set(shown) & {ds.item_raw_ids[i] for i in ds.sequence(4)}
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == content
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["genrec"]["items"] == r["genrec"]["items"]
    # a follow-up uses the previous reply
    conv = body["messages"] + [{"role": "assistant", "content": content},
                               {"role": "user", "content": "why would I like the first one?"}]
    r2 = client.post("/v1/chat/completions", json={**body, "messages": conv}).json()
    assert r2["genrec"]["task"] == "explanation" and r2["genrec"]["items"][0]["id"] == shown[0]
    conv[-1]["content"] = "pick the best of Toy Story, Heat and Fargo"
    r3 = client.post("/v1/chat/completions", json={**body, "messages": conv}).json()
    assert r3["genrec"]["task"] == "direct" and sorted(x["title"] for x in r3["genrec"]["items"]) == \
        ["Fargo", "Heat", "Toy Story"]


BAD = [  # (method, path, body or raw bytes, expected status)
    ("post", "/recommend", b"{not json", 422),
    ("post", "/recommend", {"user": "no-such-user", "k": 5}, 404),
    ("post", "/recommend", {"user": "@U", "k": 10 ** 6}, 422),
    ("post", "/recommend", {"user": "@U", "k": "ten"}, 422),
    ("post", "/recommend", {"user": "@U", "k": -1}, 422),
    ("post", "/recommend", {"user": ["@U"]}, 422),
    ("post", "/recommend", {"user": "@U", "k": 5, "surprise": 1}, 422),
    ("post", "/recommend", {"user": "@U", "history": ["no-such-item"]}, 404),
    ("post", "/recommend", [], 422),
    ("post", "/choose", {"user": "@U", "candidates": []}, 422),
    ("post", "/choose", {"user": "@U", "candidates": ["x"] * 500}, 422),
    ("post", "/choose", {"user": "@U", "candidates": ["@I", "@I"]}, 400),
    ("post", "/explain", {"user": "@U", "item": "nope"}, 404),
    ("post", "/explain", {"user": "@U", "item": "@I", "max_new_tokens": 10 ** 9}, 422),
    ("post", "/ask", {"text": ""}, 422),
    ("post", "/ask", {"text": "tok " * 100_000}, 413),
    ("post", "/ask", {"text": "hi", "answer": "poem"}, 422),
    ("post", "/v1/chat/completions", {"messages": []}, 422),
    ("post", "/v1/chat/completions", {"messages": [{"role": "wizard", "content": "hi"}]}, 422),
    ("post", "/v1/chat/completions", {"messages": "hi"}, 422),
    ("get", "/items/" + "x" * 300, None, 404),
]


@pytest.mark.parametrize("method, path, body, status", BAD)
def test_bad_requests_get_4xx_with_a_message(client, engine, method, path, body, status):
    ds = engine.rec.ds
    if isinstance(body, dict):
        body = json.loads(json.dumps(body).replace("@U", ds.user_raw_ids[0]).replace("@I", ds.item_raw_ids[0]))
    if method == "get":
        r = client.get(path)
    elif isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert client.get("/health").status_code == 200  # still serving


def test_chat_bad_input_is_a_friendly_reply(client, engine):
    for content, needle in [("", "empty"), ("what should user zzz-unknown watch?", "zzz-unknown"),
                            ("pick the best of Heat and Qwxzblorp", "Qwxzblorp")]:
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": content}],
                                                      "user": engine.rec.ds.user_raw_ids[0]})
        assert r.status_code == 200 and needle in r.json()["choices"][0]["message"]["content"]


class Flaky(HFEngine):
    """The real engine, except that a query for k=13 fails and k=17 hangs (to test the server's guards)."""

    def run_batch(self, queries):
        if any(q.k == 13 for q in queries):
            raise RuntimeError("simulated engine failure")
        if any(q.k == 17 for q in queries):
            time.sleep(1.0)
        return super().run_batch(queries)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def live(engine, timeout_s):
    """A real uvicorn server on loopback (bursts need real concurrency)."""
    from tests.browser import LiveServer
    return LiveServer(create_app(Flaky(engine.rec), timeout_s=timeout_s, max_batch=8))


def test_engine_failures_and_timeouts_answer_5xx_and_the_server_survives(engine):
    with live(engine, timeout_s=0.5) as srv:
        _failures_and_timeouts(srv.url, engine)


def _failures_and_timeouts(url, engine):
    u = engine.rec.ds.user_raw_ids[0]
    r = httpx.post(f"{url}/recommend", json={"user": u, "k": 13}, timeout=10)
    msg = r.json()["error"]["message"]
    assert r.status_code == 500 and "engine failed" in msg and "simulated" not in msg  # details stay in the log
    r = httpx.post(f"{url}/recommend", json={"user": u, "k": 17}, timeout=10)
    assert r.status_code == 504
    time.sleep(0.8)
    assert httpx.post(f"{url}/recommend", json={"user": u, "k": 3}, timeout=10).status_code == 200


def test_concurrent_burst_of_good_and_bad_requests(engine):
    with live(engine, timeout_s=120) as srv:
        _burst(srv.url, srv.server.config.app, engine)


def _burst(url, app, engine):
    ds = engine.rec.ds
    good = [{"user": ds.user_raw_ids[j], "k": 4} for j in range(24)]
    bad = [{"user": "nobody", "k": 4}, {"user": ds.user_raw_ids[0], "k": 10 ** 6}, {"k": 4}]

    def post(body):
        return httpx.post(f"{url}/recommend", json=body, timeout=30)
    before = app.state.batcher.batches
    with ThreadPoolExecutor(16) as pool:
        rs = list(pool.map(post, good + bad * 4))
    assert all(r.status_code == 200 and len(r.json()["items"]) == 4 for r in rs[:len(good)])
    assert all(400 <= r.status_code < 500 for r in rs[len(good):])
    expect = {b["user"]: [x["id"] for x in engine.rec.recommend(b["user"], 4)] for b in good[:3]}
    for b, r in zip(good[:3], rs[:3]):
        assert [x["id"] for x in r.json()["items"]] == expect[b["user"]]
    assert app.state.batcher.batches - before <= len(good)  # batched: never more engine calls than requests
    assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"


def test_genrec_serve_command_end_to_end(ckpt, tmp_path):
    """`genrec serve` as a user runs it: a real process, answering on loopback, stopped by SIGINT."""
    import signal
    import subprocess
    import sys
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "genrec", "serve", str(ckpt), "--port", str(port), "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                assert p.poll() is None, p.stderr.read()
                time.sleep(0.1)
        assert h["engine"] == "hf" and h["checkpoint"] == str(ckpt)
        u = httpx.get(f"http://127.0.0.1:{port}/users", params={"limit": 1}, timeout=5).json()["ids"][0]
        r = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"user": u, "k": 2}, timeout=60)
        assert r.status_code == 200 and len(r.json()["items"]) == 2
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "/v1/chat/completions" in page.text
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(30)


@pytest.mark.parametrize("args, message", [
    (["serve", "{tmp}/nowhere"], "not a genrec checkpoint"),
    (["serve", "{ck}", "--port", "70000"], "--port must be 1..65535"),
    (["serve", "{ck}", "--engine", "tgi"], "invalid choice"),
    (["demo"], "run `genrec quickstart` first"),
])
def test_serve_and_demo_bad_arguments_are_one_line(ckpt, tmp_path, monkeypatch, capsys, args, message):
    from genrec.cli import main
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)).replace("{ck}", str(ckpt)) for a in args]
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_item_images_are_linked_and_served(client, engine, tmp_path, monkeypatch):
    """Only files the feature step read as images, under the dataset's images folder, are served."""
    from PIL import Image
    ds = engine.rec.ds
    png = tmp_path / "poster.png"
    Image.new("RGB", (8, 12), (200, 30, 30)).save(png)
    (tmp_path / "notes.txt").write_text("not an image")
    outside = tmp_path.parent / f"{tmp_path.name}-secret.png"
    Image.new("RGB", (2, 2)).save(outside)
    monkeypatch.setitem(ds.meta, "config", {**ds.meta.get("config", {}), "images_path": str(tmp_path)})
    monkeypatch.setattr(engine.rec, "images", {0, 2, 3})  # the items the feature step encoded
    old = ds.items["image"].copy()
    try:
        ds.items["image"] = ds.items["image"].astype(object)
        for row, path in ((0, png), (1, tmp_path / "notes.txt"), (2, "/etc/hostname"),
                          (3, tmp_path / ".." / outside.name)):
            ds.items.loc[ds.items.index[row], "image"] = str(path)
        iid = ds.item_raw_ids[0]
        info = client.get(f"/items/{iid}").json()
        assert info["image"] == f"/items/{iid}/image"
        r = client.get(info["image"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == png.read_bytes()
        hist_user = next(u for u in range(ds.n_users) if 0 in set(int(x) for x in ds.sequence(u)))
        h = client.get(f"/users/{ds.user_raw_ids[hist_user]}", params={"limit": 1000}).json()["history"]
        assert [x.get("image") for x in h if x["id"] == iid] == [f"/items/{iid}/image"]
        for row in (1, 2, 3, 4):  # not read as an image / outside the folder / traversal / no image at all
            r = client.get(f"/items/{ds.item_raw_ids[row]}/image")
            assert r.status_code == 404 and r.json()["error"]["message"].endswith("has no image"), row
        monkeypatch.setitem(ds.meta, "config", {**ds.meta["config"], "images_path": None})
        assert client.get(f"/items/{iid}/image").status_code == 404  # no images folder: nothing served
    finally:
        ds.items["image"] = old
        outside.unlink()


def test_body_limit_counts_chunked_bytes(client):
    def chunks(n):
        for _ in range(n):
            yield b"x" * 16384
    r = client.post("/v1/chat/completions", content=chunks(64), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "KiB" in r.json()["error"]["message"]
    r = client.post("/recommend", content=b"{" * 70_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/health").status_code == 200


def test_host_allow_list_and_api_key(engine):
    app = create_app(engine, timeout_s=60, allow_hosts=("my.box",))
    c = TestClient(app, base_url="http://localhost")
    assert c.get("/health").status_code == 200
    assert c.get("/health", headers={"host": "127.0.0.1:8000"}).status_code == 200
    assert c.get("/health", headers={"host": "[::1]:8000"}).status_code == 200
    assert c.get("/health", headers={"host": "my.box"}).status_code == 200
    r = c.get(f"/users/{engine.rec.ds.user_raw_ids[0]}", headers={"host": "evil.example:8000"})  # DNS rebinding
    assert r.status_code == 403 and r.json()["error"]["status"] == 403
    keyed = TestClient(create_app(engine, timeout_s=60, api_key="s3cret", bind_host="0.0.0.0"),
                       base_url="http://203.0.113.5")
    for path in ("/health", "/users", "/docs", "/openapi.json", "/nope"):
        r = keyed.get(path)
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"], path
    assert keyed.get("/health", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert keyed.get("/health", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.get("/").status_code == 200 and "genrec-key" in keyed.get("/").text  # the page asks for it


def test_listening_beyond_loopback_needs_a_key(ckpt, capsys, monkeypatch):
    from genrec.cli import main
    from genrec.serving.guard import ListenError, check_listen
    with pytest.raises(ListenError, match="--api-key"):
        check_listen("0.0.0.0", None)
    check_listen("0.0.0.0", "k")
    check_listen("127.0.0.1", None)
    monkeypatch.delenv("GENREC_API_KEY", raising=False)
    assert main(["serve", str(ckpt), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "refusing to listen on 0.0.0.0 without an API key" in err and "loading" not in err
    assert len(err.splitlines()) == 1


def test_one_error_shape_docs_offline_and_multipart_content(client, engine):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json() == {"error": {"message": "no route /no/such/route", "status": 404}}
    r = client.get("/recommend")
    assert r.status_code == 405 and r.json()["error"]["status"] == 405
    d = client.get("/docs")
    assert d.status_code == 200 and "/v1/chat/completions" in d.text and "cdn" not in d.text.lower()
    assert client.get("/favicon.ico").status_code == 200
    u = engine.rec.ds.user_raw_ids[0]
    parts = [{"type": "text", "text": "what should I watch"}, {"type": "text", "text": "next?"}]
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": parts}], "user": u})
    assert r.status_code == 200 and r.json()["genrec"]["task"] == "sequential"
    img = [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": img}], "user": u})
    assert r.status_code == 422 and "only text content" in r.json()["error"]["message"]


def test_the_stock_openai_client_plain_streamed_and_with_a_key(engine):
    """The real `openai` package against /v1/chat/completions on a live loopback server."""
    openai = pytest.importorskip("openai", reason="the openai client is in genrec's dev extra")
    from tests.browser import LiveServer
    u = engine.rec.ds.user_raw_ids[0]
    msgs = [{"role": "user", "content": f"what should user {u} watch next?"}]
    with LiveServer(create_app(engine, timeout_s=60)) as srv:
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="unused", max_retries=0)
        served = [m.id for m in client.models.list()]
        assert served == [f"genrec-{engine.rec.model.recipe.name}"]
        r = client.chat.completions.create(model=served[0], messages=msgs)
        assert r.choices[0].message.role == "assistant" and "pick" in r.choices[0].message.content
        assert r.model == served[0] and r.usage.completion_tokens > 0
        assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=msgs)
        text = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model="genrec", messages=msgs, stream=True))
        assert text == r.choices[0].message.content
        # the usual client case: no user at all, taste from the conversation
        anon = client.chat.completions.create(model="genrec", messages=[
            {"role": "system", "content": "You are a helpful movie recommender."},
            {"role": "user", "content": "I loved Toy Story and Heat. Something similar, no horror?"}])
        assert "Here are 5" in anon.choices[0].message.content and "Toy Story" in anon.choices[0].message.content
    with LiveServer(create_app(engine, timeout_s=60, api_key="k3y")) as srv:
        good = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="k3y", max_retries=0)
        assert good.chat.completions.create(model="genrec", messages=msgs).choices[0].message.content
        bad = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="genrec", messages=msgs)
