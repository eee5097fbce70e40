"""Does the head or the embedding limit a shipped ALRDC/DSCDAN checkpoint? Scores argmax C(mu)
against k-means on mu and the nearest class mean, on the checkpoint's own protocol.

Run from ``src/``:  ``python ../benchmarks/embedding_probe.py --method dscdan --dset mnist``
(``--variant NAME`` probes a named alternative checkpoint; ``--save-embedding FILE.npy`` keeps mu
for ``spectral_ceiling_probe.py --embedding``). ``--relabel siamese`` (or ``spectral``) then runs
the estimators' final relabelling step (``fit_head_to_spectral_clusters``) on the checkpoint's
training images, as ``cluster_from`` would on the same run's networks, and prints each siamese
draw's normalized cut and scores, and the relabelled head's.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("dscdan", "alrdc"), default="dscdan")
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="test-10k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default=None, help="a named alternative checkpoint")
    parser.add_argument("--save-embedding", default=None, metavar="FILE.npy",
                        help="save mu of the scored images (rows in the dataset's order)")
    parser.add_argument("--relabel", choices=("spectral", "siamese"), default=None)
    parser.add_argument("--siamese-epochs", type=int, default=5)
    parser.add_argument("--siamese-draws", type=int, default=3)
    args = parser.parse_args(argv)

    from applications.run import _presets
    from core.checkpoints import find_checkpoint
    from core.data import load_dataset
    from core.metrics import evaluate, format_metrics
    from core.train import kmeans_labels, nearest_centre

    ds = load_dataset(args.dset, args.protocol)
    entry = find_checkpoint(args.method, args.dset, args.protocol, variant=args.variant)
    est = _presets()[args.method][0].load(entry["path"], entry["sha256"])
    z = est.transform(ds.x_eval)
    if args.save_embedding:
        import numpy as np

        np.save(args.save_embedding, z)
    nearest = nearest_centre(z, est.model_.class_means.numpy())
    kmeans, _ = kmeans_labels(z, est.n_clusters, args.seed, n_init=10)
    for name, labels in (("head argmax C(mu)", est.predict(ds.x_eval)),
                         ("k-means on mu", kmeans), ("nearest class mean", nearest)):
        print(format_metrics(evaluate(ds.y_eval, labels), prefix=f"{name:20s} "))
    if args.relabel:
        relabel(est, ds, args)
    return 0


def relabel(est, ds, args):
    """The ``cluster_from`` relabelling of the loaded networks (encoder untouched)."""
    from applications.ADDC import fit_head_to_spectral_clusters
    from core.metrics import evaluate, format_metrics

    siamese_epochs = args.siamese_epochs if args.relabel == "siamese" else 0
    _, record = fit_head_to_spectral_clusters(
        est.model_, ds.x, ds.y, est.graph_nbrs, getattr(est, "scale_nbr", 2), est.head_steps,
        est.learning_rate, seed=args.seed, siamese_epochs=siamese_epochs,
        siamese_draws=args.siamese_draws)
    for i, draw in enumerate(record.get("siamese_draws", [])):
        print(format_metrics(draw["spectral_metrics"],
                             prefix=f"siamese draw {i} (seed {draw['seed']}, normalized cut "
                                    f"{draw['normalized_cut']:.4f}) "))
    print(format_metrics(record["spectral_metrics"],
                         prefix=f"spectral labels ({record['graph_basis']} graph) "))
    labels = est.predict(ds.x_eval)
    print(format_metrics(evaluate(ds.y_eval, labels), prefix="relabelled head argmax C(mu) "))


if __name__ == "__main__":
    sys.exit(main())
