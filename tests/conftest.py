import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from core.data import DataError, load_digits, load_mnist_like  # noqa: E402

REQUIRE_DATA = os.environ.get("DEEPCLUSTER_REQUIRE_DATA") == "1"


def _load_or_skip(name, protocol):
    try:
        return load_mnist_like(name, protocol)
    except DataError as err:
        if REQUIRE_DATA:  # CI fetches the data first: a missing file is a failure there
            raise
        pytest.skip(f"{name} not fetched: {err}")


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def mnist_full():
    return _load_or_skip("mnist", "full-70k")


@pytest.fixture(scope="session")
def fashion_full():
    return _load_or_skip("fashion", "full-70k")


@pytest.fixture(scope="session")
def mnist_subset(mnist_full):
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(mnist_full.x), 2000, replace=False))
    return mnist_full.x[idx], mnist_full.y[idx]
