"""ClusterGAN (issue 5): networks, prior, WGAN-GP, seeds, checkpoints, backprop decoding."""

import keras
import numpy as np
import pytest

from applications.clustergan import ClusterGAN, ClusterGANNet, backprop_decode, gradient_penalty

SMALL = dict(noise_dim=8, epochs=3, batch_size=32, random_state=0)


def test_networks_follow_the_upstream_shapes():
    net = ClusterGANNet((28, 28, 1), 10, noise_dim=30)
    assert tuple(net.generator.input.shape) == (None, 40)
    assert tuple(net.generator.output.shape) == (None, 28, 28, 1)
    assert tuple(net.critic.output.shape) == (None, 1)
    assert tuple(net.encoder.output.shape) == (None, 40)
    odd = ClusterGANNet((27, 30, 3), 4, noise_dim=5)
    assert tuple(odd.generator.output.shape) == (None, 27, 30, 3)


def test_prior_is_one_hot_plus_small_noise():
    net = ClusterGANNet((8, 8, 1), 10, noise_dim=6, sigma=0.1, seed=0)
    z, z_n, classes = net.sample_prior(4000)
    z, z_n, classes = (keras.ops.convert_to_numpy(v) for v in (z, z_n, classes))
    np.testing.assert_array_equal(z[:, 6:].argmax(1), classes)
    assert set(np.unique(z[:, 6:])) == {0.0, 1.0}
    assert abs(z_n.std() - 0.1) < 0.01
    assert np.bincount(classes, minlength=10).min() > 300      # uniform over the clusters


def test_gradient_penalty_matches_a_hand_computed_linear_critic():
    # D(x) = w . x + b has gradient w everywhere: GP = (|w| - 1)^2 whatever epsilon is
    x_in = keras.Input((2, 2, 1))
    out = keras.layers.Dense(1)(keras.layers.Flatten()(x_in))
    critic = keras.Model(x_in, out)
    w = np.array([[0.5], [1.0], [-2.0], [0.25]], dtype=np.float32)
    critic.layers[-1].set_weights([w, np.zeros(1, np.float32)])
    real = np.random.default_rng(0).uniform(size=(5, 2, 2, 1)).astype(np.float32)
    fake = np.random.default_rng(1).uniform(size=(5, 2, 2, 1)).astype(np.float32)
    expected = (np.linalg.norm(w) - 1.0) ** 2
    for per_sample in (True, False):
        gp = gradient_penalty(critic, real, fake, keras.random.SeedGenerator(0), per_sample)
        assert float(gp) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope="module")
def fitted(digits):
    return ClusterGAN(log_every=1, **SMALL).fit(digits.x, digits.y)


def test_training_losses_are_finite_and_labels_valid(fitted, digits):
    for key in ("d_loss", "gp", "g_loss", "rec_n", "rec_c"):
        assert np.isfinite(fitted.history_[key]).all(), key
    assert fitted.n_steps_ == 3 * (len(digits.x) // (32 * 5))
    assert fitted.labels_.shape == (len(digits.x),) and fitted.labels_.max() < 10
    assert len(fitted.history_["metrics"]) == 3
    # the encoder learns to read the cluster code of generated images
    assert fitted.history_["rec_c"][-1] < fitted.history_["rec_c"][0]
    assert fitted.sample(3).shape == (10, 3, 8, 8, 1)
    assert fitted.interpolate(0, 1, 6).shape == (6, 8, 8, 1)
    assert fitted.reconstruct(digits.x[:4]).shape == (4, 8, 8, 1)


def test_same_seed_same_labels_and_round_trip(fitted, digits, tmp_path):
    again = ClusterGAN(**SMALL).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    fitted.save(tmp_path / "cg")
    loaded = ClusterGAN.load(tmp_path / "cg")
    np.testing.assert_array_equal(loaded.predict(digits.x), fitted.labels_)


def test_backprop_decoding_recovers_the_code_of_generated_samples(fitted):
    net = fitted.model_
    z, _, classes = net.sample_prior(30, classes=np.arange(30) % 10)
    images = net.generator.predict(z, verbose=0)
    labels, losses = backprop_decode(net, images, steps=60)
    assert np.mean(labels == np.arange(30) % 10) >= 0.9
    assert np.all(np.isfinite(losses))


def test_resume_and_bad_inputs(digits, tmp_path):
    params = dict(SMALL, checkpoint_dir=str(tmp_path / "ckpt"))
    ClusterGAN(**{**params, "epochs": 1}).fit(digits.x)            # "interrupted" after 1 epoch
    resumed = ClusterGAN(**params).fit(digits.x)
    assert len(resumed.history_["g_loss"]) == 2                     # only the missing epochs
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ClusterGAN(**SMALL).fit(digits.x * 16)
    with pytest.raises(ValueError, match="at least"):
        ClusterGAN(**SMALL).fit(digits.x[:100])
    with pytest.raises(ValueError, match="predict_method"):
        ClusterGAN(predict_method="vote").fit(digits.x)


def test_resume_restores_both_optimizers_state(digits, tmp_path):
    """The checkpoint's Adam moments and step counts load on resume, not fresh ones."""
    import warnings

    from core.train import resume_from

    ckpt = tmp_path / "ckpt"
    ClusterGAN(**{**SMALL, "epochs": 1, "checkpoint_dir": str(ckpt)}).fit(digits.x)
    est = ClusterGAN(**SMALL)
    est._validate(digits.x, reset=True)
    est._build(est.input_shape_, 0)
    net = est.model_
    est._compile(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping variable loading for optimizer"
        resume_from(net, ckpt)
    g_steps = len(digits.x) // (SMALL["batch_size"] * net.n_critic)
    assert int(net.g_optimizer.iterations.numpy()) == g_steps
    assert int(net.d_optimizer.iterations.numpy()) == g_steps * net.n_critic
    moments = [v.numpy() for v in net.g_optimizer.variables[2:]]
    assert len(moments) == 2 * len(net.g_variables)
    assert all(np.any(m != 0) for m in moments[::2])             # first moments of every weight


# ---------------------------------------------------------------------- InfoGAN and CatGAN

def test_catgan_objective_rewards_confident_balanced_real_and_uncertain_fake():
    from applications.catgan import catgan_losses

    k = 4
    confident = np.eye(k, dtype=np.float32)[np.arange(8) % k] * 0.97 + 0.03 / k
    uniform = np.full((8, k), 1.0 / k, dtype=np.float32)
    collapsed = np.tile(np.eye(k, dtype=np.float32)[0] * 0.97 + 0.03 / k, (8, 1))
    d_good, g_bad = (float(v) for v in catgan_losses(confident, uniform))
    d_bad, _ = (float(v) for v in catgan_losses(uniform, confident))
    d_collapsed, _ = (float(v) for v in catgan_losses(collapsed, uniform))
    assert d_good < d_collapsed and d_good < d_bad          # D: confident AND balanced on real
    assert d_good == pytest.approx(-(2 * np.log(k)), abs=0.2)
    _, g_good = (float(v) for v in catgan_losses(confident, confident))
    _, g_collapsed = (float(v) for v in catgan_losses(confident, collapsed))
    assert g_good < g_bad and g_good < g_collapsed           # G: confident and balanced fakes


@pytest.mark.parametrize("name", ["infogan", "catgan"])
def test_head_gans_train_reproduce_and_round_trip(name, digits, tmp_path):
    from applications.catgan import CatGAN
    from applications.infogan import InfoGAN

    cls = InfoGAN if name == "infogan" else CatGAN
    params = dict(epochs=2, batch_size=64, random_state=0)
    est = cls(log_every=1, **params).fit(digits.x, digits.y)
    for key in ("d_loss", "g_loss"):
        assert np.isfinite(est.history_[key]).all()
    assert est.n_steps_ == 2 * (len(digits.x) // 64)
    proba = est.predict_proba(digits.x[:5])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    again = cls(**params).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, est.labels_)
    est.save(tmp_path / name)
    np.testing.assert_array_equal(cls.load(tmp_path / name).predict(digits.x), est.labels_)
    with pytest.raises(ValueError, match="at least"):
        cls(**params).fit(digits.x[:10])
    if name == "catgan":   # samples grouped by the cluster D gives them, one row per cluster
        grid = est.sample_grid(4, seed=0)
        assert grid.shape == (10, 4, 8, 8, 1)
        filled = grid.reshape(40, -1).any(axis=1)
        labels = est.predict(grid.reshape((40, 8, 8, 1))[filled])
        np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 4)[filled])


def test_infogan_mutual_information_term_teaches_q_the_code(digits):
    from applications.infogan import InfoGAN

    est = InfoGAN(epochs=6, batch_size=64, random_state=0).fit(digits.x)
    mi = est.history_["mi"]
    assert mi[-1] < mi[0]
    net = est.model_
    latent, cats, _ = net.sample_prior(200, categories=np.arange(200) % 10)
    fake = net.generator.predict(latent, verbose=0)
    read = est.predict(fake)
    assert np.mean(read == np.arange(200) % 10) > 0.5       # Q recovers G's categorical code
