"""Plain VAE + k-means / GMM baselines (METHODS.md §11) on the MLP or the conv networks.

A VAE with a standard normal prior and a Bernoulli decoder is trained on the negative ELBO; the
clusters come from k-means or a Gaussian mixture on the posterior means mu. The VaDE paper reports
VAE+GMM at 0.73 ACC on MNIST.
"""

import math

import keras
import numpy as np
from keras import layers, ops

from applications.ae_baseline import gmm_from_state, gmm_state
from core.base import BaseDeepClusterer, require_images, require_unit_range
from core.Conv import build_conv_decoder, build_conv_encoder, build_mlp_autoencoder
from core.train import MetricsLogger, history_dict, kmeans_labels, nearest_centre, report_trackers


def vae_loss(x, logits, z_mean, z_log_var):
    """Negative ELBO per sample, batch mean: Σ_p BCE + KL(N(mu, sigma^2) || N(0, I))."""
    batch = ops.shape(x)[0]
    rec = ops.sum(ops.reshape(ops.binary_crossentropy(x, logits, from_logits=True),
                              (batch, -1)), axis=1)
    kl = -0.5 * ops.sum(1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=1)
    return ops.mean(rec + kl), ops.mean(rec), ops.mean(kl)


class VAENet(keras.Model):
    """Encoder (mu, log sigma^2) and logit decoder; ``architecture`` "mlp" (784-500-500-2000-10,
    flat input) or "conv" (the ALRDC/DSCDAN conv networks, image input)."""

    def __init__(self, input_shape, latent_dim=10, architecture="mlp",
                 hidden_dims=(500, 500, 2000), filters=16, seed=None, **kwargs):
        super().__init__(**kwargs)
        input_shape = tuple(int(v) for v in input_shape)
        if architecture == "mlp":
            dim = int(np.prod(input_shape))
            mean_encoder, self.decoder, _ = build_mlp_autoencoder(dim, hidden_dims, latent_dim,
                                                                  seed=seed)
            hidden = mean_encoder.get_layer(f"encoder_{len(hidden_dims) - 1}").output
            log_var = layers.Dense(latent_dim, name="z_log_var", kernel_initializer="zeros")(
                hidden)
            self.encoder = keras.Model(mean_encoder.input, [mean_encoder.output, log_var],
                                       name="vae_encoder")
            build_shape = (None, dim)
        else:
            self.encoder = build_conv_encoder(input_shape, latent_dim, filters)
            self.decoder = build_conv_decoder(input_shape, latent_dim, filters,
                                              output_activation="linear")
            build_shape = (None,) + input_shape
        self.noise_seed = keras.random.SeedGenerator(0 if seed is None else int(seed) + 1)
        self.trackers = {k: keras.metrics.Mean(name=k) for k in ("loss", "rec", "kl")}
        self.build(build_shape)

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, x, training=False):
        return self.encoder(x, training=training)[0]

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(x, training=True)
            eps = keras.random.normal(ops.shape(z_mean), seed=self.noise_seed)
            logits = self.decoder(z_mean + ops.exp(0.5 * z_log_var) * eps, training=True)
            loss, rec, kl = vae_loss(x, logits, z_mean, z_log_var)
        variables = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        return report_trackers(self.trackers, {"loss": loss, "rec": rec, "kl": kl})


class VAECluster(BaseDeepClusterer):
    """VAE + k-means (``clusterer="kmeans"``) or + GMM (``"gmm"``) on mu.

    Parameters: ``n_clusters``, ``architecture`` ("mlp" or "conv"), ``latent_dim``,
    ``hidden_dims`` (MLP), ``filters`` (conv), ``epochs``, ``batch_size``, ``learning_rate``,
    ``clusterer``, ``covariance_type`` (GMM), ``n_init``, ``log_every``, ``random_state``,
    ``vae_weights`` (a saved ``VAECluster``, path or ``"pretrained:FILE"``, whose VAE is reused
    as trained: the VAE is not trained again, only the clusterer is fitted, e.g. k-means on the
    VAE of a VAE + GMM run; the network parameters must match it).
    Attributes: ``labels_``, ``model_`` (``VAENet``), ``history_``, ``cluster_centers_`` or
    ``gmm_``.
    """

    def __init__(self, n_clusters=10, architecture="mlp", latent_dim=10,
                 hidden_dims=(500, 500, 2000), filters=16, epochs=50, batch_size=256,
                 learning_rate=1e-3, clusterer="gmm", covariance_type="full", n_init=5,
                 log_every=0, random_state=None, deterministic=True, verbose=0,
                 vae_weights=None):
        self.n_clusters = n_clusters
        self.architecture = architecture
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.filters = filters
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.clusterer = clusterer
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose
        self.vae_weights = vae_weights

    @property
    def input_kind(self):
        return "image" if self.architecture == "conv" else "flat"

    def _build(self, input_shape, seed):
        if self.architecture not in ("mlp", "conv"):
            raise ValueError(f"architecture must be 'mlp' or 'conv', got {self.architecture!r}")
        if self.clusterer not in ("kmeans", "gmm"):
            raise ValueError(f"clusterer must be 'kmeans' or 'gmm', got {self.clusterer!r}")
        if self.architecture == "conv":
            require_images(input_shape, "the conv VAE")
        self.model_ = VAENet(input_shape, self.latent_dim, self.architecture,
                             tuple(self.hidden_dims), self.filters, seed)

    def _fit(self, X, y, seed):
        require_unit_range(X, "the Bernoulli decoder")
        if self.vae_weights:
            self._reuse_vae()
        else:
            self._train_vae(X, y, seed)
        z = self._transform(X)
        if self.clusterer == "kmeans":
            self.cluster_centers_ = kmeans_labels(z, self.n_clusters, seed, self.n_init)[1]
        else:
            from sklearn.mixture import GaussianMixture

            self.gmm_ = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type,
                                        n_init=self.n_init, random_state=seed).fit(z)

    def _reuse_vae(self):
        from applications.ae_baseline import copy_matching_weights, resolve_checkpoint

        theirs = VAECluster.load(resolve_checkpoint(self.vae_weights)).model_
        copy_matching_weights(self.model_, theirs, f"the VAE in {self.vae_weights}",
                              "architecture/latent_dim/hidden_dims/filters")
        self.history_ = {"loss": [], "reused_vae": str(self.vae_weights)}
        self.n_steps_ = 0

    def _train_vae(self, X, y, seed):
        self.model_.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        callbacks, logger = [], None
        if y is not None and self.log_every:
            logger = MetricsLogger(X, y, lambda x: kmeans_labels(self._transform(x),
                                                                 self.n_clusters, seed, 1)[0],
                                   self.log_every, verbose=self.verbose)
            callbacks.append(logger)
        hist = self.model_.fit(X, epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                               verbose=2 if self.verbose else 0, callbacks=callbacks)
        self.history_ = history_dict(hist, logger)
        self.n_steps_ = self.epochs * math.ceil(len(X) / self.batch_size)
        self.model_.compile()

    def _transform(self, X):
        return self.model_.predict(X, batch_size=1024, verbose=0)

    def _predict(self, X):
        z = self._transform(X)
        if self.clusterer == "kmeans":
            return nearest_centre(z, self.cluster_centers_)
        return self.gmm_.predict(z).astype(np.int64)

    def _extra_state(self):
        if self.clusterer == "kmeans":
            return {"centres": self.cluster_centers_.tolist()}
        return {"gmm": gmm_state(self.gmm_)}

    def _restore_extra(self, extra):
        from core.checkpoints import CheckpointError

        key = "centres" if self.clusterer == "kmeans" else "gmm"
        if key not in extra:
            raise CheckpointError(f"this VAE checkpoint lacks its clustering state ({key!r})")
        if key == "centres":
            self.cluster_centers_ = np.asarray(extra["centres"], dtype=np.float32)
        else:
            self.gmm_ = gmm_from_state(extra["gmm"])

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        logits = self.model_.decoder.predict(self._transform(X), batch_size=1024, verbose=0)
        return 1.0 / (1.0 + np.exp(-logits))
