import json
import shutil
import warnings

import keras
import numpy as np
import pytest

from applications.ADDC import (ALRDC, ALRDCNet, adversarial_shift, assign, embed,
                               fit_head_to_spectral_clusters, pgd_embedding_attack,
                               spectral_partition)
from core import costs
from core.checkpoints import CheckpointError, load_weights_verified
from core.metrics import acc

TINY = dict(latent_dim=8, filters=4, pretrain_batch_size=64, adv_batch_size=256,
            warmup_epochs=3)
DIGITS_RUN = dict(pretrain_epochs=4, attack_epochs=2, defense_epochs=2, random_state=0, **TINY)


@pytest.fixture(scope="module")
def trained(digits):
    return ALRDC(**DIGITS_RUN).fit(digits.x, digits.y)


def test_networks_follow_the_upstream_shapes():
    net = ALRDCNet((28, 28, 1), 10, latent_dim=64, filters=16, seed=0)
    assert net.critic.input_shape == (None, 858)  # 64 + 784 + 10, computed
    assert net.adversary.output_shape == (None, 64)
    dense = [layer for layer in net.adversary.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [1024, 512, 64]
    assert all(layer.activation.__name__ == "linear" for layer in dense)
    assert tuple(net.class_means.shape) == (10, 64)
    assert tuple(net(np.zeros((2, 28, 28, 1), np.float32)).shape) == (2, 10)


def test_every_loss_term_is_finite_on_a_batch(digits):
    net = ALRDCNet((8, 8, 1), 10, latent_dim=8, filters=4, spectral_weight=1.0, seed=0)
    x = digits.x[:64]
    f = net._forward(x, with_adversary=True)
    assert tuple(f["x_hat_adv"].shape) == (64, 8, 8, 1) and tuple(f["y_adv"].shape) == (64, 10)
    vae = net._vae_loss(x, f)
    att = costs.attack_loss(f["x_hat"], f["x_hat_adv"], f["y"], f["y_adv"], f["z_mean"],
                            f["z_adv"])
    flat = keras.ops.concatenate([keras.ops.reshape(f["x_hat"], (64, -1)), f["y"]], axis=-1)
    mi = costs.jsd_mi_loss(net.critic, f["z_adv"], flat, flat[::-1])
    for value in (vae, mi, *att, net.trackers["spectral"].result()):
        assert np.isfinite(keras.ops.convert_to_numpy(value))


@pytest.mark.parametrize("stage", ["pretrain", "attack", "defense", "alternate"])
def test_each_stage_trains_only_its_variables(stage, digits):
    net = ALRDCNet((8, 8, 1), 10, latent_dim=8, filters=4, seed=0)
    net.compile()
    net.set_stage(stage)
    before = {id(v): keras.ops.convert_to_numpy(v).copy() for v in net.weights}
    logs = net.fit(digits.x[:256], epochs=1, batch_size=128, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in logs.values())
    changed = {id(v) for v in net.weights
               if not np.array_equal(before[id(v)], keras.ops.convert_to_numpy(v))}
    adversary = {id(v) for v in net.adversary.weights}
    vae = {id(v) for v in net.vae_variables}
    if stage == "attack":
        assert changed and changed <= adversary
    elif stage in ("pretrain", "defense"):
        assert changed and not changed & adversary and changed & vae
    else:
        assert changed & adversary and changed & vae
    with pytest.raises(ValueError, match="unknown stage"):
        net.set_stage("fight")


def test_history_covers_every_stage(trained):
    stages = [row["stage"] for row in trained.history_]
    assert stages[0] == "pretrain" and stages[-1] == "defense"
    assert {"clean", "adversarial", "label_change", "mean_shift"} <= set(trained.history_[-1])
    assert trained.labels_.shape == (1797,) and trained.labels_.max() < 10


MNIST_RUN = dict(pretrain_epochs=15, warmup_epochs=8, pretrain_batch_size=100, attack_epochs=5,
                 defense_epochs=0, adv_batch_size=500, cluster_from="spectral", random_state=0)


@pytest.fixture(scope="module")
def mnist_alrdc(mnist_subset, tmp_path_factory):
    """S1, the spectral relabelling and S2 on 2,000 MNIST images (28x28: on 8x8 digits the
    VAE's KL overwhelms the reconstruction and the clusters do not form)."""
    x, y = mnist_subset
    ckpt = tmp_path_factory.mktemp("alrdc_mnist")
    est = ALRDC(**MNIST_RUN, checkpoint_dir=str(ckpt)).fit(x)
    s1 = ALRDCNet((28, 28, 1), 10, seed=0)
    load_weights_verified(s1, ckpt / "pretrain.weights.h5")
    return est, x, y, assign(s1, embed(s1, x)).argmax(1), ckpt


def test_pretrained_vae_clusters_mnist(mnist_alrdc):
    _, _, y, s1_labels, _ = mnist_alrdc
    assert acc(y, s1_labels) > 0.4


def test_spectral_relabelling_is_what_the_attack_stage_attacks(mnist_alrdc, tmp_path_factory):
    est, x, y, s1_labels, ckpt = mnist_alrdc
    record = [row for row in est.history_ if row["stage"] == "spectral"]
    assert len(record) == 1 and [row["stage"] for row in est.history_].index("spectral") == 15
    record = record[0]
    kept = est.spectral_labels_ >= 0
    assert record["graph_points"] == kept.sum() >= 0.9 * len(x)
    assert record["head_agreement"] >= 0.95
    # S2 trains only the adversary: the final labels are still the refitted head's
    assert np.mean(est.labels_[kept] == est.spectral_labels_[kept]) == record["head_agreement"]
    assert acc(y, est.labels_) > acc(y, s1_labels) + 0.05
    # a rerun on the finished checkpoint directory keeps the relabelling instead of redoing it
    again = ALRDC(**MNIST_RUN, checkpoint_dir=str(ckpt)).fit(x)
    np.testing.assert_array_equal(again.spectral_labels_, est.spectral_labels_)
    np.testing.assert_array_equal(again.labels_, est.labels_)
    assert [row["stage"] for row in again.history_] == ["spectral"]
    broken = tmp_path_factory.mktemp("alrdc_broken")
    shutil.copytree(ckpt, broken, dirs_exist_ok=True)
    (broken / "spectral_labels.npy").write_bytes(b"not an array")
    with pytest.raises(CheckpointError, match="corrupt .*spectral_labels.npy"):
        ALRDC(**MNIST_RUN, checkpoint_dir=str(broken)).fit(x)


def test_siamese_graph_relabels_the_pretrained_codes(mnist_alrdc, tmp_path):
    from applications.spectralnet import siamese_embedding

    est, x, y, s1_labels, ckpt = mnist_alrdc
    net = ALRDCNet((28, 28, 1), 10, seed=0)
    load_weights_verified(net, ckpt / "pretrain.weights.h5")
    labels, record = fit_head_to_spectral_clusters(net, x, y, head_steps=300, seed=0,
                                                   siamese_epochs=3, siamese_draws=2)
    assert record["graph_basis"] == "siamese" and len(record["siamese_draws"]) == 2
    cuts = [draw["normalized_cut"] for draw in record["siamese_draws"]]
    assert [draw["seed"] for draw in record["siamese_draws"]] == [0, 1] and cuts[0] != cuts[1]
    choice = record["siamese_choice"]
    assert choice == int(np.argmin(cuts)) and record["normalized_cut"] == cuts[choice]
    for draw in record["siamese_draws"]:
        assert len(draw["siamese_loss"]) == 3
        assert draw["siamese_loss"][-1] < 0.8 * draw["siamese_loss"][0]
    assert record["graph_points"] >= 0.9 * len(x) and record["head_agreement"] >= 0.95
    assert record["spectral_metrics"] == record["siamese_draws"][choice]["spectral_metrics"]
    assert record["spectral_metrics"]["acc"] > acc(y, s1_labels) + 0.05
    # the chosen draw is reproducible from its seed alone
    emb, _ = siamese_embedding(embed(net, x), 10, choice, 3)  # the head fit left mu alone
    again, kept, _, cut = spectral_partition(emb, 10, seed=0)
    assert cut == record["normalized_cut"]
    np.testing.assert_array_equal(again, labels[kept])
    # a checkpoint relabelled on mu's own graph is not silently resumed as a siamese run
    assert [r for r in est.history_ if r["stage"] == "spectral"][0]["graph_basis"] == "mu"
    shutil.copytree(ckpt, tmp_path, dirs_exist_ok=True)
    with pytest.raises(ValueError, match="graph of mu; resume it with cluster_from='spectral'"):
        ALRDC(**{**MNIST_RUN, "cluster_from": "siamese"}, checkpoint_dir=str(tmp_path)).fit(x)
    with pytest.raises(ValueError, match="cluster_from must be 'head', 'spectral' or 'siamese'"):
        ALRDC(cluster_from="orthonorm").fit(x[:100])


def test_learned_attack_beats_random_noise_of_the_same_size(mnist_alrdc):
    est, x = mnist_alrdc[:2]
    net = est.model_
    z, shift = embed(net, x), adversarial_shift(net, x)
    clean = assign(net, z).argmax(1)
    learned = np.mean(assign(net, z + shift).argmax(1) == clean)
    noise = np.random.default_rng(0).normal(size=shift.shape).astype(np.float32)
    noise *= np.linalg.norm(shift, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1,
                                                                           keepdims=True)
    random_agreement = np.mean(assign(net, z + noise).argmax(1) == clean)
    assert learned < random_agreement


def test_pgd_attack_flips_labels_and_grows_with_eps(mnist_alrdc):
    est, x = mnist_alrdc[:2]
    net = est.model_
    z = embed(net, x)
    clean = assign(net, z).argmax(1)
    small, large = (np.mean(assign(net, pgd_embedding_attack(net, z, eps)).argmax(1) == clean)
                    for eps in (0.5, 4.0))
    assert large < small <= 1.0 and large < 0.9


def test_same_seed_same_labels_and_round_trip(trained, digits, tmp_path):
    again = ALRDC(**DIGITS_RUN).fit(digits.x, digits.y)
    np.testing.assert_array_equal(again.labels_, trained.labels_)
    trained.save(tmp_path / "alrdc")
    loaded = ALRDC.load(tmp_path / "alrdc")
    np.testing.assert_array_equal(loaded.predict(digits.x), trained.labels_)
    np.testing.assert_array_equal(loaded.predict_adversarial(digits.x),
                                  trained.predict_adversarial(digits.x))


def test_corrupt_checkpoint_is_reported(trained, tmp_path):
    path = trained.save(tmp_path / "alrdc")
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        ALRDC.load(tmp_path / "alrdc")


def test_interrupted_run_resumes_without_losing_work(digits, tmp_path):
    params = dict(pretrain_epochs=2, attack_epochs=1, defense_epochs=1, random_state=0,
                  checkpoint_dir=str(tmp_path / "ckpt"), **TINY)
    ALRDC(**{**params, "attack_epochs": 0, "defense_epochs": 0}).fit(digits.x)  # "interrupted"
    with warnings.catch_warnings():
        # the VAE optimizer's saved state loads; the unused S2/S3 ones start fresh, silently
        warnings.filterwarnings("error", message="Skipping variable loading for optimizer")
        resumed = ALRDC(**params).fit(digits.x)
    stages = [row["stage"] for row in resumed.history_]
    assert "pretrain" not in stages and stages == ["attack", "defense"]
    assert (tmp_path / "ckpt" / "progress.json").is_file()
    # stage snapshots: upstream's MNIST_64 (S1) and MNIST_ADV_64 (S2) equivalents
    for stage in ("pretrain", "attack", "defense"):
        assert (tmp_path / "ckpt" / f"{stage}.weights.h5").stat().st_size > 1000
    with pytest.raises(ValueError, match="without the spectral relabelling"):
        ALRDC(**{**params, "cluster_from": "spectral"}).fit(digits.x)
    # a rerun on the finished directory trains nothing and scores the S2 snapshot as "before"
    again = ALRDC(**params).fit(digits.x, digits.y)
    s2 = ALRDCNet((8, 8, 1), 10, latent_dim=8, filters=4, seed=0)
    load_weights_verified(s2, tmp_path / "ckpt" / "attack.weights.h5")
    assert again.history_ == [] and again.pre_defense_report_["clean"]["acc"] == acc(
        digits.y, assign(s2, embed(s2, digits.x)).argmax(1))


def test_defence_stage_gets_a_before_report(trained):
    before = trained.pre_defense_report_
    assert {"clean", "adversarial", "pgd@0.5", "agreement"} <= set(before)
    assert "labels" not in before and 0.0 <= before["adversarial"]["acc"] <= 1.0


def test_flat_and_bad_inputs(digits):
    with pytest.raises(ValueError, match="needs images"):
        ALRDC(**TINY, pretrain_epochs=1).fit(digits.x.reshape(len(digits.x), -1))
    with pytest.raises(ValueError, match="schedule"):
        ALRDC(schedule="bogus", **TINY).fit(digits.x)
    with pytest.raises(ValueError, match="cluster_from"):
        ALRDC(cluster_from="kmeans", **TINY).fit(digits.x)


def test_label_change_stop_rule_ends_the_defence_stage(digits, tmp_path):
    # tol above 1: the second check (any change rate) stops S3; S1 and S2 ignore the rule
    est = ALRDC(pretrain_epochs=2, attack_epochs=2, defense_epochs=6, stop_tol=1.01,
                random_state=0, checkpoint_dir=str(tmp_path / "ckpt"), **TINY).fit(digits.x)
    epochs = {stage: [r["epoch"] for r in est.history_ if r["stage"] == stage]
              for stage in ("pretrain", "attack", "defense")}
    assert epochs == {"pretrain": [1, 2], "attack": [1, 2], "defense": [1, 2]}
    assert est.history_[-1]["label_change"] is not None
    assert json.loads((tmp_path / "ckpt" / "progress.json").read_text())["stopped"] == ["defense"]
