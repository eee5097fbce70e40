import json

import keras
import numpy as np
import pytest

from core import checkpoints
from core.checkpoints import (CheckpointError, find_checkpoint, load_manifest,
                              load_weights_verified, save_checkpoint, save_weights_atomic)


def _tiny_model(seed):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(3)(inp))


def _save(tmp_path, model, name="tiny.weights.h5"):
    return save_checkpoint(model, tmp_path / name, method="tiny", dataset="digits",
                           protocol="full-70k", seed=0, command="pytest", steps=1,
                           hardware="test", metrics={"acc": 0.5, "nmi": 0.4, "ari": 0.3},
                           config={"units": 3})


def test_save_records_manifest_and_round_trips(tmp_path):
    model = _tiny_model(0)
    entry = _save(tmp_path, model)
    manifest = load_manifest(tmp_path)
    assert [e["file"] for e in manifest] == ["tiny.weights.h5"]
    for field in checkpoints.MANIFEST_FIELDS:
        assert field in manifest[0]
    assert manifest[0]["acc"] == 0.5 and manifest[0]["config"] == {"units": 3}
    assert not list(tmp_path.glob("*.tmp*"))  # the temp file was renamed away
    other = _tiny_model(1)
    load_weights_verified(other, tmp_path / "tiny.weights.h5", entry["sha256"])
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_saving_again_replaces_the_entry(tmp_path):
    _save(tmp_path, _tiny_model(0))
    _save(tmp_path, _tiny_model(2))
    assert len(load_manifest(tmp_path)) == 1


def test_corrupt_checkpoint_is_refused(tmp_path):
    _save(tmp_path, _tiny_model(0))
    path = tmp_path / "tiny.weights.h5"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt checkpoint .*tiny.weights.h5"):
        load_weights_verified(_tiny_model(1), path)


def test_truncated_checkpoint_without_manifest_gives_clear_error(tmp_path):
    path = tmp_path / "lonely.weights.h5"
    save_weights_atomic(_tiny_model(0), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot load checkpoint"):
        load_weights_verified(_tiny_model(1), path)


def test_missing_checkpoint_and_manifest_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_weights_verified(_tiny_model(0), tmp_path / "absent.weights.h5")
    with pytest.raises(CheckpointError, match="--method dec --train"):
        find_checkpoint("dec", "mnist", directory=tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="corrupt manifest"):
        load_manifest(tmp_path)


def test_weights_need_keras_suffix(tmp_path):
    with pytest.raises(ValueError, match=".weights.h5"):
        save_weights_atomic(_tiny_model(0), tmp_path / "model.h5")


def test_shipped_manifest_is_complete():
    entries = load_manifest()
    assert entries, "pretrained/manifest.json lists no checkpoint"
    for entry in entries:
        for field in checkpoints.MANIFEST_FIELDS:
            assert entry.get(field) is not None, f"{entry['file']} lacks {field}"
        assert entry["command"].startswith("python applications/run.py")
        checkpoints.verify_file(checkpoints.pretrained_dir() / entry["file"], entry["sha256"])
    assert json.loads((checkpoints.pretrained_dir() / "manifest.json").read_text()) == entries
