"""SpectralNet probe on MNIST full-70k in the shared autoencoder's code space.

Trains ``SpectralNet(encoder_weights="pretrained:mnist_ae-kmeans_full-70k.weights.h5", ...)``
with the chosen affinity and prints one JSON line (seconds, spectral steps, ACC/NMI/ARI/purity).
Run from ``src/``:

    python ../benchmarks/spectralnet_probe.py --affinity knn --spec-epochs 100 --seed 0
"""

import argparse
import json
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--affinity", default="knn", choices=("knn", "siamese"))
    parser.add_argument("--spec-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-nbrs", type=int, default=3,
                        help="neighbours of the kNN affinity (upstream 3)")
    parser.add_argument("--log-every", type=int, default=0,
                        help="print ACC/NMI/ARI every N spectral epochs (labels only score)")
    parser.add_argument("--save", default=None, help="save the fitted estimator here (PATH)")
    args = parser.parse_args(argv)

    from applications.spectralnet import SpectralNet
    from core.data import load_dataset
    from core.metrics import evaluate

    ds = load_dataset("mnist", "full-70k")
    start = time.perf_counter()
    est = SpectralNet(encoder_weights="pretrained:mnist_ae-kmeans_full-70k.weights.h5",
                      affinity=args.affinity, spec_epochs=args.spec_epochs,
                      n_nbrs=args.n_nbrs,
                      log_every=args.log_every, random_state=args.seed,
                      verbose=2).fit(ds.x, ds.y if args.log_every else None)
    scores = evaluate(ds.y, est.labels_)
    if args.save:
        est.save(args.save)
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1), "steps": est.n_steps_,
                      **scores}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
