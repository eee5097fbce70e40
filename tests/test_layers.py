import keras
import numpy as np
import pytest

from core.Conv import (build_cluster_head, build_conv_decoder, build_conv_encoder,
                       build_mlp_autoencoder)
from core.layer import ClusteringLayer, Sampling


def test_clustering_layer_matches_hand_computation():
    layer = ClusteringLayer(2, alpha=1.0)
    layer.build((None, 2))
    layer.clusters.assign(np.array([[0.0, 0.0], [3.0, 4.0]], dtype=np.float32))
    q = keras.ops.convert_to_numpy(layer(np.array([[0.0, 0.0]], dtype=np.float32)))
    # kernels 1/(1+0) = 1 and 1/(1+25) -> normalised
    np.testing.assert_allclose(q, [[26 / 27, 1 / 27]], rtol=1e-6)
    assert layer.compute_output_shape((5, 2)) == (5, 2)


def test_clustering_layer_config_round_trip():
    layer = ClusteringLayer(7, alpha=2.0, name="c")
    clone = ClusteringLayer.from_config(layer.get_config())
    assert clone.n_clusters == 7 and clone.alpha == 2.0


def test_sampling_is_seeded_and_shaped():
    mean = np.zeros((4, 3), dtype=np.float32)
    log_var = np.zeros((4, 3), dtype=np.float32)
    first = keras.ops.convert_to_numpy(Sampling(seed=5)([mean, log_var]))
    second = keras.ops.convert_to_numpy(Sampling(seed=5)([mean, log_var]))
    assert first.shape == (4, 3)
    np.testing.assert_array_equal(first, second)
    # zero variance collapses onto the mean
    tiny = keras.ops.convert_to_numpy(Sampling(seed=1)([mean + 2.0, log_var - 80.0]))
    np.testing.assert_allclose(tiny, 2.0, atol=1e-6)
    assert Sampling.from_config(Sampling(seed=3).get_config()).seed == 3


@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 8, 1), (30, 30, 3)])
def test_conv_encoder_decoder_shapes(shape):
    enc = build_conv_encoder(shape, latent_dim=16, filters=4)
    dec = build_conv_decoder(shape, latent_dim=16, filters=4)
    x = np.random.default_rng(0).random((2,) + shape).astype(np.float32)
    mu, log_var = enc(x)
    assert tuple(mu.shape) == (2, 16) and tuple(log_var.shape) == (2, 16)
    out = keras.ops.convert_to_numpy(dec(mu))
    assert out.shape == (2,) + shape
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_upstream_conv_stack_with_filters_16():
    enc = build_conv_encoder((28, 28, 1), latent_dim=64, filters=16)
    convs = [layer.filters for layer in enc.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [32, 32, 64, 64]
    dec = build_conv_decoder((28, 28, 1), latent_dim=64, filters=16)
    assert dec.layers[1].units == 7 * 7 * 64


def test_mlp_autoencoder_and_head_shapes():
    enc, dec, ae = build_mlp_autoencoder(784, seed=0)
    assert [layer.units for layer in enc.layers[1:]] == [500, 500, 2000, 10]
    assert [layer.units for layer in dec.layers[1:]] == [2000, 500, 500, 784]
    x = np.zeros((3, 784), dtype=np.float32)
    assert tuple(ae(x).shape) == (3, 784)
    head = build_cluster_head(10, 4)
    probs = keras.ops.convert_to_numpy(head(np.ones((3, 10), dtype=np.float32)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_mlp_autoencoder_seed_fixes_initial_weights():
    w1 = build_mlp_autoencoder(20, (8,), 3, seed=4)[2].get_weights()
    w2 = build_mlp_autoencoder(20, (8,), 3, seed=4)[2].get_weights()
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
