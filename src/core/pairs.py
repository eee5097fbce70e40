"""Siamese pairs for SpectralNet (METHODS.md §1.4), stored as index pairs, ``get_scale``,
and the full kNN graph with its spectral embedding (SpectralNet's ``spectral_solver="exact"``).

Pairs are ``(P, 2)`` int arrays of row indices with ``(P,)`` labels (1 = neighbours, 0 = not),
never materialised image pairs, so that pixel-space data costs no extra memory.
"""

import numpy as np
from sklearn.neighbors import NearestNeighbors

import core


def knn_indices(x, k):
    """Indices of the k nearest *other* points of every row (exact, sklearn)."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if k >= len(x):
        raise ValueError(f"k={k} neighbours need more than {len(x)} points")
    idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)
    return _drop_self(idx)


def approximate_knn_indices(x, k, n_trees=10, leaf_size=64, seed=0):
    """Approximate kNN (self excluded) from a forest of random-projection trees, the role Annoy
    plays in upstream's ``use_approx`` route (our own NumPy implementation, not Annoy's).

    Each tree splits a node at the median of its points' projections on the direction between
    two random members, down to leaves of at most ``leaf_size`` points; every point's candidates
    are the members of its leaves over all trees, ranked by exact Euclidean distance. Returns
    ``(n, k)`` int64 indices, nearest first; more trees give a higher recall.
    """
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n = len(x)
    if k < 1 or k >= n:
        raise ValueError(f"k={k} neighbours need 1 <= k < number of points ({n})")
    if n_trees < 1:
        raise ValueError(f"n_trees must be >= 1, got {n_trees}")
    leaf_size = max(int(leaf_size), 2 * k + 2)
    rng = np.random.default_rng(seed)
    sq_norms = np.einsum("ij,ij->i", x, x)
    best_idx = np.full((n, k), -1, np.int64)
    best_dist = np.full((n, k), np.inf, np.float32)
    for _ in range(n_trees):
        tree_idx = np.full((n, k), -1, np.int64)
        tree_dist = np.full((n, k), np.inf, np.float32)
        for leaf in _rp_tree_leaves(x, leaf_size, rng):
            d = (sq_norms[leaf][:, None] + sq_norms[leaf][None, :]
                 - 2.0 * x[leaf] @ x[leaf].T)
            np.fill_diagonal(d, np.inf)
            m = min(k, len(leaf) - 1)
            top = np.argpartition(d, m - 1, axis=1)[:, :m] if m < len(leaf) - 1 else np.argsort(
                d, axis=1)[:, :m]
            tree_idx[leaf, :m] = leaf[top]
            tree_dist[leaf, :m] = np.take_along_axis(d, top, axis=1)
        best_idx, best_dist = _merge_candidates(best_idx, best_dist, tree_idx, tree_dist, k)
    if (best_idx < 0).any():   # cannot happen with leaves of >= 2k + 2 points; kept as a guard
        raise RuntimeError("approximate kNN left a point with fewer than k candidates")
    return best_idx


def _rp_tree_leaves(x, leaf_size, rng):
    """Index arrays of the leaves of one random-projection tree over the rows of ``x``."""
    stack, leaves = [np.arange(len(x))], []
    while stack:
        node = stack.pop()
        if len(node) <= leaf_size:
            leaves.append(node)
            continue
        a, b = rng.choice(node, size=2, replace=False)
        proj = x[node] @ (x[a] - x[b])
        order = np.argsort(proj + 1e-6 * rng.standard_normal(len(node)), kind="stable")
        half = len(node) // 2   # median split: balanced, so the recursion always ends
        stack += [node[order[:half]], node[order[half:]]]
    return leaves


def _merge_candidates(idx_a, dist_a, idx_b, dist_b, k):
    """Per row, the k nearest distinct candidates of two ``(n, k)`` candidate tables."""
    idx = np.concatenate([idx_a, idx_b], axis=1)
    dist = np.concatenate([dist_a, dist_b], axis=1)
    order = np.argsort(idx, axis=1, kind="stable")
    idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)
    repeated = np.zeros_like(idx, dtype=bool)
    repeated[:, 1:] = (idx[:, 1:] == idx[:, :-1]) & (idx[:, 1:] >= 0)
    dist = np.where(repeated | (idx < 0), np.inf, dist)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    idx, dist = np.take_along_axis(idx, order, 1), np.take_along_axis(dist, order, 1)
    return np.where(np.isinf(dist), -1, idx), dist


def _drop_self(idx):
    """Remove each row's own index (normally first; with duplicate points it may be elsewhere or
    missing, in which case the farthest neighbour is dropped)."""
    n, width = idx.shape
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), width - 1)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    return idx[keep].reshape(n, width - 1)


def neighbours_from_precomputed(kn_idxs, permutation, n_subset, k):
    """kNN lists of a permuted subset from a table precomputed over the whole data set
    (the ``precomputedKNNPath`` route of upstream), via ``convert_idxs``."""
    table = core.convert_idxs(kn_idxs, permutation, n_subset, k)
    return table[:, 1:]  # first column: the point itself


def create_pairs_from_unlabeled_data(neighbours, tot_pairs, seed=0, exclude_self=True):
    """Positive pairs from kNN lists and random negative pairs (METHODS.md §1.4).

    Args:
        neighbours: (n, k) neighbour indices of each point (self excluded).
        tot_pairs: target number of pairs; each point gets
            ``max(1, min(k, tot_pairs // (2 n)))`` positives and as many negatives.
        seed: seed of the pair draw.
        exclude_self: never pair a point with itself as a negative (upstream could, a quirk:
            pass False to reproduce it).

    Returns:
        ``(pairs, labels)``: (P, 2) int64 indices and (P,) int64 labels, positives first per point.
    """
    neighbours = np.asarray(neighbours)
    n, k = neighbours.shape
    if n < 2 or k < 1:
        raise ValueError(f"need at least 2 points and 1 neighbour, got a table of shape "
                         f"{neighbours.shape}")
    rng = np.random.default_rng(seed)
    per_point = max(1, min(k, int(tot_pairs / (2 * n))))
    # positives: per_point distinct neighbours, drawn without replacement per row
    order = np.argsort(rng.random((n, k)), axis=1)[:, :per_point]
    positives = np.take_along_axis(neighbours, order, axis=1)
    # negatives: uniform over [0, n), redrawn while they hit the neighbour list (or self)
    negatives = rng.integers(0, n, size=(n, per_point))
    forbidden = neighbours if not exclude_self else np.hstack([neighbours, np.arange(n)[:, None]])
    for _ in range(100):
        bad = (negatives[:, :, None] == forbidden[:, None, :]).any(axis=2)
        if not bad.any():
            break
        negatives[bad] = rng.integers(0, n, size=int(bad.sum()))
    else:
        raise ValueError("could not draw negatives outside the neighbour lists: k is too "
                         f"large for {n} points")
    anchors = np.repeat(np.arange(n), per_point)
    pairs = np.concatenate([
        np.stack([anchors, positives.reshape(-1)], axis=1),
        np.stack([anchors, negatives.reshape(-1)], axis=1)])
    labels = np.concatenate([np.ones(n * per_point, np.int64), np.zeros(n * per_point, np.int64)])
    order = np.argsort(np.concatenate([anchors, anchors]), kind="stable")
    return pairs[order].astype(np.int64), labels[order]


def create_pairs_from_labeled_data(y, seed=0):
    """Semi-supervised pairs: for each point one same-class and one different-class partner."""
    y = np.asarray(y).reshape(-1)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("labelled pairs need at least two classes")
    rng = np.random.default_rng(seed)
    members = {c: np.flatnonzero(y == c) for c in classes}
    others = {c: np.flatnonzero(y != c) for c in classes}
    pairs, labels = [], []
    for i, c in enumerate(y):
        pairs.append((i, int(rng.choice(members[c]))))
        labels.append(1)
        pairs.append((i, int(rng.choice(others[c]))))
        labels.append(0)
    return np.asarray(pairs, np.int64), np.asarray(labels, np.int64)


def get_scale(x, batch_size, n_nbrs, seed=0, replace=True):
    """Median distance (not squared) to the ``n_nbrs``-th neighbour over a random batch.

    The query point counts as its own first neighbour, so ``n_nbrs=2`` is the median distance
    to the nearest other point. Upstream samples with replacement (``replace=True``), which can
    give a zero distance for duplicated points; ``replace=False`` avoids that.
    """
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    size = batch_size if replace else min(batch_size, len(x))
    sample = x[rng.choice(len(x), size=size, replace=replace)]
    dist, _ = NearestNeighbors(n_neighbors=n_nbrs).fit(sample).kneighbors(sample)
    return float(np.median(dist[:, n_nbrs - 1]))


# ------------------------------------------------------------------ full kNN graph (exact solver)

def knn_graph(x, n_nbrs, scale_nbr=2, local_scale=0):
    """Sparse symmetric Gaussian kNN affinity of all rows, ``knn_affinity`` for a whole dataset.

    Each row keeps its ``n_nbrs`` nearest points (itself counted first, as ``knn_affinity``;
    the self-loop is then dropped, it does not change the Laplacian) and W = (W + W^T) / 2. The
    scale is the global median of the ``scale_nbr``-th squared neighbour distance, or with
    ``local_scale`` = j > 0 the self-tuning sigma_i sigma_j of Zelnik-Manor and Perona, sigma_i
    the distance to i's j-th neighbour. Returns a ``scipy.sparse.csr_matrix``.
    """
    import scipy.sparse as sp

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n_query = max(n_nbrs, scale_nbr, local_scale)
    if n_query > len(x):
        raise ValueError(f"a {n_query}-nearest-neighbour graph needs at least {n_query} points, "
                         f"got {len(x)}")
    dist, idx = NearestNeighbors(n_neighbors=n_query).fit(x).kneighbors(x)
    if local_scale:
        sigma = dist[:, local_scale - 1]
        weights = np.exp(-dist[:, :n_nbrs]**2
                         / (sigma[:, None] * sigma[idx[:, :n_nbrs]] + 1e-12))
    else:
        weights = np.exp(-dist[:, :n_nbrs]**2
                         / (2.0 * np.median(dist[:, scale_nbr - 1]**2) + 1e-12))
    n = len(x)
    w = sp.csr_matrix((weights.ravel(), (np.repeat(np.arange(n), n_nbrs),
                                         idx[:, :n_nbrs].ravel())), shape=(n, n))
    w = (w + w.T) / 2.0
    w.setdiag(0)
    w.eliminate_zeros()
    return w


def large_components(w, max_components=1, min_size=1):
    """Boolean mask of the points in the ``max_components`` largest connected components of the
    graph ``w`` that have at least ``min_size`` points, and the number of components. kNN
    graphs leave small islands, and each kept island takes an eigenvalue 1 of D^-1/2 W D^-1/2
    that would crowd out the clusters; components that are clusters themselves must stay."""
    from scipy.sparse.csgraph import connected_components

    n_comp, comp = connected_components(w, directed=False)
    sizes = np.bincount(comp)
    ranked = np.argsort(-sizes, kind="stable")[:max_components]
    kept = ranked[(sizes[ranked] >= min_size) | (ranked == ranked[0])]
    return np.isin(comp, kept), int(n_comp)


def top_eigenvectors(m, k):
    """Eigenvectors of the ``k`` largest eigenvalues of the sparse symmetric ``m``. Well
    separated clusters put ``k`` eigenvalues next to 1, where ARPACK's default Krylov space can
    fail to converge: small graphs are solved densely, large ones retry with a wider space."""
    from scipy.sparse.linalg import ArpackNoConvergence, eigsh

    if m.shape[0] <= 5000:
        return np.linalg.eigh(m.toarray())[1][:, -k:]
    try:
        return eigsh(m, k=k, which="LA")[1]
    except ArpackNoConvergence:
        return eigsh(m, k=k, which="LA", ncv=max(8 * k, 64), maxiter=100 * m.shape[0])[1]


def njw_embedding(w, k):
    """Ng-Jordan-Weiss spectral embedding of a connected graph: the ``k`` top eigenvectors of
    D^-1/2 W D^-1/2 with unit-length rows."""
    import scipy.sparse as sp

    degree = np.asarray(w.sum(1)).ravel()
    if np.any(degree <= 0):
        raise ValueError("the graph has isolated points; pass its largest component")
    d_isqrt = sp.diags(1.0 / np.sqrt(degree))
    vecs = top_eigenvectors(d_isqrt @ w @ d_isqrt, k)
    return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)


def graph_spectral_embedding(x, n_clusters, n_nbrs, scale_nbr=2, return_graph=False):
    """NJW embedding of the large components of the ``n_nbrs``-NN Gaussian graph of ``x`` (at
    most ``n_clusters`` components of at least n / (10 n_clusters) points). Returns the unit
    rows of the kept points, their mask and the graph's number of components, and with
    ``return_graph`` also the graph of the kept points."""
    graph = knn_graph(x, n_nbrs, scale_nbr)
    keep, n_comp = large_components(graph, n_clusters, graph.shape[0] / (10.0 * n_clusters))
    if keep.sum() <= n_clusters:
        raise ValueError(f"the {n_nbrs}-NN graph's large components hold {keep.sum()} points, "
                         f"too few for n_clusters={n_clusters}")
    graph = graph[keep][:, keep]
    vectors = njw_embedding(graph, n_clusters)
    return (vectors, keep, n_comp, graph) if return_graph else (vectors, keep, n_comp)


def normalized_cut(w, labels):
    """Normalized cut of a partition of the sparse affinity ``w``: the sum over clusters A of
    cut(A, rest) / vol(A), the objective NJW spectral clustering relaxes (0 for clusters with
    no edge between them, lower is cleaner)."""
    w = w.tocoo()
    labels = np.asarray(labels)
    if labels.shape != (w.shape[0],):
        raise ValueError(f"labels of shape {labels.shape} for a graph of {w.shape[0]} points")
    source = labels[w.row]
    crossing = source != labels[w.col]
    cut = np.bincount(source[crossing], weights=w.data[crossing], minlength=labels.max() + 1)
    volume = np.bincount(source, weights=w.data, minlength=labels.max() + 1)
    used = volume > 0
    return float(np.sum(cut[used] / volume[used]))
