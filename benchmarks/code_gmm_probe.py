"""How well does a Gaussian mixture cluster an autoencoder's codes? The start of VaDE and DAGMC
(a diagonal GaussianMixture on the codes) next to AE + GMM's full-covariance one.

Run from ``src/``:
``python ../benchmarks/code_gmm_probe.py --dset mnist --weights pretrained:mnist_ae-kmeans-sgd_full-70k.weights.h5``
(``--weights`` takes anything ``--encoder-weights`` does: ``pretrained:FILE`` or a run's ``.../model``).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="full-70k")
    parser.add_argument("--weights", nargs="+", required=True,
                        help="one or more saved AEKMeans models (as --encoder-weights)")
    parser.add_argument("--n-init", type=int, default=5, help="GMM restarts (VaDE/DAGMC use 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from sklearn.mixture import GaussianMixture

    from applications.ae_baseline import AEKMeans, resolve_checkpoint
    from core.data import load_dataset
    from core.metrics import evaluate, format_metrics

    ds = load_dataset(args.dset, args.protocol)
    for spec in args.weights:
        z = AEKMeans.load(resolve_checkpoint(spec)).transform(ds.x)
        for covariance in ("diag", "full"):
            gmm = GaussianMixture(ds.n_clusters, covariance_type=covariance, n_init=args.n_init,
                                  random_state=args.seed).fit(z)
            print(format_metrics(evaluate(ds.y, gmm.predict(z)),
                                 prefix=f"{spec} {covariance:4s} GMM  "), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
