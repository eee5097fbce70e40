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


@keras.saving.register_keras_serializable(package="deepcluster")
class Orthonorm(keras.layers.Layer):
    """SpectralNet's Cholesky orthonormalisation (METHODS.md §1.2).

    In training the weights W = sqrt(m) (L^-1)^T, with L L^T = Y^T Y + eps I, are computed from the
    batch (in float64, so that a collapsed column gives no NaN) and stored; at inference the
    stored weights are applied. Then (1/m) (Y W)^T (Y W) = I on the training batch.

    Args:
        epsilon: ridge added to Y^T Y (upstream 1e-7 in float32; 1e-6 here, in float64).
        stop_gradient: treat W as a constant (the paper's alternating scheme); upstream lets the
            gradient flow through the Cholesky factor.

    Input shape: ``(batch, k)``.  Output shape: ``(batch, k)``.
    """

    def __init__(self, epsilon=1e-6, stop_gradient=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.stop_gradient = bool(stop_gradient)

    def build(self, input_shape):
        k = input_shape[-1]
        self.ortho_weights = self.add_weight(name="ortho_weights", shape=(k, k),
                                             initializer="identity", trainable=False)

    def batch_weights(self, y):
        y64 = ops.cast(y, "float64")
        k = ops.shape(y64)[1]
        gram = ops.matmul(ops.transpose(y64), y64) + self.epsilon * ops.eye(k, dtype="float64")
        chol = ops.linalg.cholesky(gram)
        m = ops.cast(ops.shape(y64)[0], "float64")
        weights = ops.sqrt(m) * ops.transpose(ops.linalg.inv(chol))
        weights = ops.cast(weights, y.dtype)
        return ops.stop_gradient(weights) if self.stop_gradient else weights

    def call(self, inputs, training=None):
        if training:
            weights = self.batch_weights(inputs)
            self.ortho_weights.assign(ops.stop_gradient(weights))
            return ops.matmul(inputs, weights)
        return ops.matmul(inputs, self.ortho_weights)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "stop_gradient": self.stop_gradient}
