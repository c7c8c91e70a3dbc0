import math

import pytest

from genrec.recommender import Recommender, RecommenderError
from genrec.train import train
from tests.helpers import cyclic_dataset, tiny_recipe


@pytest.fixture(scope="module", params=["atomic", "text"])
def rec(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    data = cyclic_dataset(tmp)
    train(tiny_recipe(item_tokens=request.param, steps=3, mixture={"sequential": 1, "direct": 1, "explanation": 1}),
          data, tmp / "run", progress=False)
    r = Recommender.from_pretrained(tmp / "run/last")
    r.checkpoint_dir = tmp / "run/last"
    return r


def test_recommend_returns_k_unseen_real_items_with_titles(rec):
    u = rec.ds.user_raw_ids[0]
    out = rec.recommend(u, 5)
    assert len(out) == 5 and len({r["id"] for r in out}) == 5
    seen = {rec.ds.item_raw_ids[i] for i in rec.history(u)}
    assert all(r["id"] in rec.ds.item_by_raw and r["id"] not in seen for r in out)
    assert all(r["title"].startswith("Film number") for r in out)
    assert [r["score"] for r in out] == sorted((r["score"] for r in out), reverse=True)
    assert rec.recommend("user_" + rec.ds.user_ids[0], 5) == out  # the model's name for the same user
    assert all(r["model_id"] == rec.ds.item_ids[rec.ds.item_by_raw[r["id"]]] for r in out)


def test_choose_ranks_every_candidate_as_the_sequential_prompt_does(rec):
    cands = rec.ds.item_raw_ids[:6]
    out = rec.choose(rec.ds.user_raw_ids[1], cands)
    assert sorted(r["id"] for r in out) == sorted(cands)
    u = rec.ds.user_raw_ids[1]
    q, full = rec.query_choose(u, cands), rec.query_recommend(u, 5)
    same = q.batch["input_ids"].tolist() == full.batch["input_ids"].tolist()
    assert same == (rec.model.codec.mode == "atomic")  # atomic items: scored from the recommend prompt
    assert abs(sum(math.exp(r["score"]) for r in out) - 1) < 1e-4  # probabilities among the candidates


def test_explain_and_ask(rec):
    text = rec.explain(rec.ds.user_raw_ids[0], rec.ds.item_raw_ids[3])
    assert text.startswith(rec.ds.title(3)) and len(text) > len(rec.ds.title(3))  # about item 3, named as it is
    ids = rec.ds.item_raw_ids
    a = rec.ask(f"user_{rec.ds.user_raw_ids[0]} watched {ids[1]}, {ids[2]}. What should they watch next?", k=3)
    assert a["answer"] == "item" and len(a["items"]) == 3 and all(r["id"] in rec.ds.item_by_raw for r in a["items"])
    assert rec.ask("Describe the weather.", answer="text")["answer"] == "text"


@pytest.mark.parametrize("call, message", [
    (lambda r: r.recommend("nobody", 3), "unknown user 'nobody'.*the IDs in your files"),
    (lambda r: r.recommend(r.ds.user_raw_ids[0], 10 ** 6), "larger than the catalogue"),
    (lambda r: r.recommend(r.ds.user_raw_ids[0], 20), "more than the .* items this user has not seen"),
    (lambda r: r.recommend(r.ds.user_raw_ids[0], 3, history=[]), "empty history"),
    (lambda r: r.choose(r.ds.user_raw_ids[0], ["nope"]), "unknown item 'nope'"),
    (lambda r: r.choose(r.ds.user_raw_ids[0], []), "at least one candidate"),
    (lambda r: r.ask("   "), "non-empty prompt"),
    (lambda r: r.ask("hi", answer="maybe"), "answer must be"),
])
def test_bad_requests(rec, call, message):
    with pytest.raises(RecommenderError, match=message):
        call(rec)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(RecommenderError, match="not a genrec checkpoint"):
        Recommender.from_pretrained(tmp_path)


def test_loading_merges_lora_and_answers_the_same(rec):
    merged = Recommender.from_pretrained(rec.checkpoint_dir, precision="no")
    plain = Recommender.from_pretrained(rec.checkpoint_dir, precision="no", merge_adapters=False)
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())
    assert any("lora_" in n for n, _ in plain.model.named_parameters())
    for u in rec.ds.user_raw_ids[:4]:
        a, b = merged.recommend(u, 5), plain.recommend(u, 5)
        assert [r["id"] for r in a] == [r["id"] for r in b]
        assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-4)


def test_from_pretrained_moves_the_model_to_the_gpu_when_one_is_visible(rec, monkeypatch):
    """`genrec evaluate` / `serve` without --device ran on the CPU of a GPU machine."""
    import torch

    from genrec.modeling.model import GenRecModel
    asked = []

    def load(ck, device=None):
        asked.append(device)
        raise RuntimeError("stop here")
    monkeypatch.setattr(GenRecModel, "from_pretrained", staticmethod(load))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for device in (None, "cpu"):
        with pytest.raises(RuntimeError, match="stop here"):
            Recommender.from_pretrained(rec.checkpoint_dir, device=device)
    assert asked == ["cuda", "cpu"]
