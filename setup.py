"""Build script: packages ``core`` and ``applications`` from src/, the Cython kNN kernel, and the
pretrained checkpoints as the data-only package ``pretrained``. Metadata lives in pyproject.toml."""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize(
    [Extension("core.convert_idxs", ["src/core/convert_idxs.pyx"],
               include_dirs=[np.get_include()],
               define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])],
    compiler_directives={"language_level": "3"},
    quiet=True,
)

setup(
    packages=["core", "applications", "pretrained"],
    package_dir={"": "src", "pretrained": "pretrained"},
    package_data={"pretrained": ["manifest.json", "*.weights.h5", "*.npz"]},
    ext_modules=extensions if os.environ.get("DEEPCLUSTER_NO_CYTHON") != "1" else [],
)
