"""Pure-NumPy ``convert_idxs``: the fallback used when the Cython extension is not built."""

import numpy as np


def _check_inputs(kn_idxs, permutation, n_subset, k):
    kn_idxs = np.ascontiguousarray(kn_idxs, dtype=np.int32)
    permutation = np.ascontiguousarray(permutation, dtype=np.int32)
    if kn_idxs.ndim != 2:
        raise ValueError(f"kn_idxs must be 2-d (N, w), got shape {kn_idxs.shape}")
    n_total = kn_idxs.shape[0]
    if permutation.ndim != 1 or len(permutation) < n_subset:
        raise ValueError(f"permutation must be 1-d with at least n_subset={n_subset} entries")
    if not 0 < n_subset <= n_total:
        raise ValueError(f"n_subset must be in [1, {n_total}], got {n_subset}")
    if k < 0 or k + 1 > kn_idxs.shape[1]:
        raise ValueError(f"k+1={k + 1} exceeds the neighbour table width {kn_idxs.shape[1]}")
    head = permutation[:n_subset]
    if head.min() < 0 or head.max() >= n_total or len(np.unique(head)) != n_subset:
        raise ValueError("the first n_subset entries of permutation must be distinct indices "
                         f"in [0, {n_total})")
    if kn_idxs.min() < 0 or kn_idxs.max() >= n_total:
        raise ValueError(f"kn_idxs holds indices outside [0, {n_total})")
    return kn_idxs, permutation


def convert_idxs(kn_idxs, permutation, n_subset, k, pad=False):
    """Re-express a precomputed kNN table in the positions of a permuted subset.

    Args:
        kn_idxs: (N, w) neighbour table over the whole, unshuffled data set (self first).
        permutation: permutation of [0, N); its first ``n_subset`` entries pick the subset.
        n_subset: number of points actually used.
        k: number of neighbours to keep besides the point itself.
        pad: when a row has fewer than k+1 neighbours inside the subset, pad it with -1 instead
            of raising (upstream returned uninitialised memory there).

    Returns:
        (n_subset, k+1) int32 table; row i lists the neighbours of ``permutation[i]`` as
        positions in ``permutation[:n_subset]``.
    """
    kn_idxs, permutation = _check_inputs(kn_idxs, permutation, n_subset, k)
    n_total = kn_idxs.shape[0]
    position = np.full(n_total, -1, dtype=np.int32)
    position[permutation[:n_subset]] = np.arange(n_subset, dtype=np.int32)
    mapped = position[kn_idxs[permutation[:n_subset]]]          # (n, w), -1 outside the subset
    valid = mapped >= 0
    # stable "first k+1 valid entries": sort by (invalid, column) and take the head
    order = np.argsort(~valid, axis=1, kind="stable")[:, : k + 1]
    out = np.take_along_axis(mapped, order, axis=1)
    n_valid = valid.sum(axis=1)
    short = n_valid < k + 1
    if short.any():
        if not pad:
            row = int(np.flatnonzero(short)[0])
            raise ValueError(f"{int(short.sum())} rows have fewer than k+1={k + 1} neighbours "
                             f"inside the subset (first: row {row} with {int(n_valid[row])}); "
                             "use a wider kNN table or pad=True")
        out[np.arange(k + 1)[None, :] >= n_valid[:, None]] = -1
    return out.astype(np.int32)
