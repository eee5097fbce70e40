import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from applications.run import main
from core.checkpoints import load_manifest

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("argv", [
    ["--method", "nope"],
    ["--dset", "cifar"],
    ["--frobnicate"],
    ["--save-pretrained"],
    ["--encoder-weights", "model"],
    ["--method", "kmeans", "--train", "--encoder-weights", "model"],
    ["--method", "kmeans", "--dset", "digits", "--train", "--checkpoint-dir", "ckpt"],
    ["--method", "kmeans", "--param", "n_init=1"],
    ["--method", "kmeans", "--dset", "digits", "--train", "--param", "n_int=1"],
    ["--method", "kmeans", "--dset", "digits", "--train", "--param", "n_init"],
    ["--from-run", "out", "--train"],
    ["--variant", "Bad_Name"],
    ["--method", "ae-kmeans", "--train", "--variant", "sgd"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_kmeans_on_digits_writes_metrics_and_pngs(tmp_path):
    assert main(["--dset", "digits", "--method", "kmeans", "--out", str(tmp_path),
                 "--tsne-points", "300"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_scored"] == 1797 and metrics["acc"] > 0.6
    for name in ("tsne.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 2000


def test_param_overrides_one_preset_value(tmp_path, capsys):
    argv = ["--dset", "digits", "--method", "ae-kmeans", "--train", "--no-plots",
            "--param", "epochs=2", "--param", "hidden_dims=(32, 16)", "--out", str(tmp_path)]
    assert main(argv + ["--verbose", "0"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # 2 epochs of batch 64 on 1797 images (the preset trains 60)
    assert metrics["steps"] == 2 * 29 and "--param hidden_dims=(32, 16)" in metrics["command"]


def test_train_on_users_npz(tmp_path, digits):
    path = tmp_path / "mine.npz"
    np.savez(path, x=(digits.x[:400, ..., 0] * 255).astype(np.uint8), y=digits.y[:400])
    out = tmp_path / "out"
    assert main(["--dset", str(path), "--method", "ae-kmeans", "--train", "--epochs", "3",
                 "--out", str(out), "--no-plots", "--verbose", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "mine" and metrics["n_scored"] == 400
    assert (out / "model.weights.h5").is_file() and (out / "labels.txt").is_file()


def test_encoder_weights_start_a_method_from_a_given_autoencoder(tmp_path, digits, capsys):
    from applications.ae_baseline import AEGMM, AEKMeans

    path = tmp_path / "few.npz"
    np.savez(path, x=(digits.x[:300, ..., 0] * 255).astype(np.uint8), y=digits.y[:300])
    common = ["--dset", str(path), "--train", "--no-plots", "--verbose", "0"]
    assert main([*common, "--method", "ae-kmeans", "--epochs", "2", "--seed", "3",
                 "--out", str(tmp_path / "ae")]) == 0
    assert main([*common, "--method", "ae-gmm", "--encoder-weights", str(tmp_path / "ae/model"),
                 "--out", str(tmp_path / "gmm")]) == 0
    ae, gmm = AEKMeans.load(tmp_path / "ae/model"), AEGMM.load(tmp_path / "gmm/model")
    assert gmm.encoder_weights == str(tmp_path / "ae/model")
    for ours, theirs in zip(gmm.model_.encoder.get_weights(), ae.model_.encoder.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert main([*common, "--method", "ae-gmm", "--encoder-weights", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "bad")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_a_run_ships_as_a_variant_checkpoint_under_its_training_command(
        tmp_path, digits, monkeypatch, capsys):
    path = tmp_path / "few.npz"
    np.savez(path, x=(digits.x[:300, ..., 0] * 255).astype(np.uint8), y=digits.y[:300])
    monkeypatch.setenv("DEEPCLUSTER_PRETRAINED_DIR", str(tmp_path / "pretrained"))
    common = ["--dset", str(path), "--method", "ae-kmeans", "--no-plots", "--verbose", "0"]
    train = [*common, "--train", "--epochs", "2", "--seed", "4", "--out", str(tmp_path / "run")]
    assert main(train) == 0
    trained = json.loads((tmp_path / "run/metrics.json").read_text())
    assert main([*common, "--from-run", str(tmp_path / "run"), "--out", str(tmp_path / "run")]
                ) == 1                                   # would overwrite the run's record
    assert "another --out" in capsys.readouterr().err
    assert main([*common, "--from-run", str(tmp_path / "run"), "--save-pretrained",
                 "--variant", "short", "--out", str(tmp_path / "export")]) == 0
    entry, = load_manifest(tmp_path / "pretrained")
    assert entry["file"] == "few_ae-kmeans-short_full-70k.weights.h5"
    assert entry["variant"] == "short" and entry["command"] == trained["command"]
    assert entry["seed"] == 4 and entry["steps"] == trained["steps"] == 2 * 2  # batch 256
    assert "--from-run" in entry["exported_by"] and entry["acc"] == trained["acc"]
    # the variant is found by name only; the method's default checkpoint is another one
    assert main([*common, "--out", str(tmp_path / "default")]) == 1
    assert "--method ae-kmeans --train" in capsys.readouterr().err
    assert main([*common, "--variant", "short", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again/metrics.json").read_text())
    assert again["acc"] == trained["acc"] and again["nmi"] == trained["nmi"]
    assert main(["--dset", str(path), "--method", "ae-gmm", "--no-plots", "--from-run",
                 str(tmp_path / "run"), "--out", str(tmp_path / "wrong")]) == 1
    assert "trained with method 'ae-kmeans', not 'ae-gmm'" in capsys.readouterr().err


def test_missing_checkpoint_says_how_to_train(tmp_path, capsys):
    assert main(["--dset", "digits", "--method", "ae-kmeans", "--out", str(tmp_path)]) == 1
    assert "--method ae-kmeans --train" in capsys.readouterr().err


# the variants (alternatives kept for comparison, e.g. upstream's labelling) are "slow": not in CI
SHIPPED = [pytest.param(e["method"], e["dataset"], e["protocol"], e.get("variant"),
                        marks=[pytest.mark.slow] if e.get("variant") else [])
           for e in load_manifest()]


@pytest.mark.parametrize("method,dataset,protocol,variant", SHIPPED)
def test_shipped_checkpoint_reproduces_its_manifest(method, dataset, protocol, variant,
                                                    mnist_full, fashion_full, tmp_path, capsys):
    entry = next(e for e in load_manifest() if (e["method"], e["dataset"], e["protocol"],
                                                 e.get("variant"))
                 == (method, dataset, protocol, variant))
    argv = ["--dset", dataset, "--method", method, "--protocol", protocol, "--out",
            str(tmp_path), "--tsne-points", "500"] + (["--variant", variant] if variant else [])
    if (method, dataset, variant) == ("alrdc", "mnist", None):
        # the README's headline command, as a user runs it: a script in a fresh process from src/
        proc = subprocess.run([sys.executable, "applications/run.py", *argv], cwd=SRC,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        stdout = proc.stdout
    else:  # in this process: the same main(), without a TensorFlow start-up per checkpoint
        assert main(argv) == 0
        stdout = capsys.readouterr().out
    assert "ACC" in stdout and "NMI" in stdout and "ARI" in stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    if "n_scored" in entry:
        assert metrics["n_scored"] == entry["n_scored"]
    for key in ("acc", "nmi", "ari"):
        assert metrics[key] == pytest.approx(entry[key], abs=1e-6)
    for name in ("tsne.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 2000
    for row in ("clean", "adversarial"):
        if row in entry.get("robustness", {}):
            assert metrics["robustness"][row]["acc"] == pytest.approx(
                entry["robustness"][row]["acc"], abs=1e-6)


def test_default_method_is_alrdc_on_the_upstream_protocol():
    from applications.run import DEFAULT_METHOD, DEFAULT_PROTOCOLS, build_parser

    args = build_parser().parse_args([])
    assert args.method == DEFAULT_METHOD == "alrdc"
    assert DEFAULT_PROTOCOLS[args.method] == "test-10k"


# the methods' own test files train each estimator; here the CLI wiring of the presets. The
# heavier presets are "slow" (not in CI; run with -m slow) to keep CI well inside 30 minutes.
_SLOW = pytest.mark.slow


@pytest.mark.parametrize("method", ["spectralnet", "alrdc", "ae-gmm", "catgan",
                                    pytest.param("dscdan", marks=_SLOW),
                                    pytest.param("dec", marks=_SLOW),
                                    pytest.param("vade", marks=_SLOW),
                                    pytest.param("vae-gmm", marks=_SLOW),
                                    pytest.param("dagmc", marks=_SLOW),
                                    pytest.param("fcae-kmeans", marks=_SLOW),
                                    pytest.param("dbc", marks=_SLOW),
                                    pytest.param("clustergan", marks=_SLOW),
                                    pytest.param("infogan", marks=_SLOW)])
def test_deep_methods_train_from_the_cli_on_digits(method, tmp_path):
    with_plots = method in ("alrdc", "catgan")   # figures checked on two cheap runs
    assert main(["--dset", "digits", "--method", method, "--train", "--epochs", "2",
                 "--out", str(tmp_path), "--verbose", "0"]
                + ([] if with_plots else ["--no-plots"])
                # fewer head steps for the spectral relabellings of the ALRDC/DSCDAN presets
                + (["--param", "head_steps=100"] if method in ("alrdc", "dscdan") else [])) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_scored"] == 1797 and 0.0 <= metrics["acc"] <= 1.0
    assert (tmp_path / "model.weights.h5").is_file()
    if method == "alrdc":
        assert set(metrics["robustness"]) >= {"clean", "adversarial", "pgd@0.5", "mean_shift"}
        # ACC against epochs over the three stages (2 each), drawn into training.png
        assert [x for x, _ in metrics["curves"]["pretrain clean ACC"]] == [1.0, 2.0]
        assert len(metrics["curves"]["defense learned-attack ACC"]) == 2
        assert (tmp_path / "training.png").stat().st_size > 0
        # the preset relabels by spectral clustering of mu after S1 and after S3
        assert [step["after"] for step in metrics["spectral_step"]] == ["pretrain", "defense"]
        assert [x for x, _ in metrics["curves"]["defense clean ACC"]] == [5.0, 6.0]
    if method in ("alrdc", "dscdan"):  # three stages / two stages of 2 epochs over 1797 images
        assert metrics["samples_trained"] == (3 if method == "alrdc" else 2) * 2 * 1797
    if method == "dscdan":  # the preset labels by spectral clustering of mu, then fits the head
        step = metrics["spectral_step"]
        assert 180 <= step["graph_points"] <= 1797 and 0.0 <= step["head_agreement"] <= 1.0
        assert step["spectral_metrics"]["acc"] > 0.1
    if method == "spectralnet":  # spectral steps x batch (the siamese stage is not counted)
        assert metrics["samples_trained"] == metrics["steps"] * 256
    if method == "catgan":
        assert (tmp_path / "samples.png").stat().st_size > 0


def test_training_curves_read_every_history_format():
    from applications.run import training_curves

    rounds = [{"round": 0, "confident_share": 0.2, "mean_max_q": 0.3, "acc": 0.5},
              {"round": 1, "confident_share": 0.4, "mean_max_q": 0.5, "changed": 0.1, "acc": 0.6}]
    curves = training_curves(rounds)
    assert curves["confident_share"] == [[0.0, 0.2], [1.0, 0.4]]
    assert curves["changed"] == [[1.0, 0.1]] and curves["acc"][-1] == [1.0, 0.6]
    logged = {"loss": [1.0, 0.5], "metrics": [{"epoch": 5, "acc": 0.7, "nmi": 0.6}]}
    assert training_curves(logged) == {"acc": [[5.0, 0.7]], "nmi": [[5.0, 0.6]]}
    staged = {"pretrain": {"metrics": [{"epoch": 1, "acc": 0.4, "nmi": 0.3}]},
              "joint": {"metrics": [{"epoch": 2, "acc": 0.8, "nmi": 0.7}]}}
    assert set(training_curves(staged)) == {"pretrain acc", "pretrain nmi", "joint acc",
                                            "joint nmi"}
    assert training_curves({"loss": [1.0], "metrics": []}) == {}
    assert training_curves(None) == {}
