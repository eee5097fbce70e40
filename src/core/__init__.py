"""Core machinery shared by every method: data, metrics, networks, layers, losses, training."""

__version__ = "0.1.0"

try:  # the compiled kernel when setup.py built it, the NumPy version otherwise
    from core.convert_idxs import convert_idxs  # noqa: F401
    CONVERT_IDXS_BACKEND = "cython"
except ImportError:  # pragma: no cover - depends on the build
    from core._convert_idxs_py import convert_idxs  # noqa: F401
    CONVERT_IDXS_BACKEND = "numpy"
