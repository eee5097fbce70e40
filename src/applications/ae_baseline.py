"""Baselines: k-means on raw pixels, and the MLP autoencoder + k-means (``ae-kmeans``).

The autoencoder is the DEC-style 784-500-500-2000-10 network (METHODS.md §2.1, §6.2). Our presets
pretrain it with Adam and MSE rather than DEC-keras' 300 epochs of SGD(lr 1, momentum 0.9), to fit
a CPU budget; ``optimizer="sgd", learning_rate=1.0, epochs=300`` is DEC-keras' schedule.
"""

import keras
import numpy as np
from sklearn.cluster import KMeans

from core.base import BaseDeepClusterer
from core.checkpoints import CheckpointError
from core.Conv import build_mlp_autoencoder
from core.layer import ClusteringLayer
from core.train import MetricsLogger, TimeHistory, kmeans_labels, make_optimizer, nearest_centre


class AEClusterNet(keras.Model):
    """Encoder, decoder and a centre table: everything an AE + k-means checkpoint holds."""

    def __init__(self, input_dim, n_clusters, hidden_dims, latent_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        # the composed autoencoder is not kept as an attribute: it is compiled for pretraining,
        # and a tracked compiled sub-model would put its optimizer state into every checkpoint
        self.encoder, self.decoder, _ = build_mlp_autoencoder(input_dim, hidden_dims, latent_dim,
                                                              seed=seed)
        self.clustering = ClusteringLayer(n_clusters, name="clustering")
        self.build((None, input_dim))

    def build(self, input_shape):
        self.clustering.build((None, self.encoder.output.shape[-1]))
        super().build(input_shape)

    def call(self, x):
        z = self.encoder(x)
        return self.decoder(z), self.clustering(z)


class AEKMeans(BaseDeepClusterer):
    """MLP autoencoder pretrained on reconstruction, then k-means on its 10-d code.

    Parameters
    ----------
    n_clusters : int
    hidden_dims : tuple of int, widths of the encoder's hidden layers.
    latent_dim : int, width of the code.
    epochs, batch_size, learning_rate : autoencoder pretraining schedule (MSE).
    optimizer : ``"adam"`` (our presets) or ``"sgd"`` (momentum 0.9, DEC-keras, with lr 1.0).
    n_init : int, k-means restarts.
    log_every : int, score ACC/NMI/ARI every this many epochs when ``y`` is given (0: never).
    random_state : int, RandomState or None.
    verbose : int, Keras verbosity.

    Attributes
    ----------
    labels_, cluster_centers_, model_ (the ``AEClusterNet``), history_ (losses and metrics).
    """

    input_kind = "flat"

    def __init__(self, n_clusters=10, hidden_dims=(500, 500, 2000), latent_dim=10, epochs=50,
                 batch_size=256, learning_rate=1e-3, n_init=20, log_every=0, random_state=None,
                 deterministic=True, verbose=0, optimizer="adam"):
        self.n_clusters = n_clusters
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.n_init = n_init
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        self.model_ = AEClusterNet(int(np.prod(input_shape)), self.n_clusters,
                                   tuple(self.hidden_dims), self.latent_dim, seed=seed)

    def _fit(self, X, y, seed):
        x_in = keras.Input(self.model_.encoder.input_shape[1:])
        ae = keras.Model(x_in, self.model_.decoder(self.model_.encoder(x_in)), name="autoencoder")
        # (FCAEKMeans reuses this fit with its conv networks)
        ae.compile(optimizer=make_optimizer(self.optimizer, self.learning_rate), loss="mse")
        timer = TimeHistory()
        callbacks = [timer]
        logger = None
        if y is not None and self.log_every:
            def quick_labels(x):
                return kmeans_labels(self._transform(x), self.n_clusters, seed, n_init=1)[0]
            logger = MetricsLogger(X, y, quick_labels, every=self.log_every, verbose=self.verbose)
            callbacks.append(logger)
        hist = ae.fit(X, X, epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                      verbose=self.verbose, callbacks=callbacks)
        self.history_ = {"loss": [float(v) for v in hist.history.get("loss", [])],
                         "epoch_seconds": timer.epoch_seconds,
                         "metrics": logger.history if logger else []}
        self.n_steps_ = int(self.epochs * np.ceil(len(X) / self.batch_size))
        _, centres = kmeans_labels(self._transform(X), self.n_clusters, seed, self.n_init)
        self.model_.clustering.clusters.assign(centres)

    @property
    def cluster_centers_(self):
        return keras.ops.convert_to_numpy(self.model_.clustering.clusters)

    def _transform(self, X):
        return self.model_.encoder.predict(X, batch_size=4096, verbose=0)

    def _predict(self, X):
        return nearest_centre(self._transform(X), self.cluster_centers_)

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        return self.model_.decoder.predict(self._transform(X), batch_size=4096, verbose=0)


def resolve_checkpoint(spec):
    """``"pretrained:FILE"`` (a shipped checkpoint, wherever installed) or a path, as a string."""
    spec = str(spec)
    if spec.startswith("pretrained:"):
        from core.checkpoints import pretrained_dir

        return str(pretrained_dir() / spec.split(":", 1)[1])
    return spec


def copy_pretrained_autoencoder(spec, encoder, decoder=None, params="hidden_dims/latent_dim"):
    """Copy the encoder (and decoder) of a saved/shipped ``AEKMeans`` checkpoint into the given
    networks; the shared MLP autoencoder of DEC, VaDE, SpectralNet's code space and AE+GMM.
    ``params`` names the caller's parameters that fix the layer shapes, for the error message."""
    ae = AEKMeans.load(resolve_checkpoint(spec))
    pairs = [(encoder, ae.model_.encoder)] + ([(decoder, ae.model_.decoder)] if decoder else [])
    for ours, theirs in pairs:
        copy_matching_weights(ours, theirs, f"the autoencoder in {spec}", params)
    return ae


def copy_matching_weights(ours, theirs, source, params):
    """``ours.set_weights(theirs.get_weights())`` after checking that the weight shapes agree;
    ``source`` names where ``theirs`` came from and ``params`` what fixes the shapes."""
    want = [tuple(w.shape) for w in ours.weights]
    have = [tuple(w.shape) for w in theirs.weights]
    if want != have:
        raise ValueError(f"{source} has {theirs.name} weight shapes {have}; set {params} to "
                         f"match (now {want})")
    ours.set_weights(theirs.get_weights())


def init_shared_autoencoder(est, X, seed, encoder, decoder=None):
    """Fill ``encoder`` (and ``decoder``) from ``est.encoder_weights`` when set, else from an
    ``AEKMeans`` pretrained here on ``X`` for ``est.pretrain_epochs`` (DEC, VaDE, DAGMC)."""
    if est.encoder_weights:
        copy_pretrained_autoencoder(est.encoder_weights, encoder, decoder)
        return
    ae = AEKMeans(est.n_clusters, est.hidden_dims, est.latent_dim, epochs=est.pretrain_epochs,
                  n_init=1, random_state=seed, deterministic=est.deterministic,
                  verbose=est.verbose).fit(X)
    encoder.set_weights(ae.model_.encoder.get_weights())
    if decoder is not None:
        decoder.set_weights(ae.model_.decoder.get_weights())


def fit_diag_gmm(z, n_clusters, n_init, seed):
    """The diagonal ``GaussianMixture`` that starts VaDE (and a whitened DAGMC), in float64:
    on float32 codes EM's restarts can land in worse optima (MNIST seed 0 whitened codes, one
    of three restart seeds: 0.790 against 0.878)."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(n_clusters, covariance_type="diag", n_init=n_init,
                           random_state=seed).fit(np.asarray(z, np.float64))


def whiten_code_space(encoder, decoder, X, n_clusters, seed, n_init=5, center=True):
    """Reparametrise the code linearly, z' = (z - mean) T, so that the pooled within-cluster
    covariance of a full-covariance GMM on the codes becomes the identity; the encoder's code
    layer and the decoder's first layer (Dense, or with ``center=False`` the Conv2DTranspose of
    a 1x1 code) absorb T and its inverse, so decoder(encoder(x)) is unchanged. A diagonal
    mixture or k-means then fits clusters that were tilted ellipsoids (MNIST seed 0: diagonal
    GMM 0.726 on the MLP codes, 0.878 whitened; k-means 0.787 on the FCAE's, 0.905 whitened).
    ``center=False`` keeps the mean (a transposed convolution cannot absorb the shift). Returns
    the new codes, flat."""
    from sklearn.mixture import GaussianMixture

    codes = encoder.predict(X, batch_size=4096, verbose=0)
    width = codes.shape[-1]
    if int(np.prod(codes.shape[1:])) != width:
        raise ValueError(f"whitening needs one code vector per sample, got codes of shape "
                         f"{codes.shape[1:]} (use code_layout='vector')")
    first = next(layer for layer in decoder.layers if layer.weights)
    dense_input = isinstance(first, keras.layers.Dense)
    if not (dense_input or (isinstance(first, keras.layers.Conv2DTranspose) and not center)):
        raise ValueError(f"cannot absorb the whitening into {type(first).__name__} "
                         f"{first.name!r}" + (" with center=True" if center else ""))
    z = codes.reshape(len(codes), width).astype(np.float64)
    full = GaussianMixture(n_clusters, covariance_type="full", n_init=n_init,
                           random_state=seed).fit(z)
    pooled = np.einsum("k,kij->ij", full.weights_, full.covariances_)
    eigvals, eigvecs = np.linalg.eigh(pooled)
    transform = eigvecs / np.sqrt(eigvals)                        # pooled -> identity
    inverse = np.linalg.inv(transform)
    centre = z.mean(axis=0) if center else np.zeros(width)
    code_layer = encoder.layers[-1]
    kernel, bias = code_layer.get_weights()                       # kernel (..., width)
    code_layer.set_weights([(kernel @ transform).astype(np.float32),
                            ((bias - centre) @ transform).astype(np.float32)])
    kernel, bias = first.get_weights()
    if dense_input:                                               # kernel (width, units)
        first.set_weights([(inverse @ kernel).astype(np.float32),
                           (centre @ kernel + bias).astype(np.float32)])
    else:                                                         # kernel (.., units, width)
        first.set_weights([(kernel @ inverse.T).astype(np.float32), bias])
    return (z - centre) @ transform


class PixelKMeans(BaseDeepClusterer):
    """k-means on raw pixels (flattened), the floor every method must beat."""

    input_kind = "flat"

    def __init__(self, n_clusters=10, n_init=10, random_state=None, deterministic=True):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.random_state = random_state
        self.deterministic = deterministic

    def _build(self, input_shape, seed):
        self.model_ = KMeans(self.n_clusters, n_init=self.n_init, random_state=seed)

    def _fit(self, X, y, seed):
        self.model_.fit(X)
        self.n_steps_ = int(self.model_.n_iter_)

    @property
    def cluster_centers_(self):
        return self.model_.cluster_centers_

    def _transform(self, X):
        return self.model_.transform(X)

    def _predict(self, X):
        return self.model_.predict(X).astype(np.int64)

    def save(self, path):
        raise NotImplementedError("PixelKMeans has no network to save; refit it (seconds to "
                                  "minutes) with the same random_state for identical labels")


def gmm_state(gmm):
    """A fitted diagonal/full ``GaussianMixture`` as JSON-ready lists (for checkpoints)."""
    return {"covariance_type": gmm.covariance_type, "weights": gmm.weights_.tolist(),
            "means": gmm.means_.tolist(), "covariances": gmm.covariances_.tolist()}


def gmm_from_state(state):
    """Inverse of ``gmm_state``: a ``GaussianMixture`` ready to ``predict``."""
    from sklearn.mixture import GaussianMixture
    from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

    gmm = GaussianMixture(len(state["weights"]), covariance_type=state["covariance_type"])
    gmm.weights_ = np.asarray(state["weights"])
    gmm.means_ = np.asarray(state["means"])
    gmm.covariances_ = np.asarray(state["covariances"])
    gmm.precisions_cholesky_ = _compute_precision_cholesky(gmm.covariances_,
                                                           gmm.covariance_type)
    return gmm


class AEGMM(AEKMeans):
    """The MLP autoencoder (pretrained here, or a saved/shipped one via ``encoder_weights``) with
    a Gaussian mixture on its code instead of k-means (VaDE paper's AE+GMM baseline).

    Extra parameters: ``encoder_weights`` (``"pretrained:FILE"`` or a path of an ``AEKMeans``
    checkpoint; None pretrains), ``covariance_type`` ("full" or "diag"), ``n_init``.
    Attributes as ``AEKMeans`` plus ``gmm_`` (the fitted ``GaussianMixture``).
    """

    def __init__(self, n_clusters=10, encoder_weights=None, hidden_dims=(500, 500, 2000),
                 latent_dim=10, epochs=50, batch_size=256, learning_rate=1e-3,
                 covariance_type="full", n_init=5, log_every=0, random_state=None,
                 deterministic=True, verbose=0, optimizer="adam"):
        super().__init__(n_clusters, hidden_dims, latent_dim, epochs, batch_size, learning_rate,
                         n_init, log_every, random_state, deterministic, verbose, optimizer)
        self.encoder_weights = encoder_weights
        self.covariance_type = covariance_type

    def _fit(self, X, y, seed):
        from sklearn.mixture import GaussianMixture

        if self.covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got "
                             f"{self.covariance_type!r}")
        if self.encoder_weights:
            copy_pretrained_autoencoder(self.encoder_weights, self.model_.encoder,
                                        self.model_.decoder)
            self.history_, self.n_steps_ = {}, 0
        else:
            super()._fit(X, y, seed)
        z = self._transform(X)
        self.gmm_ = GaussianMixture(self.n_clusters, covariance_type=self.covariance_type,
                                    n_init=self.n_init, random_state=seed).fit(z)
        self.model_.clustering.clusters.assign(self.gmm_.means_.astype(np.float32))

    def _predict(self, X):
        return self.gmm_.predict(self._transform(X)).astype(np.int64)

    def predict_proba(self, X):
        """Posterior responsibilities of the mixture components."""
        return self.gmm_.predict_proba(self.transform(X))

    def _extra_state(self):
        return {"gmm": gmm_state(self.gmm_)}

    def _restore_extra(self, extra):
        if "gmm" not in extra:
            raise CheckpointError("this AEGMM checkpoint lacks its mixture parameters ('gmm')")
        self.gmm_ = gmm_from_state(extra["gmm"])
