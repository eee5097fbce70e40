"""How does a trained ClusterGAN cluster, read the ways upstream and we read it? Scores the
encoder's cluster head (our preset) and upstream's k-means on the latent [z_n, softmax(z_c)]
(METHODS.md §5.5: ``KMeans(K, random_state=0)``, purity as its README's "ACC"), with Hungarian
ACC, purity, NMI and ARI, on all scored images and on the 10,000 test images alone.

Run from ``src/``:  ``python ../benchmarks/clustergan_probe.py --dset mnist --model RUN/model``
(``RUN`` is a ``--train --out`` folder), or ``--model pretrained:FILE`` for a shipped checkpoint.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="full-70k")
    parser.add_argument("--model", required=True,
                        help="a saved ClusterGAN (path without suffix) or pretrained:FILE")
    args = parser.parse_args(argv)

    import numpy as np
    from applications.ae_baseline import resolve_checkpoint
    from applications.clustergan import ClusterGAN
    from core.data import load_dataset
    from core.metrics import evaluate
    from core.train import kmeans_labels

    ds = load_dataset(args.dset, args.protocol)
    est = ClusterGAN.load(resolve_checkpoint(args.model))
    x, y = ds.x_eval, ds.y_eval
    head = est.predict(x)
    latent = est.transform(x)
    upstream = kmeans_labels(latent, est.n_clusters, 0, n_init=10)[0]
    parts = [("all", slice(None))]
    if len(x) == 70000:  # full-70k: the 60,000 training images, then the 10,000 test images
        parts.append(("test-10k", slice(60000, None)))
    for name, labels in (("head", head), ("k-means on latent (upstream)", upstream)):
        for part, idx in parts:
            s = evaluate(y[idx], labels[idx])
            print(f"{name:30s} {part:8s} ACC {s['acc']:.4f}  PURITY {s['purity']:.4f}  "
                  f"NMI {s['nmi']:.4f}  ARI {s['ari']:.4f}", flush=True)
    sizes = np.bincount(head, minlength=est.n_clusters)
    print("head cluster sizes:", sizes.tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
