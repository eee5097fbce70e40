"""Keras 3 layers shared by the methods: reparameterised sampling and Student-t soft assignment."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepcluster")
class Sampling(keras.layers.Layer):
    """Draws z = mu + exp(0.5 * log_var) * eps with eps ~ N(0, I) from its own seed generator.

    Args:
        seed: seed of the layer's ``keras.random.SeedGenerator``.

    Input shape: a list ``[z_mean, z_log_var]`` of two ``(batch, d)`` tensors.
    Output shape: ``(batch, d)``.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="deepcluster")
class ClusteringLayer(keras.layers.Layer):
    """Student-t soft assignment of DEC (METHODS.md §6.2).

    q_ij = (1 + ||z_i - mu_j||^2 / alpha)^(-(alpha + 1) / 2), normalised over j.

    Args:
        n_clusters: number of centres.
        alpha: degrees of freedom of the Student-t kernel (1 in DEC).

    Input shape: ``(batch, d)``.  Output shape: ``(batch, n_clusters)``.
    """

    def __init__(self, n_clusters, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_clusters = int(n_clusters)
        self.alpha = float(alpha)

    def build(self, input_shape):
        self.clusters = self.add_weight(name="clusters", shape=(self.n_clusters, input_shape[-1]),
                                        initializer="glorot_uniform")

    def call(self, inputs):
        sq_dist = ops.sum(ops.square(ops.expand_dims(inputs, 1) - self.clusters), axis=2)
        q = ops.power(1.0 + sq_dist / self.alpha, -(self.alpha + 1.0) / 2.0)
        return q / ops.sum(q, axis=1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_clusters)

    def get_config(self):
        return {**super().get_config(), "n_clusters": self.n_clusters, "alpha": self.alpha}
