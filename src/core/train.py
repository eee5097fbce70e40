"""Shared training machinery: callbacks for metric logging and k-means in a learned space."""

import time

import keras
import numpy as np
from sklearn.cluster import KMeans

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
