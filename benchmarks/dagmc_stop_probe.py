"""Which label-free signal could stop DAGMC near its best epoch? Trains the MNIST preset (whitened
start, 30 epochs, no stop rule) and records per epoch, next to ACC/NMI: the losses, the share of
labels that changed since the previous epoch, the mean largest posterior, the smallest and largest
cluster share and the mixture weights' entropy. Writes them as JSON.

Run from ``src/``:
``python ../benchmarks/dagmc_stop_probe.py --seed 0 --out ../runs/dagmc_stop_probe_seed0.json``
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--weights", default="pretrained:mnist_ae-kmeans_full-70k.weights.h5")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import numpy as np
    from keras import ops

    from applications.dagmc import DAGMC
    from core.data import load_dataset

    ds = load_dataset(args.dset, "full-70k")
    est = DAGMC(encoder_weights=args.weights or None, epochs=args.epochs, log_every=1,
                stop_patience=None, whiten_codes=True, random_state=args.seed, verbose=1)
    rows, previous = [], []

    def recording_predict(x):
        post = ops.convert_to_numpy(est.model_.posterior(est._transform(x)))
        labels = post.argmax(1).astype(np.int64)
        shares = np.bincount(labels, minlength=est.n_clusters) / len(labels)
        pi = ops.convert_to_numpy(ops.softmax(est.model_.pi_logits))
        rows.append({"changed": float(np.mean(labels != previous[-1])) if previous else None,
                     "mean_max_posterior": float(post.max(1).mean()),
                     "min_share": float(shares.min()), "max_share": float(shares.max()),
                     "pi_entropy": float(-(pi * np.log(pi)).sum())})
        previous.append(labels)
        return labels

    est._predict = recording_predict  # the MetricsLogger scores through it every epoch
    est.fit(ds.x, ds.y)
    hist = est.history_
    del rows[len(hist["metrics"]):]  # fit's own final predict
    for row, scores in zip(rows, hist["metrics"]):
        row.update(epoch=scores["epoch"], acc=scores["acc"], nmi=scores["nmi"])
        for key in ("rec", "nll", "d_loss", "g_loss"):
            row[key] = hist[key][scores["epoch"] - 1]
    Path(args.out).write_text(json.dumps({"init_gmm": hist["init_gmm"], "epochs": rows},
                                         indent=1))
    for row in rows:
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
