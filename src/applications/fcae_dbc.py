"""FCAE + DBC: discriminatively boosted clustering on a fully convolutional autoencoder (METHODS.md
§6.3-6.4 and the seed description).

1. ``FCAEKMeans``: the FCAE trained end to end on reconstruction (no layer-wise pretraining), then
   k-means on the flattened code map; the conv-AE baseline and the shared FCAE checkpoint.
2. ``DBC``: the FCAE's encoder with a Student-t soft k-means head (centres from k-means), trained on
   KL(R || S) towards the boosted target r_ij ∝ s_ij^alpha, refreshed once per round (the learning
   chain S0 -> R0 = S1 -> ...); ``target="dec"`` uses DEC's q^2/f instead. The share of confident
   assignments per round is recorded (``history_``): the "easy samples first" curve.

The FCAE layout and alpha are our reading of the paper, which we could not check (METHODS.md §6.1).
"""

import keras
import numpy as np

from applications.ae_baseline import (AEKMeans, copy_matching_weights, resolve_checkpoint,
                                      whiten_code_space)
from applications.dec import SelfTrainingClusterer, make_target_fn
from core.base import require_images
from core.Conv import build_fcae
from core.layer import ClusteringLayer
from core.train import SelfTrainingNet


def _flat(z):
    return z.reshape(len(z), -1)


class FCAENet(keras.Model):
    """Encoder, decoder and a centre table (what an FCAE + k-means checkpoint holds)."""

    def __init__(self, input_shape, n_clusters, code_channels=10, filters=(32, 64, 128),
                 seed=None, code_layout="map", **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, _ = build_fcae(tuple(input_shape), code_channels,
                                                   tuple(filters), seed, code_layout)
        self.clustering = ClusteringLayer(n_clusters, name="clustering")
        self.clustering.build((None, int(np.prod(self.encoder.output.shape[1:]))))
        self.build((None,) + tuple(input_shape))

    def build(self, input_shape):
        super().build(input_shape)

    def call(self, x, training=False):
        return self.decoder(self.encoder(x, training=training), training=training)


class FCAEKMeans(AEKMeans):
    """Fully convolutional autoencoder (MSE; Adam unless ``optimizer="sgd"``) + k-means on its
    flattened code.

    Parameters: ``n_clusters``, ``code_channels``, ``code_layout`` ("map": METHODS.md's 3x3x10
    code map; "vector": one 1x1x10 code, see ``build_fcae``), ``filters``, ``epochs``, ``batch_size``,
    ``learning_rate``, ``optimizer`` ("adam" or "sgd"), ``n_init``, ``log_every``,
    ``random_state``, ``verbose``.
    Attributes: ``labels_``, ``cluster_centers_``, ``model_`` (``FCAENet``), ``history_``.
    """

    input_kind = "image"

    def __init__(self, n_clusters=10, code_channels=10, filters=(32, 64, 128), epochs=50,
                 batch_size=256, learning_rate=1e-3, n_init=20, log_every=0, random_state=None,
                 deterministic=True, verbose=0, optimizer="adam", code_layout="map"):
        self.n_clusters = n_clusters
        self.code_channels = code_channels
        self.code_layout = code_layout
        self.filters = filters
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
        require_images(input_shape, "the FCAE")
        self.model_ = FCAENet(input_shape, self.n_clusters, self.code_channels, self.filters,
                              seed, self.code_layout)

    def _transform(self, X):
        return _flat(self.model_.encoder.predict(X, batch_size=1024, verbose=0))

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        return self.model_.predict(X, batch_size=1024, verbose=0)


class DBC(SelfTrainingClusterer):
    """Discriminatively boosted clustering (sklearn-style, images of any shape).

    Parameters
    ----------
    n_clusters : int
    fcae_weights : an ``FCAEKMeans`` checkpoint (path or ``"pretrained:FILE"``); None trains the
        FCAE here for ``pretrain_epochs``.
    code_channels, filters, code_layout : FCAE layout (10; 32-64-128; "map" or "vector").
    target : ``"boosted"`` (r ∝ s^alpha per sample, default) or ``"dec"`` (q^2/f).
    boost_alpha : the boosting factor alpha (> 1 sharpens; 2 by default).
    optimizer, learning_rate : clustering stage (Adam 1e-4, METHODS.md §6.4).
    batch_size, update_interval, maxiter, tol : 256, 140, 20000, 1e-3.
    whiten_codes : whiten the FCAE's code space before k-means places the centres (ours, needs
        ``code_layout="vector"``; ``applications.ae_baseline.whiten_code_space``).

    Attributes
    ----------
    labels_, cluster_centers_, model_ (``SelfTrainingNet`` over the FCAE encoder), history_ (per
    round: ``confident_share`` (max s > 0.5), ``mean_max_q``, ``changed``, scores with ``y``),
    converged_.
    """

    input_kind = "image"

    def __init__(self, n_clusters=10, fcae_weights=None, code_channels=10,
                 filters=(32, 64, 128), pretrain_epochs=50, target="boosted", boost_alpha=2.0,
                 optimizer="adam", learning_rate=1e-4, batch_size=256, update_interval=140,
                 maxiter=20000, tol=1e-3, n_init=20, random_state=None, deterministic=True,
                 verbose=0, code_layout="map", whiten_codes=False):
        self.n_clusters = n_clusters
        self.fcae_weights = fcae_weights
        self.whiten_codes = whiten_codes
        self.code_channels = code_channels
        self.code_layout = code_layout
        self.filters = filters
        self.pretrain_epochs = pretrain_epochs
        self.target = target
        self.boost_alpha = boost_alpha
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.update_interval = update_interval
        self.maxiter = maxiter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        require_images(input_shape, "the FCAE")
        make_target_fn(self.target, self.boost_alpha)  # validate early
        if self.whiten_codes and self.code_layout != "vector":
            raise ValueError(f"whiten_codes=True needs code_layout='vector' (one code vector "
                             f"per image), got code_layout={self.code_layout!r}")
        encoder, decoder, _ = build_fcae(tuple(input_shape), self.code_channels,
                                         tuple(self.filters), seed, self.code_layout)
        # the decoder rides along so that checkpoints keep it for reconstructions
        self.model_ = SelfTrainingNet(encoder, self.n_clusters, decoder=decoder)

    def _init_encoder(self, X, seed):
        if self.fcae_weights:
            fcae = FCAEKMeans.load(resolve_checkpoint(self.fcae_weights))
        else:
            fcae = FCAEKMeans(self.n_clusters, self.code_channels, self.filters,
                              epochs=self.pretrain_epochs, n_init=1, random_state=seed,
                              deterministic=self.deterministic, verbose=self.verbose,
                              code_layout=self.code_layout).fit(X)
        for ours, theirs in ((self.model_.encoder, fcae.model_.encoder),
                             (self.model_.decoder, fcae.model_.decoder)):
            copy_matching_weights(ours, theirs, f"the FCAE in {self.fcae_weights}",
                                  "code_channels/filters/code_layout/the input shape")
        if self.whiten_codes:
            whiten_code_space(self.model_.encoder, self.model_.decoder, X, self.n_clusters,
                              seed, center=False)

    def reconstruct(self, X):
        """FCAE reconstructions through the fine-tuned encoder and the pretrained decoder."""
        X = self._validate(X, reset=False)
        return self.model_.decoder.predict(self.model_.encoder.predict(X, batch_size=1024,
                                                                      verbose=0), verbose=0)
