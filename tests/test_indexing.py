import numpy as np
import pytest

from genrec.data.indexing import IdContext, assign_ids, cooccurrence, cooccurrence_vectors


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


def test_cooccurrence_vectors_are_the_spectral_embedding_by_hand():
    """Two separate groups of co-consumed items and an item nobody has. Group {0,1,2}: 0-1 shared by
    3 users, 0-2 and 1-2 by 1, so degrees 4, 4, 2; the normalised co-occurrence of a connected group
    has top eigenvalue 1 with eigenvector sqrt(degree) / norm = (2, 2, sqrt 2) / sqrt 10. Group
    {3,4,5}: 3-4 shared by 2, the rest by 1: degrees 3, 3, 2 -> (sqrt 3, sqrt 3, sqrt 2) / sqrt 8.
    Every other eigenvalue of these groups is negative, so the third column is zero."""
    seqs = [np.array([0, 1, 2]), np.array([0, 1]), np.array([3, 4]), np.array([3, 4, 5]), np.array([1, 0])]
    v = cooccurrence_vectors(seqs, 7, dim=3)
    assert v.shape == (7, 3)
    a = np.array([2, 2, np.sqrt(2)]) / np.sqrt(10)
    b = np.array([np.sqrt(3), np.sqrt(3), np.sqrt(2)]) / np.sqrt(8)
    cols = [v[:, j] for j in range(3)]  # the two eigenvalue-1 columns may come in either order
    for want in (np.r_[a, 0, 0, 0, 0], np.r_[0, 0, 0, b, 0], np.zeros(7)):
        assert sum(np.allclose(c, want, atol=1e-6) for c in cols) == 1
    assert (v >= -1e-7).all()  # each vector's sign fixed: largest entry positive
    g = v @ v.T  # [7, 7]: items of one group are alike, of different groups orthogonal
    assert g[0, 1] > 0.39 and abs(g[0, 3]) < 1e-6 and np.all(v[6] == 0)
    assert cooccurrence_vectors(seqs, 7, dim=64).shape == (7, 6)  # at most n - 1 columns


def test_cooccurrence_vectors_sparse_solver_matches_the_dense_one():
    """Large catalogues go through scipy's eigsh: on a small random graph with distinct eigenvalues it
    gives the dense answer (the sign rule makes the vectors comparable)."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(40, size=8, replace=False) for _ in range(60)]
    dense = cooccurrence_vectors(seqs, 40, dim=4)
    sparse = cooccurrence_vectors(seqs, 40, dim=4, dense_up_to=0)
    np.testing.assert_allclose(sparse, dense, atol=1e-4)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="allowed: random"):
        assign_ids("nope", IdContext(3, []))
