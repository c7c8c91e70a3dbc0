"""The vLLM engine against the transformers engine on the same checkpoint (tiny LLaMA, head_dim 32).

vLLM's CPU build pins its own torch, so these tests run in the second environment that
`bash .ci/setup-vllm` makes (.venv-vllm; the README's test command runs them there).
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from genrec.serving.engine import EngineError, HFEngine, vllm_available

REASON = vllm_available()
pytestmark = [pytest.mark.vllm, pytest.mark.skipif(REASON is not None, reason=str(REASON))]


@pytest.fixture(scope="module")
def engines(ml100k_dir, tmp_path_factory):
    from genrec.recommender import Recommender
    from genrec.serving.engine import VLLMEngine
    from genrec.train import train
    from tests.helpers import tiny_recipe

    tmp = tmp_path_factory.mktemp("vllm")
    train(tiny_recipe(steps=20, mixture={"sequential": 1, "direct": 1, "explanation": 1}), ml100k_dir,
          tmp / "run", progress=False)
    # fp32 on both sides (the hf engine's CPU default autocasts to bf16 where the CPU has it)
    hf = HFEngine(Recommender.from_pretrained(tmp / "run/last", device="cpu", precision="no"))
    vl = VLLMEngine(Recommender.from_pretrained(tmp / "run/last", device="cpu"), checkpoint=tmp / "run/last",
                    cache_dir=tmp / "cache")
    yield hf, vl
    vl.close()


def same_ranking(a, b, tol=1e-3):
    """Identical items in identical order, except that items whose scores differ by less than
    `tol` (float noise between two kernels) may swap; scores agree within `tol`."""
    assert len(a) == len(b)
    for (ia, sa), (ib, sb) in zip(a, b):
        assert abs(sa - sb) < tol, (a, b)
        if ia != ib:
            sa_of_b = dict(a).get(ib)
            assert sa_of_b is not None and abs(sa_of_b - sa) < tol, (a, b)


def test_engines_agree_on_topk_candidates_and_free_asks(engines):
    hf, vl = engines
    rec = hf.rec
    ds = rec.ds
    qs = [rec.query_recommend(ds.user_raw_ids[j], 10) for j in range(0, 60, 3)]
    qs += [rec.query_recommend(ds.user_raw_ids[1], 5, exclude_history=False)]
    qs += [rec.query_choose(ds.user_raw_ids[j], ds.item_raw_ids[j:j + 7]) for j in range(5)]
    qs += [rec.query_ask(f"user_{ds.user_raw_ids[2]} watched {ds.item_raw_ids[0]}, {ds.item_raw_ids[5]}. What next?", 8)]
    a, b = hf.run_batch(qs), vl.run_batch(qs)
    exact = 0
    for q, x, y in zip(qs, a, b):
        same_ranking(x, y)
        exact += [i for i, _ in x] == [i for i, _ in y]
    assert exact >= len(qs) - 2  # near-ties are rare


def test_constrained_output_is_always_a_valid_unseen_item(engines):
    _, vl = engines
    rec = vl.rec
    ds = rec.ds
    for j in range(0, ds.n_users, 47):
        u = ds.user_raw_ids[j]
        q = rec.query_recommend(u, 20)
        items = [i for i, _ in vl.run_batch([q])[0]]
        assert len(items) == 20 == len(set(items))
        assert all(0 <= i < ds.n_items for i in items) and not set(items) & set(int(x) for x in ds.sequence(j))
    # excluding everything but 3 items leaves exactly those 3
    keep = {5, 50, 500}
    hist = [ds.item_raw_ids[i] for i in range(ds.n_items) if i not in keep]
    q = rec.query_recommend(ds.user_raw_ids[0], 3, history=hist)
    assert {i for i, _ in vl.run_batch([q])[0]} == keep


def test_greedy_text_matches_transformers_and_never_emits_items(engines):
    hf, vl = engines
    rec = hf.rec
    ds = rec.ds
    # long enough that an untrained tiny model would loop: both engines block repeated 3-grams alike
    qs = [rec.query_explain(ds.user_raw_ids[j], ds.item_raw_ids[j], max_new_tokens=32) for j in range(4)]
    a, b = hf.run_batch(qs), vl.run_batch(qs)
    assert a == b
    loose = [replace(q, no_repeat_ngram=0) for q in qs]
    c = hf.run_batch(loose)
    assert c == vl.run_batch(loose)
    assert c != a  # the block changed these answers, so the parity above covers it
    assert all("<item_" not in t and "<img>" not in t for t in b)
    assert all(q.lead and t.startswith(q.lead) for q, t in zip(qs, b))  # both decode on from the item's title
    assert all(q.bans for q in qs)  # prize words at least: both engines applied them above
    # ban the first token each answer wrote after its lead: both engines write around it alike
    tok = hf.rec.model.tokenizer
    firsts = [tok.decode(tok(t[len(q.lead):], add_special_tokens=False)["input_ids"][:1]).strip() for q, t in zip(qs, a)]
    banned = [replace(q, bans=q.bans + (w,)) for q, w in zip(qs, firsts) if w]
    d = hf.run_batch(banned)
    assert banned and d == vl.run_batch(banned)
    assert all(x != t for x, t in zip(d, [t for t, w in zip(a, firsts) if w]))


def test_bad_queries_never_reach_or_break_the_engine(engines):
    _, vl = engines
    rec = vl.rec
    from genrec.recommender import Query
    bad = Query("sequential", "items", {"input_ids": None, "attention_mask": None}, k=3)
    good = rec.query_recommend(rec.ds.user_raw_ids[0], 3)
    out = vl.run_batch([bad, good])
    assert isinstance(out[0], Exception) and len(out[1]) == 3
    assert len(vl.run_batch([good])[0]) == 3


def test_concurrent_mixed_burst_through_the_server(engines):
    """The known vLLM crash (LoRA + prompt_embeds while other requests decode) cannot happen on the
    default path: the adapter is merged. A burst of long (text) and short (item) requests at once."""
    pytest.importorskip("fastapi")
    import httpx
    import socket
    import uvicorn

    from genrec.serving.server import create_app

    _, vl = engines
    ds = vl.rec.ds
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(vl, timeout_s=120, max_batch=32)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    reqs = []
    for j in range(48):
        if j % 3 == 0:
            reqs.append(("/explain", {"user": ds.user_raw_ids[j], "item": ds.item_raw_ids[j], "max_new_tokens": 24}))
        else:
            reqs.append(("/recommend", {"user": ds.user_raw_ids[j], "k": 5}))
    try:
        with ThreadPoolExecutor(32) as pool:
            rs = list(pool.map(lambda r: httpx.post(url + r[0], json=r[1], timeout=120), reqs))
        assert [r.status_code for r in rs] == [200] * len(reqs)
        assert app.state.batcher.batches < len(reqs)  # requests were batched together
        assert httpx.get(url + "/health").json()["engine"] == "vllm"
    finally:
        server.should_exit = True
        t.join(5)


def test_an_early_exit_checkpoint_ranks_after_layer_k_and_writes_text_with_every_layer(ml100k_dir, tmp_path):
    """model.rank_layers: vLLM ranks with the export cut after layer k and writes text with the
    whole stack, so both engines give the same answers."""
    from genrec.recommender import Recommender
    from genrec.serving.engine import VLLMEngine
    from genrec.train import train
    from tests.helpers import tiny_recipe

    r = tiny_recipe(steps=20, mixture={"sequential": 1, "direct": 1, "explanation": 1})
    train(replace(r, model=replace(r.model, rank_layers=1)), ml100k_dir, tmp_path / "run", progress=False)
    hf = HFEngine(Recommender.from_pretrained(tmp_path / "run/last", device="cpu", precision="no"))
    vl = VLLMEngine(Recommender.from_pretrained(tmp_path / "run/last", device="cpu"), checkpoint=tmp_path / "run/last",
                    cache_dir=tmp_path / "cache")
    try:
        assert vl.rank_llm is not vl.llm
        rec, ds = hf.rec, hf.rec.ds
        qs = [rec.query_recommend(ds.user_raw_ids[j], 10) for j in range(0, 40, 4)]
        qs += [rec.query_choose(ds.user_raw_ids[j], ds.item_raw_ids[j:j + 7]) for j in range(3)]
        qs += [rec.query_explain(ds.user_raw_ids[j], ds.item_raw_ids[j], max_new_tokens=16) for j in range(3)]
        a, b = hf.run_batch(qs), vl.run_batch(qs)
        for q, x, y in zip(qs, a, b):
            if q.output == "text":
                assert x == y
            else:
                same_ranking(x, y)
    finally:
        vl.close()


def test_t5_and_text_ids_are_refused_with_a_reason(ml100k_dir, tmp_path):
    from genrec.recommender import Recommender
    from genrec.serving.engine import VLLMEngine
    from genrec.train import train
    from tests.helpers import tiny_recipe

    train(tiny_recipe(item_tokens="text", steps=1), ml100k_dir, tmp_path / "run", progress=False)
    rec = Recommender.from_pretrained(tmp_path / "run/last", device="cpu")
    with pytest.raises(EngineError, match="--engine hf"):
        VLLMEngine(rec, checkpoint=tmp_path / "run/last", cache_dir=tmp_path / "cache")

