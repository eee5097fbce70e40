"""DSCDAN (issue 4): loss terms, stages, upstream-compat flags, seeds and checkpoints."""

import json

import numpy as np
import pytest

from applications.DSCDAN import DSCDAN, DSCDANNet

TINY = dict(latent_dim=8, filters=4, pretrain_batch_size=64, joint_batch_size=256,
            warmup_epochs=2, random_state=0)


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def _changed(before, model):
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_networks_follow_the_upstream_shapes():
    net = DSCDANNet((28, 28, 1), 10)
    assert [tuple(o.shape) for o in net.encoder.outputs] == [(None, 120), (None, 120)]
    assert tuple(net.decoder.output.shape) == (None, 28, 28, 1)
    assert tuple(net.critic.input.shape) == (None, 240)
    assert [layer.units for layer in net.cluster_head.layers[1:]] == [1024, 1024, 512, 10]


@pytest.mark.parametrize("stage", ["pretrain", "joint"])
def test_every_term_is_finite_and_spectral_only_in_joint(stage, digits):
    net = DSCDANNet(digits.x.shape[1:], 10, latent_dim=8, filters=4, affinity_scale=1.0)
    net.set_stage(stage)
    terms = net.losses_on(digits.x[:128])
    assert all(np.isfinite(float(v)) for v in terms.values())
    assert ("spectral" in terms) == (stage == "joint")
    expected = (5 * terms["rec"] + 5 * terms["dual"] + 1.5 * terms["kl"] + terms["cat"]
                + 0.001 * terms["mi"] + terms.get("spectral", 0.0))
    assert float(terms["loss"]) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="unknown stage"):
        net.set_stage("finetune")


@pytest.mark.parametrize("frozen", [True, False])
def test_freeze_mi_critic_flag(frozen, digits):
    net = DSCDANNet(digits.x.shape[1:], 10, latent_dim=8, filters=4, freeze_mi_critic=frozen)
    import keras

    net.compile(optimizer=keras.optimizers.Adam(1e-3))
    critic, encoder = _weights(net.critic), _weights(net.encoder)
    net.fit(digits.x[:256], epochs=1, batch_size=128, verbose=0)
    assert _changed(critic, net.critic) != frozen
    assert _changed(encoder, net.encoder)


@pytest.fixture(scope="module")
def fitted(digits):
    return DSCDAN(pretrain_epochs=4, joint_epochs=4, log_every=2, **TINY).fit(digits.x,
                                                                               digits.y)


def test_stages_run_and_scale_is_computed(fitted, digits):
    assert set(fitted.history_) == {"pretrain", "joint"}
    joint = fitted.history_["joint"]
    assert np.isfinite(joint["spectral"]).all() and np.isfinite(joint["loss"]).all()
    assert fitted.affinity_scale_ > 0
    assert fitted.labels_.shape == (len(digits.x),) and fitted.labels_.max() < 10
    proba = fitted.predict_proba(digits.x[:5])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert fitted.history_["joint"]["metrics"][-1]["epoch"] == 4


def test_same_seed_same_labels_and_round_trip(fitted, digits, tmp_path):
    again = DSCDAN(pretrain_epochs=4, joint_epochs=4, **TINY).fit(digits.x)
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    fitted.save(tmp_path / "dscdan")
    loaded = DSCDAN.load(tmp_path / "dscdan")
    np.testing.assert_array_equal(loaded.predict(digits.x), fitted.labels_)
    assert loaded.affinity_scale_ == pytest.approx(fitted.affinity_scale_)


def test_fixed_upstream_scale_and_bad_inputs(digits):
    est = DSCDAN(pretrain_epochs=1, joint_epochs=1, affinity_scale=2.62, **TINY).fit(
        digits.x[:300])
    assert est.affinity_scale_ == pytest.approx(2.62)
    assert float(est.model_.affinity_scale.numpy()) == pytest.approx(2.62)
    with pytest.raises(ValueError, match="images"):
        DSCDAN().fit(digits.x.reshape(len(digits.x), -1))
    with pytest.raises(ValueError, match="init_means"):
        DSCDAN(init_means="random").fit(digits.x[:100])


def test_interrupted_run_resumes_without_losing_work(digits, tmp_path):
    ckpt = tmp_path / "ckpt"
    params = dict(TINY, pretrain_epochs=3, joint_epochs=2, checkpoint_dir=str(ckpt))
    first = DSCDAN(**{**params, "joint_epochs": 0}).fit(digits.x)  # "interrupted" after S1
    progress = json.loads((ckpt / "progress.json").read_text())
    assert progress["pretrain"] == 3 and progress["affinity_scale"] == first.affinity_scale_
    resumed = DSCDAN(**params).fit(digits.x)
    assert set(resumed.history_) == {"joint"}  # the finished pretraining is not redone
    assert resumed.affinity_scale_ == first.affinity_scale_
    steps = 3 * int(np.ceil(len(digits.x) / 64)) + 2 * int(np.ceil(len(digits.x) / 256))
    assert resumed.n_steps_ == steps and resumed.n_samples_trained_ == 5 * len(digits.x)
    for stage in ("pretrain", "joint"):
        assert (ckpt / f"{stage}.weights.h5").stat().st_size > 1000


def test_label_change_stop_rule_ends_the_joint_stage(digits, tmp_path):
    ckpt = tmp_path / "ckpt"
    params = dict(TINY, pretrain_epochs=2, joint_epochs=6, stop_tol=1.01,
                  checkpoint_dir=str(ckpt))
    est = DSCDAN(**params).fit(digits.x)  # any change rate is below 1.01: stops at 2nd check
    joint = est.history_["joint"]
    assert len(joint["loss"]) == 2 and len(joint["label_change"]) == 1
    assert est.n_samples_trained_ == (2 + 2) * len(digits.x)
    assert 0.0 <= joint["label_change"][0]["label_change"] <= 1.0
    assert json.loads((ckpt / "progress.json").read_text())["stopped"] == ["joint"]
    again = DSCDAN(**params).fit(digits.x)  # a stopped stage counts as finished on resume
    assert again.history_ == {}
    np.testing.assert_array_equal(again.labels_, est.labels_)


def test_logger_and_stop_rule_share_one_prediction_per_check(digits):
    est = DSCDAN(**dict(TINY, pretrain_epochs=1, joint_epochs=2, stop_tol=0.0, log_every=1))
    calls = []
    predict = est._predict
    est._predict = lambda x: calls.append(len(x)) or predict(x)
    est.fit(digits.x, digits.y)
    # one pass per checked epoch (1 pretrain + 2 joint), plus the final labels_
    assert len(est.history_["joint"]["metrics"]) == 2 and len(calls) == 3 + 1


def test_spectral_clustering_of_the_codes_is_learned_by_the_head(digits, tmp_path):
    from core.metrics import evaluate

    # run.py's digits preset: the tiny nets above leave codes too poor to cluster
    params = dict(pretrain_epochs=20, joint_epochs=10, latent_dim=16, filters=8,
                  joint_batch_size=256, random_state=0, checkpoint_dir=str(tmp_path / "ckpt"),
                  cluster_from="spectral")
    est = DSCDAN(**params).fit(digits.x, digits.y)
    record = est.history_["spectral"]
    kept = est.spectral_labels_ >= 0
    assert record["graph_points"] == kept.sum() >= 0.9 * len(digits.x)
    assert record["head_loss"][-1] < 0.1 * record["head_loss"][0]
    # about head_steps=1000 Adam steps, rounded up to whole epochs over the kept points
    batches = -(-kept.sum() // 256)
    assert record["head_steps"] == len(record["head_loss"]) * batches
    assert 1000 <= record["head_steps"] < 1000 + batches
    assert record["head_agreement"] >= 0.95
    assert np.mean(est.labels_[kept] == est.spectral_labels_[kept]) == record["head_agreement"]
    z = est.transform(digits.x)[kept]
    for k in np.unique(est.spectral_labels_[kept]):
        np.testing.assert_allclose(est.model_.class_means.numpy()[k],
                                   z[est.spectral_labels_[kept] == k].mean(0), rtol=1e-4,
                                   atol=1e-5)
    # both stages are checkpointed, so these refits only redo the final step on the same nets
    again = DSCDAN(**params).fit(digits.x)
    assert set(again.history_) == {"spectral"}
    np.testing.assert_array_equal(again.labels_, est.labels_)
    head = DSCDAN(**{**params, "cluster_from": "head"}).fit(digits.x)
    np.testing.assert_array_equal(head.transform(digits.x), est.transform(digits.x))
    head_acc, spectral_acc = (evaluate(digits.y, m.labels_)["acc"] for m in (head, est))
    assert spectral_acc > head_acc + 0.02
    est.save(tmp_path / "spectral")
    head.save(tmp_path / "head")
    np.testing.assert_array_equal(DSCDAN.load(tmp_path / "spectral").predict(digits.x),
                                  est.labels_)
    files = [sorted(f.name for f in (tmp_path / name).rglob("*")) for name in ("spectral", "head")]
    sizes = [sum(f.stat().st_size for f in (tmp_path / name).rglob("*"))
             for name in ("spectral", "head")]
    assert files[0] == files[1] and abs(sizes[0] - sizes[1]) < 1000  # no optimizer state added
    with pytest.raises(ValueError, match="cluster_from"):
        DSCDAN(cluster_from="orthonorm").fit(digits.x[:100])
    # the siamese graph: same networks (checkpointed), only the graph's metric differs
    siam_params = {**params, "cluster_from": "siamese", "siamese_epochs": 3, "siamese_draws": 2}
    siam = DSCDAN(**siam_params).fit(digits.x, digits.y)
    record = siam.history_["spectral"]
    assert record["graph_basis"] == "siamese" and len(record["siamese_draws"]) == 2
    assert record["normalized_cut"] == min(d["normalized_cut"] for d in record["siamese_draws"])
    assert len(record["siamese_loss"]) == 3
    assert record["siamese_loss"][-1] < record["siamese_loss"][0]
    assert record["head_agreement"] >= 0.95
    np.testing.assert_array_equal(siam.transform(digits.x), est.transform(digits.x))
    assert evaluate(digits.y, siam.labels_)["acc"] > head_acc + 0.02
