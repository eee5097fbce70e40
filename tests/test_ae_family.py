"""DEC, VaDE and AE+GMM on the shared autoencoder (issue 6), plus the self-training targets."""

import keras
import numpy as np
import pytest

from applications.ae_baseline import (
    AEGMM,
    AEKMeans,
    copy_pretrained_autoencoder,
    fit_diag_gmm,
    whiten_code_space,
)
from applications.dec import DEC
from applications.vade import VaDE, vade_loss
from core.checkpoints import CheckpointError
from core.costs import boosted_target, dec_target, kl_target_loss
from core.metrics import acc

AE = dict(hidden_dims=(256, 256, 1024), latent_dim=10)
DEC_SMALL = dict(AE, batch_size=64, update_interval=50, maxiter=1500, n_init=5)
VADE_SMALL = dict(AE, epochs=12, batch_size=64, gmm_n_init=2)


@pytest.fixture(scope="module")
def shared_ae(digits, tmp_path_factory):
    """One pretrained autoencoder on digits, reused by every method as the shipped one is."""
    ae = AEKMeans(epochs=30, batch_size=64, n_init=5, random_state=0, **AE).fit(digits.x)
    path = tmp_path_factory.mktemp("ae") / "digits_ae"
    ae.save(path)
    return ae, str(path) + ".weights.h5"


# ---------------------------------------------------------------------- targets

def test_dec_target_matches_formula_and_sharpens():
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(4), size=50)
    p = dec_target(q)
    ref = q**2 / q.sum(0)
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(p, ref, rtol=1e-5)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    assert np.mean(p.max(1)) > np.mean(q.max(1))          # the arg-max share grows
    np.testing.assert_array_equal(p.argmax(1), (q**2 / q.sum(0)).argmax(1))


def test_uniform_rows_stay_uniform_and_alpha_controls_boosting():
    q = np.array([[0.25] * 4, [0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1],
                  [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]])   # balanced cluster sizes
    for target in (dec_target(q), boosted_target(q, 2.0), boosted_target(q, 4.0)):
        np.testing.assert_allclose(target[0], 0.25, rtol=1e-6)
    gentle, strong = boosted_target(q, 2.0), boosted_target(q, 4.0)
    assert strong[1, 0] > gentle[1, 0] > q[1, 0]
    np.testing.assert_allclose(boosted_target(q, 1.0), q, rtol=1e-6)
    np.testing.assert_allclose(boosted_target(q, 2.0, balance=True), dec_target(q), rtol=1e-6)
    with pytest.raises(ValueError, match="alpha"):
        boosted_target(q, 0.0)


def test_kl_target_loss_is_zero_at_the_target_and_positive_elsewhere():
    p = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    assert abs(float(kl_target_loss(p, p))) < 1e-6
    q = np.array([[0.5, 0.5], [0.5, 0.5]], dtype=np.float32)
    expected = np.mean(np.sum(p * np.log(p / q), axis=1))
    assert float(kl_target_loss(p, q)) == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------- DEC

@pytest.fixture(scope="module")
def dec_fitted(shared_ae, digits):
    return DEC(encoder_weights=shared_ae[1], random_state=0, **DEC_SMALL).fit(digits.x, digits.y)


def test_dec_starts_from_kmeans_and_keeps_quality(dec_fitted, shared_ae, digits):
    rounds = dec_fitted.history_
    assert rounds[0]["acc"] == pytest.approx(acc(digits.y, shared_ae[0].labels_), abs=0.05)
    assert acc(digits.y, dec_fitted.labels_) > 0.6
    # self-training makes assignments more confident round after round
    assert rounds[-1]["mean_max_q"] > rounds[0]["mean_max_q"]
    assert dec_fitted.n_steps_ <= DEC_SMALL["maxiter"] + DEC_SMALL["update_interval"]
    assert dec_fitted.cluster_centers_.shape == (10, 10)
    q = dec_fitted.soft_assignments(digits.x[:5])
    np.testing.assert_allclose(q.sum(1), 1.0, rtol=1e-5)


def test_dec_same_seed_same_labels_and_round_trip(dec_fitted, shared_ae, digits, tmp_path):
    again = DEC(encoder_weights=shared_ae[1], random_state=0, **DEC_SMALL).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, dec_fitted.labels_)
    dec_fitted.save(tmp_path / "dec")
    loaded = DEC.load(tmp_path / "dec")
    np.testing.assert_array_equal(loaded.predict(digits.x), dec_fitted.labels_)


def test_dec_pretrains_its_own_autoencoder_when_none_is_given(digits):
    est = DEC(pretrain_epochs=3, maxiter=100, random_state=1, **{
        k: v for k, v in DEC_SMALL.items() if k != "maxiter"}).fit(digits.x[:400])
    assert est.labels_.shape == (400,) and est.labels_.max() < 10


def test_dec_rejects_bad_options(digits):
    with pytest.raises(ValueError, match="target"):
        DEC(target="sharp").fit(digits.x[:100])
    with pytest.raises(ValueError, match="n_clusters"):
        DEC(n_clusters=200).fit(digits.x[:100])


def test_mismatched_autoencoder_is_refused(shared_ae, digits):
    with pytest.raises(ValueError, match="hidden_dims"):
        DEC(encoder_weights=shared_ae[1], hidden_dims=(500, 500, 2000)).fit(digits.x[:100])


# ---------------------------------------------------------------------- VaDE

@pytest.fixture(scope="module")
def vade_fitted(shared_ae, digits):
    return VaDE(encoder_weights=shared_ae[1], random_state=0, log_every=4,
                **VADE_SMALL).fit(digits.x, digits.y)


def test_vade_trains_without_nan_and_keeps_the_gmm_quality(vade_fitted, digits):
    hist = vade_fitted.history_
    assert np.isfinite(hist["loss"]).all()
    assert hist["loss"][-1] < hist["loss"][0]
    assert acc(digits.y, vade_fitted.labels_) > 0.6
    assert acc(digits.y, vade_fitted.labels_) > hist["init_gmm"]["acc"] - 0.1
    w = vade_fitted.weights_
    assert w.shape == (10,) and np.all(w > 0) and w.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.all(vade_fitted.variances_ > 0)
    proba = vade_fitted.predict_proba(digits.x[:6])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    samples = vade_fitted.sample(3)
    assert samples.shape == (10, 3, 64) and samples.min() >= 0 and samples.max() <= 1


def test_vade_same_seed_same_labels_and_round_trip(vade_fitted, shared_ae, digits, tmp_path):
    again = VaDE(encoder_weights=shared_ae[1], random_state=0, **VADE_SMALL).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, vade_fitted.labels_)
    vade_fitted.save(tmp_path / "vade")
    loaded = VaDE.load(tmp_path / "vade")
    np.testing.assert_array_equal(loaded.predict(digits.x), vade_fitted.labels_)


def test_whitening_keeps_the_autoencoder_and_whitens_the_clusters(shared_ae, digits):
    from sklearn.mixture import GaussianMixture

    from core.Conv import build_mlp_autoencoder

    x = digits.x.reshape(len(digits.x), -1)
    encoder, decoder, _ = build_mlp_autoencoder(64, AE["hidden_dims"], AE["latent_dim"], seed=0)
    copy_pretrained_autoencoder(shared_ae[1], encoder, decoder)
    before_codes = encoder.predict(x, verbose=0).astype(np.float64)
    before_rec = decoder.predict(before_codes, verbose=0)
    codes = whiten_code_space(encoder, decoder, x, 10, seed=0, n_init=2)
    np.testing.assert_allclose(encoder.predict(x, verbose=0), codes, atol=1e-3)
    np.testing.assert_allclose(decoder.predict(codes.astype(np.float32), verbose=0), before_rec,
                               atol=1e-3)
    # the codes are an affine image of the old ones, centred, with an identity pooled
    # within-cluster covariance under the mixture fitted on the old codes
    full = GaussianMixture(10, covariance_type="full", n_init=2, random_state=0).fit(before_codes)
    resp = full.predict_proba(before_codes)
    np.testing.assert_allclose(codes.mean(0), 0.0, atol=1e-3)
    pooled = sum(np.cov(codes.T, aweights=resp[:, k]) * resp[:, k].mean() for k in range(10))
    np.testing.assert_allclose(pooled, np.eye(10), atol=0.05)


def test_whitened_codes_start_a_diagonal_mixture_better_on_mnist(mnist_subset):
    from core.checkpoints import pretrained_dir
    from core.Conv import build_mlp_autoencoder

    if not (pretrained_dir() / "mnist_ae-kmeans_full-70k.weights.h5").is_file():
        pytest.skip("shipped MNIST autoencoder not present")
    x, y = mnist_subset
    x = x.reshape(len(x), -1)
    encoder, decoder, _ = build_mlp_autoencoder(784, seed=0)
    copy_pretrained_autoencoder("pretrained:mnist_ae-kmeans_full-70k.weights.h5", encoder,
                                decoder)
    raw = encoder.predict(x, verbose=0)
    white = whiten_code_space(encoder, decoder, x, 10, seed=0)
    raw_acc = acc(y, fit_diag_gmm(raw, 10, 5, 0).predict(raw.astype(np.float64)))
    white_acc = acc(y, fit_diag_gmm(white, 10, 5, 0).predict(white))
    assert white_acc > raw_acc + 0.1, (raw_acc, white_acc)   # measured 0.735 -> 0.901


def test_vade_upstream_start_without_whitening(shared_ae, digits):
    """whiten_codes=False starts from the diagonal mixture on the shared autoencoder's own codes."""
    est = VaDE(encoder_weights=shared_ae[1], random_state=0, whiten_codes=False,
               **dict(VADE_SMALL, epochs=1)).fit(digits.x, digits.y)
    raw = AEKMeans.load(shared_ae[1]).transform(digits.x)
    start = acc(digits.y, fit_diag_gmm(raw, 10, VADE_SMALL["gmm_n_init"], 0).predict(
        raw.astype(np.float64)))
    assert est.history_["init_gmm"]["acc"] == pytest.approx(start)


def test_vade_loss_against_numpy_reference():
    rng = np.random.default_rng(1)
    b, d, k, p = 5, 3, 4, 6
    x = rng.uniform(size=(b, p)).astype(np.float32)
    logits = rng.normal(size=(b, p)).astype(np.float32)
    mu, lv = rng.normal(size=(b, d)).astype(np.float32), rng.normal(size=(b, d)).astype(
        np.float32) * 0.3
    z = (mu + np.exp(0.5 * lv) * rng.normal(size=(b, d))).astype(np.float32)
    a, u, lam_log = (rng.normal(size=k).astype(np.float32), rng.normal(size=(k, d)).astype(
        np.float32), rng.normal(size=(k, d)).astype(np.float32) * 0.2)
    pi, lam = np.exp(a) / np.exp(a).sum(), np.exp(lam_log)
    xh = 1 / (1 + np.exp(-logits))
    rec = -np.sum(x * np.log(xh) + (1 - x) * np.log(1 - xh), axis=1)
    logp = -0.5 * np.sum(np.log(2 * np.pi) + np.log(lam)[None] + (z[:, None] - u[None]) ** 2
                         / lam[None], axis=2) + np.log(pi)[None]
    gamma = np.exp(logp - logp.max(1, keepdims=True))
    gamma /= gamma.sum(1, keepdims=True)
    expected = 0.5 * np.sum(np.log(2 * np.pi) + np.log(lam)[None] + (np.exp(lv)[:, None]
                                                                     + (mu[:, None] - u[None]) ** 2)
                            / lam[None], axis=2)
    kl = (np.sum(gamma * expected, 1) - 0.5 * np.sum(1 + lv, 1) - np.sum(gamma * np.log(pi), 1)
          + np.sum(gamma * np.log(gamma + 1e-10), 1))
    total, r, k_ = vade_loss(x, logits, mu, lv, z, a, u, lam_log)
    assert float(r) == pytest.approx(rec.mean(), rel=1e-4)
    assert float(k_) == pytest.approx(kl.mean(), rel=1e-4)
    assert float(total) == pytest.approx(rec.mean() + kl.mean(), rel=1e-4)


def test_vade_refuses_inputs_outside_unit_range(digits):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        VaDE(pretrain_epochs=1, epochs=1).fit(digits.x[:100] * 16.0)


# ---------------------------------------------------------------------- AE + GMM

def test_ae_gmm_on_shared_codes_and_round_trip(shared_ae, digits, tmp_path):
    est = AEGMM(encoder_weights=shared_ae[1], random_state=0, n_init=2, **AE).fit(digits.x)
    assert acc(digits.y, est.labels_) > 0.6
    np.testing.assert_allclose(est.transform(digits.x), shared_ae[0].transform(digits.x),
                               rtol=1e-5, atol=1e-5)
    est.save(tmp_path / "aegmm")
    loaded = AEGMM.load(tmp_path / "aegmm")
    np.testing.assert_array_equal(loaded.predict(digits.x), est.labels_)
    np.testing.assert_allclose(loaded.predict_proba(digits.x[:4]), est.predict_proba(
        digits.x[:4]), rtol=1e-4, atol=1e-6)
    meta = (tmp_path / "aegmm.json")
    broken = meta.read_text().replace('"gmm"', '"not_gmm"')
    meta.write_text(broken)
    with pytest.raises(CheckpointError, match="mixture"):
        AEGMM.load(tmp_path / "aegmm")


def test_dec_on_mnist_subset_improves_on_kmeans_of_the_shipped_autoencoder(mnist_subset):
    from core.checkpoints import pretrained_dir

    if not (pretrained_dir() / "mnist_ae-kmeans_full-70k.weights.h5").is_file():
        pytest.skip("shipped MNIST autoencoder not present")
    x, y = mnist_subset
    est = DEC(encoder_weights="pretrained:mnist_ae-kmeans_full-70k.weights.h5",
              update_interval=40, maxiter=1200, random_state=0).fit(x, y)
    start, end = est.history_[0]["acc"], acc(y, est.labels_)
    assert start > 0.6
    assert end >= start - 0.02 and end > 0.7


# ---------------------------------------------------------------------- FCAE + DBC

DBC_SMALL = dict(batch_size=64, update_interval=50, maxiter=1500, n_init=5, learning_rate=1e-3)


@pytest.fixture(scope="module")
def shared_fcae(digits, tmp_path_factory):
    from applications.fcae_dbc import FCAEKMeans

    fcae = FCAEKMeans(epochs=25, batch_size=64, n_init=5, random_state=0).fit(digits.x)
    path = tmp_path_factory.mktemp("fcae") / "digits_fcae"
    fcae.save(path)
    return fcae, str(path) + ".weights.h5"


def test_fcae_builds_for_several_image_shapes():
    from core.Conv import build_fcae

    for shape, code in (((28, 28, 1), (3, 3, 10)), ((8, 8, 1), (1, 1, 10)),
                        ((32, 32, 3), (3, 3, 10)), ((27, 27, 1), (3, 3, 10))):
        enc, dec, ae = build_fcae(shape)
        assert tuple(enc.output.shape[1:]) == code
        assert tuple(ae.output.shape[1:]) == shape


def test_fcae_vector_code_layout_has_no_dense_layer_and_a_1x1_code():
    from core.Conv import build_fcae

    for shape in ((28, 28, 1), (32, 32, 3), (27, 27, 1)):
        enc, dec, ae = build_fcae(shape, code_layout="vector")
        assert tuple(enc.output.shape[1:]) == (1, 1, 10)
        assert tuple(ae.output.shape[1:]) == shape
        assert not any(isinstance(layer, keras.layers.Dense) for layer in enc.layers + dec.layers)
    # on MNIST the code convolution spans the 3x3x128 map
    assert tuple(build_fcae((28, 28, 1), code_layout="vector")[0].get_layer("code").kernel.shape) \
        == (3, 3, 128, 10)
    with pytest.raises(ValueError, match="code_layout"):
        build_fcae((28, 28, 1), code_layout="dense")


def test_fcae_vector_layout_clusters_mnist_subset_and_round_trips(mnist_subset, tmp_path):
    from applications.fcae_dbc import DBC, FCAEKMeans

    x, y = mnist_subset
    fcae = FCAEKMeans(code_layout="vector", epochs=15, batch_size=64, n_init=5,
                      random_state=0).fit(x)
    assert fcae.transform(x[:3]).shape == (3, 10)
    assert fcae.history_["loss"][-1] < fcae.history_["loss"][0]
    assert acc(y, fcae.labels_) > 0.45
    fcae.save(tmp_path / "fcae")
    loaded = FCAEKMeans.load(tmp_path / "fcae")
    np.testing.assert_array_equal(loaded.predict(x), fcae.labels_)
    # a DBC built for the other layout refuses this FCAE by name
    with pytest.raises(ValueError, match="code_layout"):
        DBC(fcae_weights=str(tmp_path / "fcae") + ".weights.h5").fit(x[:300])


def test_fcae_kmeans_baseline(shared_fcae, digits):
    fcae, _ = shared_fcae
    assert acc(digits.y, fcae.labels_) > 0.6
    assert fcae.history_["loss"][-1] < fcae.history_["loss"][0]
    assert fcae.transform(digits.x[:3]).shape == (3, 10)
    rec = fcae.reconstruct(digits.x[:3])
    assert rec.shape == (3, 8, 8, 1) and rec.min() >= 0 and rec.max() <= 1


def test_dbc_boosting_sharpens_assignments_and_reproduces(shared_fcae, digits, tmp_path):
    from applications.fcae_dbc import DBC

    est = DBC(fcae_weights=shared_fcae[1], random_state=0, **DBC_SMALL).fit(digits.x, digits.y)
    rounds = est.history_
    assert rounds[0]["acc"] == pytest.approx(acc(digits.y, shared_fcae[0].labels_), abs=0.05)
    # the learning chain makes more samples confident, round after round ("easy first")
    assert rounds[-1]["confident_share"] > rounds[0]["confident_share"]
    assert rounds[-1]["mean_max_q"] > rounds[0]["mean_max_q"]
    assert acc(digits.y, est.labels_) > 0.6
    again = DBC(fcae_weights=shared_fcae[1], random_state=0, **DBC_SMALL).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, est.labels_)
    est.save(tmp_path / "dbc")
    loaded = DBC.load(tmp_path / "dbc")
    np.testing.assert_array_equal(loaded.predict(digits.x), est.labels_)
    np.testing.assert_allclose(loaded.reconstruct(digits.x[:4]), est.reconstruct(digits.x[:4]),
                               atol=1e-6)


def test_dbc_refuses_flat_input_and_mismatched_fcae(shared_fcae, digits):
    from applications.fcae_dbc import DBC

    with pytest.raises(ValueError, match="images"):
        DBC(pretrain_epochs=1).fit(digits.x.reshape(len(digits.x), -1))
    with pytest.raises(ValueError, match="weight shapes .*set code_channels"):
        DBC(fcae_weights=shared_fcae[1], code_channels=4).fit(digits.x[:200])


# ---------------------------------------------------------------------- VAE baselines

@pytest.mark.parametrize("architecture,clusterer", [("mlp", "kmeans"), ("conv", "gmm")])
def test_vae_baselines_cluster_digits_reproducibly(architecture, clusterer, digits, tmp_path):
    from applications.vae_baseline import VAECluster

    params = dict(architecture=architecture, clusterer=clusterer, epochs=25, batch_size=64,
                  hidden_dims=(256, 256, 512), filters=8, random_state=0)
    est = VAECluster(**params).fit(digits.x)
    assert np.isfinite(est.history_["loss"]).all()
    assert est.history_["loss"][-1] < est.history_["loss"][0]
    assert acc(digits.y, est.labels_) > 0.55
    again = VAECluster(**params).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, est.labels_)
    est.save(tmp_path / "vae")
    np.testing.assert_array_equal(VAECluster.load(tmp_path / "vae").predict(digits.x),
                                  est.labels_)
    rec = est.reconstruct(digits.x[:2])
    assert rec.min() >= 0 and rec.max() <= 1


def test_vae_clusterer_on_a_saved_vae_reuses_it_without_training(digits, tmp_path):
    from applications.vae_baseline import VAECluster
    from core.checkpoints import CheckpointError

    params = dict(epochs=15, batch_size=64, hidden_dims=(128, 128, 256), random_state=0)
    gmm = VAECluster(clusterer="gmm", **params).fit(digits.x)
    gmm.save(tmp_path / "vae-gmm")
    kmeans = VAECluster(clusterer="kmeans", vae_weights=str(tmp_path / "vae-gmm"),
                        **params).fit(digits.x)
    assert kmeans.n_steps_ == 0 and kmeans.history_["loss"] == []
    np.testing.assert_array_equal(kmeans.transform(digits.x), gmm.transform(digits.x))
    # the same as training the same seed's VAE again (training is deterministic on CPU)
    trained = VAECluster(clusterer="kmeans", **params).fit(digits.x)
    np.testing.assert_array_equal(kmeans.labels_, trained.labels_)
    with pytest.raises(ValueError, match="weight shapes"):
        VAECluster(clusterer="kmeans", vae_weights=str(tmp_path / "vae-gmm"), latent_dim=4,
                   **params).fit(digits.x)
    with pytest.raises(CheckpointError):
        VAECluster(vae_weights=str(tmp_path / "missing"), **params).fit(digits.x)


def test_vae_baseline_rejects_bad_options(digits):
    from applications.vae_baseline import VAECluster

    with pytest.raises(ValueError, match="architecture"):
        VAECluster(architecture="rnn").fit(digits.x[:100])
    with pytest.raises(ValueError, match="images"):
        VAECluster(architecture="conv").fit(digits.x.reshape(len(digits.x), -1)[:, :50])


# ---------------------------------------------------------------------- DAGMC

def test_dagmc_trains_all_phases_and_round_trips(shared_ae, digits, tmp_path):
    from applications.dagmc import DAGMC, mixture_nll

    params = dict(encoder_weights=shared_ae[1], epochs=8, batch_size=64, gmm_n_init=2,
                  random_state=0, **AE)
    est = DAGMC(**params).fit(digits.x, digits.y)
    hist = est.history_
    for key in ("rec", "nll", "d_loss", "g_loss"):
        assert np.isfinite(hist[key]).all(), key
    assert acc(digits.y, est.labels_) > 0.55
    assert acc(digits.y, est.labels_) > hist["init_gmm"]["acc"] - 0.1
    assert np.all(est.variances_ > 0) and est.weights_.sum() == pytest.approx(1.0, rel=1e-5)
    # the mixture fits the codes better than a single broad Gaussian would
    z = est.transform(digits.x)
    one = -np.mean(np.sum(-0.5 * (np.log(2 * np.pi * z.var(0)) + (z - z.mean(0)) ** 2
                                  / z.var(0)), axis=1))
    nll = float(mixture_nll(z, est.model_.pi_logits, est.model_.gmm_means,
                            est.model_.gmm_log_vars))
    assert nll < one
    again = DAGMC(**params).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, est.labels_)
    est.save(tmp_path / "dagmc")
    np.testing.assert_array_equal(DAGMC.load(tmp_path / "dagmc").predict(digits.x), est.labels_)


def test_dagmc_keeps_the_epoch_with_the_lowest_mixture_nll(shared_ae, digits):
    from applications.dagmc import DAGMC

    est = DAGMC(encoder_weights=shared_ae[1], epochs=8, batch_size=64, gmm_n_init=2,
                stop_patience=2, random_state=0, **AE).fit(digits.x)
    nll = est.history_["nll"]
    assert est.best_epoch_ == int(np.argmin(nll)) + 1
    # either every epoch ran, or training stopped exactly `stop_patience` epochs after the best
    assert len(nll) == 8 or len(nll) == est.best_epoch_ + 2
    assert est.n_steps_ == len(nll) * int(np.ceil(len(digits.x) / 64))
    full = DAGMC(encoder_weights=shared_ae[1], epochs=3, batch_size=64, gmm_n_init=2,
                 stop_patience=None, random_state=0, **AE).fit(digits.x)
    assert len(full.history_["nll"]) == 3 and full.best_epoch_ == 3


def test_dagmc_whitened_start_is_the_mixture_on_whitened_codes(shared_ae, digits):
    from applications.dagmc import DAGMC
    from core.Conv import build_mlp_autoencoder

    est = DAGMC(encoder_weights=shared_ae[1], epochs=1, batch_size=64, gmm_n_init=2,
                whiten_codes=True, random_state=0, **AE).fit(digits.x, digits.y)
    assert np.isfinite(est.history_["nll"]).all()
    x = digits.x.reshape(len(digits.x), -1)
    encoder, decoder, _ = build_mlp_autoencoder(64, AE["hidden_dims"], AE["latent_dim"], seed=0)
    copy_pretrained_autoencoder(shared_ae[1], encoder, decoder)
    codes = whiten_code_space(encoder, decoder, x, 10, seed=0, n_init=2)
    start = acc(digits.y, fit_diag_gmm(codes, 10, 2, 0).predict(codes))
    assert est.history_["init_gmm"]["acc"] == pytest.approx(start)


def test_whitening_a_conv_code_keeps_the_fcae_and_needs_a_vector_code(shared_fcae, digits):
    from applications.fcae_dbc import DBC, FCAEKMeans

    fcae = FCAEKMeans(epochs=3, batch_size=64, n_init=2, random_state=0,
                      code_layout="vector").fit(digits.x)
    before = fcae.reconstruct(digits.x[:20])
    with pytest.raises(ValueError, match="center=True"):   # refused before any weight changes
        whiten_code_space(fcae.model_.encoder, fcae.model_.decoder, digits.x, 10, 0, n_init=2)
    np.testing.assert_array_equal(fcae.reconstruct(digits.x[:20]), before)
    codes = whiten_code_space(fcae.model_.encoder, fcae.model_.decoder, digits.x, 10, 0,
                              n_init=2, center=False)
    np.testing.assert_allclose(fcae.transform(digits.x), codes, atol=1e-3)
    np.testing.assert_allclose(fcae.reconstruct(digits.x[:20]), before, atol=1e-4)
    with pytest.raises(ValueError, match="code_layout='vector'"):
        DBC(fcae_weights=shared_fcae[1], whiten_codes=True).fit(digits.x)
