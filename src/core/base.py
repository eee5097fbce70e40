"""The sklearn-style base estimator every method subclasses.

Subclasses set their hyper-parameters in ``__init__`` (assignment only, sklearn convention) and
implement ``_build(input_shape, seed)`` (creates ``self.model_``), ``_fit(X, y, seed)``,
``_transform(X)`` and ``_predict(X)``. The base owns validation, seeding, ``fit_predict``,
``save``/``load`` and the fitted-state checks.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from core.checkpoints import (CheckpointError, load_manifest, load_weights_verified,
                              save_weights_atomic)
from core.data import check_n_clusters, validate_array
from core.util import set_seed


def require_images(input_shape, what):
    """Raise a clear error unless samples are images (h, w, c)."""
    if len(input_shape) != 3:
        raise ValueError(f"{what} needs images (n, h, w[, c]); got samples of shape "
                         f"{tuple(input_shape)}")


def require_unit_range(X, what):
    """Raise a clear error unless values lie in [0, 1] (sigmoid/Bernoulli outputs)."""
    low, high = float(np.min(X)), float(np.max(X))
    if low < 0 or high > 1:
        raise ValueError(f"{what} needs inputs scaled to [0, 1]; got values in "
                         f"[{low:.3g}, {high:.3g}]")


class BaseDeepClusterer(ClusterMixin, TransformerMixin, BaseEstimator):
    """Shared machinery of the deep clustering estimators (see module docstring)."""

    #: input layout the networks expect: "flat" (n, d) or "image" (n, h, w, c)
    input_kind = "flat"

    # ----------------------------------------------------------------- to implement
    def _build(self, input_shape, seed):
        raise NotImplementedError

    def _fit(self, X, y, seed):
        raise NotImplementedError

    def _transform(self, X):
        raise NotImplementedError

    def _predict(self, X):
        raise NotImplementedError

    # ----------------------------------------------------------------- public API
    def fit(self, X, y=None):
        """Train on ``X`` (images or flat vectors); ``y`` only feeds the metric log."""
        X = self._validate(X, reset=True)
        check_n_clusters(self.n_clusters, len(X))
        if y is not None and len(np.asarray(y)) != len(X):
            raise ValueError(f"y has {len(np.asarray(y))} labels for {len(X)} samples")
        seed = self._seed()
        self.seed_ = seed
        set_seed(seed, getattr(self, "deterministic", True))
        self._build(self.input_shape_, seed)
        self._fit(X, y, seed)
        self.labels_ = self._predict(X)
        return self

    def predict(self, X):
        """Cluster index of each row of ``X`` (batch-wise, for data unseen in ``fit``)."""
        check_is_fitted(self, "model_")
        return self._predict(self._validate(X, reset=False))

    def transform(self, X):
        """The method's embedding of ``X``."""
        check_is_fitted(self, "model_")
        return self._transform(self._validate(X, reset=False))

    def fit_predict(self, X, y=None, **kwargs):
        return self.fit(X, y).labels_

    # ----------------------------------------------------------------- persistence
    def save(self, path):
        """Write ``<path>.weights.h5`` and ``<path>.json`` (parameters and fitted shape)."""
        check_is_fitted(self, "model_")
        weights, meta = self._paths(path)
        digest = save_weights_atomic(self.model_, weights)
        meta.write_text(json.dumps({"class": type(self).__name__, "params": self.get_params(),
                                    "input_shape": list(self.input_shape_),
                                    "seed": self.seed_, "sha256": digest,
                                    "extra": self._extra_state()}, indent=2))
        return weights

    @classmethod
    def load(cls, path, expected_sha256=None):
        """Rebuild an estimator saved with ``save`` (or a shipped checkpoint)."""
        weights, meta_path = cls._paths(path)
        if not meta_path.is_file():  # a shipped checkpoint: its description is in the manifest
            entry = next((e for e in load_manifest(weights.parent)
                          if e.get("file") == weights.name and "config" in e), None)
            if entry is None:
                raise CheckpointError(f"missing estimator description {meta_path} (and no "
                                      f"manifest entry) next to {weights}")
            cfg = entry["config"]
            return cls.from_config(cfg["params"], cfg["input_shape"], weights,
                                   expected_sha256 or entry["sha256"], cfg.get("extra", {}))
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"corrupt estimator description {meta_path}: {err}") from err
        return cls.from_config(meta["params"], meta["input_shape"], weights,
                               expected_sha256 or meta.get("sha256"), meta.get("extra", {}))

    @classmethod
    def from_config(cls, params, input_shape, weights, expected_sha256=None, extra=None):
        # JSON has no tuples: restore them so that get_params() round-trips exactly
        est = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        est.input_shape_ = tuple(int(v) for v in input_shape)
        est.n_features_in_ = int(np.prod(est.input_shape_))
        est.seed_ = est._seed()
        est._build(est.input_shape_, est.seed_)
        load_weights_verified(est.model_, weights, expected_sha256)
        est._restore_extra(extra or {})
        return est

    def _extra_state(self):
        return {}

    def _restore_extra(self, extra):
        pass

    @staticmethod
    def _paths(path):
        path = Path(path)
        stem = path.name[: -len(".weights.h5")] if path.name.endswith(".weights.h5") else path.name
        return path.with_name(stem + ".weights.h5"), path.with_name(stem + ".json")

    # ----------------------------------------------------------------- helpers
    def _seed(self):
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state,
                                                                                bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _validate(self, X, reset):
        X = validate_array(X)
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
            self.n_features_in_ = int(np.prod(self.input_shape_))
        elif int(np.prod(X.shape[1:])) != self.n_features_in_:
            raise ValueError(f"X has {int(np.prod(X.shape[1:]))} features per sample "
                             f"(shape {X.shape[1:]}); the model was fitted on "
                             f"{self.n_features_in_} (shape {self.input_shape_})")
        if self.input_kind == "flat":
            return X.reshape(len(X), -1)
        if X.ndim == 2:  # flat vectors for an image model: use the fitted image shape
            return X.reshape((len(X),) + tuple(self.input_shape_))
        return X
