import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_circles

from applications.ae_baseline import AEKMeans
from applications.spectralnet import SpectralNet
from core.metrics import acc

X, Y = make_blobs(400, n_features=10, centers=4, random_state=0, cluster_std=2.0)
X = X.astype(np.float32)
FAST = dict(n_clusters=4, siam_epochs=5, spec_epochs=10, spec_batch_size=128, spec_steps=20,
            siam_tot_pairs=4000, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    return SpectralNet(**FAST).fit(X)


def test_separates_blobs_with_orthonormal_outputs(fitted):
    assert acc(Y, fitted.labels_) > 0.95
    z = fitted.transform(X)
    np.testing.assert_allclose(z.T @ z / len(z), np.eye(4), atol=0.05)
    assert np.isfinite(fitted.history_["siamese_loss"]).all()
    assert fitted.history_["spectral_loss"][-1] < fitted.history_["spectral_loss"][0]


def test_seed_reproduces_labels_and_round_trip(fitted, tmp_path):
    again = SpectralNet(**FAST).fit(X)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    fitted.save(tmp_path / "spec")
    loaded = SpectralNet.load(tmp_path / "spec")
    np.testing.assert_array_equal(loaded.predict(X), fitted.labels_)
    np.testing.assert_allclose(loaded.transform(X), fitted.transform(X), rtol=1e-5, atol=1e-6)


def test_input_space_knn_affinity():
    est = SpectralNet(**{**FAST, "affinity": "knn"}).fit(X)
    assert acc(Y, est.labels_) > 0.95
    with pytest.raises(ValueError, match="affinity"):
        SpectralNet(**{**FAST, "affinity": "full"}).fit(X)


def test_logging_scores_leaves_the_run_unchanged():
    plain = SpectralNet(**{**FAST, "affinity": "knn"}).fit(X)
    logged = SpectralNet(**{**FAST, "affinity": "knn", "log_every": 5}).fit(X, Y)
    np.testing.assert_array_equal(logged.labels_, plain.labels_)
    rows = logged.history_["metrics"]
    assert [r["epoch"] for r in rows] == [5, 10]
    # the last score is the one of the finished model (same Orthonorm freeze and k-means)
    assert rows[-1]["acc"] == pytest.approx(acc(Y, logged.labels_))
    assert len(logged.history_["spectral_lr"]) == 10


def test_exact_solver_separates_rings_reproducibly(tmp_path):
    rings, ring_labels = make_circles(600, noise=0.05, factor=0.4, random_state=0)
    params = dict(n_clusters=2, affinity="knn", n_nbrs=5, spec_epochs=15, spec_batch_size=256,
                  spec_steps=20, random_state=0, spectral_solver="exact")
    est = SpectralNet(**params).fit(rings)
    assert acc(ring_labels, est.labels_) > 0.95  # k-means on the rings: 0.51
    # the 5-NN graph is the two rings: both components kept (540 training points)
    assert est.graph_components_ == 2 and est.graph_points_ == 540
    loss = est.history_["regression_loss"]
    assert len(loss) == 15 and loss[-1] < 0.2 * loss[0]
    np.testing.assert_allclose(np.linalg.norm(est.transform(rings), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(SpectralNet(**params).fit(rings).labels_, est.labels_)
    est.save(tmp_path / "exact")
    np.testing.assert_array_equal(SpectralNet.load(tmp_path / "exact").predict(rings),
                                  est.labels_)
    with pytest.raises(ValueError, match="spectral_solver"):
        SpectralNet(**{**params, "spectral_solver": "dense"}).fit(rings)


def test_approximate_siamese_neighbours():
    est = SpectralNet(**{**FAST, "approx_knn": True}).fit(X)
    assert acc(Y, est.labels_) > 0.95


def test_code_space_of_a_saved_autoencoder(digits, tmp_path):
    ae = AEKMeans(hidden_dims=(128, 128, 256), epochs=15, batch_size=64, n_init=5,
                  random_state=0).fit(digits.x)
    ae.save(tmp_path / "ae")
    with pytest.raises(ValueError, match="encoder_hidden_dims"):
        SpectralNet(encoder_weights=str(tmp_path / "ae.weights.h5"), siam_epochs=1,
                    spec_epochs=1).fit(digits.x)
    est = SpectralNet(n_clusters=10, encoder_weights=str(tmp_path / "ae.weights.h5"),
                      encoder_hidden_dims=(128, 128, 256), siam_epochs=3, spec_epochs=15,
                      spec_batch_size=256, spec_steps=20, siam_tot_pairs=8000,
                      random_state=0).fit(digits.x)
    np.testing.assert_allclose(est.model_.encoder.predict(digits.x.reshape(-1, 64), verbose=0),
                               ae.transform(digits.x), rtol=1e-5, atol=1e-5)
    assert est.transform(digits.x).shape == (1797, 10)
    assert acc(digits.y, est.labels_) > 0.5


def test_random_batches_depend_on_seed_epoch_and_index_only():
    import keras

    from applications.spectralnet import RandomBatches

    first = RandomBatches(X, 32, 5, seed=3)
    in_order = [first[i] for i in range(3)]
    shuffled = RandomBatches(X, 32, 5, seed=3)
    for i in (2, 0, 0, 1):  # out of order and repeated, as Keras asks
        np.testing.assert_array_equal(shuffled[i], in_order[i])
    assert not np.array_equal(in_order[0], in_order[1])
    first.on_epoch_end()  # Keras ends a spurious epoch after peeking: no new draws
    np.testing.assert_array_equal(first[0], in_order[0])
    first.on_epoch_begin(), first.on_epoch_begin()
    assert first.epoch == 1 and not np.array_equal(first[0], in_order[0])

    seen = []

    class XY(RandomBatches):
        def __getitem__(self, index):
            seen.append((self.epoch, index))
            batch = super().__getitem__(index)
            return batch, batch

    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(X.shape[1])])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(XY(X, 32, 4, seed=0), epochs=3, verbose=0, shuffle=False)
    trained = seen[-12:]  # after Keras's peeks, every epoch in index order
    assert trained == [(e, i) for e in range(3) for i in range(4)]
