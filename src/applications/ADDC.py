"""ALRDC: adversarial learning for robust deep clustering (runner ``ADDC.py`` as upstream).

A clustering VAE (conv encoder/decoder, softmax head C, class-mean prior) is attacked by a linear
adversary A that perturbs the embedding, mu' = mu + A(x), so as to change the cluster assignment
while keeping the reconstruction and the embedding close; the defence retrains the VAE with two
cross-paired mutual-information terms so that the clean and adversarial paths agree
(METHODS.md §4). Upstream shipped neither the pretrained VAE nor the adversary, so the three
stages are ours (§4.8):

    S1 ``pretrain``: the clustering VAE on L_vae alone              (upstream ``MNIST_64.h5``)
    S2 ``attack``:   the adversary on L_att, VAE frozen              (upstream ``MNIST_ADV_64.h5``)
    S3 ``defense``:  ADDC.py's loop, L_def = L_vae + 2.5 (MI1 + MI2), adversary frozen
       ``alternate``: the paper-style variant, k attack steps before each defence step.

Upstream defects resolved here: the undefined ``M`` in the per-epoch print (we report the mean
embedding shift |A(x)| instead), the oversized 13,000-row noise arrays (noise is drawn per batch),
the dead spectral branch (kept behind ``spectral_weight``, 0 by default as upstream), the
stored-metric mix-up (clean and adversarial scores are stored under their own names) and the
hard-coded critic width 858 (computed as latent + H*W*C + K).
"""

import math
from pathlib import Path

import keras
import numpy as np
from keras import ops

from core import costs
from core.base import BaseDeepClusterer, require_images
from core.checkpoints import CheckpointError, load_weights_verified, save_weights_atomic
from core.Conv import (build_adversary, build_cluster_head, build_conv_decoder,
                       build_conv_encoder, build_mi_critic)
from core.layer import Orthonorm
from core.metrics import evaluate, format_metrics
from core.pairs import graph_spectral_embedding, normalized_cut
from core.train import (LabelChangeRule, StageCheckpoint, epochs_done, kmeans_labels,
                        read_progress, resume_from, write_progress)

STAGES = ("pretrain", "attack", "defense", "alternate")


class ALRDCNet(keras.Model):
    """Owns the VAE (E, G, C, class means), the adversary A, the defence critic D and the
    optimizers of the three stages; ``set_stage`` picks what ``train_step`` optimises."""

    def __init__(self, input_shape, n_clusters, latent_dim=64, filters=16, rec_weight=2.5,
                 attack_assign_weight=0.04, attack_shift_weight=1.0, mi_weight=2.5,
                 spectral_weight=0.0, n_nbrs=3, affinity_scale=1.97, attack_steps=1, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(v) for v in input_shape)
        self.n_clusters = int(n_clusters)
        self.latent_dim = int(latent_dim)
        self.rec_weight = rec_weight
        self.attack_assign_weight = attack_assign_weight
        self.attack_shift_weight = attack_shift_weight
        self.mi_weight = mi_weight
        self.spectral_weight = spectral_weight
        self.n_nbrs = n_nbrs
        self.affinity_scale = affinity_scale
        self.attack_steps = int(attack_steps)

        self.encoder = build_conv_encoder(self.image_shape, latent_dim, filters)
        self.decoder = build_conv_decoder(self.image_shape, latent_dim, filters)
        self.cluster_head = build_cluster_head(latent_dim, n_clusters)
        self.adversary = build_adversary(self.image_shape, latent_dim)
        critic_width = latent_dim + int(np.prod(self.image_shape)) + n_clusters  # 858 on MNIST
        self.critic = build_mi_critic(critic_width)
        self.orthonorm = Orthonorm(name="orthonorm")
        self.orthonorm.build((None, n_clusters))
        self.class_means = self.add_weight(name="class_means", shape=(n_clusters, latent_dim),
                                           initializer="zeros")
        base_seed = 0 if seed is None else int(seed)
        self.noise_seed = keras.random.SeedGenerator(base_seed + 1)
        self.shuffle_seed = keras.random.SeedGenerator(base_seed + 2)
        self.stage = "pretrain"
        names = ("loss", "rec", "kl", "cat", "att", "agreement", "shift", "mi", "spectral")
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.build((None,) + self.image_shape)

    def build(self, input_shape):
        # every sub-network is a functional model built above; nothing is shape-dependent here
        super().build(input_shape)

    # ------------------------------------------------------------------ set-up
    def compile(self, vae_optimizer=None, adv_optimizer=None, defense_optimizer=None, **kwargs):
        """Three Adam optimizers (upstream: TF Adam at its default 1e-3)."""
        super().compile(**kwargs)
        self.vae_optimizer = vae_optimizer or keras.optimizers.Adam(1e-3)
        self.adv_optimizer = adv_optimizer or keras.optimizers.Adam(1e-3)
        self.defense_optimizer = defense_optimizer or keras.optimizers.Adam(1e-3)

    def optimizer_slots(self):
        """(optimizer, what it trains) in the order the stages apply them (for resuming)."""
        return [(self.vae_optimizer, self.vae_variables),
                (self.adv_optimizer, self.adversary.trainable_weights),
                (self.defense_optimizer, self.vae_variables + self.critic.trainable_weights)]

    def set_stage(self, stage):
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
        self.stage = stage
        self.train_function = None  # retrace train_step for the new stage

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def vae_variables(self):
        return (self.encoder.trainable_weights + self.decoder.trainable_weights
                + self.cluster_head.trainable_weights + [self.class_means])

    def call(self, x, training=False):
        z_mean, _ = self.encoder(x, training=training)
        return self.cluster_head(z_mean, training=training)

    # ------------------------------------------------------------------ forward pieces
    def _forward(self, x, with_adversary):
        z_mean, z_log_var = self.encoder(x, training=True)
        noise = ops.exp(0.5 * z_log_var) * keras.random.normal(ops.shape(z_mean),
                                                               seed=self.noise_seed)
        out = {"z_mean": z_mean, "z_log_var": z_log_var,
               "x_hat": self.decoder(z_mean + noise, training=True),
               "y": self.cluster_head(z_mean, training=True)}
        if with_adversary:
            z_adv = z_mean + self.adversary(x, training=True)
            out.update(z_adv=z_adv, x_hat_adv=self.decoder(z_adv + noise, training=True),
                       y_adv=self.cluster_head(z_adv, training=True))
        return out

    def _vae_loss(self, x, f):
        total, rec, kl, cat = costs.clustering_vae_loss(
            x, f["x_hat"], f["z_mean"], f["z_log_var"], f["y"], self.class_means,
            self.rec_weight)
        self.trackers["rec"].update_state(rec)
        self.trackers["kl"].update_state(kl)
        self.trackers["cat"].update_state(cat)
        if self.spectral_weight:
            # upstream builds this branch (kNN affinity on mu, sigma 1.97) but never uses it
            affinity = costs.knn_affinity(ops.stop_gradient(f["z_mean"]), self.n_nbrs,
                                          scale=self.affinity_scale)
            spectral = costs.spectral_loss(affinity, self.orthonorm(f["y"], training=True))
            self.trackers["spectral"].update_state(spectral)
            total = total + self.spectral_weight * spectral
        return total

    def _apply(self, optimizer, tape, loss, variables):
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)

    # ------------------------------------------------------------------ the stages
    def _pretrain_step(self, x):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = self._vae_loss(x, self._forward(x, with_adversary=False))
        self._apply(self.vae_optimizer, tape, loss, self.vae_variables)
        self.trackers["loss"].update_state(loss)

    def _attack_step(self, x):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            f = self._forward(x, with_adversary=True)
            loss, rec, agreement, shift = costs.attack_loss(
                f["x_hat"], f["x_hat_adv"], f["y"], f["y_adv"], f["z_mean"], f["z_adv"],
                self.rec_weight, self.attack_assign_weight, self.attack_shift_weight)
        self._apply(self.adv_optimizer, tape, loss, self.adversary.trainable_weights)
        self.trackers["att"].update_state(loss)
        self.trackers["agreement"].update_state(agreement / ops.cast(ops.shape(x)[0], "float32"))
        self.trackers["shift"].update_state(shift)

    def _defense_step(self, x):
        import tensorflow as tf

        variables = self.vae_variables + self.critic.trainable_weights
        with tf.GradientTape() as tape:
            f = self._forward(x, with_adversary=True)
            vae = self._vae_loss(x, f)
            batch = ops.shape(x)[0]
            clean_out = ops.concatenate([ops.reshape(f["x_hat"], (batch, -1)), f["y"]], axis=-1)
            adv_out = ops.concatenate([ops.reshape(f["x_hat_adv"], (batch, -1)), f["y_adv"]],
                                      axis=-1)
            # cross-paired: adversarial embedding with clean outputs, and the reverse
            mi1 = costs.jsd_mi_loss(self.critic, f["z_adv"], clean_out,
                                    costs.shuffle_rows(clean_out, self.shuffle_seed))
            mi2 = costs.jsd_mi_loss(self.critic, f["z_mean"], adv_out,
                                    costs.shuffle_rows(adv_out, self.shuffle_seed))
            loss = vae + self.mi_weight * (mi1 + mi2)
        self._apply(self.defense_optimizer, tape, loss, variables)
        self.trackers["loss"].update_state(loss)
        self.trackers["mi"].update_state(mi1 + mi2)
        self.trackers["shift"].update_state(
            ops.mean(ops.sqrt(ops.sum(ops.square(f["z_adv"] - f["z_mean"]), axis=1))))

    def train_step(self, data):
        x = data[0] if isinstance(data, (tuple, list)) else data
        if self.stage == "pretrain":
            self._pretrain_step(x)
            shown = ("loss", "rec", "kl", "cat") + (("spectral",) if self.spectral_weight else ())
        elif self.stage == "attack":
            self._attack_step(x)
            shown = ("att", "agreement", "shift")
        elif self.stage == "defense":
            self._defense_step(x)
            shown = ("loss", "rec", "kl", "cat", "mi", "shift")
        else:
            for _ in range(self.attack_steps):
                self._attack_step(x)
            self._defense_step(x)
            shown = ("loss", "att", "agreement", "mi", "shift")
        return {name: self.trackers[name].result() for name in shown}


# ---------------------------------------------------------------------- evaluation helpers

def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def embed(net, x, batch_size=1000):
    """mu(x), batch-wise."""
    return np.concatenate([keras.ops.convert_to_numpy(net.encoder(x[s], training=False)[0])
                           for s in _batches(len(x), batch_size)])


def adversarial_shift(net, x, batch_size=1000):
    """The learned perturbation A(x), batch-wise."""
    return np.concatenate([keras.ops.convert_to_numpy(net.adversary(x[s], training=False))
                           for s in _batches(len(x), batch_size)])


def assign(net, z, batch_size=4096):
    """Soft assignments C(z), batch-wise."""
    return np.concatenate([keras.ops.convert_to_numpy(net.cluster_head(z[s], training=False))
                           for s in _batches(len(z), batch_size)])


def clean_and_attacked(net, x):
    """``(z, shift, clean, attacked)``: mu(x), A(x), argmax C(mu) and argmax C(mu + A(x))."""
    z = embed(net, x)
    shift = adversarial_shift(net, x)
    return z, shift, assign(net, z).argmax(1), assign(net, z + shift).argmax(1)


def pgd_embedding_attack(net, z, eps, steps=10, batch_size=2000):
    """PGD in the embedding: maximise the cross-entropy of C(mu + delta) against the clean
    assignment, with ||delta||_2 <= eps per sample. An attack the model was not trained against.
    """
    import tensorflow as tf

    out = np.empty_like(z)
    step_size = 2.5 * eps / steps
    for s in _batches(len(z), batch_size):
        z0 = tf.constant(z[s])
        target = tf.argmax(net.cluster_head(z0, training=False), axis=1)
        delta = tf.zeros_like(z0)
        for _ in range(steps):
            with tf.GradientTape() as tape:
                tape.watch(delta)
                probs = net.cluster_head(z0 + delta, training=False)
                loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(target, probs))
            grad = tape.gradient(loss, delta)
            grad = grad / (tf.norm(grad, axis=1, keepdims=True) + 1e-12)
            delta = delta + step_size * grad
            norm = tf.norm(delta, axis=1, keepdims=True)
            delta = delta * tf.minimum(1.0, eps / (norm + 1e-12))
        out[s] = (z0 + delta).numpy()
    return out


def evaluate_robustness(net, x, y=None, eps_list=(0.5, 1.0, 2.0), pgd_steps=10):
    """Clean labels, labels under the learned attack and under PGD at each eps, with scores.

    Returns a dict; with labels it holds ``clean``/``adversarial``/``pgd@eps`` metric dicts, the
    agreement of each attacked labelling with the clean one, and the mean shift |A(x)|.
    """
    z, shift, clean, adv = clean_and_attacked(net, x)
    report = {"mean_shift": float(np.linalg.norm(shift, axis=1).mean()),
              "mean_embedding_norm": float(np.linalg.norm(z, axis=1).mean()),
              "labels": {"clean": clean, "adversarial": adv},
              "agreement": {"adversarial": float(np.mean(adv == clean))}}
    for eps in eps_list:
        key = f"pgd@{eps:g}"
        labels = assign(net, pgd_embedding_attack(net, z, eps, pgd_steps)).argmax(1)
        report["labels"][key] = labels
        report["agreement"][key] = float(np.mean(labels == clean))
    if y is not None:
        for key, labels in report["labels"].items():
            report[key] = evaluate(y, labels)
    return report


def spectral_partition(basis, n_clusters, graph_nbrs=10, scale_nbr=2, seed=None):
    """k-means on the NJW eigenvectors of the ``graph_nbrs``-NN Gaussian graph of ``basis``
    (its large components). Returns ``(labels of the kept rows, kept mask, components,
    normalized cut of the labels on that graph)``."""
    vectors, keep, n_comp, graph = graph_spectral_embedding(basis, n_clusters, graph_nbrs,
                                                            scale_nbr, return_graph=True)
    labels, _ = kmeans_labels(vectors, n_clusters, seed, n_init=10)
    return labels, keep, n_comp, normalized_cut(graph, labels)


def fit_head_to_spectral_clusters(net, X, y=None, graph_nbrs=10, scale_nbr=2, head_steps=1000,
                                   learning_rate=1e-3, seed=None, verbose=0, siamese_epochs=0,
                                   siamese_draws=1):
    """NJW spectral clustering of the ``graph_nbrs``-NN Gaussian graph of mu(X) (its large
    components, as SpectralNet's exact solver), then the head C (encoder frozen) learns those
    labels in about ``head_steps`` Adam steps of batch 256, and the class means become the mean
    code of each cluster. Shared by DSCDAN and ALRDC (``cluster_from="spectral"``). With
    ``siamese_epochs`` > 0 (``cluster_from="siamese"``) the graph joins neighbours in the
    embedding of a siamese net trained that many epochs on mu's own kNN pairs
    (``spectralnet.siamese_embedding``) instead of in mu; the head and the means still work on mu.
    The siamese graph depends on the net's draw (on the shipped ALRDC MNIST model's mu, seeds
    0-4 gave ACC 0.83 / 0.97 / 0.83 / 0.97 / 0.82 at normalized cuts 0.040 / 0.004 / 0.026 /
    0.010 / 0.043), so ``siamese_draws`` nets are trained (seeds ``seed``, ``seed + 1``, ...)
    and the partition with the lowest normalized cut on its own graph is kept (no labels).

    Returns ``(labels, record)``: the spectral labels of all rows (-1 outside the kept
    components) and a JSON-ready record (graph basis, graph components and points, the
    normalized cut, per siamese draw its seed, loss per epoch and cut (and scores with ``y``)
    and the chosen draw, the head's loss per epoch and its step count, its agreement with the
    spectral labels, and their scores when ``y`` is given).
    """
    z = embed(net, X)
    if siamese_epochs:
        from applications.spectralnet import siamese_embedding

        draws, partitions = [], []
        for draw in range(max(1, siamese_draws)):
            draw_seed = (seed or 0) + draw
            basis, losses = siamese_embedding(z, net.n_clusters, draw_seed, siamese_epochs,
                                              verbose=2 if verbose else 0)
            partitions.append(spectral_partition(basis, net.n_clusters, graph_nbrs, scale_nbr,
                                                 seed))
            labels, keep, _, cut = partitions[-1]
            draws.append({"seed": draw_seed, "siamese_loss": losses, "normalized_cut": cut})
            if y is not None:
                draws[-1]["spectral_metrics"] = evaluate(np.asarray(y)[keep], labels)
            if verbose:
                print(f"siamese draw {draw} (seed {draw_seed}): normalized cut {cut:.4f}",
                      flush=True)
        choice = min(range(len(draws)), key=lambda i: draws[i]["normalized_cut"])
        labels, keep, n_comp, cut = partitions[choice]
        record = {"graph_basis": "siamese", "siamese_draws": draws, "siamese_choice": choice,
                  "siamese_loss": draws[choice]["siamese_loss"]}
        if y is not None:
            record["spectral_metrics"] = draws[choice]["spectral_metrics"]
    else:
        labels, keep, n_comp, cut = spectral_partition(z, net.n_clusters, graph_nbrs,
                                                       scale_nbr, seed)
        record = {"graph_basis": "mu"}
        if y is not None:
            record["spectral_metrics"] = evaluate(np.asarray(y)[keep], labels)
    record["normalized_cut"] = cut
    all_labels = np.full(len(z), -1, np.int64)
    all_labels[keep] = labels
    z = z[keep]
    # a wrapper of the shared head layers holds the optimizer, so none enters the checkpoint
    student = keras.Model(net.cluster_head.inputs, net.cluster_head.outputs)
    student.compile(optimizer=keras.optimizers.Adam(learning_rate),
                    loss="sparse_categorical_crossentropy")
    steps_per_epoch = math.ceil(len(z) / 256)
    epochs = max(1, math.ceil(head_steps / steps_per_epoch))
    hist = student.fit(z, labels, epochs=epochs, batch_size=256, shuffle=True,
                       verbose=2 if verbose else 0)
    old_means = keras.ops.convert_to_numpy(net.class_means)
    means = np.stack([z[labels == k].mean(0) if np.any(labels == k) else old_means[k]
                      for k in range(net.n_clusters)])
    net.class_means.assign(means.astype(np.float32))
    head = assign(net, z).argmax(1)
    record.update({"graph_components": n_comp, "graph_points": int(keep.sum()),
                   "head_loss": [float(v) for v in hist.history["loss"]],
                   "head_steps": epochs * steps_per_epoch,
                   "head_agreement": float(np.mean(head == labels))})
    if verbose:
        print(f"spectral clusters of the {graph_nbrs}-NN graph of {record['graph_basis']}: "
              f"{n_comp} components, "
              f"{keep.sum()} points kept; the head agrees on {record['head_agreement']:.4f}",
              flush=True)
    return all_labels, record


class ALRDCMonitor(keras.callbacks.Callback):
    """Per-epoch clean/adversarial scores, label-change rate and the stop rule.

    Stops the stage when fewer than ``tol`` of the clean labels changed since the previous
    evaluation (upstream's |ΔL| < 1e-4 never fired; this rule does what it meant).
    """

    def __init__(self, x, y=None, every=1, tol=None, verbose=1, stage=""):
        super().__init__()
        self.x, self.y, self.every = x, y, max(1, int(every))
        self.verbose, self.stage = verbose, stage
        self.rule, self.history = LabelChangeRule(tol), []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        _, shift, clean, adv = clean_and_attacked(self.model, self.x)
        row = {"stage": self.stage, "epoch": epoch + 1,
               "mean_shift": float(np.linalg.norm(shift, axis=1).mean()),
               "label_change": self.rule.update(clean),
               "adv_agreement": float(np.mean(clean == adv))}
        if self.y is not None:
            row["clean"] = evaluate(self.y, clean)
            row["adversarial"] = evaluate(self.y, adv)
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.history.append(row)
        if self.verbose:
            text = f"[{self.stage} {epoch + 1}] |A(x)| {row['mean_shift']:.3f}  " \
                   f"agree {row['adv_agreement']:.3f}"
            if row["label_change"] is not None:
                text += f"  changed {row['label_change']:.4f}"
            if self.y is not None:
                text += "  " + format_metrics(row["clean"], "clean ") + "  " \
                    + format_metrics(row["adversarial"], "adv ")
            print(text, flush=True)
        if self.rule.converged(row["label_change"]):
            self.model.stop_training = True


class ClassMeanInit(keras.callbacks.Callback):
    """After ``at_epoch`` warm-up epochs of S1, set the class means to k-means centres of mu.

    Our departure from upstream (zero-initialised means, ``init_means="zeros"``): with all means
    at zero the mixture KL is the same for every class, the categorical term keeps y uniform and
    the clusters emerge only slowly from the head's random initialisation (VaDE initialises its
    GMM from the codes for the same reason, METHODS.md §7).
    """

    def __init__(self, x, at_epoch, seed):
        super().__init__()
        self.x, self.at_epoch, self.seed = x, int(at_epoch), seed

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.at_epoch:
            return
        from sklearn.cluster import KMeans

        net = self.model
        z = embed(net, self.x)
        km = KMeans(net.n_clusters, n_init=10, random_state=self.seed).fit(z)
        net.class_means.assign(km.cluster_centers_.astype(np.float32))


# ---------------------------------------------------------------------- estimator

class ALRDC(BaseDeepClusterer):
    """Adversarially robust deep clustering (sklearn-style; images of any shape).

    Parameters
    ----------
    n_clusters : int
    latent_dim, filters : network size (upstream: 64 and 16).
    pretrain_epochs, pretrain_batch_size : S1 (our choice: Adam 1e-3, batch 100).
    attack_epochs, defense_epochs, adv_batch_size : S2 and S3 in passes over the data with
        batches of ``adv_batch_size`` (upstream: 1000; 50 steps per iteration).
    schedule : ``"upstream"`` (S1, S2, then S3 with A frozen, as ADDC.py) or ``"alternate"``
        (S1, S2, then ``attack_steps`` attack steps before each defence step, as the paper).
    mi_weight : weight of MI1 + MI2 in the defence (2.5).
    spectral_weight : weight of upstream's dead spectral branch (0, as upstream).
    init_means : ``"kmeans"`` (ours: class means set to k-means centres of mu after
        ``warmup_epochs`` of S1) or ``"zeros"`` (upstream: zeros throughout).
    cluster_from : ``"head"`` (upstream: the head as S1 trained it) or ``"spectral"`` (ours, as
        DSCDAN's): between S1 and S2 the head is refitted to the spectral clusters of the
        ``graph_nbrs``-NN graph of mu in about ``head_steps`` Adam steps and the class means
        follow them, so that S2 attacks and S3 defends these assignments; after S3 (when it
        runs) the head is refitted once more, to the spectral clusters of the defended mu.
        ``"siamese"`` (ours, SpectralNet's metric): the same, on the graph of a siamese embedding
        of mu trained ``siamese_epochs`` epochs on mu's own nearest-neighbour pairs; of
        ``siamese_draws`` such nets, the one whose partition has the lowest normalized cut.
    stop_tol : stop S3 when fewer than this share of labels change between checks (every
        ``eval_every`` epochs, or every epoch when it is 0; needs no ``y``).
    checkpoint_dir : where each stage saves after every epoch; a rerun resumes from it.
        Stage snapshots: ``pretrain.weights.h5`` is upstream's MNIST_64, ``attack.weights.h5``
        its MNIST_ADV_64 (both live in one ALRDCNet file here).
    eval_every : evaluate clean/adversarial scores every this many epochs when ``y`` is given.
    random_state, deterministic, verbose : as elsewhere.

    Attributes
    ----------
    labels_, model_ (the ``ALRDCNet``), history_ (per-epoch rows of every stage), n_steps_
    (steps of the three stages; a head refit's own steps are its row's ``head_steps``),
    n_samples_trained_ (images passed through training, all stages),
    pre_defense_report_ (``evaluate_robustness`` of the S2 model, when ``y`` is given);
    with ``cluster_from="spectral"`` or ``"siamese"`` also ``spectral_labels_`` (of the last
    relabelling; -1 outside the kept graph components) and a ``{"stage": "spectral", "after":
    STAGE, ...}`` row in ``history_`` per relabelling (see ``fit_head_to_spectral_clusters``).
    """

    input_kind = "image"

    def __init__(self, n_clusters=10, latent_dim=64, filters=16, pretrain_epochs=50,
                 pretrain_batch_size=100, attack_epochs=20, defense_epochs=20,
                 adv_batch_size=1000, learning_rate=1e-3, schedule="upstream", attack_steps=1,
                 mi_weight=2.5, spectral_weight=0.0, init_means="kmeans", warmup_epochs=5,
                 cluster_from="head", graph_nbrs=10, siamese_epochs=5, siamese_draws=3,
                 head_steps=1000, stop_tol=None, checkpoint_dir=None, eval_every=1,
                 random_state=None, deterministic=True, verbose=0):
        self.n_clusters = n_clusters
        self.latent_dim = latent_dim
        self.filters = filters
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_batch_size = pretrain_batch_size
        self.attack_epochs = attack_epochs
        self.defense_epochs = defense_epochs
        self.adv_batch_size = adv_batch_size
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.attack_steps = attack_steps
        self.mi_weight = mi_weight
        self.spectral_weight = spectral_weight
        self.init_means = init_means
        self.warmup_epochs = warmup_epochs
        self.cluster_from = cluster_from
        self.graph_nbrs = graph_nbrs
        self.siamese_epochs = siamese_epochs
        self.siamese_draws = siamese_draws
        self.head_steps = head_steps
        self.stop_tol = stop_tol
        self.checkpoint_dir = checkpoint_dir
        self.eval_every = eval_every
        self.random_state = random_state
        self.deterministic = deterministic
        self.verbose = verbose

    def _build(self, input_shape, seed):
        require_images(input_shape, "ALRDC")
        if self.init_means not in ("kmeans", "zeros"):
            raise ValueError(f"init_means must be 'kmeans' or 'zeros', got {self.init_means!r}")
        if self.schedule not in ("upstream", "alternate"):
            raise ValueError(f"schedule must be 'upstream' or 'alternate', got {self.schedule!r}")
        if self.cluster_from not in ("head", "spectral", "siamese"):
            raise ValueError("cluster_from must be 'head', 'spectral' or 'siamese', got "
                             f"{self.cluster_from!r}")
        self.model_ = self._new_net(input_shape, seed)

    def _new_net(self, input_shape, seed):
        return ALRDCNet(input_shape, self.n_clusters, self.latent_dim, self.filters,
                        mi_weight=self.mi_weight, spectral_weight=self.spectral_weight,
                        attack_steps=self.attack_steps, seed=seed)

    def _stage_plan(self):
        third = "defense" if self.schedule == "upstream" else "alternate"
        return [("pretrain", self.pretrain_epochs, self.pretrain_batch_size),
                ("attack", self.attack_epochs, self.adv_batch_size),
                (third, self.defense_epochs, self.adv_batch_size)]

    def _fit(self, X, y, seed):
        net = self.model_
        lr = self.learning_rate
        net.compile(keras.optimizers.Adam(lr), keras.optimizers.Adam(lr),
                    keras.optimizers.Adam(lr))
        self.history_ = []
        self.n_steps_ = self.n_samples_trained_ = 0
        ckpt = self.checkpoint_dir
        progress = resume_from(net, ckpt, self.verbose) if ckpt else {}
        for stage, epochs, batch_size in self._stage_plan():
            done, finished = epochs_done(progress, stage, epochs)
            steps_per_epoch = math.ceil(len(X) / batch_size)
            self.n_steps_ += done * steps_per_epoch
            self.n_samples_trained_ += done * len(X)
            if stage == "attack" and self.cluster_from != "head":
                self._relabel_after_pretraining(X, y, seed, progress, done)
            if stage in ("defense", "alternate") and epochs and y is not None:
                self._report_before_defense(X, y, seed, done)
            if finished:
                continue
            net.set_stage(stage)
            callbacks = []
            monitor = None
            tol = self.stop_tol if stage in ("defense", "alternate") else None
            if (y is not None and self.eval_every) or tol is not None:
                # the stop rule needs no ground truth: without y the monitor only tracks labels
                monitor = ALRDCMonitor(X, y if self.eval_every else None, self.eval_every or 1,
                                       verbose=self.verbose, stage=stage, tol=tol)
                callbacks.append(monitor)
            if stage == "pretrain" and self.init_means == "kmeans" \
                    and done < self.warmup_epochs <= epochs:
                callbacks.append(ClassMeanInit(X, self.warmup_epochs, seed))
            if ckpt:
                callbacks.append(StageCheckpoint(ckpt, stage, done))
            hist = net.fit(X, epochs=epochs, initial_epoch=done, batch_size=batch_size,
                           shuffle=True, verbose=2 if self.verbose else 0, callbacks=callbacks)
            ran = len(hist.history.get(next(iter(hist.history), "loss"), []))
            self.n_steps_ += ran * steps_per_epoch
            self.n_samples_trained_ += ran * len(X)
            self.history_ += monitor.history if monitor else [
                {"stage": stage, "epoch": done + i + 1, **{k: float(v[i]) for k, v in
                                                          hist.history.items()}}
                for i in range(ran)]
        last_stage, last_epochs, _ = self._stage_plan()[-1]
        if self.cluster_from != "head" and last_epochs > 0:
            # S3 moves the head back towards S1's partition while mu keeps the spectral
            # structure, so the final labels are refitted too (not saved: a rerun redoes it)
            self.history_.append({"stage": "spectral", "after": last_stage,
                                  **self._refit_head(X, y, seed)})
        net.compile()  # fresh, unbuilt optimizers: saved checkpoints carry no Adam moments

    def _report_before_defense(self, X, y, seed, done):
        """The S2 model's robustness, for the before/after-defence comparison: the current net
        before S3 starts, else (a resumed run) the checkpoint directory's S2 snapshot."""
        net = self.model_
        if done:
            snapshot = Path(self.checkpoint_dir) / "attack.weights.h5"
            if not snapshot.is_file():
                return
            net = self._new_net(self.model_.image_shape, seed)
            load_weights_verified(net, snapshot)
        report = evaluate_robustness(net, X, y)
        report.pop("labels")
        self.pre_defense_report_ = report

    def _relabel_after_pretraining(self, X, y, seed, progress, attack_done):
        """``cluster_from="spectral"``/``"siamese"``: refit the S1 head to the spectral clusters
        of mu, once; a resumed run takes the labels and record its checkpoint directory kept
        (when they were made on the same graph)."""
        ckpt = self.checkpoint_dir
        if "spectral" in progress:  # only a checkpointed run has progress
            path = Path(ckpt) / "spectral_labels.npy"
            try:
                self.spectral_labels_ = np.load(path)
            except (OSError, ValueError) as err:
                raise CheckpointError(f"missing or corrupt {path}: {err}") from err
            record = progress["spectral"]
            basis = record.get("graph_basis", "mu")  # older checkpoints: always mu
            if basis != ("siamese" if self.cluster_from == "siamese" else "mu"):
                matching = "siamese" if basis == "siamese" else "spectral"
                raise ValueError(f"{ckpt} was relabelled on the graph of {basis}; resume it "
                                 f"with cluster_from={matching!r}")
        elif attack_done:
            raise ValueError(f"{ckpt} holds a run whose attack stage started without the "
                             "spectral relabelling; resume it with cluster_from='head'")
        else:
            record = self._refit_head(X, y, seed)
            if ckpt:  # weights first: a crash in between redoes the step instead of skipping it
                save_weights_atomic(self.model_, f"{ckpt}/last.weights.h5")
                save_weights_atomic(self.model_, f"{ckpt}/spectral.weights.h5")
                np.save(f"{ckpt}/spectral_labels.npy", self.spectral_labels_)
                write_progress(ckpt, {**read_progress(ckpt), "spectral": record})
        self.history_.append({"stage": "spectral", "after": "pretrain", **record})

    def _refit_head(self, X, y, seed):
        """One relabelling: sets ``spectral_labels_``, returns the step's record."""
        self.spectral_labels_, record = fit_head_to_spectral_clusters(
            self.model_, X, y, self.graph_nbrs, head_steps=self.head_steps,
            learning_rate=self.learning_rate, seed=seed, verbose=self.verbose,
            siamese_epochs=self.siamese_epochs if self.cluster_from == "siamese" else 0,
            siamese_draws=self.siamese_draws)
        return record

    def _transform(self, X):
        return embed(self.model_, X)

    def _predict(self, X):
        return assign(self.model_, embed(self.model_, X)).argmax(1).astype(np.int64)

    def predict_adversarial(self, X):
        """Cluster labels under the learned attack: argmax C(mu + A(x))."""
        return clean_and_attacked(self.model_, self._validate(X, reset=False))[3]

    def robustness(self, X, y=None, eps_list=(0.5, 1.0, 2.0), pgd_steps=10):
        """See ``evaluate_robustness``."""
        return evaluate_robustness(self.model_, self._validate(X, reset=False), y, eps_list,
                                   pgd_steps)

    def reconstruct(self, X, adversarial=False):
        """G(mu) (clean) or G(mu + A(x)) (adversarial) reconstructions."""
        X = self._validate(X, reset=False)
        z = embed(self.model_, X)
        if adversarial:
            z = z + adversarial_shift(self.model_, X)
        return np.concatenate([keras.ops.convert_to_numpy(self.model_.decoder(z[s]))
                               for s in _batches(len(z), 1000)])
