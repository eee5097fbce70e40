"""SpectralNet (Shaham et al., ICLR 2018), KlugerLab code ported to Keras 3 (METHODS.md §2).

Pipeline: (optional) code space of a pretrained autoencoder -> siamese net trained on kNN pairs
with the contrastive loss -> SpectralNet (MLP ending in tanh + Orthonorm) trained on the spectral
loss with a kNN Gaussian affinity computed on the siamese outputs of each batch -> k-means on the
outputs. Departures from upstream: the learning rate starts at its configured value (upstream's
first spectral epoch ran at lr 0), pairs are index pairs gathered per batch, and the affinity
scale is computed once on the siamese embedding of the training set (as upstream) with sampling
without replacement unless ``scale_with_replacement`` is set. Beyond upstream,
``spectral_solver="exact"`` solves the eigenproblem of one kNN graph of the whole training set
and fits the network to its eigenvectors instead of learning them batch by batch.
"""

import math

import keras
import numpy as np

from core import costs
from core.base import BaseDeepClusterer
from core.layer import ClusteringLayer, Orthonorm
from core.pairs import (approximate_knn_indices, create_pairs_from_unlabeled_data, get_scale,
                        graph_spectral_embedding, knn_indices)
from core.train import LearningHandler, MetricsLogger, kmeans_labels, nearest_centre


def build_mlp(input_dim, hidden_dims, output_dim, output_activation, name, seed=None):
    """ReLU MLP with Glorot-uniform layers (upstream); ``seed`` seeds layer j with
    ``100 * seed + j``, None draws from Keras's global generator."""
    def dense(units, activation, j):
        init = keras.initializers.GlorotUniform(None if seed is None else 100 * seed + j)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init)

    x_in = keras.Input((input_dim,), name="features")
    h = x_in
    for j, units in enumerate(hidden_dims):
        h = dense(units, "relu", j)(h)
    return keras.Model(x_in, dense(output_dim, output_activation, len(hidden_dims))(h),
                       name=name)


def split_rows(n, val_fraction, seed):
    """SpectralNet's hold-out: ``(train_rows, val_rows)`` of a seeded permutation of ``n`` rows,
    the first ``val_fraction`` of it held out (nothing below 20 rows)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n)) if n >= 20 else 0
    return order[n_val:], order[:n_val]


def _unwrap(data):
    """Keras hands a PyDataset's single array to train_step as a 1-tuple."""
    return data[0] if isinstance(data, (tuple, list)) else data


class PairBatches(keras.utils.PyDataset):
    """Batches ``((x[a], x[b]), label)`` gathered from index pairs, reshuffled every epoch."""

    def __init__(self, x, pairs, labels, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.pairs, self.labels, self.batch_size = x, pairs, labels, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(pairs))

    def __len__(self):
        return math.ceil(len(self.pairs) / self.batch_size)

    def __getitem__(self, index):
        idx = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        pairs = self.pairs[idx]
        return (self.x[pairs[:, 0]], self.x[pairs[:, 1]]), self.labels[idx].astype(np.float32)

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.pairs))


class RandomBatches(keras.utils.PyDataset):
    """``steps`` batches of ``batch_size`` rows drawn at random (SpectralNet's "epoch").

    Batch ``index`` of epoch ``e`` is drawn from ``(seed, e, index)`` alone, and epochs are
    counted by ``on_epoch_begin``: Keras peeks at the first batches and ends a spurious epoch
    before training, so draws from one running generator (or an ``on_epoch_end`` count) would
    tie the batches to the Keras version's fetch pattern. Fit it with ``shuffle=False``.
    """

    def __init__(self, x, batch_size, steps, seed, targets=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.batch_size, self.steps = x, min(batch_size, len(x)), steps
        self.targets = targets  # rows drawn alongside x's, batches become (x, targets)
        self.seed, self.epochs_begun = int(seed), 0

    @property
    def epoch(self):
        return max(self.epochs_begun - 1, 0)  # Keras's peeks before the first epoch draw epoch 0

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        idx = rng.choice(len(self.x), self.batch_size, replace=False)
        return self.x[idx] if self.targets is None else (self.x[idx], self.targets[idx])

    def on_epoch_begin(self):
        self.epochs_begun += 1


class SiameseNet(keras.Model):
    """Twin embedder trained on the contrastive loss of (a, b, same-neighbourhood) pairs."""

    def __init__(self, embedder, m_pos=0.05, m_neg=1.0, **kwargs):
        super().__init__(**kwargs)
        self.embedder, self.m_pos, self.m_neg = embedder, m_pos, m_neg
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def _loss(self, data, training):
        (a, b), labels = data
        dist = costs.euclidean_distance(self.embedder(a, training=training),
                                        self.embedder(b, training=training))
        return costs.contrastive_loss(labels, dist, self.m_pos, self.m_neg)

    def train_step(self, data):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = self._loss(data, training=True)
        variables = self.embedder.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        self.loss_tracker.update_state(self._loss(data, training=False))
        return {"loss": self.loss_tracker.result()}


def train_siamese(embedder, train, val, seed, siam_k=2, tot_pairs=600000, epochs=400,
                  batch_size=128, learning_rate=1e-3, patience=10, approx_knn=False, verbose=0,
                  callbacks=(), shuffle_batches=True):
    """SpectralNet's siamese stage (METHODS.md §1.4, §1.6): ``embedder`` learns, with the
    contrastive loss and RMSprop, to pull each point of ``train`` towards its ``siam_k`` nearest
    neighbours and push it from random others; ``val`` (pairs of its own) drives the
    learning-rate handler. The pairs are reshuffled from ``seed`` every epoch;
    ``shuffle_batches`` also lets Keras shuffle the batch order, from its global generator (as
    SpectralNet's checkpoints were trained), so only a seeded caller is reproducible then.
    Returns the Keras history."""
    def neighbours(x, s):
        if approx_knn:
            return approximate_knn_indices(x, siam_k, seed=s)
        return knn_indices(x, siam_k)

    siamese = SiameseNet(embedder)
    siamese.compile(optimizer=keras.optimizers.RMSprop(learning_rate))
    pairs, labels = create_pairs_from_unlabeled_data(neighbours(train, seed), tot_pairs, seed)
    data = PairBatches(train, pairs, labels, batch_size, seed)
    val_data = None
    if len(val) > siam_k:
        vpairs, vlabels = create_pairs_from_unlabeled_data(neighbours(val, seed + 1), tot_pairs,
                                                           seed + 1)
        val_data = PairBatches(val, vpairs, vlabels, batch_size, seed + 1)
    handler = LearningHandler("val_loss" if val_data else "loss", patience)
    return siamese.fit(data, validation_data=val_data, epochs=epochs, verbose=verbose,
                       callbacks=[handler, *callbacks], shuffle=shuffle_batches)


def siamese_embedding(x, n_clusters, seed, epochs=5, siam_k=2, val_fraction=0.1, verbose=0):
    """A siamese metric for ``x`` (n, d), trained on its own nearest-neighbour pairs as
    SpectralNet's siamese stage (upstream's net and settings, ``epochs`` epochs, features divided
    by their global standard deviation, a ``val_fraction`` of the rows held out for the
    learning rate; deterministic for a fixed ``seed`` on CPU). Returns ``(embedding of all rows,
    per-epoch training loss)``."""
    x = np.asarray(x, np.float32)
    x = x / np.float32(max(float(np.std(x)), 1e-12))
    embedder = build_mlp(x.shape[1], (1024, 1024, 512), n_clusters, "relu", "siamese",
                         seed=seed)
    train_rows, val_rows = split_rows(len(x), val_fraction, seed)
    hist = train_siamese(embedder, x[train_rows], x[val_rows], seed, siam_k=siam_k,
                         epochs=epochs, verbose=verbose, shuffle_batches=False)
    embedding = embedder.predict(x, batch_size=4096, verbose=0)
    return embedding, [float(v) for v in hist.history["loss"]]


class SpectralNetModel(keras.Model):
    """Everything a SpectralNet checkpoint holds: optional code-space encoder, siamese embedder,
    the spectral MLP with its Orthonorm layer, and the k-means centres of the outputs."""

    def __init__(self, input_dim, n_clusters, code_dim=None, siamese_dims=(1024, 1024, 512),
                 spectral_dims=(1024, 1024, 512), ae_dims=(500, 500, 2000), n_nbrs=3,
                 **kwargs):
        super().__init__(**kwargs)
        self.n_clusters, self.n_nbrs = int(n_clusters), int(n_nbrs)
        self.encoder = None
        feat_dim = input_dim
        if code_dim:
            from core.Conv import build_mlp_autoencoder

            self.encoder = build_mlp_autoencoder(input_dim, ae_dims, code_dim)[0]
            feat_dim = code_dim
        self.siamese = build_mlp(feat_dim, siamese_dims, n_clusters, "relu", "siamese")
        self.spectral = build_mlp(feat_dim, spectral_dims, n_clusters, "tanh", "spectral")
        self.orthonorm = Orthonorm(name="orthonorm")
        self.orthonorm.build((None, n_clusters))
        self.clustering = ClusteringLayer(n_clusters, name="clustering")
        self.clustering.build((None, n_clusters))
        self.scale = self.add_weight(name="affinity_scale", shape=(), initializer="ones",
                                     trainable=False)
        self.feature_scale = self.add_weight(name="feature_scale", shape=(),
                                             initializer="ones", trainable=False)
        self.use_siamese = True
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.build((None, input_dim))

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def features(self, x):
        return x if self.encoder is None else self.encoder(x, training=False)

    def call(self, features, training=False):
        return self.orthonorm(self.spectral(features, training=training), training=training)

    def _affinity(self, features):
        basis = self.siamese(features, training=False) if self.use_siamese else features
        return costs.knn_affinity(keras.ops.stop_gradient(basis), self.n_nbrs, scale=self.scale)

    def train_step(self, features):
        import tensorflow as tf

        features = _unwrap(features)
        m = keras.ops.cast(keras.ops.shape(features)[0], "float32")
        affinity = self._affinity(features)
        with tf.GradientTape() as tape:
            y = self(features, training=True)
            loss = costs.spectral_loss(affinity, y, 2.0 * m)  # KlugerLab normalisation
        variables = self.spectral.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, features):
        features = _unwrap(features)
        m = keras.ops.cast(keras.ops.shape(features)[0], "float32")
        y_tilde = self.spectral(features, training=False)
        y = keras.ops.matmul(y_tilde, self.orthonorm.batch_weights(y_tilde))  # no weight update
        self.loss_tracker.update_state(costs.spectral_loss(self._affinity(features), y, 2.0 * m))
        return {"loss": self.loss_tracker.result()}


class SpectralNet(BaseDeepClusterer):
    """SpectralNet clustering (sklearn-style).

    Parameters
    ----------
    n_clusters : int
    encoder_weights : path of an ``AEKMeans`` checkpoint (``*.weights.h5``, or
        ``"pretrained:FILE"`` for a shipped one) whose encoder gives the code space
        (METHODS.md §2.1), or None for the input space.
    encoder_hidden_dims, code_dim : the layout of that autoencoder (500-500-2000, 10).
    affinity : ``"siamese"`` (kNN affinity on siamese outputs) or ``"knn"`` (on the features).
    siam_k, siam_tot_pairs, siam_epochs, siam_batch_size, siam_lr, siam_patience : siamese stage
        (upstream: 2, 600000, 400, 128, 1e-3, 10).
    approx_knn : find the siamese neighbours with ``approximate_knn_indices`` (a random-projection
        forest, upstream's ``use_approx`` route; ours is NumPy, not Annoy) instead of exact kNN.
    spec_epochs, spec_batch_size, spec_steps, spec_lr, spec_patience : spectral stage
        (upstream: 400, 1024, 100, 1e-3, 20).
    n_nbrs, scale_nbr : affinity neighbours and the neighbour defining the scale (3, 2).
    spectral_solver : ``"batch"`` (upstream: the spectral loss on the affinity of each random
        batch) or ``"exact"`` (ours): one ``n_nbrs``-NN Gaussian graph of the whole training
        set's basis (siamese outputs or features; scale: the median ``scale_nbr``-th neighbour
        distance of all points), its Ng-Jordan-Weiss eigenvectors on the graph's large
        components (at most ``n_clusters`` of them, each with at least a tenth of the average
        cluster's points; the largest always), and the spectral MLP fitted to them by mean
        squared error in the same random batches and schedule as "batch"; ``transform`` and
        k-means then use its outputs scaled to unit rows (after Orthonorm), as NJW does. Batch
        training stayed at ACC 0.83 on MNIST codes whose full siamese graph clusters at 0.97
        (README, "Where we stand"); the network still embeds unseen points.
    val_fraction : share of points held out to drive the learning-rate schedule (0.1).
    standardize : divide the features by their global standard deviation (one factor, so the
        geometry is unchanged). Ours: on raw features of large scale the tanh output layer
        saturates at +-1 and the spectral stage settles on duplicated columns (the blob test of
        tests/test_spectralnet.py failed); upstream feeds raw features (``standardize=False``).
    log_every : score ACC/NMI/ARI every this many spectral epochs when ``y`` is given (the
        Orthonorm weights and k-means centres as at the end of ``fit``; labels never train).
    random_state, deterministic, verbose : as elsewhere.
    """

    input_kind = "flat"

    def __init__(self, n_clusters=10, encoder_weights=None, encoder_hidden_dims=(500, 500, 2000),
                 code_dim=10, affinity="siamese", siam_k=2, approx_knn=False,
                 siam_tot_pairs=600000, siam_epochs=400, siam_batch_size=128, siam_lr=1e-3,
                 siam_patience=10, spec_epochs=400, spec_batch_size=1024, spec_steps=100,
                 spec_lr=1e-3, spec_patience=20, n_nbrs=3, scale_nbr=2,
                 spectral_solver="batch", scale_with_replacement=False, val_fraction=0.1,
                 standardize=True, n_init=10, log_every=0, random_state=None,
                 deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.encoder_weights = encoder_weights
        self.encoder_hidden_dims = encoder_hidden_dims
        self.code_dim = code_dim
        self.affinity = affinity
        self.siam_k = siam_k
        self.approx_knn = approx_knn
        self.siam_tot_pairs = siam_tot_pairs
        self.siam_epochs = siam_epochs
        self.siam_batch_size = siam_batch_size
        self.siam_lr = siam_lr
        self.siam_patience = siam_patience
        self.spec_epochs = spec_epochs
        self.spec_batch_size = spec_batch_size
        self.spec_steps = spec_steps
        self.spec_lr = spec_lr
        self.spec_patience = spec_patience
        self.n_nbrs = n_nbrs
        self.scale_nbr = scale_nbr
        self.spectral_solver = spectral_solver
        self.scale_with_replacement = scale_with_replacement
        self.val_fraction = val_fraction
        self.standardize = standardize
        self.n_init = n_init
        self.log_every = log_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        if self.affinity not in ("siamese", "knn"):
            raise ValueError(f"affinity must be 'siamese' or 'knn', got {self.affinity!r}")
        if self.spectral_solver not in ("batch", "exact"):
            raise ValueError("spectral_solver must be 'batch' or 'exact', got "
                             f"{self.spectral_solver!r}")
        code_dim = self.code_dim if self.encoder_weights else None
        self.model_ = SpectralNetModel(int(np.prod(input_shape)), self.n_clusters, code_dim,
                                       ae_dims=tuple(self.encoder_hidden_dims),
                                       n_nbrs=self.n_nbrs)
        self.model_.use_siamese = self.affinity == "siamese"

    def _load_code_space(self):
        """Copy the encoder of a shipped/saved AE + k-means checkpoint into the model."""
        from applications.ae_baseline import copy_pretrained_autoencoder

        copy_pretrained_autoencoder(self.encoder_weights, self.model_.encoder,
                                    params="encoder_hidden_dims/code_dim")

    def _fit(self, X, y, seed):
        net = self.model_
        if self.encoder_weights:
            self._load_code_space()
        if self.standardize:
            raw_std = float(np.std(self._features(X)))
            net.feature_scale.assign(1.0 / max(raw_std, 1e-12))
        feats = self._features(X)
        train_rows, val_rows = split_rows(len(feats), self.val_fraction, seed)
        val, train = feats[val_rows], feats[train_rows]
        n_val = len(val_rows)
        monitor = "val_loss" if n_val else "loss"
        self.history_ = {}
        if self.affinity == "siamese":
            basis = self._train_siamese(train, val, seed)
        else:
            basis = train
        scale = get_scale(basis, self.spec_batch_size, self.scale_nbr, seed,
                          replace=self.scale_with_replacement)
        net.scale.assign(max(scale, 1e-6))  # the batch affinity's scale (kept for "exact" too)
        if self.spectral_solver == "exact":
            self._fit_exact(train, basis, feats, y, seed)
            return
        net.compile(optimizer=keras.optimizers.RMSprop(self.spec_lr))
        val_data = RandomBatches(val, self.spec_batch_size, max(1, self.spec_steps // 10),
                                 seed + 2) if n_val > self.n_nbrs else None
        handler, logger, callbacks = self._spectral_callbacks(
            monitor if val_data else "loss", train, feats, y, seed)
        hist = net.fit(RandomBatches(train, self.spec_batch_size, self.spec_steps, seed + 3),
                       validation_data=val_data, epochs=self.spec_epochs, verbose=self.verbose,
                       callbacks=callbacks, shuffle=False)
        self._finish_spectral("spectral_loss", hist, handler, logger, train, feats, seed,
                              min(self.spec_batch_size, len(train)))

    def _spectral_callbacks(self, monitor, train, feats, y, seed):
        """The learning-rate handler and, with labels and ``log_every``, the metric logger."""
        handler = LearningHandler(monitor, self.spec_patience)
        logger = None
        if y is not None and self.log_every:
            # the training step overwrites the stored Orthonorm weights, so scoring mid-fit
            # leaves the run unchanged
            logger = MetricsLogger(feats, y, lambda f: self._cluster_outputs(train, f, seed),
                                   self.log_every, verbose=self.verbose)
        return handler, logger, [handler] + ([logger] if logger else [])

    def _finish_spectral(self, loss_key, hist, handler, logger, train, feats, seed, batch_size):
        """Record the spectral stage's history, freeze Orthonorm and fit k-means (unless the
        logger's last score already did), and drop the optimizer moments before any save."""
        losses = self.history_[loss_key] = [float(v) for v in hist.history["loss"]]
        self.history_["spectral_lr"] = [float(v) for v in handler.lr_history]
        self.history_["metrics"] = logger.history if logger else []
        self.n_steps_ = len(losses) * self.spec_steps
        self.n_samples_trained_ = self.n_steps_ * batch_size
        if not (logger and logger.history and logger.history[-1]["epoch"] == len(losses)):
            self._cluster_outputs(train, feats, seed)
        if self.spectral_solver == "exact":
            self.model_.spectral.compile()
        self.model_.compile()

    def _fit_exact(self, train, basis, feats, y, seed):
        """``spectral_solver="exact"``: regress the spectral MLP's outputs on the eigenvectors of
        the full kNN graph of ``basis`` (rows of ``train``), then freeze Orthonorm and k-means."""
        net = self.model_
        targets, keep, n_comp = graph_spectral_embedding(basis, self.n_clusters, self.n_nbrs,
                                                         self.scale_nbr)
        # Orthonorm rescales the outputs afterwards; keep the targets inside tanh's range
        targets = (0.9 * targets / np.abs(targets).max()).astype(np.float32)
        self.graph_components_, self.graph_points_ = n_comp, int(keep.sum())
        net.spectral.compile(optimizer=keras.optimizers.RMSprop(self.spec_lr), loss="mse")
        handler, logger, callbacks = self._spectral_callbacks("loss", train, feats, y, seed)
        batches = RandomBatches(train[keep], self.spec_batch_size, self.spec_steps, seed + 3,
                                targets=targets)
        hist = net.spectral.fit(batches, epochs=self.spec_epochs, verbose=self.verbose,
                                callbacks=callbacks, shuffle=False)
        self._finish_spectral("regression_loss", hist, handler, logger, train, feats, seed,
                              batches.batch_size)

    def _train_siamese(self, train, val, seed, callbacks=()):
        """Train the siamese embedder on kNN pairs of ``train`` (``val`` drives the learning
        rate); returns its embedding of ``train``. ``callbacks`` are extra Keras callbacks."""
        net = self.model_
        hist = train_siamese(net.siamese, train, val, seed, self.siam_k, self.siam_tot_pairs,
                             self.siam_epochs, self.siam_batch_size, self.siam_lr,
                             self.siam_patience, self.approx_knn, self.verbose, callbacks)
        self.history_["siamese_loss"] = [float(v) for v in hist.history["loss"]]
        return net.siamese.predict(train, batch_size=4096, verbose=0)

    def _cluster_outputs(self, train, feats, seed):
        """Freeze the Orthonorm weights on the training set, fit k-means on the outputs of
        ``feats`` and store its centres; returns the k-means labels."""
        net = self.model_
        y_tilde = net.spectral.predict(train, batch_size=8192, verbose=0)
        net.orthonorm.ortho_weights.assign(net.orthonorm.batch_weights(y_tilde))
        labels, centres = kmeans_labels(self._spectral_outputs(feats), self.n_clusters, seed,
                                        self.n_init)
        net.clustering.clusters.assign(centres)
        return labels

    def _features(self, X):
        scale = float(keras.ops.convert_to_numpy(self.model_.feature_scale))
        if self.model_.encoder is None:
            return X * np.float32(scale)
        return self.model_.encoder.predict(X, batch_size=8192, verbose=0) * np.float32(scale)

    def _spectral_outputs(self, feats):
        out = self.model_.predict(feats, batch_size=8192, verbose=0)
        if self.spectral_solver == "exact":  # NJW: k-means on unit rows, as the targets were
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _transform(self, X):
        return self._spectral_outputs(self._features(X))

    def _predict(self, X):
        return nearest_centre(self._transform(X),
                              keras.ops.convert_to_numpy(self.model_.clustering.clusters))
