import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

import core
from core._convert_idxs_py import convert_idxs as convert_numpy

try:
    from core.convert_idxs import convert_idxs as convert_cython
except ImportError:  # pragma: no cover
    convert_cython = None

needs_cython = pytest.mark.skipif(convert_cython is None, reason="Cython extension not built")


def _knn_table(n, width, seed):
    pts = np.random.default_rng(seed).normal(size=(n, 3))
    return NearestNeighbors(n_neighbors=width).fit(pts).kneighbors(pts)[1].astype(np.int32)


def test_package_uses_compiled_kernel_when_built():
    assert core.CONVERT_IDXS_BACKEND == ("cython" if convert_cython else "numpy")


@needs_cython
@pytest.mark.parametrize("seed", range(5))
def test_cython_and_numpy_agree_on_random_tables(seed):
    rng = np.random.default_rng(seed)
    n_total = int(rng.integers(50, 400))
    table = _knn_table(n_total, 40, seed)
    perm = rng.permutation(n_total)
    n_subset = int(rng.integers(n_total // 2, n_total + 1))
    for pad in (True, False):
        k = 3
        try:
            expected = convert_numpy(table, perm, n_subset, k, pad=pad)
        except ValueError:
            with pytest.raises(ValueError, match="fewer than"):
                convert_cython(table, perm, n_subset, k, pad=pad)
            continue
        np.testing.assert_array_equal(convert_cython(table, perm, n_subset, k, pad=pad), expected)


def test_hand_made_table():
    table = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]], dtype=np.int32)
    perm = np.array([2, 0, 3, 1])
    out = convert_numpy(table, perm, n_subset=3, k=1)  # subset = points {2, 0, 3}
    # point 2 -> neighbours [2, 1(absent), 0] -> positions [0, 1]
    # point 0 -> [0, 1(absent), 2] -> [1, 0];  point 3 -> [3, 2, 1] -> [2, 0]
    np.testing.assert_array_equal(out, [[0, 1], [1, 0], [2, 0]])


@pytest.mark.parametrize("impl", [convert_numpy, convert_cython])
def test_shortfall_raises_or_pads(impl):
    if impl is None:
        pytest.skip("Cython extension not built")
    table = np.array([[0, 1], [1, 0], [2, 1]], dtype=np.int32)
    perm = np.array([0, 2, 1])
    with pytest.raises(ValueError, match="fewer than k\\+1=2"):
        impl(table, perm, 2, 1)
    out = impl(table, perm, 2, 1, pad=True)
    np.testing.assert_array_equal(out, [[0, -1], [1, -1]])


def test_invalid_inputs_are_named():
    table = _knn_table(20, 5, 0)
    with pytest.raises(ValueError, match="exceeds the neighbour table width"):
        convert_numpy(table, np.arange(20), 10, 5)
    with pytest.raises(ValueError, match="distinct indices"):
        convert_numpy(table, np.zeros(20, dtype=int), 10, 2)
    with pytest.raises(ValueError, match="2-d"):
        convert_numpy(table[0], np.arange(20), 10, 2)
