"""DAGMC: an adversarial autoencoder whose prior is a learned Gaussian mixture (METHODS.md §8).

No upstream code exists; this is the port proposed in METHODS.md §8.3, every choice ours. Each
``train_step`` runs the three phases on one batch:
1. reconstruction: encoder and decoder on the MSE (the shared autoencoder's loss);
2. mixture fitting: pi = softmax(a), mu, diagonal var = softplus(s) + 1e-4 on the negative
   log-likelihood of the (stop-gradient) codes;
3. adversarial regularisation: a discriminator tells mixture samples (real) from codes (fake);
   the encoder is then updated to fool it (non-saturating loss).
Clusters are argmax of the mixture posterior of the code. Four Adam optimizers: 1e-3 for the
autoencoder and the mixture, 2e-4 (beta_1 0.5) for the discriminator and the encoder's
adversarial step.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from applications.ae_baseline import fit_diag_gmm, init_shared_autoencoder, whiten_code_space
from applications.vade import MixturePriorAttributes, NonFiniteGuard, gmm_log_likelihood
from core.base import BaseDeepClusterer
from core.Conv import build_mlp_autoencoder
from core.train import MetricsLogger, history_dict, report_trackers

VAR_FLOOR = 1e-4


def build_code_discriminator(latent_dim, hidden_dims=(1000, 1000), name="code_discriminator"):
    """d -> 1000 ReLU -> 1000 ReLU -> 1 logit."""
    z_in = keras.Input((latent_dim,), name="code")
    h = z_in
    for units in hidden_dims:
        h = layers.Dense(units, activation="relu")(h)
    return keras.Model(z_in, layers.Dense(1)(h), name=name)


def mixture_nll(z, pi_logits, means, log_vars):
    """-mean_b log Σ_k pi_k N(z_b; mu_k, diag var_k)."""
    joint = ops.log_softmax(pi_logits) + gmm_log_likelihood(z, means, log_vars)
    return -ops.mean(ops.logsumexp(joint, axis=1))


class DAGMCNet(keras.Model):
    """Encoder, decoder, code discriminator and the mixture prior."""

    def __init__(self, input_dim, n_clusters, hidden_dims=(500, 500, 2000), latent_dim=10,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_clusters, self.latent_dim = int(n_clusters), int(latent_dim)
        self.encoder, self.decoder, _ = build_mlp_autoencoder(input_dim, hidden_dims, latent_dim,
                                                              seed=seed)
        self.discriminator = build_code_discriminator(latent_dim)
        self.pi_logits = self.add_weight(name="pi_logits", shape=(n_clusters,),
                                         initializer="zeros")
        self.gmm_means = self.add_weight(name="gmm_means", shape=(n_clusters, latent_dim),
                                         initializer="zeros")
        self.gmm_raw_vars = self.add_weight(name="gmm_raw_vars", shape=(n_clusters, latent_dim),
                                            initializer="zeros")
        self.sample_seed = keras.random.SeedGenerator(0 if seed is None else int(seed) + 1)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("rec", "nll", "d_loss",
                                                                 "g_loss")}
        self.build((None, input_dim))

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, ae_optimizer=None, gmm_optimizer=None, disc_optimizer=None,
                enc_adv_optimizer=None, **kwargs):
        super().compile(**kwargs)
        self.ae_optimizer = ae_optimizer or keras.optimizers.Adam(1e-3)
        self.gmm_optimizer = gmm_optimizer or keras.optimizers.Adam(1e-3)
        self.disc_optimizer = disc_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)
        self.enc_adv_optimizer = enc_adv_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5)

    @property
    def gmm_log_vars(self):
        return ops.log(ops.softplus(self.gmm_raw_vars) + VAR_FLOOR)

    def posterior(self, z):
        return ops.softmax(ops.log_softmax(self.pi_logits)
                           + gmm_log_likelihood(z, self.gmm_means, self.gmm_log_vars), axis=-1)

    def call(self, x, training=False):
        return self.posterior(self.encoder(x, training=training))

    def sample_prior(self, n):
        """Codes drawn from the current mixture (no gradient to the mixture)."""
        comp = keras.random.categorical(ops.expand_dims(ops.log_softmax(self.pi_logits), 0), n,
                                        seed=self.sample_seed)[0]
        means = ops.take(self.gmm_means, comp, axis=0)
        std = ops.exp(0.5 * ops.take(self.gmm_log_vars, comp, axis=0))
        eps = keras.random.normal((n, self.latent_dim), seed=self.sample_seed)
        return ops.stop_gradient(means + std * eps)

    def _step(self, optimizer, tape, loss, variables):
        optimizer.apply(tape.gradient(loss, variables), variables)

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        n = ops.shape(x)[0]
        ae_vars = self.encoder.trainable_weights + self.decoder.trainable_weights
        with tf.GradientTape() as tape:                                   # 1. reconstruction
            z = self.encoder(x, training=True)
            rec = ops.mean(ops.square(x - self.decoder(z, training=True)))
        self._step(self.ae_optimizer, tape, rec, ae_vars)
        gmm_vars = [self.pi_logits, self.gmm_means, self.gmm_raw_vars]
        with tf.GradientTape() as tape:                                   # 2. mixture fitting
            nll = mixture_nll(ops.stop_gradient(z), self.pi_logits, self.gmm_means,
                              self.gmm_log_vars)
        self._step(self.gmm_optimizer, tape, nll, gmm_vars)
        real = self.sample_prior(n)                                       # 3. adversarial
        with tf.GradientTape() as tape:
            fake = ops.stop_gradient(self.encoder(x, training=True))
            d_real, d_fake = self.discriminator(real, training=True), self.discriminator(
                fake, training=True)
            d_loss = ops.mean(ops.binary_crossentropy(ops.ones_like(d_real), d_real, True)
                              + ops.binary_crossentropy(ops.zeros_like(d_fake), d_fake, True))
        self._step(self.disc_optimizer, tape, d_loss, self.discriminator.trainable_weights)
        with tf.GradientTape() as tape:
            d_code = self.discriminator(self.encoder(x, training=True), training=False)
            g_loss = ops.mean(ops.binary_crossentropy(ops.ones_like(d_code), d_code, True))
        self._step(self.enc_adv_optimizer, tape, g_loss, self.encoder.trainable_weights)
        return report_trackers(self.trackers,
                               {"rec": rec, "nll": nll, "d_loss": d_loss, "g_loss": g_loss})


class DAGMC(MixturePriorAttributes, BaseDeepClusterer):
    """Deep adversarial Gaussian-mixture autoencoder (sklearn-style, flat inputs).

    Parameters
    ----------
    n_clusters : int
    encoder_weights : an ``AEKMeans`` checkpoint (path or ``"pretrained:FILE"``) to start from;
        None pretrains the autoencoder here for ``pretrain_epochs``.
    hidden_dims, latent_dim : 784-500-500-2000-10.
    epochs, batch_size : adversarial training (batch 256).
    learning_rate, adv_learning_rate : 1e-3 (autoencoder, mixture), 2e-4 (adversarial phase).
    gmm_n_init : restarts of the initial diagonal ``GaussianMixture`` on the codes.
    whiten_codes : whiten the pretrained code space first and fit the mixture in float64, as
        VaDE does (``applications.ae_baseline.whiten_code_space``); off by default (the MNIST
        preset turns it on; Fashion's shipped checkpoint started without it).
    log_every : score ACC/NMI/ARI every this many epochs when ``y`` is given.
    stop_patience : stop when the mixture NLL of the codes has not improved for this many epochs
        and keep the weights of its best epoch (label-free). Ours: on MNIST the discriminator
        overpowered the encoder after about 17 epochs and the clusters collapsed (ACC 0.78 ->
        0.34 at epoch 30, with the NLL rising from 3.0 to 13.5); None runs every epoch.

    Attributes
    ----------
    labels_, model_ (``DAGMCNet``), history_, n_steps_, weights_/means_/variances_,
    best_epoch_ (the epoch whose weights were kept).
    """

    input_kind = "flat"

    def __init__(self, n_clusters=10, encoder_weights=None, hidden_dims=(500, 500, 2000),
                 latent_dim=10, pretrain_epochs=50, epochs=30, batch_size=256,
                 learning_rate=1e-3, adv_learning_rate=2e-4, gmm_n_init=5, whiten_codes=False,
                 log_every=0, stop_patience=5, random_state=None, deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.encoder_weights = encoder_weights
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.adv_learning_rate = adv_learning_rate
        self.gmm_n_init = gmm_n_init
        self.whiten_codes = whiten_codes
        self.log_every = log_every
        self.stop_patience = stop_patience
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        self.model_ = DAGMCNet(int(np.prod(input_shape)), self.n_clusters,
                               tuple(self.hidden_dims), self.latent_dim, seed=seed)

    def _fit(self, X, y, seed):
        from sklearn.mixture import GaussianMixture

        net = self.model_
        init_shared_autoencoder(self, X, seed, net.encoder, net.decoder)
        if self.whiten_codes:
            z = whiten_code_space(net.encoder, net.decoder, X, self.n_clusters, seed,
                                  self.gmm_n_init)
            gmm = fit_diag_gmm(z, self.n_clusters, self.gmm_n_init, seed)
        else:  # float32 codes, as the shipped checkpoints were started
            z = self._transform(X)
            gmm = GaussianMixture(self.n_clusters, covariance_type="diag",
                                  n_init=self.gmm_n_init, random_state=seed).fit(z)
        net.pi_logits.assign(np.log(gmm.weights_).astype(np.float32))
        net.gmm_means.assign(gmm.means_.astype(np.float32))
        var = np.maximum(gmm.covariances_ - VAR_FLOOR, 1e-6)
        net.gmm_raw_vars.assign(np.log(np.expm1(var)).astype(np.float32))  # softplus^-1
        init_scores = {}
        if y is not None:
            from core.metrics import evaluate

            init_scores = evaluate(y, gmm.predict(z))
        adv = self.adv_learning_rate
        net.compile(keras.optimizers.Adam(self.learning_rate),
                    keras.optimizers.Adam(self.learning_rate),
                    keras.optimizers.Adam(adv, beta_1=0.5), keras.optimizers.Adam(adv, beta_1=0.5))
        callbacks = [NonFiniteGuard()]
        stopper = None
        if self.stop_patience is not None:
            stopper = keras.callbacks.EarlyStopping(monitor="nll", mode="min",
                                                    patience=int(self.stop_patience),
                                                    restore_best_weights=True)
            callbacks.append(stopper)
        logger = None
        if y is not None and self.log_every:
            logger = MetricsLogger(X, y, self._predict, self.log_every, verbose=self.verbose)
            callbacks.insert(0, logger)
        hist = net.fit(X, epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                       verbose=2 if self.verbose else 0, callbacks=callbacks)
        self.history_ = history_dict(hist, logger)
        self.history_["init_gmm"] = init_scores
        ran = len(self.history_.get("nll", []))
        self.n_steps_ = ran * math.ceil(len(X) / self.batch_size)
        self.best_epoch_ = ran if stopper is None or stopper.best_weights is None \
            else int(stopper.best_epoch) + 1
        net.compile()

    def _transform(self, X):
        return self.model_.encoder.predict(X, batch_size=4096, verbose=0)

    def predict_proba(self, X):
        X = self._validate(X, reset=False)
        return ops.convert_to_numpy(self.model_.posterior(self._transform(X)))

    def _predict(self, X):
        return ops.convert_to_numpy(self.model_.posterior(self._transform(X))).argmax(1).astype(
            np.int64)

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        return self.model_.decoder.predict(self._transform(X), batch_size=4096, verbose=0)
