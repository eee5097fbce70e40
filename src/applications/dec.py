"""DEC: deep embedded clustering on the MLP autoencoder (METHODS.md §6.2), the ancestor baseline.

The encoder of a pretrained d-500-500-2000-10 autoencoder gets a Student-t soft-assignment head
whose centres start at k-means on the codes; encoder and centres are then trained on KL(P || Q)
towards DEC's target P = q^2/f, refreshed every ``update_interval`` steps, until fewer than
``tol`` of the labels change between refreshes (DEC-keras' schedule).

Departure: the autoencoder is our shared one (Adam + MSE, ``ae-kmeans``), not DEC-keras' 300
epochs of SGD(1, 0.9); pass ``encoder_weights=None`` to pretrain one here, or the checkpoint of an
``AEKMeans(optimizer="sgd", learning_rate=1.0, epochs=300)`` for DEC-keras' own.
"""

import math

import keras
import numpy as np

from applications.ae_baseline import init_shared_autoencoder
from core.base import BaseDeepClusterer
from core.Conv import build_mlp_autoencoder
from core.costs import boosted_target, dec_target
from core.train import (SelfTrainingNet, TargetBatches, TargetRefresh, kmeans_labels,
                        make_optimizer)


def make_target_fn(target, boost_alpha):
    """``"dec"``: q^2/f (DEC); ``"boosted"``: q^alpha per sample (DBC)."""
    if target == "dec":
        return dec_target
    if target == "boosted":
        return lambda q: boosted_target(q, boost_alpha)
    raise ValueError(f"target must be 'dec' or 'boosted', got {target!r}")


def self_train(net, X, y, n_clusters, seed, *, batch_size, update_interval, maxiter, tol,
               target_fn, optimizer, n_init, verbose):
    """k-means start of the centres, then rounds of ``update_interval`` steps towards a target
    refreshed from the whole set. Returns ``(refresh_callback, steps_run)``."""
    z = keras.ops.convert_to_numpy(_embed_all(net, X))
    _, centres = kmeans_labels(z, n_clusters, seed, n_init)
    net.clustering.clusters.assign(centres)
    net.compile(optimizer=optimizer)
    batches = TargetBatches(X, n_clusters, batch_size, update_interval, seed)
    refresh = TargetRefresh(batches, target_fn, tol=tol, y=y, verbose=verbose)
    rounds = max(1, math.ceil(maxiter / update_interval))
    hist = net.fit(batches, epochs=rounds, verbose=2 if verbose > 1 else 0, callbacks=[refresh])
    steps = len(hist.history.get("loss", [])) * update_interval
    net.compile()  # drop optimizer state before any save
    return refresh, steps


def _embed_all(net, X, batch_size=4096):
    return np.concatenate([keras.ops.convert_to_numpy(net.embed(X[i:i + batch_size]))
                           for i in range(0, len(X), batch_size)])


class SelfTrainingClusterer(BaseDeepClusterer):
    """What DEC and DBC share: a ``SelfTrainingNet`` model, the self-training fit over the
    pretrained encoder, soft assignments and the centre table. Subclasses build ``model_`` and
    load the pretrained encoder in ``_init_encoder``."""

    momentum = 0.9   # SGD momentum of subclasses without the parameter

    def _init_encoder(self, X, seed):
        raise NotImplementedError

    def _fit(self, X, y, seed):
        self._init_encoder(X, seed)
        refresh, self.n_steps_ = self_train(
            self.model_, X, y, self.n_clusters, seed, batch_size=self.batch_size,
            update_interval=self.update_interval, maxiter=self.maxiter, tol=self.tol,
            target_fn=make_target_fn(self.target, self.boost_alpha),
            optimizer=make_optimizer(self.optimizer, self.learning_rate, self.momentum),
            n_init=self.n_init, verbose=self.verbose)
        self.history_ = refresh.history
        self.converged_ = refresh.converged

    @property
    def cluster_centers_(self):
        return keras.ops.convert_to_numpy(self.model_.clustering.clusters)

    def _transform(self, X):
        return _embed_all(self.model_, X)

    def soft_assignments(self, X):
        """Student-t scores Q of ``X``."""
        X = self._validate(X, reset=False)
        return self.model_.predict(X, batch_size=1024, verbose=0)

    def _predict(self, X):
        return self.model_.predict(X, batch_size=1024, verbose=0).argmax(1).astype(np.int64)


class DEC(SelfTrainingClusterer):
    """Deep embedded clustering (sklearn-style, flat inputs).

    Parameters
    ----------
    n_clusters : int
    encoder_weights : an ``AEKMeans`` checkpoint (path or ``"pretrained:FILE"``) giving the
        pretrained autoencoder; None pretrains one here for ``pretrain_epochs``.
    hidden_dims, latent_dim : autoencoder shape (784-500-500-2000-10).
    pretrain_epochs : autoencoder epochs when ``encoder_weights`` is None.
    optimizer, learning_rate, momentum : clustering stage (DEC-keras: SGD 0.01, momentum 0.9).
    batch_size, update_interval, maxiter, tol : DEC-keras' 256, 140, 20000, 1e-3.
    target : ``"dec"`` (q^2/f) or ``"boosted"`` (q^boost_alpha, DBC's form).
    n_init : k-means restarts for the centres (20).

    Attributes
    ----------
    labels_, cluster_centers_, model_ (``SelfTrainingNet``), history_ (per refresh round),
    n_steps_, converged_.
    """

    input_kind = "flat"

    def __init__(self, n_clusters=10, encoder_weights=None, hidden_dims=(500, 500, 2000),
                 latent_dim=10, pretrain_epochs=50, optimizer="sgd", learning_rate=0.01,
                 momentum=0.9, batch_size=256, update_interval=140, maxiter=20000, tol=1e-3,
                 target="dec", boost_alpha=2.0, n_init=20, random_state=None,
                 deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.encoder_weights = encoder_weights
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.pretrain_epochs = pretrain_epochs
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.update_interval = update_interval
        self.maxiter = maxiter
        self.tol = tol
        self.target = target
        self.boost_alpha = boost_alpha
        self.n_init = n_init
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        make_target_fn(self.target, self.boost_alpha)  # validate early
        encoder, _, _ = build_mlp_autoencoder(int(np.prod(input_shape)), tuple(self.hidden_dims),
                                              self.latent_dim, seed=seed)
        self.model_ = SelfTrainingNet(encoder, self.n_clusters)

    def _init_encoder(self, X, seed):
        init_shared_autoencoder(self, X, seed, self.model_.encoder)
