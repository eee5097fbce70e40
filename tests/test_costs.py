import keras
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from core import costs
from core.layer import Orthonorm

RNG = np.random.default_rng(0)


def _np(t):
    return keras.ops.convert_to_numpy(t)


def _f32(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def test_sum_of_batch_mean_squares_matches_numpy():
    a, b = _f32(5, 4, 4, 1), _f32(5, 4, 4, 1)
    expected = ((a - b) ** 2).reshape(5, -1).mean(axis=0).sum()
    assert _np(costs.sum_of_batch_mean_squares(a, b)) == pytest.approx(expected, rel=1e-5)


def test_mixture_kl_matches_numpy_and_vanishes_at_the_prior():
    mu, log_var, means = _f32(6, 3), _f32(6, 3) * 0.1, _f32(4, 3)
    y = RNG.dirichlet(np.ones(4), size=6).astype(np.float32)
    kl = 0.5 * (-1 - log_var[:, None] + (mu[:, None] - means[None]) ** 2 + np.exp(log_var)[:, None])
    expected = (y[:, :, None] * kl).sum(axis=1).mean(axis=0).sum()
    assert _np(costs.mixture_kl(mu, log_var, y, means)) == pytest.approx(expected, rel=1e-5)
    onehot = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    at_prior = means[[0, 1, 2, 3, 0, 1]]
    assert _np(costs.mixture_kl(at_prior, np.zeros((6, 3), np.float32), onehot, means)) == \
        pytest.approx(0.0, abs=1e-6)


def test_categorical_term_is_minus_log_k_at_uniform_and_zero_when_confident():
    assert _np(costs.categorical_neg_entropy(np.full((3, 5), 0.2, np.float32))) == \
        pytest.approx(-np.log(5), rel=1e-5)
    assert _np(costs.categorical_neg_entropy(np.eye(5, dtype=np.float32))) == \
        pytest.approx(0.0, abs=1e-5)


def test_attack_loss_terms():
    x_hat, x_adv = _f32(4, 2, 2, 1), _f32(4, 2, 2, 1)
    y, y_adv = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]], np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]
    mu, mu_adv = _f32(4, 3), _f32(4, 3)
    total, rec, agreement, shift = (_np(v) for v in costs.attack_loss(x_hat, x_adv, y, y_adv,
                                                                        mu, mu_adv))
    assert agreement == pytest.approx(2.0)  # summed over the batch, not averaged
    assert shift == pytest.approx(((mu_adv - mu) ** 2).mean(axis=0).sum(), rel=1e-5)
    assert total == pytest.approx(2.5 * rec + 0.04 * 2.0 + shift, rel=1e-5)


def test_jsd_mi_loss_of_an_uninformed_critic_is_2_log_2():
    def critic(v):
        return keras.ops.full((keras.ops.shape(v)[0], 1), 0.5)

    a, c = _f32(8, 3), _f32(8, 5)
    assert _np(costs.jsd_mi_loss(critic, a, c, c[::-1])) == pytest.approx(2 * np.log(2), rel=1e-5)


def test_shuffle_rows_is_a_seeded_row_permutation():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    first = _np(costs.shuffle_rows(x, keras.random.SeedGenerator(3)))
    second = _np(costs.shuffle_rows(x, keras.random.SeedGenerator(3)))
    np.testing.assert_array_equal(first, second)
    assert sorted(map(tuple, first)) == sorted(map(tuple, x))


def test_squared_distance_matches_cdist():
    x, y = _f32(7, 3), _f32(5, 3)
    np.testing.assert_allclose(_np(costs.squared_distance(x, y)), cdist(x, y, "sqeuclidean"),
                               rtol=1e-4, atol=1e-5)


def _knn_reference(x, n_nbrs, scale=None, scale_nbr=None, local=False):
    dist = cdist(x, x, "sqeuclidean")
    idx = np.argsort(dist, axis=1, kind="stable")[:, :n_nbrs]
    nn = np.take_along_axis(dist, idx, axis=1)
    if scale is not None:
        vals = np.exp(-nn / (2 * scale**2))
    elif local:
        vals = np.exp(-nn / (2 * nn[:, [scale_nbr - 1]]))
    else:
        kth = nn[:, scale_nbr - 1]
        vals = np.exp(-nn / (2 * np.sort(kth)[::-1][len(kth) // 2 - 1]))
    w = np.zeros_like(dist)
    np.put_along_axis(w, idx, vals, axis=1)
    return (w + w.T) / 2


@pytest.mark.parametrize("mode", [dict(scale=1.5), dict(scale_nbr=2), dict(scale_nbr=2,
                                                                          local=True)])
def test_knn_affinity_matches_numpy_reference(mode):
    x = _f32(12, 4)
    got = _np(costs.knn_affinity(x, 4, scale=mode.get("scale"), scale_nbr=mode.get("scale_nbr"),
                                 local_scale=mode.get("local", False)))
    np.testing.assert_allclose(got, _knn_reference(x, 4, **mode), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got, got.T)
    np.testing.assert_allclose(np.diag(got), 1.0, rtol=1e-5)


def test_knn_affinity_needs_a_scale():
    with pytest.raises(ValueError, match="scale_nbr"):
        costs.knn_affinity(_f32(5, 2), 3)


def test_spectral_loss_matches_numpy():
    w, y = np.abs(_f32(6, 6)), _f32(6, 2)
    expected = (w * cdist(y, y, "sqeuclidean")).sum() / 12.0
    assert _np(costs.spectral_loss(w, y, 12.0)) == pytest.approx(expected, rel=1e-4)


def test_orthonorm_makes_columns_orthonormal_and_stores_the_weights():
    layer = Orthonorm()
    y = _f32(64, 5) + 1.0
    out = _np(layer(y, training=True))
    np.testing.assert_allclose(out.T @ out / 64, np.eye(5), atol=1e-4)
    # at inference the stored weights are applied to any batch
    np.testing.assert_allclose(_np(layer(y, training=False)), out, rtol=1e-4, atol=1e-4)
    clone = Orthonorm.from_config(layer.get_config())
    assert clone.epsilon == layer.epsilon and clone.stop_gradient == layer.stop_gradient


def test_orthonorm_survives_a_collapsed_column():
    y = _f32(32, 4)
    y[:, 2] = 0.0  # a dead cluster, as with a softmax head that never fires
    out = _np(Orthonorm()(y, training=True))
    assert np.all(np.isfinite(out))


def test_contrastive_loss_matches_hand_computation():
    a = np.array([[0.0, 0.0], [0.0, 0.0]], np.float32)
    b = np.array([[0.3, 0.4], [0.3, 0.4]], np.float32)  # distance 0.5 for both rows
    d = costs.euclidean_distance(a, b)
    np.testing.assert_allclose(_np(d), [0.5, 0.5], rtol=1e-6)
    loss = _np(costs.contrastive_loss(np.array([1, 0]), d))
    assert loss == pytest.approx(((0.5 - 0.05) ** 2 + (1 - 0.5) ** 2) / 2, rel=1e-5)
    # identical points are clamped at sqrt(eps), not 0 (finite gradient)
    assert _np(costs.euclidean_distance(a, a))[0] == pytest.approx(np.sqrt(1e-7), rel=1e-3)
