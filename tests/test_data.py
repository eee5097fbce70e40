import shutil

import numpy as np
import pytest

from core import data
from core.data import DataError, load_dataset, load_digits, load_npz, validate_array


def test_digits_images_and_protocols():
    ds = load_digits()
    assert ds.x.shape == (1797, 8, 8, 1) and ds.x.dtype == np.float32
    assert 0.0 <= ds.x.min() and ds.x.max() == 1.0
    assert np.bincount(ds.y).min() >= 170 and ds.n_clusters == 10
    tt = load_digits("train-test")
    assert len(tt.x) + len(tt.x_eval) == 1797
    assert load_digits(size=12).x.shape == (1797, 12, 12, 1)


def test_unknown_protocol_and_dataset():
    with pytest.raises(ValueError, match="unknown protocol"):
        load_digits("all")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


@pytest.mark.parametrize("bad, message", [
    (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN or infinite"),
    (np.array([[0.0, np.inf], [1.0, 2.0]]), "NaN or infinite"),
    (np.zeros(5), "must have shape"),
    (np.zeros((2, 2, 2, 2, 2)), "must have shape"),
    (np.array([["a", "b"]]), "must be numeric"),
    (np.zeros((0, 4)), "empty"),
])
def test_validate_array_names_the_problem(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_array(bad)


def test_validate_array_checks_n_clusters():
    with pytest.raises(ValueError, match="too few samples \\(3\\) for n_clusters=5"):
        validate_array(np.zeros((3, 4)), n_clusters=5)
    with pytest.raises(ValueError, match="at least 2"):
        validate_array(np.zeros((3, 4)), n_clusters=1)
    assert validate_array(np.zeros((3, 5, 5))).shape == (3, 5, 5, 1)


def test_npz_round_trip(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, size=(30, 6, 6), dtype=np.uint8)
    y = np.arange(30) % 3
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = load_npz(tmp_path / "mine.npz")
    assert ds.x.shape == (30, 6, 6, 1) and ds.x.max() <= 1.0
    assert ds.n_clusters == 3 and ds.name == "mine"
    np.testing.assert_allclose(ds.x[..., 0], x / 255.0, rtol=1e-6)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nox.npz", z=np.zeros((4, 2)))
    with pytest.raises(DataError, match="no array named x"):
        load_npz(tmp_path / "nox.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match="cannot read"):
        load_npz(tmp_path / "broken.npz")
    with pytest.raises(DataError, match="not found"):
        load_npz(tmp_path / "absent.npz")
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="pass n_clusters"):
        load_npz(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match="3 labels for 4 samples"):
        load_npz(tmp_path / "mismatch.npz")


def test_mnist_protocols(mnist_full):
    assert mnist_full.x.shape == (70000, 28, 28, 1) and mnist_full.x.dtype == np.float32
    assert mnist_full.y[:5].tolist() == [5, 0, 4, 1, 9]
    train_counts = np.bincount(mnist_full.y[:60000]).tolist()
    assert train_counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = load_dataset("mnist", "test-10k")
    assert test.x.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(test.x, mnist_full.x[60000:])
    tt = load_dataset("mnist", "train-test")
    assert len(tt.x) == 60000 and len(tt.x_eval) == 10000


def test_fashion_is_balanced(fashion_full):
    assert fashion_full.x.shape == (70000, 28, 28, 1)
    assert np.bincount(fashion_full.y[:60000]).tolist() == [6000] * 10
    assert np.bincount(fashion_full.y[60000:]).tolist() == [1000] * 10


def _copy_dataset(src_root, dst_root, name):
    shutil.copytree(src_root / name, dst_root / name,
                    ignore=shutil.ignore_patterns("*.npy", "cache.sha256"))


def test_corrupt_and_missing_files_are_named(mnist_full, tmp_path, monkeypatch):
    src_root = data.data_dir()
    monkeypatch.setenv("DEEPCLUSTER_DATA_DIR", str(tmp_path))
    _copy_dataset(src_root, tmp_path, "mnist")
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 0xFF
    target.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="corrupt data file .*t10k-labels-idx1-ubyte"):
        load_dataset("mnist")
    target.unlink()
    with pytest.raises(DataError, match="missing data file .*t10k-labels.*core.data fetch mnist"):
        load_dataset("mnist")


def test_corrupt_cache_is_rebuilt(mnist_full, tmp_path, monkeypatch):
    src_root = data.data_dir()
    monkeypatch.setenv("DEEPCLUSTER_DATA_DIR", str(tmp_path))
    _copy_dataset(src_root, tmp_path, "mnist")
    first = load_dataset("mnist", "test-10k")
    cache = tmp_path / "mnist" / "y_test.npy"
    arr = np.load(cache)
    arr[:10] = 0
    np.save(cache, arr)  # a tampered cache must not be served
    again = load_dataset("mnist", "test-10k")
    np.testing.assert_array_equal(again.y, first.y)


def test_keras_download_is_opt_in(tmp_path, monkeypatch):
    import keras

    monkeypatch.setenv("DEEPCLUSTER_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing data file"):
        load_dataset("mnist", "test-10k")  # no files, no opt-in: a clear error, no download
    calls = []

    def fake_load_data():
        calls.append(1)
        rng = np.random.default_rng(0)
        return ((rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8), np.arange(60000) % 10),
                (rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8), np.arange(10000) % 10))

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fake_load_data)
    monkeypatch.setenv("DEEPCLUSTER_ALLOW_DOWNLOAD", "1")
    ds = load_dataset("mnist", "test-10k")
    assert ds.x.shape == (10000, 28, 28, 1) and calls == [1]
    again = load_dataset("mnist", "test-10k")  # served from the verified cache
    assert calls == [1]
    np.testing.assert_array_equal(again.y, ds.y)
