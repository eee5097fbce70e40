"""InfoGAN used for clustering (Chen et al., NeurIPS 2016; METHODS.md §9).

Latent: 62-d noise U(-1, 1), a 10-way categorical code and two continuous codes U(-1, 1) (74 in
all). D and Q share the BN DCGAN trunk; D is a sigmoid real/fake head, Q a Dense 128 BN lReLU
head giving the categorical logits and the continuous means. Both D(+Q) and G subtract
lambda * I_hat, the variational MI bound (categorical cross-entropy and fixed-std Gaussian
log-likelihood; H(c) is a constant and dropped). Clusters are argmax of Q's categorical logits on
real images (METHODS.md §9.5; upstream has no clustering code).

``GANClusterer`` is the estimator machinery shared with CatGAN: fit loop with validation, NaN
guard, per-epoch resumable checkpoints, metric logging, and argmax-head prediction.
"""

import keras
import numpy as np
from keras import layers, ops

from applications.vade import NonFiniteGuard
from core.base import BaseDeepClusterer, require_images, require_unit_range
from core.Conv import build_gan_generator, build_gan_trunk
from core.train import (MetricsLogger, StageCheckpoint, TwoPlayerNet, epochs_done,
                        history_dict, resume_from)


class InfoGANNet(TwoPlayerNet):
    """G, the shared D/Q trunk, the D and Q heads; two Adam optimizers (beta_1 0.5): 2e-4 for
    D and Q, 1e-3 for G (upstream)."""

    tracker_names = ("d_loss", "g_loss", "mi")
    d_learning_rate, g_learning_rate = 2e-4, 1e-3

    def __init__(self, input_shape, n_categories=10, noise_dim=62, n_continuous=2,
                 info_weight=1.0, leak=0.01, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in input_shape)
        self.n_categories, self.noise_dim = int(n_categories), int(noise_dim)
        self.n_continuous, self.info_weight = int(n_continuous), float(info_weight)
        self.generator = build_gan_generator(self.image_shape, noise_dim + n_continuous,
                                             n_categories)
        self.trunk = build_gan_trunk(self.image_shape, batch_norm=True, leak=leak)
        self.d_head = layers.Dense(1, name="d_head")
        self.q_head = keras.Sequential([layers.Dense(128),
                                        layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                                        layers.LeakyReLU(leak),
                                        layers.Dense(n_categories + n_continuous)], name="q_head")
        self.d_head.build((None, 1024))
        self.q_head.build((None, 1024))
        self.prior_seed = keras.random.SeedGenerator(0 if seed is None else int(seed) + 1)
        self._finish_init(self.image_shape)

    def sample_prior(self, n, categories=None):
        """(latent, category index, continuous codes)."""
        z = keras.random.uniform((n, self.noise_dim), -1.0, 1.0, seed=self.prior_seed)
        cont = keras.random.uniform((n, self.n_continuous), -1.0, 1.0, seed=self.prior_seed)
        if categories is None:
            categories = keras.random.randint((n,), 0, self.n_categories, seed=self.prior_seed)
        onehot = ops.one_hot(categories, self.n_categories)
        return ops.concatenate([z, cont, onehot], axis=1), categories, cont

    def q_outputs(self, x, training=False):
        out = self.q_head(self.trunk(x, training=training), training=training)
        return out[:, :self.n_categories], out[:, self.n_categories:]

    def call(self, x, training=False):
        return ops.softmax(self.q_outputs(x, training)[0])

    def mutual_information_loss(self, fake, categories, cont):
        """-I_hat + H(c): CE of the categorical code + 0.5 Σ (c - mu)^2 (unit std)."""
        logits, means = self.q_outputs(fake, training=True)
        ce = ops.mean(ops.sparse_categorical_crossentropy(categories, logits, from_logits=True))
        return ce + 0.5 * ops.mean(ops.sum(ops.square(cont - means), axis=1))

    @property
    def d_variables(self):
        return (self.trunk.trainable_weights + self.d_head.trainable_weights
                + self.q_head.trainable_weights)

    @property
    def g_variables(self):
        return self.generator.trainable_weights

    def train_step(self, data):
        import tensorflow as tf

        real = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(real)[0]
        latent, categories, cont = self.sample_prior(n)
        d_vars = self.d_variables
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            d_real = self.d_head(self.trunk(real, training=True))
            d_fake = self.d_head(self.trunk(fake, training=True))
            mi = self.mutual_information_loss(fake, categories, cont)
            d_loss = ops.mean(ops.binary_crossentropy(ops.ones_like(d_real), d_real, True)
                              + ops.binary_crossentropy(ops.zeros_like(d_fake), d_fake, True))
            total_d = d_loss + self.info_weight * mi
        self.d_optimizer.apply(tape.gradient(total_d, d_vars), d_vars)
        latent, categories, cont = self.sample_prior(n)
        with tf.GradientTape() as tape:
            fake = self.generator(latent, training=True)
            d_fake = self.d_head(self.trunk(fake, training=True))
            g_loss = ops.mean(ops.binary_crossentropy(ops.ones_like(d_fake), d_fake, True))
            mi_g = self.mutual_information_loss(fake, categories, cont)
            total_g = g_loss + self.info_weight * mi_g
        g_vars = self.g_variables
        self.g_optimizer.apply(tape.gradient(total_g, g_vars), g_vars)
        return self._report(d_loss=d_loss, g_loss=g_loss, mi=mi_g)


class GANClusterer(BaseDeepClusterer):
    """Estimator machinery of the GANs whose clusters are a classifier head on real images."""

    input_kind = "image"
    net_name = "GAN"

    def _make_net(self, input_shape, seed):
        raise NotImplementedError

    def _build(self, input_shape, seed):
        require_images(input_shape, self.net_name)
        self.model_ = self._make_net(input_shape, seed)

    # hooks for nets that take more than one batch per step or their own optimizers
    def _images_per_step(self):
        return self.batch_size

    def _compile(self, net):
        net.compile()

    def _training_data(self, X, seed):
        """``(data, fit keyword arguments, generator steps per epoch)``."""
        usable = (len(X) // self.batch_size) * self.batch_size   # whole batches (BN statistics)
        order = np.random.default_rng(seed).permutation(len(X))[:usable]
        return X[order], {"batch_size": self.batch_size, "shuffle": True}, usable // self.batch_size

    def _log_labels(self, X):
        return self._predict(X)

    def _fit(self, X, y, seed):
        require_unit_range(X, f"{self.net_name}'s sigmoid generator")
        need = self._images_per_step()
        if len(X) < need:
            what = "batch_size" if need == self.batch_size else "batch_size * n_critic"
            raise ValueError(f"{self.net_name} needs at least {what} = {need} images, "
                             f"got {len(X)}")
        net = self.model_
        self._compile(net)
        done, callbacks = 0, [NonFiniteGuard(monitor="g_loss")]
        if self.checkpoint_dir:
            done, _ = epochs_done(resume_from(net, self.checkpoint_dir), "gan", self.epochs)
            callbacks.append(StageCheckpoint(self.checkpoint_dir, "gan", done))
        logger = None
        if y is not None and self.log_every:
            logger = MetricsLogger(X, y, self._log_labels, self.log_every, verbose=self.verbose)
            callbacks.insert(0, logger)
        data, fit_kwargs, steps_per_epoch = self._training_data(X, seed)
        hist = net.fit(data, epochs=self.epochs, initial_epoch=done,
                       verbose=2 if self.verbose else 0, callbacks=callbacks, **fit_kwargs)
        self.history_ = history_dict(hist, logger)
        self.n_steps_ = self.epochs * steps_per_epoch
        net.compile()

    def _transform(self, X):
        return self.model_.predict(X, batch_size=1024, verbose=0)

    def _predict(self, X):
        return self._transform(X).argmax(1).astype(np.int64)

    def predict_proba(self, X):
        return self._transform(self._validate(X, reset=False))

    def sample(self, n_per_cluster=10, seed=0):
        """Generated images, one row per cluster code: ``(K, n, h, w, c)``."""
        keras.utils.set_random_seed(seed)
        k = self.n_clusters
        latent = self.model_.sample_prior(k * n_per_cluster,
                                          categories=np.repeat(np.arange(k), n_per_cluster))[0]
        out = self.model_.generator.predict(latent, verbose=0)
        return out.reshape((k, n_per_cluster) + out.shape[1:])


class InfoGAN(GANClusterer):
    """InfoGAN clustering (sklearn-style, images in [0, 1]).

    Parameters
    ----------
    n_clusters : int, size of the categorical code (10).
    noise_dim, n_continuous, info_weight : 62, 2, 1 as upstream.
    leak : LeakyReLU slope (upstream code 0.01; the paper's appendix says 0.1).
    epochs, batch_size : passes over the data with batches of 128 (upstream: 5,000 updates).
    checkpoint_dir, log_every, random_state, verbose : as elsewhere.
    """

    net_name = "InfoGAN"

    def __init__(self, n_clusters=10, noise_dim=62, n_continuous=2, info_weight=1.0, leak=0.01,
                 epochs=12, batch_size=128, checkpoint_dir=None, log_every=0, random_state=None,
                 deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.noise_dim = noise_dim
        self.n_continuous = n_continuous
        self.info_weight = info_weight
        self.leak = leak
        self.epochs = epochs
        self.batch_size = batch_size
        self.checkpoint_dir = checkpoint_dir
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _make_net(self, input_shape, seed):
        return InfoGANNet(input_shape, self.n_clusters, self.noise_dim, self.n_continuous,
                          self.info_weight, self.leak, seed)
