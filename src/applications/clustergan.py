"""ClusterGAN (Mukherjee et al., AAAI 2019; METHODS.md §5): a WGAN-GP whose prior mixes a one-hot
cluster code with small Gaussian noise, plus an encoder trained to invert the generator.

One ``train_step`` gets ``n_critic`` real batches: one critic step on each (fresh real images per
critic step, as upstream), then one joint generator+encoder step. Departures, each a flag:
per-sample gradient-penalty epsilon (upstream one scalar per batch: ``gp_per_sample=False``); the
L2 regulariser upstream declares but never adds is dropped; BN runs in inference mode outside
training (upstream always uses batch statistics).

Clustering: ``predict_method="head"`` (argmax of the encoder's cluster logits, default),
``"kmeans"`` (upstream's evaluation: k-means on [z_n, softmax(z_c)], or on softmax(z_c) alone when
beta_n = 0) or ``"backprop"`` (Algorithm 1 of the seed: per one-hot code, optimise z_n under an L1
reconstruction loss plus an L2 penalty, clipped, keep the best code; for small sets).
"""

import keras
import numpy as np
from keras import ops

from applications.infogan import GANClusterer
from core.Conv import build_gan_generator, build_gan_trunk_model
from core.train import TwoPlayerNet, kmeans_labels, nearest_centre


def gradient_penalty(critic, real, fake, seed_generator, per_sample=True):
    """mean (||grad_x~ D(x~)||_2 - 1)^2 at x~ = eps x + (1 - eps) G(z)."""
    import tensorflow as tf

    shape = (ops.shape(real)[0],) + (1,) * (len(real.shape) - 1) if per_sample else (1,) * len(
        real.shape)
    eps = keras.random.uniform(shape, seed=seed_generator)
    mixed = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        scores = critic(mixed, training=True)
    grads = tape.gradient(scores, mixed)
    norms = ops.sqrt(ops.sum(ops.square(ops.reshape(grads, (ops.shape(grads)[0], -1))), axis=1)
                     + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


class ClusterGANNet(TwoPlayerNet):
    """Generator, critic and encoder with two Adam optimizers (critic; generator + encoder),
    Adam(1e-4, 0.5, 0.9) for both, as upstream."""

    tracker_names = ("d_loss", "gp", "g_loss", "rec_n", "rec_c")
    d_learning_rate = g_learning_rate = 1e-4
    adam_betas = (0.5, 0.9)

    def __init__(self, input_shape, n_clusters, noise_dim=30, sigma=0.1, beta_n=10.0,
                 beta_c=10.0, gp_weight=10.0, n_critic=5, gp_per_sample=True, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in input_shape)
        self.n_clusters, self.noise_dim, self.sigma = int(n_clusters), int(noise_dim), sigma
        self.beta_n, self.beta_c, self.gp_weight = beta_n, beta_c, gp_weight
        self.n_critic, self.gp_per_sample = int(n_critic), bool(gp_per_sample)
        self.generator = build_gan_generator(self.image_shape, noise_dim, n_clusters)
        self.critic = build_gan_trunk_model(self.image_shape, 1, "critic")
        self.encoder = build_gan_trunk_model(self.image_shape, noise_dim + n_clusters, "encoder")
        base = 0 if seed is None else int(seed)
        self.prior_seed = keras.random.SeedGenerator(base + 1)
        self.gp_seed = keras.random.SeedGenerator(base + 2)
        self._finish_init(self.image_shape)

    def sample_prior(self, n, classes=None):
        """(z, z_n, class index): z_n ~ N(0, sigma^2 I), one-hot z_c with uniform classes."""
        z_n = self.sigma * keras.random.normal((n, self.noise_dim), seed=self.prior_seed)
        if classes is None:
            classes = keras.random.randint((n,), 0, self.n_clusters, seed=self.prior_seed)
        z_c = ops.one_hot(classes, self.n_clusters)
        return ops.concatenate([z_n, z_c], axis=1), z_n, classes

    def encode(self, x, training=False):
        out = self.encoder(x, training=training)
        return out[:, :self.noise_dim], out[:, self.noise_dim:]

    def call(self, x, training=False):
        return ops.softmax(self.encode(x, training)[1])

    @property
    def d_variables(self):
        return self.critic.trainable_weights

    @property
    def g_variables(self):
        return self.generator.trainable_weights + self.encoder.trainable_weights

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        chunk = ops.shape(x)[0] // self.n_critic
        for i in range(self.n_critic):
            real = x[i * chunk:(i + 1) * chunk]
            z, _, _ = self.sample_prior(chunk)
            with tf.GradientTape() as tape:
                fake = self.generator(z, training=True)
                gp = gradient_penalty(self.critic, real, fake, self.gp_seed, self.gp_per_sample)
                # upstream's sign convention: the critic scores real images low
                d_loss = (ops.mean(self.critic(real, training=True))
                          - ops.mean(self.critic(fake, training=True)) + self.gp_weight * gp)
            variables = self.d_variables
            self.d_optimizer.apply(tape.gradient(d_loss, variables), variables)
        z, z_n, classes = self.sample_prior(chunk)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            adv = ops.mean(self.critic(fake, training=True))
            enc_n, enc_logits = self.encode(fake, training=True)
            rec_n = ops.mean(ops.square(z_n - enc_n))
            rec_c = ops.mean(ops.sparse_categorical_crossentropy(classes, enc_logits,
                                                                 from_logits=True))
            g_loss = adv + self.beta_n * rec_n + self.beta_c * rec_c
        variables = self.g_variables
        self.g_optimizer.apply(tape.gradient(g_loss, variables), variables)
        return self._report(d_loss=d_loss, gp=gp, g_loss=g_loss, rec_n=rec_n, rec_c=rec_c)


def backprop_decode(net, x, steps=100, learning_rate=0.05, l2_weight=0.01, clip=0.6,
                    batch_size=256):
    """Seed Algorithm 1: for each one-hot code, fit z_n to x by Adam on
    ||G(z_n, c_k) - x||_1 + l2_weight ||z_n||^2 (z_n clipped to [-clip, clip], started at the
    encoder's estimate); return the best code per image and its loss, ``(labels, losses)``."""
    import tensorflow as tf

    k = net.n_clusters
    labels, best = [], []
    for start in range(0, len(x), batch_size):
        xb = ops.convert_to_tensor(x[start:start + batch_size])
        n = int(xb.shape[0])
        z0 = ops.convert_to_numpy(net.encode(xb)[0])
        z_n = tf.Variable(np.repeat(z0, k, axis=0).clip(-clip, clip))      # (n k, d)
        codes = ops.tile(ops.eye(k), (n, 1))                                 # (n k, k)
        target = ops.repeat(xb, k, axis=0)
        opt = keras.optimizers.Adam(learning_rate)

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                out = net.generator(ops.concatenate([z_n, codes], axis=1), training=False)
                per = (ops.mean(ops.abs(ops.reshape(out - target, (n * k, -1))), axis=1)
                       + l2_weight * ops.sum(ops.square(z_n), axis=1))
                loss = ops.sum(per)
            opt.apply([tape.gradient(loss, z_n)], [z_n])
            z_n.assign(ops.clip(z_n, -clip, clip))
            return per

        for _ in range(steps):
            per = step()
        per = ops.convert_to_numpy(per).reshape(n, k)
        labels.append(per.argmin(1))
        best.append(per.min(1))
    return np.concatenate(labels).astype(np.int64), np.concatenate(best)


class ClusterGAN(GANClusterer):
    """ClusterGAN (sklearn-style, images in [0, 1] of any shape).

    Parameters
    ----------
    n_clusters : int
    noise_dim, sigma : z_n size and scale (MNIST 30, Fashion 40; sigma 0.1).
    beta_n, beta_c : encoder loss weights (MNIST 10/10, Fashion 0/10).
    epochs : passes over the data; each pass is ``len(X) // (batch_size * n_critic)`` generator
        steps (upstream: up to 500,000 generator steps).
    batch_size, n_critic, gp_weight, learning_rate : 64, 5, 10, 1e-4 (Adam 0.5/0.9).
    gp_per_sample : per-sample GP epsilon (True) or upstream's single scalar (False).
    predict_method : ``"head"``, ``"kmeans"`` (upstream) or ``"backprop"``.
    checkpoint_dir : per-epoch checkpoint; a rerun resumes from it.
    log_every : score ACC/NMI/ARI (head) every this many epochs when ``y`` is given.

    Attributes
    ----------
    labels_, model_ (``ClusterGANNet``), history_, n_steps_ (generator steps), kmeans_centres_.
    """

    net_name = "ClusterGAN"

    def __init__(self, n_clusters=10, noise_dim=30, sigma=0.1, beta_n=10.0, beta_c=10.0,
                 epochs=20, batch_size=64, n_critic=5, gp_weight=10.0, learning_rate=1e-4,
                 gp_per_sample=True, predict_method="head", checkpoint_dir=None, log_every=0,
                 random_state=None, deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.noise_dim = noise_dim
        self.sigma = sigma
        self.beta_n = beta_n
        self.beta_c = beta_c
        self.epochs = epochs
        self.batch_size = batch_size
        self.n_critic = n_critic
        self.gp_weight = gp_weight
        self.learning_rate = learning_rate
        self.gp_per_sample = gp_per_sample
        self.predict_method = predict_method
        self.checkpoint_dir = checkpoint_dir
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        if self.predict_method not in ("head", "kmeans", "backprop"):
            raise ValueError(f"predict_method must be 'head', 'kmeans' or 'backprop', got "
                             f"{self.predict_method!r}")
        super()._build(input_shape, seed)

    def _make_net(self, input_shape, seed):
        return ClusterGANNet(input_shape, self.n_clusters, self.noise_dim, self.sigma,
                             self.beta_n, self.beta_c, self.gp_weight, self.n_critic,
                             self.gp_per_sample, seed)

    def _images_per_step(self):
        return self.batch_size * self.n_critic

    def _compile(self, net):
        lr = self.learning_rate
        net.compile(keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9),
                    keras.optimizers.Adam(lr, beta_1=0.5, beta_2=0.9))

    def _training_data(self, X, seed):
        per_step = self._images_per_step()
        return _Shuffled(X, per_step, seed), {}, len(X) // per_step

    def _log_labels(self, X):
        return self._head_labels(X)

    def _fit(self, X, y, seed):
        super()._fit(X, y, seed)
        if self.predict_method == "kmeans":
            self.kmeans_centres_ = kmeans_labels(self._latent(X), self.n_clusters, 0)[1]

    def _latent(self, X):
        z_n, logits = self._encode(X)
        soft = _softmax(logits)
        return soft if self.beta_n == 0 else np.concatenate([z_n, soft], axis=1)

    def _encode(self, X, batch_size=1024):
        outs = [self.model_.encode(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]
        return (np.concatenate([ops.convert_to_numpy(a) for a, _ in outs]),
                np.concatenate([ops.convert_to_numpy(b) for _, b in outs]))

    def _head_labels(self, X):
        return self._encode(X)[1].argmax(1).astype(np.int64)

    def _transform(self, X):
        return self._latent(X)

    def predict_proba(self, X):
        """Softmax of the encoder's cluster logits."""
        return _softmax(self._encode(self._validate(X, reset=False))[1])

    def _predict(self, X):
        if self.predict_method == "kmeans":
            return nearest_centre(self._latent(X), self.kmeans_centres_)
        if self.predict_method == "backprop":
            return backprop_decode(self.model_, X)[0]
        return self._head_labels(X)

    def _extra_state(self):
        centres = getattr(self, "kmeans_centres_", None)
        return {} if centres is None else {"kmeans_centres": centres.tolist()}

    def _restore_extra(self, extra):
        if "kmeans_centres" in extra:
            self.kmeans_centres_ = np.asarray(extra["kmeans_centres"], dtype=np.float32)

    # ------------------------------------------------------------------ figures
    def sample(self, n_per_cluster=10, seed=0):
        """Generated images, one row per one-hot code: ``(K, n, h, w, c)``."""
        rng = np.random.default_rng(seed)
        k, d = self.n_clusters, self.noise_dim
        z_n = (self.sigma * rng.standard_normal((k * n_per_cluster, d))).astype(np.float32)
        z_c = np.repeat(np.eye(k, dtype=np.float32), n_per_cluster, axis=0)
        out = self.model_.generator.predict(np.concatenate([z_n, z_c], 1), verbose=0)
        return out.reshape((k, n_per_cluster) + out.shape[1:])

    def interpolate(self, from_cluster, to_cluster, n_steps=10, seed=0):
        """G at convex combinations of two one-hot codes (same z_n): ``(n_steps, h, w, c)``."""
        rng = np.random.default_rng(seed)
        z_n = np.repeat(self.sigma * rng.standard_normal((1, self.noise_dim)), n_steps, 0)
        t = np.linspace(0.0, 1.0, n_steps)[:, None]
        eye = np.eye(self.n_clusters)
        z_c = (1 - t) * eye[from_cluster] + t * eye[to_cluster]
        return self.model_.generator.predict(np.concatenate([z_n, z_c], 1).astype(np.float32),
                                             verbose=0)

    def reconstruct(self, X):
        """G(E(x)) with E's noise estimate and the one-hot code of its cluster head."""
        X = self._validate(X, reset=False)
        z_n, logits = self._encode(X)
        z_c = np.eye(self.n_clusters, dtype=np.float32)[logits.argmax(1)]
        return self.model_.generator.predict(np.concatenate([z_n, z_c], 1), verbose=0)


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


class _Shuffled(keras.utils.PyDataset):
    """Whole generator steps of ``per_step`` images, reshuffled every epoch (drops the rest)."""

    def __init__(self, x, per_step, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.per_step = x, per_step
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return len(self.x) // self.per_step

    def __getitem__(self, index):
        return self.x[self.order[index * self.per_step:(index + 1) * self.per_step]]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))
