"""Clustering metrics (METHODS.md §12): Hungarian ACC, NMI, ARI, purity, confusion matrix."""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def _as_label_pair(y_true, y_pred):
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    if y_true.size == 0:
        raise ValueError("cannot score an empty labelling")
    return y_true, y_pred


def confusion_matrix(y_true, y_pred):
    """Contingency table C[i, j] = #points of cluster i with class j (rows: predicted).

    Returns ``(C, clusters, classes)`` with the sorted unique values labelling rows and columns.
    """
    y_true, y_pred = _as_label_pair(y_true, y_pred)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    classes, true_idx = np.unique(y_true, return_inverse=True)
    table = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    return table, clusters, classes


def cluster_to_class_map(y_true, y_pred):
    """One-to-one Hungarian map {cluster: class}; surplus clusters map to no class."""
    table, clusters, classes = confusion_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)  # rectangular-safe
    return {clusters[r]: classes[c] for r, c in zip(rows, cols)}


def acc(y_true, y_pred):
    """Unsupervised accuracy: the best one-to-one map of clusters to classes (Hungarian).

    Works when the numbers of clusters and classes differ (rectangular assignment; points in
    unmatched clusters count as errors).
    """
    table, _, _ = confusion_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def purity(y_true, y_pred):
    """Each cluster mapped to its majority class (many-to-one, so purity >= ACC)."""
    table, _, _ = confusion_matrix(y_true, y_pred)
    return float(table.max(axis=1).sum() / table.sum())


def nmi(y_true, y_pred, average_method="arithmetic"):
    """Normalised mutual information; ``'geometric'`` matches sklearn < 0.22 (2016-2019 papers)."""
    y_true, y_pred = _as_label_pair(y_true, y_pred)
    return float(normalized_mutual_info_score(y_true, y_pred, average_method=average_method))


def ari(y_true, y_pred):
    """Adjusted Rand index."""
    y_true, y_pred = _as_label_pair(y_true, y_pred)
    return float(adjusted_rand_score(y_true, y_pred))


def evaluate(y_true, y_pred, nmi_average="arithmetic"):
    """Dict with acc, nmi, ari and purity of a labelling."""
    return {"acc": acc(y_true, y_pred), "nmi": nmi(y_true, y_pred, nmi_average),
            "ari": ari(y_true, y_pred), "purity": purity(y_true, y_pred)}


def format_metrics(scores, prefix=""):
    """``'ACC 0.8123  NMI 0.7456  ARI 0.6789'`` for logs and the CLI."""
    return prefix + "  ".join(f"{key.upper()} {scores[key]:.4f}"
                              for key in ("acc", "nmi", "ari") if key in scores)
