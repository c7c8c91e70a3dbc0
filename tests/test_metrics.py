import math

import pytest

from genrec.metrics import bleu4, hit_rate, mrr, ndcg, rank_of, ranking_metrics, rouge


def test_rank_of():
    assert rank_of([5, 3, 9], 9) == 2 and rank_of([5, 3], 7) is None


def test_hand_computed_ranking_metrics():
    ranks = [0, 2, None, 9, 4]  # five users
    assert hit_rate(ranks, 1) == pytest.approx(1 / 5)
    assert hit_rate(ranks, 5) == pytest.approx(3 / 5)  # ranks 0, 2, 4
    assert hit_rate(ranks, 10) == pytest.approx(4 / 5)
    # NDCG@5: 1/log2(2) + 1/log2(4) + 1/log2(6) = 1 + 0.5 + 0.386853 -> / 5
    assert ndcg(ranks, 5) == pytest.approx((1 + 0.5 + 1 / math.log2(6)) / 5)
    assert ndcg(ranks, 10) == pytest.approx((1 + 0.5 + 1 / math.log2(6) + 1 / math.log2(11)) / 5)
    assert mrr(ranks) == pytest.approx((1 + 1 / 3 + 0 + 1 / 10 + 1 / 5) / 5)
    m = ranking_metrics(ranks)
    assert set(m) == {"hr@1", "hr@5", "hr@10", "ndcg@5", "ndcg@10", "mrr"}


def test_empty_inputs_are_zero():
    assert hit_rate([], 10) == ndcg([], 10) == mrr([]) == 0.0
    assert bleu4([], []) == 0.0


def test_text_metrics():
    assert bleu4(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu4(["completely different words here"], ["the cat sat on the mat"]) < 5
    r = rouge(["the cat sat"], ["the cat sat on the mat"])
    # ROUGE-1: P = 3/3, R = 3/6 -> F1 = 2 * 1 * 0.5 / 1.5 = 0.6667
    assert r["rouge1"] == pytest.approx(66.6667, abs=1e-3)
    assert r["rouge2"] == pytest.approx(100 * 2 * 1 * 0.4 / 1.4, abs=1e-3)  # 2/2 bigrams, 2/5 recall


def test_candidate_rank_orders_by_score_and_breaks_ties_by_list_order():
    from genrec.metrics import candidate_rank
    assert candidate_rank([0.1, 0.9, 0.5], [7, 8, 9], 9) == 1  # 8 (0.9), then 9 (0.5)
    assert candidate_rank([0.5, 0.5, 0.5], [7, 8, 9], 7) == 0  # all tied: the list's order
    assert candidate_rank([0.5, 0.5, 0.5], [7, 8, 9], 9) == 2
    assert candidate_rank([1.0, 2.0], [7, 8], 3) is None
