"""CatGAN (Springenberg, ICLR 2016; METHODS.md §10): the discriminator is a K-way classifier.

D maximises H[p_X(y)] - E_x H[p(y|x)] + E_z H[p(y|G(z))] (confident and balanced on real data,
uncertain on generated data); G minimises -H[p_G(y)] + E_z H[p(y|G(z))] (confident and balanced
on its samples); marginals are batch estimates. Clusters are argmax p(y|x).

The paper's nets are unverified (§10.3), so CatGAN runs on the DCGAN nets of §9.2 (BN trunk with a
K-way softmax head; the DCGAN generator from uniform noise), as METHODS.md proposes; ``leak`` and
``noise_dim`` are configurable.
"""

import keras
import numpy as np
from keras import layers, ops

from applications.infogan import GANClusterer
from core.Conv import build_gan_generator, build_gan_trunk
from core.train import TwoPlayerNet

EPS = 1e-8


def entropy(p, axis=-1):
    return -ops.sum(p * ops.log(p + EPS), axis=axis)


def catgan_losses(p_real, p_fake):
    """``(d_loss, g_loss)`` from class posteriors of real and generated batches."""
    marginal_real, marginal_fake = ops.mean(p_real, axis=0), ops.mean(p_fake, axis=0)
    d_loss = -(entropy(marginal_real) - ops.mean(entropy(p_real)) + ops.mean(entropy(p_fake)))
    g_loss = -entropy(marginal_fake) + ops.mean(entropy(p_fake))
    return d_loss, g_loss


class CatGANNet(TwoPlayerNet):
    """Generator and K-way classifier D; two Adam(2e-4, beta_1 0.5) optimizers."""

    tracker_names = ("d_loss", "g_loss", "h_marginal_real", "h_cond_real")

    def __init__(self, input_shape, n_clusters=10, noise_dim=100, leak=0.2, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in input_shape)
        self.n_clusters, self.noise_dim = int(n_clusters), int(noise_dim)
        self.generator = build_gan_generator(self.image_shape, noise_dim, 0)
        trunk = build_gan_trunk(self.image_shape, batch_norm=True, leak=leak)
        self.classifier = keras.Model(trunk.input,
                                      layers.Dense(n_clusters, activation="softmax")(trunk.output),
                                      name="classifier")
        self.prior_seed = keras.random.SeedGenerator(0 if seed is None else int(seed) + 1)
        self._finish_init(self.image_shape)

    def sample_prior(self, n, categories=None):
        """Uniform noise; CatGAN has no cluster code, so ``categories`` is ignored."""
        return (keras.random.uniform((n, self.noise_dim), -1.0, 1.0, seed=self.prior_seed),)

    def call(self, x, training=False):
        return self.classifier(x, training=training)

    @property
    def d_variables(self):
        return self.classifier.trainable_weights

    @property
    def g_variables(self):
        return self.generator.trainable_weights

    def train_step(self, data):
        import tensorflow as tf

        real = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(real)[0]
        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_prior(n)[0], training=True)
            p_real = self.classifier(real, training=True)
            d_loss, _ = catgan_losses(p_real, self.classifier(fake, training=True))
        d_vars = self.d_variables
        self.d_optimizer.apply(tape.gradient(d_loss, d_vars), d_vars)
        with tf.GradientTape() as tape:
            fake = self.generator(self.sample_prior(n)[0], training=True)
            _, g_loss = catgan_losses(p_real, self.classifier(fake, training=True))
        g_vars = self.g_variables
        self.g_optimizer.apply(tape.gradient(g_loss, g_vars), g_vars)
        return self._report(d_loss=d_loss, g_loss=g_loss,
                            h_marginal_real=entropy(ops.mean(p_real, axis=0)),
                            h_cond_real=ops.mean(entropy(p_real)))


class CatGAN(GANClusterer):
    """CatGAN clustering (sklearn-style, images in [0, 1]).

    Parameters: ``n_clusters``, ``noise_dim`` (100), ``leak`` (0.2), ``epochs``, ``batch_size``
    (100), ``checkpoint_dir``, ``log_every``, ``random_state``, ``verbose``.
    """

    net_name = "CatGAN"

    def __init__(self, n_clusters=10, noise_dim=100, leak=0.2, epochs=12, batch_size=100,
                 checkpoint_dir=None, log_every=0, random_state=None, deterministic=True,
                 verbose=0):
        self.n_clusters = n_clusters
        self.noise_dim = noise_dim
        self.leak = leak
        self.epochs = epochs
        self.batch_size = batch_size
        self.checkpoint_dir = checkpoint_dir
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _make_net(self, input_shape, seed):
        return CatGANNet(input_shape, self.n_clusters, self.noise_dim, self.leak, seed)

    def sample(self, n_samples=100, seed=0):
        """Generated images with the cluster D assigns to each: ``(images, labels)``."""
        keras.utils.set_random_seed(seed)
        images = self.model_.generator.predict(self.model_.sample_prior(n_samples)[0], verbose=0)
        return images, self.model_.classifier.predict(images, verbose=0).argmax(1).astype(
            np.int64)

    def sample_grid(self, n_per_cluster=10, seed=0):
        """``(K, n, h, w, c)`` like the other generative methods: CatGAN has no cluster code, so
        samples are grouped by the cluster D gives them (short rows are padded with blanks)."""
        images, labels = self.sample(3 * n_per_cluster * self.n_clusters, seed=seed)
        grid = np.zeros((self.n_clusters, n_per_cluster) + images.shape[1:], images.dtype)
        for k in range(self.n_clusters):
            members = images[labels == k][:n_per_cluster]
            grid[k, :len(members)] = members
        return grid
