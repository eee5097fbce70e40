"""Command-line entry point (run from ``src/`` as upstream: ``python applications/run.py``).

By default it loads the shipped checkpoint of the chosen method, clusters all images of the chosen
protocol, prints ACC/NMI/ARI and writes ``metrics.json``, a t-SNE plot and a confusion matrix into
the output folder. ``--train`` trains from scratch with the method's preset instead.
"""

import argparse
import ast
import json
import os
import re
import sys
import time
from pathlib import Path

METHOD_NAMES = ("alrdc", "ae-kmeans", "ae-gmm", "vae-kmeans", "vae-gmm", "kmeans",
                "spectralnet", "dscdan", "dec", "vade", "dagmc", "fcae-kmeans", "dbc",
                "clustergan", "infogan", "catgan")
MNIST_AE = "pretrained:mnist_ae-kmeans_full-70k.weights.h5"
MNIST_FCAE = "pretrained:mnist_fcae-kmeans_full-70k.weights.h5"
FASHION_AE = "pretrained:fashion_ae-kmeans_full-70k.weights.h5"
FASHION_FCAE = "pretrained:fashion_fcae-kmeans_full-70k.weights.h5"
# the same autoencoders trained with DEC-keras's schedule (300 epochs of SGD(1.0, 0.9)), for DEC
MNIST_AE_SGD = "pretrained:mnist_ae-kmeans-sgd_full-70k.weights.h5"
FASHION_AE_SGD = "pretrained:fashion_ae-kmeans-sgd_full-70k.weights.h5"
# SpectralNet preset on MNIST and Fashion (ours): a short siamese stage, then the exact solver
SPECTRALNET_EXACT = {"affinity": "siamese", "siam_epochs": 5, "spectral_solver": "exact",
                     "n_nbrs": 10, "spec_epochs": 30, "log_every": 10}
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
DEFAULT_METHOD = "alrdc"
# upstream ALRDC and DSCDAN train and score on the 10,000 MNIST test images; others on 70,000
DEFAULT_PROTOCOLS = {"alrdc": "test-10k", "dscdan": "test-10k"}


def _presets():
    from applications.ADDC import ALRDC
    from applications.ae_baseline import AEGMM, AEKMeans, PixelKMeans
    from applications.catgan import CatGAN
    from applications.clustergan import ClusterGAN
    from applications.dagmc import DAGMC
    from applications.DSCDAN import DSCDAN
    from applications.dec import DEC
    from applications.fcae_dbc import DBC, FCAEKMeans
    from applications.infogan import InfoGAN
    from applications.spectralnet import SpectralNet
    from applications.vade import VaDE
    from applications.vae_baseline import VAECluster

    # name -> (estimator class, uses a shipped checkpoint, preset params per dataset)
    return {
        "ae-kmeans": (AEKMeans, True, {
            "mnist": {"epochs": 100, "batch_size": 256, "learning_rate": 1e-3, "n_init": 20},
            "fashion": {"epochs": 50, "batch_size": 256, "learning_rate": 1e-3, "n_init": 20},
            "digits": {"epochs": 60, "batch_size": 64, "learning_rate": 1e-3, "n_init": 20},
            "*": {"epochs": 50, "batch_size": 256, "learning_rate": 1e-3, "n_init": 20},
        }),
        "kmeans": (PixelKMeans, False, {"*": {"n_init": 10}}),
        # the shared autoencoder of each dataset, a GMM on its code (VaDE paper's AE+GMM)
        "ae-gmm": (AEGMM, True, {
            "mnist": {"encoder_weights": MNIST_AE, "n_init": 5},
            "fashion": {"encoder_weights": FASHION_AE, "n_init": 5},
            "digits": {"epochs": 60, "batch_size": 64, "n_init": 5},
            "*": {"epochs": 50, "n_init": 5},
        }),
        # plain VAE (MLP, Bernoulli decoder) + k-means or GMM on mu (METHODS.md §11)
        "vae-kmeans": (VAECluster, True, {
            "digits": {"clusterer": "kmeans", "hidden_dims": (256, 256, 512), "epochs": 40,
                       "batch_size": 64},
            "*": {"clusterer": "kmeans", "epochs": 50},
        }),
        "vae-gmm": (VAECluster, True, {
            "digits": {"clusterer": "gmm", "hidden_dims": (256, 256, 512), "epochs": 40,
                       "batch_size": 64},
            "*": {"clusterer": "gmm", "epochs": 50},
        }),
        # DEC-keras' schedules (METHODS.md §6.2): its SGD-trained autoencoder (the `sgd` variant
        # of ae-kmeans; the other methods share the Adam one), then its clustering schedule
        "dec": (DEC, True, {
            "mnist": {"encoder_weights": MNIST_AE_SGD},
            "fashion": {"encoder_weights": FASHION_AE_SGD},
            "digits": {"pretrain_epochs": 60, "batch_size": 64, "update_interval": 50,
                       "maxiter": 1000},
            "*": {"pretrain_epochs": 50},
        }),
        # pretraining is ours (METHODS.md §3.8); joint epochs of 10 steps of 1024 on test-10k
        # (upstream: up to 500); labels from spectral clustering of mu (ours; upstream: the head)
        "dscdan": (DSCDAN, True, {
            "digits": {"pretrain_epochs": 20, "joint_epochs": 10, "latent_dim": 16,
                       "filters": 8, "joint_batch_size": 256, "cluster_from": "spectral"},
            "*": {"pretrain_epochs": 50, "joint_epochs": 100, "log_every": 5,
                  "cluster_from": "spectral"},
        }),
        # METHODS.md §5.1 presets; epochs = passes of batch 64 x 5 critic steps (upstream: up to
        # 500,000 generator steps)
        "clustergan": (ClusterGAN, True, {
            "mnist": {"noise_dim": 30, "beta_n": 10.0, "beta_c": 10.0, "epochs": 100,
                      "log_every": 5},
            "fashion": {"noise_dim": 40, "beta_n": 0.0, "beta_c": 10.0, "epochs": 100,
                        "log_every": 5},
            "digits": {"noise_dim": 8, "epochs": 30, "batch_size": 32},
            "*": {"epochs": 100, "log_every": 5},
        }),
        # METHODS.md §9.4: batch 128, 5,000 updates in all (about 12 passes over 55k images)
        "infogan": (InfoGAN, True, {
            "digits": {"epochs": 15, "batch_size": 64},
            "*": {"epochs": 12, "log_every": 2},
        }),
        # METHODS.md §10: unverified nets, on the DCGAN ones
        "catgan": (CatGAN, True, {
            "digits": {"epochs": 15, "batch_size": 64},
            "*": {"epochs": 20, "log_every": 2},
        }),
        # METHODS.md §8.3 (no upstream code): adversarial GMM autoencoder on the shared AE
        # MNIST: the whitened start of VaDE (ours; seed 0 0.864 against 0.766 without)
        "dagmc": (DAGMC, True, {
            "mnist": {"encoder_weights": MNIST_AE, "epochs": 30, "log_every": 5,
                      "whiten_codes": True},
            "fashion": {"encoder_weights": FASHION_AE, "epochs": 30, "log_every": 5},
            "digits": {"hidden_dims": (256, 256, 1024), "pretrain_epochs": 30, "epochs": 30,
                       "batch_size": 64},
            "*": {"pretrain_epochs": 50, "epochs": 30, "log_every": 5},
        }),
        # FCAE epochs capped for a CPU budget (METHODS.md §6.4 proposes 200); the code is one
        # 1x1x10 vector, not METHODS.md's 3x3x10 map (ours: k-means 0.79 against 0.53 on MNIST;
        # --param code_layout=map gives the map)
        "fcae-kmeans": (FCAEKMeans, True, {
            "digits": {"epochs": 40, "batch_size": 64, "n_init": 5, "code_layout": "vector"},
            "*": {"epochs": 20, "code_layout": "vector"},
        }),
        # k-means places the centres in the whitened code space (ours, README "Departures"):
        # seed 0 MNIST 0.963 against 0.845 without, Fashion 0.580 against 0.564
        "dbc": (DBC, True, {
            "mnist": {"fcae_weights": MNIST_FCAE, "code_layout": "vector", "whiten_codes": True},
            "fashion": {"fcae_weights": FASHION_FCAE, "code_layout": "vector",
                        "whiten_codes": True},
            "digits": {"pretrain_epochs": 40, "batch_size": 64, "update_interval": 50,
                       "maxiter": 1000, "learning_rate": 1e-3, "code_layout": "vector"},
            "*": {"pretrain_epochs": 20, "code_layout": "vector"},
        }),
        # upstream runs 3000 epochs; ours is a CPU-sized preset (METHODS.md §7.5). Upstream's
        # decay reaches its floor lr 2e-4 by epoch 220 and stays there for 2,780 epochs; a short
        # run at 2e-3 lost its start (MNIST seed 0 whitened: 0.878 -> 0.844 in 10 epochs) where
        # 2e-4 climbs (0.900 at epoch 7), so the MNIST and Fashion presets train at the floor rate
        "vade": (VaDE, True, {
            "mnist": {"encoder_weights": MNIST_AE, "epochs": 50, "log_every": 5,
                      "learning_rate": 2e-4, "gmm_learning_rate": 2e-4},
            "fashion": {"encoder_weights": FASHION_AE, "epochs": 50, "log_every": 5,
                        "learning_rate": 2e-4, "gmm_learning_rate": 2e-4},
            "digits": {"pretrain_epochs": 60, "epochs": 30, "batch_size": 64},
            "*": {"pretrain_epochs": 50, "epochs": 50, "log_every": 5},
        }),
        # S1/S2 schedules are ours (upstream never published them), METHODS.md §4.8; labels
        # from spectral clustering of mu after S1 and after S3 (ours, README "Departures"); on
        # MNIST of a siamese graph of mu (seeds 0-2: 0.973 against 0.825 for mu's own graph)
        "alrdc": (ALRDC, True, {
            "mnist": {"pretrain_epochs": 50, "attack_epochs": 20, "defense_epochs": 20,
                      "cluster_from": "siamese"},
            "fashion": {"pretrain_epochs": 50, "attack_epochs": 20, "defense_epochs": 20,
                        "cluster_from": "spectral"},
            "digits": {"pretrain_epochs": 30, "attack_epochs": 10, "defense_epochs": 10,
                       "latent_dim": 16, "filters": 8, "adv_batch_size": 256,
                       "cluster_from": "spectral"},
            "*": {"pretrain_epochs": 50, "attack_epochs": 20, "defense_epochs": 20,
                  "cluster_from": "spectral"},
        }),
        # code space of our shipped autoencoder (METHODS.md §2.1); epochs capped for a CPU
        # budget, the LearningHandler may stop earlier (upstream: up to 400 + 400).
        # MNIST and Fashion depart from upstream's spectral stage: a 5-epoch siamese stage, then
        # the spectral net fitted to the exact eigenvectors of the 10-NN siamese graph of the
        # training set (batch training on that graph stayed at 0.83-0.84 on MNIST seed 0, on the
        # codes' own kNN graph 0.866; Fashion seeds 0-2 0.618 against 0.568 for the kNN/batch
        # preset; README "Where we stand")
        "spectralnet": (SpectralNet, True, {
            "mnist": {"encoder_weights": MNIST_AE, **SPECTRALNET_EXACT},
            "fashion": {"encoder_weights": FASHION_AE, **SPECTRALNET_EXACT},
            "digits": {"siam_epochs": 10, "spec_epochs": 40, "spec_batch_size": 256,
                       "siam_tot_pairs": 20000},
            "*": {"siam_epochs": 20, "spec_epochs": 100},
        }),
    }


def build_parser():
    parser = argparse.ArgumentParser(
        prog="applications/run.py",
        description="Deep clustering: evaluate a shipped checkpoint or train from scratch.")
    parser.add_argument("--dset", default="mnist",
                        help="mnist | fashion | digits | PATH.npz (default: mnist)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=METHOD_NAMES,
                        help=f"clustering method (default: {DEFAULT_METHOD})")
    parser.add_argument("--protocol", default=None,
                        choices=("full-70k", "test-10k", "train-test"),
                        help="which images train and which are scored (METHODS.md §12.4; "
                             "default: test-10k for alrdc as upstream, full-70k otherwise)")
    parser.add_argument("--train", action="store_true",
                        help="train from scratch with the method's preset")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override every epoch count of the preset")
    parser.add_argument("--n-clusters", type=int, default=None,
                        help="number of clusters (default: number of classes)")
    parser.add_argument("--out", default=None, help="output folder (default: out/METHOD_DSET)")
    parser.add_argument("--save-pretrained", action="store_true",
                        help="with --train or --from-run: store the checkpoint in pretrained/ "
                             "and its manifest")
    parser.add_argument("--from-run", default=None, metavar="DIR",
                        help="evaluate the model an earlier --train saved in DIR (its --out "
                             "folder) instead of a shipped checkpoint; with --save-pretrained, "
                             "ship it under the command that trained it")
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="a named alternative checkpoint of the method (e.g. another "
                             "training schedule): loads pretrained/DSET_METHOD-NAME_PROTOCOL; "
                             "with --save-pretrained, stores it there")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--tsne-points", type=int, default=3000,
                        help="points drawn in the t-SNE plot (default: 3000)")
    parser.add_argument("--pgd-eps", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="radii of the PGD embedding attack (robust methods only)")
    parser.add_argument("--encoder-weights", default=None, metavar="CHECKPOINT",
                        help="with --train: the pretrained autoencoder to start from instead of "
                             "the preset's shared one (an ae-kmeans model saved by --train in "
                             "OUT/model, or pretrained:FILE; fcae-kmeans for dbc; for vae-kmeans "
                             "and vae-gmm a saved VAE, reused without training), e.g. one per "
                             "seed for a seed benchmark")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="with --train: per-epoch checkpoints to resume an interrupted run")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="with --train: override one estimator parameter of the preset "
                             "(repeatable), e.g. --param joint_epochs=200")
    parser.add_argument("--verbose", type=int, default=1, help="Keras verbosity (0, 1, 2)")
    return parser


def _parse_params(items, known):
    """``["name=value", ...]`` -> dict, values read as Python literals (else strings); names
    must be parameters of the estimator."""
    params = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        if name not in known:
            raise ValueError(f"--param {name}: not a parameter of this method "
                             f"(known: {', '.join(sorted(known))})")
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    return params


def _command_line(argv):
    return "python applications/run.py " + " ".join(argv)


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.protocol = args.protocol or DEFAULT_PROTOCOLS.get(args.method, "full-70k")
    dset_name = Path(args.dset).stem if args.dset.endswith(".npz") else args.dset
    if not args.dset.endswith(".npz") and args.dset not in ("mnist", "fashion", "digits"):
        parser.error(f"unknown dataset '{args.dset}': use mnist, fashion, digits or a .npz path")
    if args.save_pretrained and not (args.train or args.from_run):
        parser.error("--save-pretrained needs --train or --from-run")
    if args.from_run and args.train:
        parser.error("--from-run evaluates a trained model; it does not go with --train")
    if args.variant is not None and not VARIANT_NAME.fullmatch(args.variant):
        parser.error(f"--variant {args.variant!r}: use lower-case letters, digits, '.' and '-'")
    if args.variant and args.train and not args.save_pretrained:
        parser.error("--variant names a shipped checkpoint: with --train it needs "
                     "--save-pretrained")
    if args.encoder_weights and not args.train:
        parser.error("--encoder-weights needs --train")
    if args.param and not args.train:
        parser.error("--param needs --train")

    from core.checkpoints import CheckpointError, find_checkpoint, save_checkpoint
    from core.data import DataError, load_dataset
    from core.metrics import evaluate, format_metrics
    from core.util import hardware_string

    try:
        ds = load_dataset(args.dset, args.protocol, args.n_clusters)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    n_clusters = args.n_clusters or ds.n_clusters
    cls, uses_checkpoint, presets = _presets()[args.method]
    if args.from_run and not uses_checkpoint:
        parser.error(f"--from-run: {args.method} keeps no trained model")
    out = Path(args.out or f"out/{args.method}_{dset_name}_{args.protocol}")
    out.mkdir(parents=True, exist_ok=True)
    print(f"{args.method} on {dset_name} ({args.protocol}): {len(ds.x)} training images, "
          f"{len(ds.x_eval)} scored", flush=True)

    start = time.perf_counter()
    source = "trained now"
    trained_by = None  # --from-run: the run's own metrics.json
    if args.train or not uses_checkpoint:
        params = dict(presets.get(dset_name, presets["*"]))
        known = cls().get_params()
        if args.epochs is not None:  # every epoch count of the preset (quick runs, tests)
            params.update({k: args.epochs for k in known if k.endswith("epochs")
                           and k != "warmup_epochs"})
        extra = {"verbose": args.verbose} if "verbose" in known else {}
        if args.encoder_weights:
            slot = next((k for k in ("encoder_weights", "fcae_weights", "vae_weights")
                         if k in known), None)
            if slot is None:
                parser.error(f"--encoder-weights: {args.method} does not start from a "
                             "pretrained autoencoder")
            params[slot] = args.encoder_weights
        if args.checkpoint_dir:
            if "checkpoint_dir" not in known:
                parser.error(f"--checkpoint-dir: {args.method} has no resumable checkpoints")
            extra["checkpoint_dir"] = args.checkpoint_dir
        try:
            params.update(_parse_params(args.param, known))
        except ValueError as err:
            parser.error(str(err))
        est = cls(n_clusters=n_clusters, random_state=args.seed, **params, **extra)
        try:
            est.fit(ds.x, ds.y)
        except CheckpointError as err:  # e.g. a missing or corrupt --encoder-weights file
            print(f"error: {err}", file=sys.stderr)
            return 1
    elif args.from_run:
        try:
            est, trained_by = _load_run(cls, Path(args.from_run), args, dset_name, out)
        except (CheckpointError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        args.seed = trained_by.get("seed", args.seed)  # what metrics.json reports
        source = f"run {args.from_run} (seed {args.seed})"
    else:
        try:
            entry = find_checkpoint(args.method, dset_name, args.protocol, variant=args.variant)
        except CheckpointError:
            try:
                entry = find_checkpoint(args.method, dset_name, variant=args.variant)
            except CheckpointError as err:
                print(f"error: {err}", file=sys.stderr)
                return 1
        try:  # the estimator's description comes from the manifest entry
            est = cls.load(entry["path"], entry["sha256"])
        except CheckpointError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        source = (f"checkpoint {entry['file']} (trained on {entry['protocol']}, "
                  f"seed {entry['seed']})")
    fit_seconds = time.perf_counter() - start

    labels = est.predict(ds.x_eval)
    result = {"method": args.method, "dataset": dset_name, "protocol": args.protocol,
              "n_train": int(len(ds.x)), "n_scored": int(len(ds.x_eval)),
              "n_clusters": int(n_clusters), "seed": args.seed,
              "source": source, "seconds": round(time.perf_counter() - start, 2),
              "fit_seconds": round(fit_seconds, 2), "command": _command_line(argv),
              "hardware": hardware_string()}
    if args.train:  # what the benchmark runner turns into samples per second: the samples
        # an estimator counted (several batch sizes: ALRDC, DSCDAN, SpectralNet) or steps x batch
        result.update(steps=getattr(est, "n_steps_", None),
                      batch_size=est.get_params().get("batch_size"),
                      samples_trained=getattr(est, "n_samples_trained_", None))
    if ds.y_eval is not None:
        scores = evaluate(ds.y_eval, labels)
        result.update(scores)
        print(format_metrics(scores, prefix=f"{args.method} {dset_name} [{source}]  ")
              + f"  PURITY {scores['purity']:.4f}", flush=True)
    else:
        print(f"clustered {len(labels)} points into {len(set(labels.tolist()))} clusters")
    if hasattr(est, "robustness"):
        recorded = ((trained_by or {}).get("robustness") or {}).get("before_defense")
        result["robustness"] = _robustness(est, ds, args, recorded)
    history = getattr(est, "history_", None) if args.train else None
    curves = training_curves(history)
    if curves:
        result["curves"] = curves
    spectral = spectral_step(history)
    if spectral:
        result["spectral_step"] = spectral
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.train:
        np_labels = out / "labels.txt"
        np_labels.write_text("\n".join(str(int(v)) for v in labels) + "\n")

    if args.save_pretrained:
        from core.checkpoints import pretrained_dir

        name = args.method + (f"-{args.variant}" if args.variant else "")
        path = pretrained_dir() / f"{dset_name}_{name}_{args.protocol}.weights.h5"
        training = {"seed": args.seed, "command": _command_line(argv),
                    "steps": getattr(est, "n_steps_", None), "hardware": hardware_string(),
                    "train_seconds": round(fit_seconds, 1)}
        if args.from_run:  # the run's own record of how it was trained
            training = {"seed": trained_by["seed"], "command": trained_by["command"],
                        "steps": trained_by.get("steps"),
                        "hardware": trained_by.get("hardware", hardware_string()),
                        "train_seconds": trained_by.get("fit_seconds"),
                        "exported_by": _command_line(argv)}
        entry = save_checkpoint(
            est.model_, path, method=args.method, dataset=dset_name, protocol=args.protocol,
            metrics=result,
            config={"params": est.get_params(), "input_shape": list(est.input_shape_),
                    "extra": est._extra_state()},
            n_scored=result["n_scored"],
            **({"variant": args.variant} if args.variant else {}), **training,
            **({"robustness": result["robustness"]} if "robustness" in result else {}))
        print(f"saved {path} (sha256 {entry['sha256'][:12]}...) and recorded it in the manifest")
    elif args.train and uses_checkpoint:
        est.save(out / "model")

    if not args.no_plots:
        _write_plots(est, ds, labels, out, args)
        if curves:
            from core.plot_2d import plot_curves

            plot_curves(curves, out / "training.png", xlabel=curves_xlabel(est.history_),
                        title=f"{args.method} on {dset_name}: scores during training")
    print(f"wrote {out}/metrics.json" + ("" if args.no_plots else " and PNG figures"))
    return 0


def _load_run(cls, run_dir, args, dset_name, out):
    """The estimator an earlier ``--train`` saved in ``run_dir``, and that run's metrics.json
    (its training command, seed, steps and time), after checking that it fits the arguments."""
    from core.checkpoints import CheckpointError

    record_path = run_dir / "metrics.json"
    if not (run_dir / "model.json").is_file() or not record_path.is_file():
        raise CheckpointError(f"--from-run {run_dir}: no model.json and metrics.json there; "
                              "pass the --out folder of a run.py --train")
    if out.resolve() == run_dir.resolve():
        raise ValueError(f"--from-run {run_dir}: choose another --out, this one would overwrite "
                         "the run's own metrics.json")
    try:
        trained_by = json.loads(record_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt run record {record_path}: {err}") from err
    if "--train" not in str(trained_by.get("command", "")).split():
        raise CheckpointError(f"{record_path} does not record a --train command")
    for key, want in (("method", args.method), ("dataset", dset_name),
                      ("protocol", args.protocol)):
        if trained_by.get(key) != want:
            raise ValueError(f"--from-run {run_dir} was trained with {key} "
                             f"{trained_by.get(key)!r}, not {want!r}")
    return cls.load(run_dir / "model"), trained_by


def _robustness(est, ds, args, recorded_before=None):
    """Clean vs. learned-attack vs. PGD scores (ALRDC's claim), printed as a table; the ACC
    before the defence stage comes from the fit, else from the exported run's record."""
    from core.metrics import format_metrics

    report = est.robustness(ds.x_eval, ds.y_eval, eps_list=args.pgd_eps)
    summary = {"mean_shift": report["mean_shift"],
               "mean_embedding_norm": report["mean_embedding_norm"],
               "agreement_with_clean": report["agreement"]}
    print(f"mean |A(x)| {report['mean_shift']:.3f} (mean |mu| {report['mean_embedding_norm']:.3f})")
    for key in report["labels"]:
        line = f"  {key:<12} agreement with clean {report['agreement'].get(key, 1.0):.4f}"
        if ds.y_eval is not None:
            summary[key] = report[key]
            line += "  " + format_metrics(report[key])
        print(line, flush=True)
    before = getattr(est, "pre_defense_report_", None)
    if before is not None and ds.y_eval is not None:
        summary["before_defense"] = {key: before[key]["acc"] for key in before
                                     if isinstance(before[key], dict) and "acc" in before[key]}
    elif recorded_before:
        summary["before_defense"] = dict(recorded_before)
    if "before_defense" in summary:
        print("  ACC before the defence stage: " + "  ".join(
            f"{k} {v:.4f}" for k, v in summary["before_defense"].items()), flush=True)
    return summary


def _write_plots(est, ds, labels, out, args):
    import numpy as np

    from core.plot_2d import plot_confusion, plot_image_grid, plot_tsne

    rng = np.random.default_rng(args.seed)
    idx = rng.choice(len(ds.x_eval), size=min(args.tsne_points, len(ds.x_eval)), replace=False)
    z = est.transform(ds.x_eval[idx])
    colour = ds.y_eval[idx] if ds.y_eval is not None else labels[idx]
    plot_tsne(z, colour, out / "tsne.png", n_max=len(idx), seed=args.seed,
              title=f"{args.method} embedding of {Path(args.dset).stem}, coloured by "
                    + ("class" if ds.y_eval is not None else "cluster"))
    if ds.y_eval is not None:
        plot_confusion(ds.y_eval, labels, out / "confusion.png")
    if hasattr(est, "reconstruct") and ds.x_eval.ndim == 4:
        pick = ds.x_eval[idx[:12]]
        recon = est.reconstruct(pick).reshape(pick.shape)
        rows, titles = [pick, recon], ["input", "reconstruction"]
        if hasattr(est, "predict_adversarial"):
            rows.append(est.reconstruct(pick, adversarial=True).reshape(pick.shape))
            titles.append("adversarial reconstruction G(mu + A(x))")
        plot_image_grid(rows, out / "reconstructions.png", row_titles=titles)
    if hasattr(est, "sample") and ds.x_eval.ndim == 4:
        # (K, n, ...) per cluster code; CatGAN groups its samples by its classifier instead
        grid = (est.sample_grid if hasattr(est, "sample_grid") else est.sample)(10, seed=args.seed)
        plot_image_grid(list(grid), out / "samples.png",
                        row_titles=[f"cluster {k}" for k in range(len(grid))],
                        title=f"{args.method}: generated samples, one row per cluster code")
    if hasattr(est, "interpolate") and ds.x_eval.ndim == 4:
        k = est.n_clusters
        pairs = [(i, (i + 1) % k) for i in range(0, min(k, 10), 2)]
        plot_image_grid([est.interpolate(a, b, seed=args.seed) for a, b in pairs],
                        out / "interpolation.png", row_titles=[f"{a} -> {b}" for a, b in pairs],
                        title=f"{args.method}: convex combinations of two one-hot codes")


def training_curves(history):
    """Scores recorded during training as ``{name: [[x, y], ...]}`` (ACC against epochs, rounds
    of self-training, or ALRDC's epochs over all stages); empty when none were recorded."""
    curves = {}

    def add(name, x, y):
        if y is not None:
            curves.setdefault(name, []).append([float(x), float(y)])

    if isinstance(history, list):   # DEC/DBC rounds or ALRDC's per-epoch rows
        epochs = [row for row in history if row.get("stage") != "spectral"]
        for i, row in enumerate(epochs):
            if "round" in row:
                for key in ("acc", "nmi", "confident_share", "mean_max_q", "changed"):
                    add(key, row["round"], row.get(key))
            elif "stage" in row:
                add(f"{row['stage']} clean ACC", i + 1, row.get("clean", {}).get("acc"))
                add(f"{row['stage']} learned-attack ACC", i + 1,
                    row.get("adversarial", {}).get("acc"))
    elif isinstance(history, dict):
        stages = {k: v for k, v in history.items() if isinstance(v, dict) and "metrics" in v}
        for stage, part in (stages or {"": history}).items():
            for row in part.get("metrics", []) if isinstance(part, dict) else []:
                for key in ("acc", "nmi"):
                    add(f"{stage} {key}".strip(), row["epoch"], row.get(key))
    return curves


def spectral_step(history):
    """The records of ``cluster_from="spectral"``, without the head's loss curves: DSCDAN's
    ``history_["spectral"]`` (a dict), ALRDC's ``{"stage": "spectral"}`` rows (a list, one per
    relabelling); None without any."""
    def strip(record):
        return {k: v for k, v in record.items() if k not in ("head_loss", "stage")}

    if isinstance(history, dict):
        record = history.get("spectral")
        return strip(record) if isinstance(record, dict) else None
    rows = [strip(row) for row in history or [] if row.get("stage") == "spectral"]
    return rows or None


def curves_xlabel(history):
    if isinstance(history, list) and history and "round" in history[0]:
        return "self-training round (update_interval steps each)"
    if isinstance(history, list):
        return "epoch (all stages in order)"
    return "epoch"


if __name__ == "__main__":
    sys.exit(main())
