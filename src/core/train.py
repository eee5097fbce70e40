"""Shared training machinery: callbacks for metric logging and k-means in a learned space."""

import json
import os
import re
import time
import warnings
from pathlib import Path

import keras
import numpy as np
from sklearn.cluster import KMeans

from core.checkpoints import load_weights_verified, save_weights_atomic
from core.metrics import evaluate, format_metrics


class MetricsLogger(keras.callbacks.Callback):
    """Logs ACC/NMI/ARI every ``every`` epochs when labels are known.

    Args:
        x, y: data and ground-truth labels to score (labels are never used for training).
        predict_fn: callable ``x -> labels`` evaluated on the current model.
        every: evaluation period in epochs.
        verbose: print a line per evaluation.
    """

    def __init__(self, x, y, predict_fn, every=1, verbose=1):
        super().__init__()
        self.x, self.y, self.predict_fn = x, np.asarray(y), predict_fn
        self.every, self.verbose = max(1, int(every)), verbose
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        scores = evaluate(self.y, self.predict_fn(self.x))
        scores["epoch"] = epoch + 1
        self.history.append(scores)
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in scores.items() if k != "epoch"})
        if self.verbose:
            print(format_metrics(scores, prefix=f"[epoch {epoch + 1}] "), flush=True)


def history_dict(history, logger=None):
    """A Keras ``History`` as plain floats, plus the ``MetricsLogger`` rows under "metrics"."""
    out = {key: [float(v) for v in values] for key, values in history.history.items()}
    out["metrics"] = logger.history if logger else []
    return out


class LabelChangeRule:
    """The stop rule shared by the clustering loops: the share of labels that changed since the
    previous check, and whether it fell below ``tol`` (None: never stops)."""

    def __init__(self, tol=None):
        self.tol, self.last = tol, None

    def update(self, labels):
        """Rate of change against the previous labels (None at the first check)."""
        rate = None if self.last is None else float(np.mean(labels != self.last))
        self.last = labels
        return rate

    def converged(self, rate):
        return self.tol is not None and rate is not None and rate < self.tol


class LabelChangeStop(keras.callbacks.Callback):
    """Every ``every`` epochs, the share of ``predict_fn(x)`` labels that changed since the last
    check (``history`` rows); stops training when it falls below ``tol`` (None: only records)."""

    def __init__(self, x, predict_fn, every=1, tol=None, verbose=0):
        super().__init__()
        self.x, self.predict_fn = x, predict_fn
        self.every, self.verbose = max(1, int(every)), verbose
        self.rule, self.history = LabelChangeRule(tol), []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        rate = self.rule.update(self.predict_fn(self.x))
        if rate is None:
            return
        self.history.append({"epoch": epoch + 1, "label_change": rate})
        if self.verbose:
            print(f"[epoch {epoch + 1}] labels changed {rate:.4f}", flush=True)
        if self.rule.converged(rate):
            self.model.stop_training = True


class TimeHistory(keras.callbacks.Callback):
    """Wall time per epoch, for benchmarks and manifests."""

    def on_train_begin(self, logs=None):
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)


def kmeans_labels(z, n_clusters, seed, n_init=20):
    """k-means on an embedding; returns ``(labels, centres)``."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def make_optimizer(name, learning_rate, momentum=0.9):
    """``"sgd"`` (with momentum, DEC-keras) or ``"adam"``, by name."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def nearest_centre(z, centres, batch_size=8192):
    """Index of the nearest centre for each row of ``z``, computed batch-wise."""
    out = np.empty(len(z), dtype=np.int64)
    c_sq = np.sum(centres**2, axis=1)
    for start in range(0, len(z), batch_size):
        block = z[start:start + batch_size]
        dist = c_sq[None, :] - 2.0 * block @ centres.T
        out[start:start + batch_size] = np.argmin(dist, axis=1)
    return out


class LearningHandler(keras.callbacks.Callback):
    """SpectralNet's learning-rate schedule (METHODS.md §1.6) as a Keras callback.

    After more than ``patience`` epochs without improvement of ``monitor`` the learning rate is
    multiplied by ``drop``; training stops once it falls to ``min_lr`` or below. The optimizer
    starts at its configured rate (upstream's RMSProp variable started at 0, so its first epoch
    did nothing: a quirk we do not copy).
    """

    def __init__(self, monitor="val_loss", patience=10, drop=0.1, min_lr=1e-7, verbose=0):
        super().__init__()
        self.monitor, self.patience, self.drop = monitor, int(patience), float(drop)
        self.min_lr, self.verbose = float(min_lr), verbose
        self.best, self.wait, self.lr_history = np.inf, 0, []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"LearningHandler monitors '{self.monitor}', which the logs lack "
                           f"(have: {sorted(logs)})")
        value = float(logs[self.monitor])
        optimizer = self.model.optimizer
        lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        if value < self.best:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait > self.patience:
                lr *= self.drop
                optimizer.learning_rate.assign(lr)
                self.wait = 0
                if self.verbose:
                    print(f"[LearningHandler] epoch {epoch + 1}: learning rate -> {lr:.2e}")
        self.lr_history.append(lr)
        if lr <= self.min_lr:
            self.model.stop_training = True


# ---------------------------------------------------------------------- self-training (DEC, DBC)

class SelfTrainingNet(keras.Model):
    """An encoder with a Student-t soft-assignment head, fitted towards a fixed target P.

    ``fit`` takes ``TargetBatches``; the ``TargetRefresh`` callback recomputes P between rounds.
    An optional ``decoder`` is only carried (saved with the model, not trained).
    """

    def __init__(self, encoder, n_clusters, alpha=1.0, decoder=None, **kwargs):
        super().__init__(**kwargs)
        from core.layer import ClusteringLayer

        self.encoder = encoder
        self.decoder = decoder
        self.clustering = ClusteringLayer(n_clusters, alpha=alpha, name="clustering")
        self.clustering.build((None, int(np.prod(encoder.output.shape[1:]))))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.build((None,) + tuple(encoder.input.shape[1:]))

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def embed(self, x, training=False):
        z = self.encoder(x, training=training)
        return keras.ops.reshape(z, (keras.ops.shape(z)[0], -1))

    def call(self, x, training=False):
        return self.clustering(self.embed(x, training=training))

    def train_step(self, data):
        import tensorflow as tf

        from core.costs import kl_target_loss

        x, p = data
        with tf.GradientTape() as tape:
            loss = kl_target_loss(p, self(x, training=True))
        variables = self.encoder.trainable_weights + self.clustering.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


class TargetBatches(keras.utils.PyDataset):
    """Shuffled minibatches of ``(x, P)``; ``target`` is replaced in place by ``TargetRefresh``."""

    def __init__(self, x, n_clusters, batch_size, steps, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.batch_size, self.steps = x, int(batch_size), int(steps)
        self.target = np.full((len(x), n_clusters), 1.0 / n_clusters, dtype=np.float32)
        self.rng = np.random.default_rng(seed)
        self._order, self._cursor = self.rng.permutation(len(x)), 0

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        if self._cursor + self.batch_size > len(self._order):  # new pass over the data
            self._order, self._cursor = self.rng.permutation(len(self.x)), 0
        idx = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return self.x[idx], self.target[idx]


class TargetRefresh(keras.callbacks.Callback):
    """Before each round of ``update_interval`` steps: soft scores Q on all data, target P, label
    changes since the last round; stops when fewer than ``tol`` of the labels changed.

    Records per round: the label-change rate, the share of confident assignments (max q above
    ``confident``: DBC's "easy samples first" curve) and, with ``y``, ACC/NMI/ARI.
    """

    def __init__(self, batches, target_fn, tol=1e-3, y=None, confident=0.5, verbose=0):
        super().__init__()
        self.batches, self.target_fn = batches, target_fn
        self.y = None if y is None else np.asarray(y)
        self.confident, self.verbose = confident, verbose
        self.rule, self.history, self.converged = LabelChangeRule(tol), [], False

    def on_epoch_begin(self, epoch, logs=None):
        q = self.model.predict(self.batches.x, batch_size=4096, verbose=0)
        if not np.all(np.isfinite(q)):
            raise FloatingPointError(f"non-finite soft assignments at round {epoch}")
        labels = q.argmax(1)
        row = {"round": epoch, "confident_share": float(np.mean(q.max(1) > self.confident)),
               "mean_max_q": float(np.mean(q.max(1)))}
        changed = self.rule.update(labels)
        if changed is not None:
            row["changed"] = changed
        if self.y is not None:
            row.update(evaluate(self.y, labels))
        self.history.append(row)
        if self.verbose:
            extra = f"  changed {row['changed']:.4f}" if "changed" in row else ""
            scores = ("  " + format_metrics(row)) if self.y is not None else ""
            print(f"[round {epoch}] mean max q {row['mean_max_q']:.3f}  confident "
                  f"{row['confident_share']:.3f}{extra}{scores}",
                  flush=True)
        if self.rule.converged(changed):
            self.converged = True
            self.model.stop_training = True
            return
        self.batches.target[:] = self.target_fn(q)


# ---------------------------------------------------------------------- resumable stages

class StageCheckpoint(keras.callbacks.Callback):
    """Saves weights and ``{stage: epochs_done}`` after every epoch, so that an interrupted run
    resumes from its last finished epoch (with the optimizers' moments and step counts when the
    model lists them in ``optimizer_slots``). A stage that a stop rule ended is recorded under
    ``"stopped"`` and counts as finished on resume."""

    def __init__(self, directory, stage, initial_epoch=0):
        super().__init__()
        self.directory, self.stage, self.initial_epoch = Path(directory), stage, initial_epoch

    def on_epoch_end(self, epoch, logs=None):
        save_weights_atomic(self.model, self.directory / "last.weights.h5")
        state = read_progress(self.directory)
        state[self.stage] = epoch + 1
        write_progress(self.directory, state)

    def on_train_end(self, logs=None):
        if self.model.stop_training:
            state = read_progress(self.directory)
            state["stopped"] = sorted(set(state.get("stopped", [])) | {self.stage})
            write_progress(self.directory, state)
        save_weights_atomic(self.model, self.directory / f"{self.stage}.weights.h5")


def read_progress(directory):
    path = Path(directory) / "progress.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_progress(directory, state):
    path = Path(directory) / "progress.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def resume_from(model, directory, verbose=0):
    """Create ``directory``; when it holds an earlier run's progress and last weights, load them
    into ``model``. Returns the progress (``{}`` for a fresh run)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    progress = read_progress(directory)
    if progress and (directory / "last.weights.h5").is_file():
        unbuilt_sizes = build_optimizers(model)
        with warnings.catch_warnings():
            # an optimizer the interrupted run had not used yet saved only its unbuilt variables:
            # it starts fresh, as it would have in an uninterrupted run (other mismatches warn)
            for name, size in unbuilt_sizes.items():
                skipped = (f"Skipping variable loading for optimizer '{re.escape(name)}', because "
                           rf"it has \d+ variables whereas the saved optimizer has {size} variables")
                warnings.filterwarnings("ignore", message=skipped)
            load_weights_verified(model, directory / "last.weights.h5")
        if verbose:
            print(f"resuming from {directory} ({progress})", flush=True)
        return progress
    return {}


def build_optimizers(model):
    """Create the slot variables (Adam moments, step count) of each ``(optimizer, variables)``
    pair in ``model.optimizer_slots()``, in the order the train step applies them, so that a
    checkpoint's optimizer state loads; Keras would create them at the first step, after the load,
    and skip the saved state. Returns ``{name: variable count before building}`` of those built."""
    slots = model.optimizer_slots() if hasattr(model, "optimizer_slots") else ()
    unbuilt_sizes = {}
    for optimizer, variables in slots:
        if not optimizer.built:
            unbuilt_sizes[optimizer.name] = len(optimizer.variables)
            optimizer.build(variables)
    return unbuilt_sizes


def epochs_done(progress, stage, planned):
    """``(epochs run, finished)`` of ``stage`` in a checkpointed run's progress."""
    ran = min(int(progress.get(stage, 0)), planned)
    return ran, ran >= planned or stage in progress.get("stopped", [])


def report_trackers(trackers, values):
    """Update the named ``Mean`` trackers with this step's values; return every tracker's result
    (what a custom ``train_step`` returns)."""
    for name, value in values.items():
        trackers[name].update_state(value)
    return {name: t.result() for name, t in trackers.items()}


# ---------------------------------------------------------------------- two-player nets (GANs)

class TwoPlayerNet(keras.Model):
    """Base of the GAN nets: named loss trackers and two Adam optimizers, ``d_optimizer`` (the
    discriminator side) and ``g_optimizer`` (the generator side), set by ``compile``.

    Subclasses set ``tracker_names`` and the default rates/betas, build their networks, then
    call ``_finish_init(image_shape)``; ``train_step`` ends with ``return self._report(...)``.
    """

    tracker_names = ()
    d_learning_rate = g_learning_rate = 2e-4
    adam_betas = (0.5, 0.999)

    def _finish_init(self, image_shape):
        self.trackers = {k: keras.metrics.Mean(name=k) for k in self.tracker_names}
        self.build((None,) + tuple(image_shape))

    def build(self, input_shape):
        super().build(input_shape)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        super().compile(**kwargs)
        beta_1, beta_2 = self.adam_betas
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(
            self.d_learning_rate, beta_1=beta_1, beta_2=beta_2)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(
            self.g_learning_rate, beta_1=beta_1, beta_2=beta_2)

    @property
    def d_variables(self):
        """What ``d_optimizer`` trains (the subclass's critic / discriminator side)."""
        raise NotImplementedError

    @property
    def g_variables(self):
        """What ``g_optimizer`` trains (the subclass's generator side)."""
        raise NotImplementedError

    def optimizer_slots(self):
        return [(self.d_optimizer, self.d_variables), (self.g_optimizer, self.g_variables)]

    def _report(self, **values):
        return report_trackers(self.trackers, values)
