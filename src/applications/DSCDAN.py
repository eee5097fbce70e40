"""DSCDAN: deep spectral clustering with a dual autoencoder network (METHODS.md §3).

Networks of §3.1 (conv VAE at latent 120, 1024-1024-512 softmax head, class-mean prior, global MI
critic T, Orthonorm on the softmax output); two stages selected by ``set_stage``:
- ``pretrain``: the missing upstream pretraining (§3.8.1, our definition): the HEAD loss without
  the spectral term, batch 100;
- ``joint``: L = L_spec + 5 L_rec + 5 L_dual + 1.5 L_KL + L_cat + 0.001 L_MI (§3.2), batches of
  1024 (one epoch of test-10k = upstream's 10 steps per outer iteration).

Flags for the upstream behaviours that differ from the paper (§3.6, §3.8): ``freeze_mi_critic``
(upstream never trains T; default False trains it), ``stop_gradient_affinity`` (upstream lets
L_spec push the codes of kNN pairs apart through W; default True), ``affinity_scale`` (upstream
hard-codes 2.62; default None computes it with ``get_scale`` on the pretrained codes).
Labels are argmax C(mu), as HEAD (no k-means on the Orthonorm output). ``cluster_from="spectral"``
(ours) follows the paper's "k-means in the eigenspace" instead, solved exactly as SpectralNet's
``spectral_solver="exact"``: after the joint stage, k-means on the Ng-Jordan-Weiss eigenvectors of
one kNN graph of all training codes mu, and the head is then fitted to those labels, so that new
images are assigned as the training ones. ``cluster_from="siamese"`` (ours) builds that graph in
the embedding of a siamese net trained on mu's own nearest-neighbour pairs (SpectralNet's metric).
"""

import math

import keras
import numpy as np
from keras import ops

from applications.ADDC import ClassMeanInit, assign, embed, fit_head_to_spectral_clusters
from core import costs
from core.base import BaseDeepClusterer, require_images
from core.Conv import build_cluster_head, build_conv_decoder, build_conv_encoder, build_mi_critic
from core.layer import Orthonorm
from core.pairs import get_scale
from core.train import (LabelChangeStop, MetricsLogger, StageCheckpoint, TimeHistory,
                        epochs_done, history_dict, read_progress, resume_from,
                        write_progress)

STAGES = ("pretrain", "joint")


class DSCDANNet(keras.Model):
    """E, G, C, the class means, the MI critic T and Orthonorm; ``set_stage`` picks the loss."""

    def __init__(self, input_shape, n_clusters, latent_dim=120, filters=16, n_nbrs=5,
                 affinity_scale=2.62, spectral_normaliser=1024.0, freeze_mi_critic=False,
                 stop_gradient_affinity=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in input_shape)
        self.n_clusters, self.latent_dim = int(n_clusters), int(latent_dim)
        self.n_nbrs, self.spectral_normaliser = int(n_nbrs), float(spectral_normaliser)
        self.freeze_mi_critic = bool(freeze_mi_critic)
        self.stop_gradient_affinity = bool(stop_gradient_affinity)
        self.encoder = build_conv_encoder(self.image_shape, latent_dim, filters)
        self.decoder = build_conv_decoder(self.image_shape, latent_dim, filters)
        self.cluster_head = build_cluster_head(latent_dim, n_clusters)
        self.critic = build_mi_critic(2 * latent_dim, hidden_dims=(latent_dim,) * 3,
                                      name="global_mi_critic")
        self.orthonorm = Orthonorm(name="orthonorm")
        self.orthonorm.build((None, n_clusters))
        self.class_means = self.add_weight(name="class_means", shape=(n_clusters, latent_dim),
                                           initializer="zeros")
        self.affinity_scale = self.add_weight(name="affinity_scale", shape=(),
                                              initializer=keras.initializers.Constant(
                                                  affinity_scale), trainable=False)
        base = 0 if seed is None else int(seed)
        self.noise_seed = keras.random.SeedGenerator(base + 1)
        self.shuffle_seed = keras.random.SeedGenerator(base + 2)
        self.stage = "pretrain"
        self.trackers = {k: keras.metrics.Mean(name=k) for k in
                         ("loss", "rec", "dual", "kl", "cat", "mi", "spectral")}
        self.build((None,) + self.image_shape)

    def build(self, input_shape):
        super().build(input_shape)

    def set_stage(self, stage):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
        self.stage = stage
        self.train_function = None

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def trained_variables(self):
        variables = (self.encoder.trainable_weights + self.decoder.trainable_weights
                     + self.cluster_head.trainable_weights + [self.class_means])
        return variables if self.freeze_mi_critic else variables + self.critic.trainable_weights

    def call(self, x, training=False):
        z_mean, _ = self.encoder(x, training=training)
        return self.cluster_head(z_mean, training=training)

    def losses_on(self, x):
        """Every term of §3.2 on a batch (a dict of scalars; ``total`` follows the stage)."""
        z_mean, z_log_var = self.encoder(x, training=True)
        z = z_mean + ops.exp(0.5 * z_log_var) * keras.random.normal(ops.shape(z_mean),
                                                                    seed=self.noise_seed)
        x_noisy, x_clean = self.decoder(z, training=True), self.decoder(z_mean, training=True)
        y = self.cluster_head(z_mean, training=True)
        terms = {"rec": costs.sum_of_batch_mean_squares(x, x_noisy),
                 "dual": 0.5 * costs.sum_of_batch_mean_squares(x_clean, x_noisy),
                 "kl": costs.mixture_kl(z_mean, z_log_var, y, self.class_means),
                 "cat": costs.categorical_neg_entropy(y),
                 "mi": costs.jsd_mi_loss(self.critic, z, z,
                                         costs.shuffle_rows(z, self.shuffle_seed))}
        total = (5.0 * terms["rec"] + 5.0 * terms["dual"] + 1.5 * terms["kl"] + terms["cat"]
                 + 0.001 * terms["mi"])
        if self.stage == "joint":
            codes = ops.stop_gradient(z_mean) if self.stop_gradient_affinity else z_mean
            affinity = costs.knn_affinity(codes, self.n_nbrs, scale=self.affinity_scale)
            terms["spectral"] = costs.spectral_loss(affinity, self.orthonorm(y, training=True),
                                                    self.spectral_normaliser)
            total = total + terms["spectral"]
        terms["loss"] = total
        return terms

    def train_step(self, data):
        import tensorflow as tf

        x = data[0] if isinstance(data, (tuple, list)) else data
        with tf.GradientTape() as tape:
            terms = self.losses_on(x)
        variables = self.trained_variables
        self.optimizer.apply(tape.gradient(terms["loss"], variables), variables)
        for name, value in terms.items():
            self.trackers[name].update_state(value)
        return {name: self.trackers[name].result() for name in terms}


class DSCDAN(BaseDeepClusterer):
    """Deep spectral clustering with a dual autoencoder (sklearn-style, images of any shape).

    Parameters
    ----------
    n_clusters : int
    latent_dim, filters : 120 and 16 as upstream.
    pretrain_epochs, pretrain_batch_size : the pretraining stage (ours: batch 100).
    joint_epochs, joint_batch_size : joint stage (upstream: about 500 iterations of 10 steps of
        1024 on test-10k, i.e. 500 epochs).
    n_nbrs, scale_nbr, affinity_scale : kNN affinity on mu (5 neighbours; scale None = computed
        with ``get_scale`` on the pretrained codes, upstream 2.62).
    freeze_mi_critic, stop_gradient_affinity : see the module docstring.
    init_means, warmup_epochs : ``"kmeans"`` (class means from k-means of mu after
        ``warmup_epochs`` of pretraining, as our ALRDC) or ``"zeros"`` (upstream).
    learning_rate : Adam (1e-3).
    stop_tol : stop the joint stage when fewer than this share of labels changed between checks
        (every ``log_every`` epochs, or every epoch); upstream's |dL| < 1e-4 never fired (§3.8.7).
        The per-check rates are in ``history_["joint"]["label_change"]``.
    checkpoint_dir : each stage saves there after every epoch; a rerun resumes from it.
    log_every : score ACC/NMI/ARI every this many epochs when ``y`` is given.
    cluster_from : ``"head"`` (upstream: argmax C(mu) as trained) or ``"spectral"`` (ours, see
        the module docstring): spectral clustering of the ``graph_nbrs``-NN Gaussian graph of mu
        (its large components, as SpectralNet's exact solver), then about ``head_steps`` Adam
        steps (whole passes of batch 256) of cross-entropy fit the head (encoder frozen) to
        those labels; the class means become the mean code of each cluster, so that they keep
        matching the head's outputs. ``"siamese"`` (ours): the same, on the graph of a siamese
        embedding of mu trained ``siamese_epochs`` epochs on mu's own kNN pairs (SpectralNet's
        siamese stage); of ``siamese_draws`` such nets, the one whose partition has the lowest
        normalized cut.

    Attributes
    ----------
    labels_, model_ (``DSCDANNet``), history_, n_steps_ (of the two stages), affinity_scale_;
    with ``cluster_from="spectral"`` or ``"siamese"`` also ``spectral_labels_`` (-1 outside the
    kept components) and ``history_["spectral"]`` (graph basis and components and points, the
    siamese loss per epoch, the head's loss per epoch and its step count ``head_steps``, the
    head's agreement with the spectral labels, and their ACC/NMI/ARI when ``y`` is given).
    """

    input_kind = "image"

    def __init__(self, n_clusters=10, latent_dim=120, filters=16, pretrain_epochs=50,
                 pretrain_batch_size=100, joint_epochs=100, joint_batch_size=1024, n_nbrs=5,
                 scale_nbr=2, affinity_scale=None, freeze_mi_critic=False,
                 stop_gradient_affinity=True, init_means="kmeans", warmup_epochs=5,
                 learning_rate=1e-3, stop_tol=None, checkpoint_dir=None, log_every=0,
                 cluster_from="head", graph_nbrs=10, siamese_epochs=5, siamese_draws=3,
                 head_steps=1000, random_state=None, deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.filters = filters
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.joint_epochs = joint_epochs
        self.joint_batch_size = joint_batch_size
        self.n_nbrs = n_nbrs
        self.scale_nbr = scale_nbr
        self.affinity_scale = affinity_scale
        self.freeze_mi_critic = freeze_mi_critic
        self.stop_gradient_affinity = stop_gradient_affinity
        self.init_means = init_means
        self.warmup_epochs = warmup_epochs
        self.learning_rate = learning_rate
        self.stop_tol = stop_tol
        self.checkpoint_dir = checkpoint_dir
        self.log_every = log_every
        self.cluster_from = cluster_from
        self.graph_nbrs = graph_nbrs
        self.siamese_epochs = siamese_epochs
        self.siamese_draws = siamese_draws
        self.head_steps = head_steps
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        require_images(input_shape, "DSCDAN")
        if self.init_means not in ("kmeans", "zeros"):
            raise ValueError(f"init_means must be 'kmeans' or 'zeros', got {self.init_means!r}")
        if self.cluster_from not in ("head", "spectral", "siamese"):
            raise ValueError("cluster_from must be 'head', 'spectral' or 'siamese', got "
                             f"{self.cluster_from!r}")
        self.model_ = DSCDANNet(input_shape, self.n_clusters, self.latent_dim, self.filters,
                                self.n_nbrs, self.affinity_scale or 1.0,
                                freeze_mi_critic=self.freeze_mi_critic,
                                stop_gradient_affinity=self.stop_gradient_affinity, seed=seed)

    def _predict_once_per_step(self):
        """``self._predict`` on the training images, computed once per optimizer step."""
        cache = {}

        def predict(x):
            step = int(self.model_.optimizer.iterations)
            if cache.get("step") != step:
                cache.update(step=step, labels=self._predict(x))
            return cache["labels"]
        return predict

    def _stage(self, stage, X, y, epochs, batch_size, done, callbacks):
        net = self.model_
        net.set_stage(stage)
        net.compile(optimizer=keras.optimizers.Adam(self.learning_rate))
        timer = TimeHistory()
        callbacks = callbacks + [timer]
        logger = stopper = None
        predict = self._predict_once_per_step()  # the logger and the stop rule share one pass
        if y is not None and self.log_every:
            logger = MetricsLogger(X, y, predict, self.log_every, verbose=self.verbose)
            callbacks.append(logger)
        if stage == "joint" and self.stop_tol is not None:
            stopper = LabelChangeStop(X, predict, self.log_every or 1, self.stop_tol,
                                      verbose=self.verbose)
            callbacks.append(stopper)
        if self.checkpoint_dir:
            callbacks.append(StageCheckpoint(self.checkpoint_dir, stage, done))
        hist = net.fit(X, epochs=epochs, initial_epoch=done, batch_size=batch_size, shuffle=True,
                       verbose=2 if self.verbose else 0, callbacks=callbacks)
        record = history_dict(hist, logger)
        record["epoch_seconds"] = timer.epoch_seconds
        if stopper is not None:
            record["label_change"] = stopper.history
        self.history_[stage] = record
        return len(timer.epoch_seconds)

    def _fit(self, X, y, seed):
        self.history_, self.n_steps_, self.n_samples_trained_ = {}, 0, 0
        progress = {}
        if self.checkpoint_dir:
            progress = resume_from(self.model_, self.checkpoint_dir, self.verbose)
        for stage, epochs, batch_size in (("pretrain", self.pretrain_epochs,
                                           self.pretrain_batch_size),
                                          ("joint", self.joint_epochs, self.joint_batch_size)):
            if stage == "joint":
                self._set_affinity_scale(X, seed, progress)
            done, finished = epochs_done(progress, stage, epochs)
            ran = 0
            if not finished:
                callbacks = []
                if stage == "pretrain" and self.init_means == "kmeans" \
                        and done < self.warmup_epochs <= epochs:
                    callbacks.append(ClassMeanInit(X, self.warmup_epochs, seed))
                ran = self._stage(stage, X, y, epochs, batch_size, done, callbacks)
            self.n_steps_ += (done + ran) * math.ceil(len(X) / batch_size)
            self.n_samples_trained_ += (done + ran) * len(X)
        if self.cluster_from != "head":
            self.spectral_labels_, self.history_["spectral"] = fit_head_to_spectral_clusters(
                self.model_, X, y, self.graph_nbrs, self.scale_nbr, self.head_steps,
                self.learning_rate, seed, self.verbose,
                self.siamese_epochs if self.cluster_from == "siamese" else 0, self.siamese_draws)
        self.model_.compile()

    def _set_affinity_scale(self, X, seed, progress):
        """The given scale, else the one a resumed run stored, else ``get_scale`` on mu."""
        scale = self.affinity_scale
        if scale is None:
            scale = progress.get("affinity_scale")
        if scale is None:
            scale = get_scale(embed(self.model_, X), self.joint_batch_size, self.scale_nbr, seed,
                              replace=False)
        self.affinity_scale_ = float(scale)
        self.model_.affinity_scale.assign(max(self.affinity_scale_, 1e-6))
        if self.checkpoint_dir:  # the joint stage of a resumed run keeps the same scale
            write_progress(self.checkpoint_dir,
                           {**read_progress(self.checkpoint_dir),
                            "affinity_scale": self.affinity_scale_})

    def _extra_state(self):
        return {"affinity_scale": self.affinity_scale_}

    def _restore_extra(self, extra):
        self.affinity_scale_ = float(extra.get("affinity_scale", self.affinity_scale or 0.0))

    def _transform(self, X):
        return embed(self.model_, X)

    def _predict(self, X):
        return assign(self.model_, embed(self.model_, X)).argmax(1).astype(np.int64)

    def predict_proba(self, X):
        X = self._validate(X, reset=False)
        return assign(self.model_, embed(self.model_, X))

    def reconstruct(self, X):
        X = self._validate(X, reset=False)
        z = embed(self.model_, X)
        return np.concatenate([ops.convert_to_numpy(self.model_.decoder(z[i:i + 1000]))
                               for i in range(0, len(z), 1000)])
