import numpy as np
import pytest

from core.metrics import acc, ari, confusion_matrix, evaluate, nmi, purity

Y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])


def test_acc_is_one_under_any_relabelling():
    rng = np.random.default_rng(0)
    for _ in range(5):
        perm = rng.permutation(3) + 7  # arbitrary cluster ids
        assert acc(Y, perm[Y]) == 1.0
        assert nmi(Y, perm[Y]) == pytest.approx(1.0)
        assert ari(Y, perm[Y]) == pytest.approx(1.0)


def test_acc_hand_computed_partial():
    pred = np.array([1, 1, 0, 2, 2, 2, 0, 0, 0, 1])
    # best map: 1->0 (2 hits), 2->1 (3 hits), 0->2 (3 hits) = 8/10
    assert acc(Y, pred) == pytest.approx(0.8)


def test_acc_more_clusters_than_classes():
    pred = np.array([0, 0, 3, 1, 1, 1, 2, 2, 2, 4])
    # 5 clusters, 3 classes: clusters 3 and 4 stay unmatched -> 8/10
    assert acc(Y, pred) == pytest.approx(0.8)
    assert purity(Y, pred) == pytest.approx(1.0)


def test_acc_fewer_clusters_than_classes():
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    # two clusters for three classes: 3 + 4 = 7 correct at best
    assert acc(Y, pred) == pytest.approx(0.7)
    assert purity(Y, pred) == pytest.approx(0.7)


def test_purity_at_least_acc():
    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 5, 300), rng.integers(0, 8, 300)
    assert purity(y, pred) >= acc(y, pred)


def test_confusion_matrix_counts():
    pred = np.array([5, 5, 5, 5, 9, 9, 9, 9, 9, 9])
    table, clusters, classes = confusion_matrix(Y, pred)
    assert clusters.tolist() == [5, 9] and classes.tolist() == [0, 1, 2]
    assert table.tolist() == [[3, 1, 0], [0, 2, 4]]
    assert table.sum() == len(Y)


def test_nmi_average_methods_differ_on_unbalanced_partitions():
    pred = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
    arith, geo = nmi(Y, pred), nmi(Y, pred, "geometric")
    assert 0.0 < arith < 1.0 and 0.0 < geo < 1.0
    assert arith != pytest.approx(geo, abs=1e-6)


def test_ari_of_random_labelling_near_zero():
    rng = np.random.default_rng(2)
    y, pred = rng.integers(0, 10, 20000), rng.integers(0, 10, 20000)
    assert abs(ari(y, pred)) < 0.01
    assert acc(y, pred) < 0.2


def test_length_mismatch_and_empty_raise():
    with pytest.raises(ValueError, match="differ in length"):
        acc([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        acc([], [])


def test_evaluate_returns_all_scores():
    scores = evaluate(Y, Y)
    assert set(scores) == {"acc", "nmi", "ari", "purity"}
    assert all(v == pytest.approx(1.0) for v in scores.values())
