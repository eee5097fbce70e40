"""PNG figures with the Agg backend: t-SNE scatter, confusion heat map, image grids, curves."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.metrics import confusion_matrix  # noqa: E402


def _save(fig, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def tsne_embedding(z, n_max=5000, seed=0, perplexity=30.0):
    """2-d t-SNE of (at most ``n_max`` rows of) ``z``; returns ``(points_2d, row_indices)``."""
    from sklearn.manifold import TSNE

    z = np.asarray(z, dtype=np.float32).reshape(len(z), -1)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(z), size=n_max, replace=False)) if len(z) > n_max \
        else np.arange(len(z))
    perplexity = min(perplexity, max(2.0, (len(idx) - 1) / 3.0))
    points = TSNE(2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(z[idx])
    return points, idx


def plot_tsne(z, labels, path, title="t-SNE of the embedding", n_max=5000, seed=0):
    """t-SNE scatter of ``z`` coloured by ``labels`` (as ALRDC's runner draws it)."""
    points, idx = tsne_embedding(z, n_max=n_max, seed=seed)
    labels = np.asarray(labels)[idx]
    fig, ax = plt.subplots(figsize=(7, 7))
    for value in np.unique(labels):
        mask = labels == value
        ax.scatter(points[mask, 0], points[mask, 1], s=3, label=str(value), alpha=0.8)
    ax.legend(markerscale=4, fontsize=8, loc="best")
    ax.set_title(f"{title} (n={len(idx)})")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def plot_confusion(y_true, y_pred, path, title="Confusion matrix (rows: clusters)"):
    """Heat map of the cluster-by-class contingency table, cells annotated with counts."""
    table, clusters, classes = confusion_matrix(y_true, y_pred)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(classes), 1 + 0.6 * len(clusters)))
    im = ax.imshow(table, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(clusters)), [str(c) for c in clusters])
    ax.set_xlabel("true class")
    ax.set_ylabel("cluster")
    threshold = table.max() / 2.0
    for (i, j), value in np.ndenumerate(table):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                color="white" if value > threshold else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    return _save(fig, path)


def plot_image_grid(rows, path, row_titles=None, title=None):
    """Grid of images: ``rows`` is a list of arrays (n_i, h, w[, c]) or flat (n_i, h*w) squares.

    Use it for reconstructions (originals over reconstructions) and for samples per cluster.
    """
    rows = [np.asarray(r) for r in rows]
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(n_cols * 0.9, len(rows) * 0.9 + 0.3),
                             squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(row):
                ax.imshow(_as_image(row[j]), cmap="gray", vmin=0.0, vmax=1.0)
        if row_titles is not None:
            axes[i, 0].set_title(str(row_titles[i]), fontsize=7, loc="left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _as_image(img):
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 1:
        side = int(round(np.sqrt(img.size)))
        if side * side != img.size:
            raise ValueError(f"cannot show a flat vector of {img.size} values as a square image")
        return img.reshape(side, side)
    if img.ndim == 3 and img.shape[-1] == 1:
        return img[..., 0]
    return img


def plot_curves(curves, path, xlabel="epoch", title="Training curves"):
    """Line plot of named series, e.g. ``{"loss": [...], "acc": [...]}``."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 2:  # (x, y) pairs
            ax.plot(values[:, 0], values[:, 1], marker=".", label=name)
        else:
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.legend()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)
