"""VaDE: variational deep embedding with a Gaussian-mixture prior (METHODS.md §7).

The MLP VAE (784-500-500-2000-10, sigmoid/Bernoulli output) starts from the shared pretrained
autoencoder; the mixture (pi, u, lambda) starts from a diagonal ``GaussianMixture`` fitted to the
codes. One ``train_step`` applies two Adam optimizers (network, mixture), both decayed by 0.9 every
10 epochs with a floor, as upstream. Clusters are argmax of the posterior gamma at z = mu.

Departures (METHODS.md §7.5): pi = softmax(a) and lambda = exp(b), so neither can go negative
(upstream's raw pi gave NaN); gamma is a log-space softmax instead of ``+1e-10``; the AE's linear
output layer becomes the logit layer, rescaled so that sigmoid(logit) tracks its reconstruction;
the code space is whitened (pooled within-cluster covariance -> identity, the AE unchanged) before
the diagonal mixture is fitted, in float64 (``whiten_codes=False``: upstream's start).
"""

import math

import keras
import numpy as np
from keras import layers, ops

from applications.ae_baseline import fit_diag_gmm, init_shared_autoencoder, whiten_code_space
from core.base import BaseDeepClusterer, require_unit_range
from core.Conv import build_mlp_autoencoder
from core.train import MetricsLogger, history_dict, report_trackers

LOG_2PI = float(np.log(2.0 * np.pi))


def gmm_log_likelihood(z, means, log_vars):
    """log N(z; u_c, diag(lambda_c)) for every component: ``(batch, K)``."""
    diff = ops.expand_dims(z, 1) - ops.expand_dims(means, 0)                     # (b, K, d)
    return -0.5 * ops.sum(LOG_2PI + log_vars + ops.square(diff) / ops.exp(log_vars), axis=-1)


def vade_loss(x, logits, z_mean, z_log_var, z, pi_logits, means, log_vars):
    """Negative ELBO of METHODS.md §7.2, averaged over the batch; returns ``(total, rec, kl)``.

    rec = Σ_p BCE(x, sigmoid(logits)) (upstream's 784 · mean BCE).
    """
    rec = ops.sum(ops.reshape(ops.binary_crossentropy(x, logits, from_logits=True),
                              (ops.shape(x)[0], -1)), axis=1)
    log_pi = ops.log_softmax(pi_logits)
    gamma = ops.softmax(log_pi + gmm_log_likelihood(z, means, log_vars), axis=-1)   # (b, K)
    diff = ops.expand_dims(z_mean, 1) - ops.expand_dims(means, 0)
    expected = 0.5 * ops.sum(LOG_2PI + log_vars + (ops.expand_dims(ops.exp(z_log_var), 1)
                                                   + ops.square(diff)) / ops.exp(log_vars),
                             axis=-1)                                             # (b, K)
    kl = (ops.sum(gamma * expected, axis=1)
          - 0.5 * ops.sum(1.0 + z_log_var, axis=1)
          - ops.sum(gamma * log_pi, axis=1)
          + ops.sum(gamma * ops.log(gamma + 1e-10), axis=1))
    return ops.mean(rec + kl), ops.mean(rec), ops.mean(kl)


class VaDENet(keras.Model):
    """Encoder (mu, log sigma^2), logit decoder and the trainable mixture prior."""

    def __init__(self, input_dim, n_clusters, hidden_dims=(500, 500, 2000), latent_dim=10,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.n_clusters, self.latent_dim = int(input_dim), int(n_clusters), \
            int(latent_dim)
        encoder, self.decoder, _ = build_mlp_autoencoder(input_dim, hidden_dims, latent_dim,
                                                         seed=seed)
        last_hidden = encoder.get_layer(f"encoder_{len(hidden_dims) - 1}").output
        # zero kernel: every code starts with the same small variance (set in VaDE._init_mixture)
        log_var = layers.Dense(latent_dim, name="z_log_var", kernel_initializer="zeros")(
            last_hidden)
        self.mean_encoder = encoder
        self.encoder = keras.Model(encoder.input, [encoder.output, log_var], name="vae_encoder")
        self.pi_logits = self.add_weight(name="pi_logits", shape=(n_clusters,),
                                         initializer="zeros")
        self.gmm_means = self.add_weight(name="gmm_means", shape=(n_clusters, latent_dim),
                                         initializer="zeros")
        self.gmm_log_vars = self.add_weight(name="gmm_log_vars", shape=(n_clusters, latent_dim),
                                            initializer="zeros")
        self.noise_seed = keras.random.SeedGenerator(0 if seed is None else int(seed) + 1)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "rec", "kl")}
        self.build((None, input_dim))

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def gmm_variables(self):
        return [self.pi_logits, self.gmm_means, self.gmm_log_vars]

    @property
    def network_variables(self):
        return self.encoder.trainable_weights + self.decoder.trainable_weights

    def compile(self, network_optimizer=None, gmm_optimizer=None, **kwargs):
        """Two Adams (upstream: lr 0.002, epsilon 1e-4 each)."""
        super().compile(**kwargs)
        self.network_optimizer = network_optimizer or keras.optimizers.Adam(2e-3, epsilon=1e-4)
        self.gmm_optimizer = gmm_optimizer or keras.optimizers.Adam(2e-3, epsilon=1e-4)

    def posterior(self, z):
        """gamma_c = p(c | z) under the current mixture."""
        return ops.softmax(ops.log_softmax(self.pi_logits)
                           + gmm_log_likelihood(z, self.gmm_means, self.gmm_log_vars), axis=-1)

    def call(self, x, training=False):
        z_mean, _ = self.encoder(x, training=training)
        return self.posterior(z_mean)

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(x, training=True)
            eps = keras.random.normal(ops.shape(z_mean), seed=self.noise_seed)
            z = z_mean + ops.exp(0.5 * z_log_var) * eps
            logits = self.decoder(z, training=True)
            loss, rec, kl = vade_loss(x, logits, z_mean, z_log_var, z, self.pi_logits,
                                      self.gmm_means, self.gmm_log_vars)
        net_vars, gmm_vars = self.network_variables, self.gmm_variables
        grads = tape.gradient(loss, net_vars + gmm_vars)
        self.network_optimizer.apply(grads[:len(net_vars)], net_vars)
        self.gmm_optimizer.apply(grads[len(net_vars):], gmm_vars)
        return report_trackers(self.trackers, {"loss": loss, "rec": rec, "kl": kl})


class StepDecay(keras.callbacks.Callback):
    """Multiply the given optimizers' learning rates by ``factor`` every ``every`` epochs, never
    below ``floor`` (VaDE: 0.9 every 10 epochs, floor 0.0002)."""

    def __init__(self, optimizers, every=10, factor=0.9, floor=2e-4):
        super().__init__()
        self.optimizers, self.every, self.factor, self.floor = optimizers, every, factor, floor

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        for opt in self.optimizers:
            lr = float(ops.convert_to_numpy(opt.learning_rate))
            opt.learning_rate.assign(max(lr * self.factor, self.floor))


class NonFiniteGuard(keras.callbacks.Callback):
    """Stop with an error naming the epoch and batch at which ``monitor`` became NaN or
    infinite (raised before any checkpoint of that epoch is written)."""

    def __init__(self, monitor="loss"):
        super().__init__()
        self.monitor, self.epoch = monitor, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and not math.isfinite(float(value)):
            raise FloatingPointError(f"{self.monitor} became {float(value)} at epoch "
                                     f"{self.epoch + 1}, batch {batch + 1}; nothing was saved")


class MixturePriorAttributes:
    """``weights_``, ``means_``, ``variances_`` of a model with ``pi_logits``, ``gmm_means`` and
    ``gmm_log_vars`` (VaDE, DAGMC), as NumPy."""

    @property
    def weights_(self):
        return ops.convert_to_numpy(ops.softmax(self.model_.pi_logits))

    @property
    def means_(self):
        return ops.convert_to_numpy(self.model_.gmm_means)

    @property
    def variances_(self):
        return np.exp(ops.convert_to_numpy(self.model_.gmm_log_vars))


class VaDE(MixturePriorAttributes, BaseDeepClusterer):
    """Variational deep embedding (sklearn-style, flat inputs in [0, 1]).

    Parameters
    ----------
    n_clusters : int
    encoder_weights : an ``AEKMeans`` checkpoint (path or ``"pretrained:FILE"``) to start from;
        None pretrains the autoencoder here for ``pretrain_epochs``.
    hidden_dims, latent_dim : 784-500-500-2000-10 as upstream.
    epochs, batch_size : upstream 3000 and 100 (the preset is shorter; see the README).
    learning_rate, gmm_learning_rate, decay_every, decay, min_learning_rate : upstream 0.002,
        0.002, 10, 0.9, 0.0002.
    gmm_n_init : restarts of the initial diagonal ``GaussianMixture``.
    whiten_codes : reparametrise the pretrained code space so that its pooled within-cluster
        covariance is the identity before the diagonal mixture is fitted (ours; upstream False).
    predict_from : ``"mean"`` (mu, ours) or ``"sample"`` (a sampled z, as upstream's monitor).
    log_every : score ACC/NMI/ARI every this many epochs when ``y`` is given.

    Attributes
    ----------
    labels_, model_ (``VaDENet``), history_, n_steps_, weights_/means_/variances_ (the mixture).
    """

    input_kind = "flat"

    def __init__(self, n_clusters=10, encoder_weights=None, hidden_dims=(500, 500, 2000),
                 latent_dim=10, pretrain_epochs=50, epochs=50, batch_size=100,
                 learning_rate=2e-3, gmm_learning_rate=2e-3, decay_every=10, decay=0.9,
                 min_learning_rate=2e-4, gmm_n_init=5, whiten_codes=True, predict_from="mean",
                 log_every=0, random_state=None, deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.encoder_weights = encoder_weights
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.pretrain_epochs = pretrain_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.gmm_learning_rate = gmm_learning_rate
        self.decay_every = decay_every
        self.decay = decay
        self.min_learning_rate = min_learning_rate
        self.gmm_n_init = gmm_n_init
        self.whiten_codes = whiten_codes
        self.predict_from = predict_from
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        if self.predict_from not in ("mean", "sample"):
            raise ValueError(f"predict_from must be 'mean' or 'sample', got "
                             f"{self.predict_from!r}")
        self.model_ = VaDENet(int(np.prod(input_shape)), self.n_clusters,
                              tuple(self.hidden_dims), self.latent_dim, seed=seed)

    def _init_from_autoencoder(self, X, seed):
        net = self.model_
        init_shared_autoencoder(self, X, seed, net.mean_encoder, net.decoder)
        # the AE's linear output approximates x; as logits, 8 x - 4 maps 0 -> 0.018, 1 -> 0.98
        out = net.decoder.layers[-1]
        kernel, bias = out.get_weights()
        out.set_weights([8.0 * kernel, 8.0 * bias - 4.0])
        if self.whiten_codes:
            # its returned codes are not reused: the mixture is fitted on the codes the
            # float32 network now computes, which are the ones training and predict see
            whiten_code_space(net.mean_encoder, net.decoder, X, self.n_clusters, seed,
                              self.gmm_n_init)

    def _init_mixture(self, z, seed):
        """Start the prior from a diagonal GMM on the codes ``z``; return the GMM."""
        gmm = fit_diag_gmm(z, self.n_clusters, self.gmm_n_init, seed)
        self.model_.gmm_means.assign(gmm.means_.astype(np.float32))
        self.model_.gmm_log_vars.assign(np.log(gmm.covariances_).astype(np.float32))
        # posterior variances start at 1/e^2 of the mean within-cluster variance: a random
        # log-variance head (upstream) drowns the pretrained codes in noise and collapses gamma
        log_var_layer = self.model_.encoder.get_layer("z_log_var")
        kernel, _ = log_var_layer.get_weights()
        bias = np.log(gmm.covariances_.mean(axis=0)) - 2.0
        log_var_layer.set_weights([np.zeros_like(kernel), bias.astype(np.float32)])
        return gmm

    def _fit(self, X, y, seed):
        require_unit_range(X, "VaDE's Bernoulli decoder")
        self._init_from_autoencoder(X, seed)
        z = self._transform(X).astype(np.float64)
        gmm = self._init_mixture(z, seed)
        net = self.model_
        net.compile(keras.optimizers.Adam(self.learning_rate, epsilon=1e-4),
                    keras.optimizers.Adam(self.gmm_learning_rate, epsilon=1e-4))
        callbacks = [NonFiniteGuard(), StepDecay([net.network_optimizer, net.gmm_optimizer],
                                                 self.decay_every, self.decay,
                                                 self.min_learning_rate)]
        logger = None
        if y is not None and self.log_every:
            logger = MetricsLogger(X, y, self._predict, self.log_every, verbose=self.verbose)
            callbacks.insert(0, logger)
        init_scores = {}
        if y is not None:
            from core.metrics import evaluate

            init_scores = evaluate(y, gmm.predict(z))
            if self.verbose:
                print(f"[init] GMM on the autoencoder codes: ACC {init_scores['acc']:.4f}",
                      flush=True)
        hist = net.fit(X, epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                       verbose=2 if self.verbose else 0, callbacks=callbacks)
        self.history_ = history_dict(hist, logger)
        self.history_["init_gmm"] = init_scores
        self.n_steps_ = len(self.history_.get("loss", [])) * math.ceil(len(X) / self.batch_size)
        net.compile()  # fresh optimizers: checkpoints carry no Adam moments

    def _encode(self, X, batch_size=4096):
        outs = [self.model_.encoder(X[i:i + batch_size]) for i in range(0, len(X), batch_size)]
        return (np.concatenate([ops.convert_to_numpy(m) for m, _ in outs]),
                np.concatenate([ops.convert_to_numpy(v) for _, v in outs]))

    def _transform(self, X):
        return self._encode(X)[0]

    def _posterior(self, X):
        z_mean, z_log_var = self._encode(X)
        if self.predict_from == "sample":
            rng = np.random.default_rng(self.seed_)
            z_mean = z_mean + np.exp(0.5 * z_log_var) * rng.standard_normal(z_mean.shape)
        return ops.convert_to_numpy(self.model_.posterior(z_mean.astype(np.float32)))

    def _predict(self, X):
        return self._posterior(X).argmax(1).astype(np.int64)

    def predict_proba(self, X):
        """Posterior gamma over the clusters."""
        return self._posterior(self._validate(X, reset=False))

    def sample(self, n_per_cluster=10, seed=0):
        """Decoded draws z ~ N(u_c, lambda_c) per cluster: ``(K, n, input_dim)`` in [0, 1]."""
        rng = np.random.default_rng(seed)
        means, std = self.means_, np.sqrt(self.variances_)
        z = means[:, None, :] + std[:, None, :] * rng.standard_normal(
            (self.n_clusters, n_per_cluster, self.latent_dim))
        logits = self.model_.decoder.predict(z.reshape(-1, self.latent_dim).astype(np.float32),
                                             verbose=0)
        return (1.0 / (1.0 + np.exp(-logits))).reshape(self.n_clusters, n_per_cluster, -1)

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        logits = self.model_.decoder.predict(self._transform(X), batch_size=4096, verbose=0)
        return 1.0 / (1.0 + np.exp(-logits))
