# cython: language_level=3, boundscheck=False, wraparound=False
"""Cython ``convert_idxs`` (METHODS.md §1.5), with the uninitialised-tail bug fixed."""

import numpy as np
cimport numpy as cnp

from core._convert_idxs_py import _check_inputs

cnp.import_array()


def convert_idxs(kn_idxs, permutation, Py_ssize_t n_subset, Py_ssize_t k, bint pad=False):
    """Same contract as ``core._convert_idxs_py.convert_idxs``; compiled for large tables."""
    kn_idxs, permutation = _check_inputs(kn_idxs, permutation, n_subset, k)
    cdef int[:, ::1] table = kn_idxs
    cdef int[::1] perm = permutation
    cdef Py_ssize_t n_total = table.shape[0], width = table.shape[1]
    cdef Py_ssize_t i, j, filled, short_rows = 0, first_short = -1, first_count = 0
    cdef int pos
    position_arr = np.full(n_total, -1, dtype=np.int32)
    cdef int[::1] position = position_arr
    for i in range(n_subset):
        position[perm[i]] = <int>i
    out_arr = np.full((n_subset, k + 1), -1, dtype=np.int32)
    cdef int[:, ::1] out = out_arr
    for i in range(n_subset):
        filled = 0
        for j in range(width):
            pos = position[table[perm[i], j]]
            if pos >= 0:
                out[i, filled] = pos
                filled += 1
                if filled == k + 1:
                    break
        if filled < k + 1:
            if short_rows == 0:
                first_short = i
                first_count = filled
            short_rows += 1
    if short_rows and not pad:
        raise ValueError(f"{short_rows} rows have fewer than k+1={k + 1} neighbours inside the "
                         f"subset (first: row {first_short} with {first_count}); use a wider "
                         "kNN table or pad=True")
    return out_arr
