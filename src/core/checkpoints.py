"""Checkpoints: atomic ``.weights.h5`` writes, the ``pretrained/manifest.json`` record, sha256
verification on load, and lookup of the shipped checkpoint of a method and dataset."""

import json
import os
import tempfile
from pathlib import Path

from core.data import sha256_of

MANIFEST_FIELDS = ("file", "method", "dataset", "protocol", "seed", "command", "steps",
                   "hardware", "sha256", "acc", "nmi", "ari")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not fit the model."""


def pretrained_dir() -> Path:
    """``$DEEPCLUSTER_PRETRAINED_DIR`` or the installed ``pretrained`` package folder."""
    override = os.environ.get("DEEPCLUSTER_PRETRAINED_DIR")
    if override:
        return Path(override)
    import pretrained

    return Path(pretrained.__file__).resolve().parent


def manifest_path(directory=None) -> Path:
    return Path(directory or pretrained_dir()) / "manifest.json"


def load_manifest(directory=None) -> list:
    path = manifest_path(directory)
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt manifest {path}: {err}") from err
    if not isinstance(entries, list):
        raise CheckpointError(f"corrupt manifest {path}: expected a list of entries")
    return entries


def _write_text_atomic(path: Path, text: str):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_weights_atomic(model, path) -> str:
    """Write ``model``'s weights to ``path`` (``*.weights.h5``) via temp file + rename.

    Returns the sha256 of the written file.
    """
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"weights files must end in .weights.h5, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: -len(".weights.h5")]
    tmp = path.with_name(f".{stem}.{os.getpid()}.tmp.weights.h5")
    try:
        model.save_weights(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sha256_of(path)


def record(entry: dict, directory=None) -> dict:
    """Insert or replace (by ``file``) an entry in the manifest, atomically."""
    missing = [field for field in MANIFEST_FIELDS if field not in entry]
    if missing:
        raise ValueError(f"manifest entry lacks fields {missing}")
    entries = [e for e in load_manifest(directory) if e.get("file") != entry["file"]]
    entries.append(entry)
    entries.sort(key=lambda e: e["file"])
    path = manifest_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(path, json.dumps(entries, indent=2, sort_keys=False) + "\n")
    return entry


def save_checkpoint(model, path, *, method, dataset, protocol, seed, command, steps, hardware,
                    metrics, config=None, directory=None, **extra) -> dict:
    """Save weights atomically and record them in the manifest of ``path``'s folder."""
    path = Path(path)
    digest = save_weights_atomic(model, path)
    entry = {"file": path.name, "method": method, "dataset": dataset, "protocol": protocol,
             "seed": seed, "command": command, "steps": steps, "hardware": hardware,
             "sha256": digest, "acc": metrics.get("acc"), "nmi": metrics.get("nmi"),
             "ari": metrics.get("ari"), "config": config or {}, **extra}
    return record(entry, directory or path.parent)


def verify_file(path, expected_sha256):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    actual = sha256_of(path)
    if expected_sha256 and actual != expected_sha256:
        raise CheckpointError(f"corrupt checkpoint {path}: sha256 {actual} does not match the "
                              f"manifest ({expected_sha256}); retrain it or restore the file")


def load_weights_verified(model, path, expected_sha256=None):
    """Load weights after checking the file's sha256 against the manifest (when known)."""
    path = Path(path)
    if expected_sha256 is None:
        entry = next((e for e in load_manifest(path.parent) if e.get("file") == path.name), None)
        expected_sha256 = entry and entry.get("sha256")
    verify_file(path, expected_sha256)
    try:
        model.load_weights(str(path))
    except Exception as err:  # h5py/keras raise many types for unreadable or mismatched files
        raise CheckpointError(f"cannot load checkpoint {path} into {model.name}: {err}") from err


def find_checkpoint(method, dataset, protocol=None, directory=None, variant=None) -> dict:
    """The manifest entry of the shipped checkpoint for ``method`` on ``dataset``; ``variant``
    picks one of its named alternatives (e.g. another training schedule), None the default."""
    entries = [e for e in load_manifest(directory)
               if e.get("method") == method and e.get("dataset") == dataset
               and (protocol is None or e.get("protocol") == protocol)
               and e.get("variant") == variant]
    if not entries:
        where = f" ({protocol})" if protocol else ""
        which = f" variant '{variant}'" if variant else ""
        raise CheckpointError(
            f"no pretrained checkpoint for method '{method}'{which} on '{dataset}'{where} in "
            f"{manifest_path(directory)}; train one with: python applications/run.py "
            f"--dset {dataset} --method {method} --train")
    entry = dict(entries[0])
    entry["path"] = str(Path(directory or pretrained_dir()) / entry["file"])
    return entry
