"""What does whitening the code space do to the start of a clustering head? The numbers behind
README "Departures" (VaDE's and DBC's ``whiten_codes``).

For an MLP autoencoder (``--kind ae``; VaDE's and DAGMC's start): a diagonal GMM on the raw codes,
a full GMM on the raw codes (float32 and float64), and a diagonal GMM on the codes after
``applications.ae_baseline.whiten_code_space``, fitted in float64 (``fit_diag_gmm``, the presets)
and in float32 for each ``--float32-seeds`` restart seed.

For an FCAE (``--kind fcae``; DBC's start): k-means (20 restarts, as DBC) on the raw codes, a full
GMM on the raw codes (float32, and float64 as whitening fits it), and k-means on the whitened
codes (``center=False``, as DBC).

Run from ``src/``:
``python ../benchmarks/whiten_probe.py --kind ae --weights pretrained:mnist_ae-kmeans_full-70k.weights.h5``
``python ../benchmarks/whiten_probe.py --kind fcae --weights pretrained:mnist_fcae-kmeans_full-70k.weights.h5``
``python ../benchmarks/whiten_probe.py --kind fcae --dset fashion --weights ../runs/bench/fcae-vector_fashion_seed0/model``
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("ae", "fcae"), required=True)
    parser.add_argument("--weights", required=True,
                        help="a saved AEKMeans (ae) or FCAEKMeans (fcae) model: "
                             "pretrained:FILE or a run's .../model")
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="full-70k")
    parser.add_argument("--seed", type=int, default=0, help="GMM/k-means seed (the run's seed)")
    parser.add_argument("--n-init", type=int, default=5, help="GMM restarts (the presets: 5)")
    parser.add_argument("--float32-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="(ae) restart seeds of the float32 diagonal fit on whitened codes")
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.mixture import GaussianMixture

    from applications.ae_baseline import (AEKMeans, fit_diag_gmm, resolve_checkpoint,
                                          whiten_code_space)
    from applications.fcae_dbc import FCAEKMeans
    from core.data import load_dataset
    from core.metrics import evaluate, format_metrics
    from core.train import kmeans_labels

    ds = load_dataset(args.dset, args.protocol)
    model_cls = AEKMeans if args.kind == "ae" else FCAEKMeans
    est = model_cls.load(resolve_checkpoint(args.weights))
    x = est._validate(ds.x, reset=False)
    encoder, decoder = est.model_.encoder, est.model_.decoder

    def codes():
        z = encoder.predict(x, batch_size=4096, verbose=0)
        return z.reshape(len(z), -1)

    def report(name, labels):
        print(format_metrics(evaluate(ds.y, labels), prefix=f"{name:38s} "), flush=True)

    def gmm_labels(z, covariance, seed):
        return GaussianMixture(ds.n_clusters, covariance_type=covariance, n_init=args.n_init,
                               random_state=seed).fit(z).predict(z)

    def report_full_gmm(z):
        # float64 is the fit whiten_code_space makes; float32 codes can end in another optimum
        for dtype in (np.float32, np.float64):
            z_typed = z.astype(dtype)
            report(f"raw codes, full GMM, {np.dtype(dtype).name}",
                   gmm_labels(z_typed, "full", args.seed))

    z = codes()
    if args.kind == "ae":
        report("raw codes, diagonal GMM (upstream)", gmm_labels(z, "diag", args.seed))
        report_full_gmm(z)
        whiten_code_space(encoder, decoder, x, ds.n_clusters, args.seed, args.n_init)
        z = codes()
        diag = fit_diag_gmm(z, ds.n_clusters, args.n_init, args.seed)
        report("whitened, diagonal GMM, float64", diag.predict(z.astype(np.float64)))
        for seed in args.float32_seeds:
            report(f"whitened, diagonal GMM, float32, rs {seed}",
                   gmm_labels(z.astype(np.float32), "diag", seed))
    else:
        report("raw codes, k-means (DBC's start)", kmeans_labels(z, ds.n_clusters, args.seed)[0])
        report_full_gmm(z)
        whiten_code_space(encoder, decoder, x, ds.n_clusters, args.seed, center=False)
        report("whitened, k-means", kmeans_labels(codes(), ds.n_clusters, args.seed)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
