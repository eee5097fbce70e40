"""Exact vs approximate kNN for SpectralNet's siamese pairs: time and recall.

Run from ``src/``:  ``python ../benchmarks/knn_benchmark.py --dset mnist --k 2``
Writes ``benchmarks/results_knn.json`` (one row per dataset/space/k, replaced when re-run);
``run_benchmarks.py --render-only`` puts the rows into BENCHMARKS.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def measure(x, k, n_trees, seed):
    from core.pairs import approximate_knn_indices, knn_indices

    t0 = time.perf_counter()
    exact = knn_indices(x, k)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    approx = approximate_knn_indices(x, k, n_trees=n_trees, seed=seed)
    approx_s = time.perf_counter() - t0
    hits = sum(len(set(a) & set(b)) for a, b in zip(exact.tolist(), approx.tolist()))
    return {"exact_seconds": round(exact_s, 2), "approx_seconds": round(approx_s, 2),
            "recall": hits / exact.size}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="full-70k")
    parser.add_argument("--space", default="pixels",
                        help="'pixels' or 'pretrained:FILE' (the code of a shipped autoencoder)")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--n-trees", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default=str(HERE / "results_knn.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from core.data import load_dataset
    from core.util import hardware_string

    data = load_dataset(args.dset, args.protocol)
    x = data.x.reshape(len(data.x), -1)
    if args.space != "pixels":
        from applications.ae_baseline import AEKMeans, resolve_checkpoint

        x = AEKMeans.load(resolve_checkpoint(args.space)).transform(data.x)
    row = {"dataset": args.dset, "protocol": args.protocol, "space": args.space,
           "n": len(x), "dim": int(x.shape[1]), "k": args.k, "n_trees": args.n_trees,
           "seed": args.seed, **measure(x, args.k, args.n_trees, args.seed),
           "hardware": hardware_string(),
           "command": "python ../benchmarks/knn_benchmark.py " + " ".join(argv or sys.argv[1:])}
    print(json.dumps(row))
    path = Path(args.results)
    rows = json.loads(path.read_text()) if path.is_file() else []
    key = ("dataset", "protocol", "space", "k", "n_trees", "seed")
    rows = [r for r in rows if any(r[f] != row[f] for f in key)] + [row]
    path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
