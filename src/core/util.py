"""Small helpers shared by the runners: seeding, flattening, batch-wise prediction."""

import os
import platform
import random

import numpy as np


def set_seed(seed, deterministic=True):
    """Seed Python, NumPy, TensorFlow and Keras; make TF ops deterministic on CPU."""
    import keras
    import tensorflow as tf

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def flatten(x):
    """(n, ...) -> (n, prod(...)) float32."""
    x = np.asarray(x, dtype=np.float32)
    return x.reshape(len(x), -1)


def hardware_string():
    """A one-line description of the machine for manifests and benchmark tables."""
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001 - description only
        gpus = []
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{os.cpu_count()} x {cpu}"
    return desc + (f", GPU: {', '.join(gpus)}" if gpus else ", no GPU")
