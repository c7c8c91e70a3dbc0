import math

import numpy as np
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


def test_candidate_rank_is_pessimistic_about_ties():
    from genrec.metrics import candidate_rank
    assert candidate_rank([0.1, 0.9, 0.5], [7, 8, 9], 9) == 1  # 8 (0.9), then 9 (0.5)
    # all tied: the target ranks below every other candidate, wherever it is listed
    assert candidate_rank([0.5, 0.5, 0.5], [7, 8, 9], 7) == 2
    assert candidate_rank([0.5, 0.5, 0.5], [7, 8, 9], 9) == 2
    assert candidate_rank([0.5, 0.9, 0.5, 0.1], [7, 8, 9, 6], 9) == 2  # 8 above, 7 tied -> above
    assert candidate_rank([1.0, 2.0], [7, 8], 3) is None


def test_full_ranks_hand_made_case_with_ties_and_history():
    from genrec.metrics import full_ranks
    scores = [[0.3, 0.9, 0.3, 0.3, 0.1],   # target 0 ties with 2 and 3; 1 is above
              [0.5, 0.5, 0.5, 0.5, 0.5],   # a constant scorer: target last among the 3 allowed
              [0.2, 0.8, 0.7, 0.1, 0.0],   # 1 (0.8) is history, so only 2 (0.7) is above target 0
              [0.0, 1.0, 0.0, 0.0, 0.0]]   # target in the history: never recommendable
    ranks = full_ranks(scores, [0, 4, 0, 1], [[], [0, 2], [1], [1]])
    assert ranks == [3, 2, 1, None]
    # NaN target scores rank last among the allowed items
    assert full_ranks([[float("nan"), 1.0, 2.0]], [0]) == [2]


def test_list_rank_counts_listed_ties_against_the_target():
    from genrec.metrics import list_rank
    ranked = [(5, -0.1), (3, -0.5), (9, -0.5), (2, -0.9)]
    assert list_rank(ranked, 5) == 0
    assert list_rank(ranked, 3) == 2 and list_rank(ranked, 9) == 2  # tied pair: each below the other
    assert list_rank(ranked, 2) == 3 and list_rank(ranked, 7) is None


def test_per_user_values_from_ranks():
    from genrec.metrics import per_user
    ranks = [0, 3, 9, 10, None]
    assert per_user(ranks, "hr@10").tolist() == [1, 1, 1, 0, 0]
    assert per_user(ranks, "ndcg@10").tolist() == pytest.approx([1.0, 1 / math.log2(5), 1 / math.log2(11), 0, 0])
    with pytest.raises(ValueError):
        per_user(ranks, "mrr@3")


def test_paired_bootstrap_known_answers():
    from genrec.metrics import paired_bootstrap
    # a constant difference has a degenerate interval at that constant
    r = paired_bootstrap([0.5, 0.7, 0.9], [0.25, 0.45, 0.65], n_boot=500)
    assert r["diff"] == pytest.approx(0.25) and r["ci95"] == pytest.approx([0.25, 0.25]) and r["n"] == 3
    # differences of +1 on 3000 users and -1 on 2000: mean 0.2, SD sqrt(1 - 0.04) = 0.9798;
    # the bootstrap interval is close to the normal one, 0.2 +- 1.96 * 0.9798 / sqrt(5000)
    a = np.array([1.0] * 3000 + [0.0] * 2000)
    b = np.array([0.0] * 3000 + [1.0] * 2000)
    r = paired_bootstrap(a, b, n_boot=4000, seed=1)
    half = 1.96 * math.sqrt(0.96) / math.sqrt(5000)
    assert r["diff"] == pytest.approx(0.2)
    assert r["ci95"][0] == pytest.approx(0.2 - half, abs=0.004) and r["ci95"][1] == pytest.approx(0.2 + half, abs=0.004)
    # pairing matters: the same users shifted by a shared per-user effect give a tight interval
    base = np.random.default_rng(0).random(1000)
    r = paired_bootstrap(base + 0.01, base, n_boot=500)
    assert r["ci95"][0] == pytest.approx(0.01) and r["ci95"][1] == pytest.approx(0.01)
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])
