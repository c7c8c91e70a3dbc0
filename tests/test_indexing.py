import numpy as np
import pytest

from genrec.data.indexing import IdContext, assign_ids, cooccurrence


def test_random_ids_are_a_seeded_permutation():
    ctx = IdContext(50, [], seed=3)
    a = assign_ids("random", ctx)
    assert sorted(map(int, a)) == list(range(1, 51))
    assert a == assign_ids("random", IdContext(50, [], seed=3))
    assert a != assign_ids("random", IdContext(50, [], seed=4))


def test_sequential_ids_follow_first_appearance():
    seqs = [np.array([4, 2, 4]), np.array([0, 2, 3])]
    # first appearances: 4,2,0,3 -> 1,2,3,4; item 1 never trained -> 5
    assert assign_ids("sequential", IdContext(5, seqs)) == ["3", "5", "2", "4", "1"]


def test_collaborative_ids_group_co_consumed_items():
    # two disjoint communities: items 0-5 only with each other, items 6-11 likewise
    rng = np.random.default_rng(0)
    seqs = [rng.permutation(6)[:4] for _ in range(30)] + [6 + rng.permutation(6)[:4] for _ in range(30)]
    ids = assign_ids("collaborative", IdContext(12, seqs, seed=0, cluster_k=2, cluster_leaf=6))
    assert len(set(ids)) == 12
    first = [i.split("-")[0] for i in ids]
    assert len(set(first[:6])) == 1 and len(set(first[6:])) == 1 and first[0] != first[6]


def test_collaborative_recursion_terminates_on_an_empty_graph():
    ids = assign_ids("collaborative", IdContext(30, [], cluster_k=3, cluster_leaf=4))
    assert len(set(ids)) == 30


def test_cooccurrence_counts_users_once():
    c = cooccurrence([np.array([0, 1, 1]), np.array([0, 1]), np.array([2])], 3).toarray()
    assert c[0, 1] == 2 and c[1, 0] == 2 and c[0, 2] == 0 and c[1, 1] == 0


def test_unknown_scheme():
    with pytest.raises(ValueError, match="allowed: random"):
        assign_ids("nope", IdContext(3, []))
