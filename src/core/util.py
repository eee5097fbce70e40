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


def _cpu_description(cpuinfo="/proc/cpuinfo"):
    """Model name plus family/model and the widest vector unit, from ``/proc/cpuinfo``.

    Virtual machines often report a bare "AMD EPYC" for several CPU generations, whose kernels
    (AVX2 vs. AVX-512) give different floating-point results, so the name alone cannot tell
    whether two runs should agree bit for bit.
    """
    fields = {}
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return platform.processor() or platform.machine()
    name = fields.get("model name") or platform.processor() or platform.machine()
    detail = []
    if "cpu family" in fields and "model" in fields:
        detail.append(f"family {fields['cpu family']} model {fields['model']}")
    flags = set(fields.get("flags", "").split())
    vector = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                             ("avx", "AVX"), ("sse4_2", "SSE4.2"))
                   if flag in flags), None)
    if vector:
        detail.append(vector)
    return f"{name} ({', '.join(detail)})" if detail else name


def hardware_string(cpuinfo="/proc/cpuinfo"):
    """A one-line description of the machine for manifests and benchmark tables."""
    try:
        import tensorflow as tf

        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # noqa: BLE001 - description only
        gpus = []
    desc = f"{os.cpu_count()} x {_cpu_description(cpuinfo)}"
    return desc + (f", GPU: {', '.join(gpus)}" if gpus else ", no GPU")
