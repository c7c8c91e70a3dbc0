"""genrec's evaluation against the baselines' protocol code, on a model whose scores are set by hand."""
import numpy as np
import pytest
import torch

from genrec.baselines import score_protocol
from genrec.data.dataset import PreparedDataset
from genrec.evaluate import evaluate, results_table
from genrec.modeling.backbone import build_from_config
from genrec.modeling.model import GenRecModel
from tests.helpers import cyclic_dataset, tiny_recipe


def test_atomic_sequential_and_its_candidate_ranking_match_the_baseline_protocol(tmp_path):
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=30, n_items=24))
    m = GenRecModel(tiny_recipe(item_tokens="atomic"), build_from_config("tiny-llama"), item_ids=ds.item_ids,
                    titles=[ds.title(i) for i in range(ds.n_items)]).eval()
    bias = torch.tensor(np.random.default_rng(3).permutation(ds.n_items), dtype=torch.float32)
    with torch.no_grad():  # output rows zero: every user's scores are exactly `bias`
        m.item_emb.out.zero_()
        m.item_emb.bias.copy_(bias)
    res = evaluate(m, ds, families=("sequential",), templates="seq-1", progress=False, precision="no",
                   max_history=4)
    got = res["families"]["sequential"]["seq-1"]
    users = list(range(ds.n_users))
    want = score_protocol(ds, lambda us: np.tile(bias.numpy(), (len(us), 1)), users)
    assert got["users"] == want["sequential"]["users"] == 30
    for k in ("hr@1", "hr@5", "hr@10", "ndcg@10", "mrr"):
        assert got[k] == pytest.approx(want["sequential"][k], abs=1e-9), k
    for k in ("hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10"):
        assert got["candidates_from_sequential"][k] == pytest.approx(want["direct"][k], abs=1e-9), k
    # HR@1 by hand: the target must beat every candidate / every item the user has not seen
    b = bias.numpy()
    direct_hit = [all(b[ds.target(u, "test")] > b[c] for c in ds.candidates(u, "test")[1:]) for u in users]
    seq_hit = [ds.target(u, "test") == max((i for i in range(ds.n_items) if i not in set(ds.history(u, "test"))),
                                          key=lambda i: b[i]) for u in users]
    assert got["candidates_from_sequential"]["hr@1"] == pytest.approx(np.mean(direct_hit))
    assert got["hr@1"] == pytest.approx(np.mean(seq_hit))
    assert "direct candidates ranked from the sequential prompt" in results_table(res)
    # per-user ranks, keyed by the users' own IDs, the same as the baselines' for the same scores
    assert got["per_user"] == want["sequential"]["per_user"]
    assert got["per_user"]["users"] == [str(x) for x in ds.users["raw_id"]]
    assert got["candidates_from_sequential"]["per_user"] == want["direct"]["per_user"]


def test_a_constant_scorer_gets_nothing_from_ties(tmp_path):
    """Pessimistic ties: every item scored alike puts each target last, in genrec and the baselines."""
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=12, n_items=60))
    m = GenRecModel(tiny_recipe(item_tokens="atomic"), build_from_config("tiny-llama"), item_ids=ds.item_ids,
                    titles=[ds.title(i) for i in range(ds.n_items)]).eval()
    with torch.no_grad():
        m.item_emb.out.zero_()
        m.item_emb.bias.zero_()
    res = evaluate(m, ds, families=("sequential",), templates="seq-1", progress=False, precision="no",
                   max_history=4)["families"]["sequential"]["seq-1"]
    assert res["hr@10"] == 0.0 and res["candidates_from_sequential"]["hr@1"] == 0.0
    assert res["candidates_from_sequential"]["per_user"]["ranks"] == [len(ds.candidates(u, "test")) - 1
                                                                      for u in range(ds.n_users)]
    allowed = [ds.n_items - len(set(ds.history(u, "test"))) for u in range(ds.n_users)]
    assert res["per_user"]["ranks"] == [n - 1 for n in allowed]
    base = score_protocol(ds, lambda us: np.zeros((len(us), ds.n_items)), list(range(ds.n_users)))
    assert base["sequential"]["hr@10"] == 0.0 and base["direct"]["hr@1"] == 0.0


def test_template_no_model_row_is_the_items_own_metadata_sentence(tmp_path):
    from genrec.data.examples import metadata_explanation
    from genrec.evaluate import template_explanations
    ds = PreparedDataset.load(cyclic_dataset(tmp_path, n_users=6, n_items=12))
    res = template_explanations(ds, list(range(ds.n_users)))
    u0 = ds.target(0, "test")
    assert res["users"] == 6 and res["seen"] is None
    assert res["sample"]["prediction"] == metadata_explanation(ds, u0, [])[0]
    # with no reviews and no knowledge-graph links, the references are those very sentences
    assert res["bleu4"] == pytest.approx(100.0) and res["rougeL"] == pytest.approx(100.0)


def test_explanations_are_scored_by_what_they_claim_on_movielens(ml100k):
    from genrec.evaluate import template_explanations
    res = template_explanations(ml100k, list(range(60)))
    # the item's own metadata sentence is true, and says nothing about the user's history
    assert res["faithful"] == 1.0 and res["personal"] == 0.0 and res["users_with_link"] > 0
