import keras
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.neighbors import NearestNeighbors

from core.pairs import (approximate_knn_indices, create_pairs_from_labeled_data,
                        graph_spectral_embedding, knn_graph, large_components, njw_embedding,
                        create_pairs_from_unlabeled_data, get_scale, knn_indices,
                        neighbours_from_precomputed, normalized_cut)
from core.train import LearningHandler

X, Y = make_blobs(200, n_features=5, centers=4, random_state=42)


def test_knn_indices_exclude_self_and_match_sklearn():
    nbrs = knn_indices(X, 3)
    assert nbrs.shape == (200, 3)
    assert not (nbrs == np.arange(200)[:, None]).any()
    ref = NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    np.testing.assert_array_equal(nbrs, ref)
    with pytest.raises(ValueError, match="need more than"):
        knn_indices(X[:3], 3)


def test_unlabeled_pairs_follow_the_neighbour_lists():
    nbrs = knn_indices(X, 4)
    pairs, labels = create_pairs_from_unlabeled_data(nbrs, tot_pairs=1600, seed=0)
    per_point = 4  # min(k=4, 1600 // (2 * 200))
    assert pairs.shape == (200 * 2 * per_point, 2) and labels.sum() == 200 * per_point
    for (a, b), lab in zip(pairs, labels):
        assert (b in nbrs[a]) == bool(lab)
        assert a != b
    # positives of a point are distinct
    pos = pairs[labels == 1].reshape(200, per_point, 2)[:, :, 1]
    assert all(len(set(row)) == per_point for row in pos)
    # neighbour pairs are mostly in the same blob, random pairs mostly not
    same = Y[pairs[:, 0]] == Y[pairs[:, 1]]
    assert same[labels == 1].mean() > 0.95 and same[labels == 0].mean() < 0.5


def test_pairs_are_seeded():
    nbrs = knn_indices(X, 2)
    a = create_pairs_from_unlabeled_data(nbrs, 800, seed=3)
    b = create_pairs_from_unlabeled_data(nbrs, 800, seed=3)
    c = create_pairs_from_unlabeled_data(nbrs, 800, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_precomputed_table_with_identity_permutation_matches_direct_knn():
    table = NearestNeighbors(n_neighbors=8).fit(X).kneighbors(X, return_distance=False)
    direct = knn_indices(X, 3)
    via_table = neighbours_from_precomputed(table, np.arange(200), 200, 3)
    np.testing.assert_array_equal(via_table, direct)
    perm = np.random.default_rng(0).permutation(200)
    sub = neighbours_from_precomputed(table, perm, 200, 3)
    # row i lists neighbours of perm[i], as positions in perm
    np.testing.assert_array_equal(perm[sub], direct[perm])


def test_labeled_pairs():
    pairs, labels = create_pairs_from_labeled_data(Y, seed=0)
    assert len(pairs) == 400 and labels.tolist() == [1, 0] * 200
    same = Y[pairs[:, 0]] == Y[pairs[:, 1]]
    np.testing.assert_array_equal(same, labels.astype(bool))
    with pytest.raises(ValueError, match="two classes"):
        create_pairs_from_labeled_data(np.zeros(5))


def test_get_scale_is_the_median_nearest_other_distance():
    pts = np.array([[0.0], [1.0], [3.0], [7.0]])
    # without replacement on all 4 points: nearest-other distances 1, 1, 2, 4 -> median 1.5
    assert get_scale(pts, 4, 2, replace=False) == pytest.approx(1.5)
    assert get_scale(X, 100, 2, seed=0) == get_scale(X, 100, 2, seed=0)


def test_learning_handler_drops_then_stops():
    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    handler = LearningHandler(monitor="loss", patience=1, drop=0.1, min_lr=1e-6)
    x = np.zeros((16, 2), np.float32)  # zero inputs and targets: the loss never improves
    model.fit(x, np.zeros((16, 1)), epochs=50, verbose=0, callbacks=[handler])
    assert handler.lr_history[0] == pytest.approx(1e-3)  # starts at the configured rate
    assert handler.lr_history[-1] <= 1e-6 and len(handler.lr_history) < 50
    with pytest.raises(KeyError, match="monitors 'val_loss'"):
        model.fit(x, np.zeros((16, 1)), epochs=1, verbose=0, callbacks=[LearningHandler()])


def _recall(exact, approx):
    return np.mean([len(set(a) & set(b)) / exact.shape[1] for a, b in zip(exact, approx)])


@pytest.mark.parametrize("k", [2, 5, 10])
def test_approximate_knn_finds_most_exact_neighbours(digits, k):
    x = digits.x.reshape(len(digits.x), -1)
    approx = approximate_knn_indices(x, k, seed=0)
    assert approx.shape == (len(x), k)
    assert not (approx == np.arange(len(x))[:, None]).any()          # never the point itself
    assert all(len(set(row)) == k for row in approx)                  # k distinct neighbours
    assert _recall(knn_indices(x, k), approx) > 0.9
    # nearest first: distances along each row never decrease
    dist = np.linalg.norm(x[approx] - x[:, None, :], axis=2)
    assert (np.diff(dist, axis=1) >= -1e-4).all()


def test_approximate_knn_more_trees_more_recall_and_seeded(digits):
    x = digits.x.reshape(len(digits.x), -1)
    exact = knn_indices(x, 5)
    one = _recall(exact, approximate_knn_indices(x, 5, n_trees=1, leaf_size=16, seed=0))
    many = _recall(exact, approximate_knn_indices(x, 5, n_trees=20, leaf_size=16, seed=0))
    assert many > one
    np.testing.assert_array_equal(approximate_knn_indices(x, 5, seed=3),
                                  approximate_knn_indices(x, 5, seed=3))


def test_approximate_knn_rejects_bad_k():
    x = np.random.default_rng(0).random((10, 3))
    with pytest.raises(ValueError, match="k=10"):
        approximate_knn_indices(x, 10)
    with pytest.raises(ValueError, match="n_trees"):
        approximate_knn_indices(x, 2, n_trees=0)


def test_knn_graph_is_the_symmetric_batch_affinity_and_keeps_cluster_components():
    from core import costs

    x, y = make_blobs(300, n_features=5, centers=3, cluster_std=0.3, random_state=1)
    island = np.full((3, 5), 40.0) + np.arange(3)[:, None] * 0.01  # a 3-point island far away
    x = np.vstack([x, island]).astype(np.float32)
    w = knn_graph(x, 4)
    assert abs(w - w.T).max() < 1e-12 and w.diagonal().max() == 0
    # same neighbours and weights as the batch affinity at the same scale (off the diagonal)
    d2 = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)[0][:, 1] ** 2
    dense = np.array(costs.knn_affinity(x, 4, scale=float(np.sqrt(np.median(d2)))))
    np.fill_diagonal(dense, 0)
    blobs = w.toarray()[:300, :300], dense[:300, :300]  # float32 distances are coarse at 40
    np.testing.assert_array_equal(blobs[0] > 0, blobs[1] > 0)
    np.testing.assert_allclose(*blobs, atol=2e-3)
    keep, n_comp = large_components(w, max_components=3, min_size=10)
    assert n_comp == 4 and keep[:300].all() and not keep[300:].any()
    assert large_components(w)[0].sum() == 100  # by default the largest only
    vecs = njw_embedding(w[keep][:, keep], 3)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    # separated clusters: the rows of each cluster coincide, the clusters are orthogonal
    means = np.stack([vecs[y == c].mean(0) for c in range(3)])
    np.testing.assert_allclose(means @ means.T, np.eye(3), atol=1e-4)
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="isolated"):
        njw_embedding(sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0.0]])), 1)
    with pytest.raises(ValueError, match="at least 5 points"):
        knn_graph(x[:4], 5)
    # the three steps in one: the island (under 303 / 30 points) is dropped
    vectors, kept, n_comp = graph_spectral_embedding(x, 3, 4)
    assert n_comp == 4 and np.array_equal(kept, keep)
    np.testing.assert_allclose(vectors @ vectors.T, vecs @ vecs.T, atol=1e-6)
    with pytest.raises(ValueError, match="too few for n_clusters=10"):
        graph_spectral_embedding(x[:10], 10, 3)
    *_, graph = graph_spectral_embedding(x, 3, 4, return_graph=True)
    assert graph.shape == (kept.sum(), kept.sum())


def test_normalized_cut_by_hand():
    import scipy.sparse as sp

    # two triangles of unit edges joined by one edge of weight 0.5
    w = np.zeros((6, 6))
    for a, b, weight in [(0, 1, 1), (1, 2, 1), (0, 2, 1), (3, 4, 1), (4, 5, 1), (3, 5, 1),
                         (2, 3, 0.5)]:
        w[a, b] = w[b, a] = weight
    w = sp.csr_matrix(w)
    # each side: cut 0.5, volume 2 + 2 + 2.5 = 6.5
    assert normalized_cut(w, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx(2 * 0.5 / 6.5)
    assert normalized_cut(w, np.zeros(6, np.int64)) == 0.0
    # splitting a triangle cuts more: {0}: 2 / 2, {1..5}: 2 / 11
    assert normalized_cut(w, np.array([0, 1, 1, 1, 1, 1])) == pytest.approx(1 + 2 / 11)
    with pytest.raises(ValueError, match="labels of shape"):
        normalized_cut(w, np.zeros(5, np.int64))
