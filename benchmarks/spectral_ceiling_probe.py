"""What SpectralNet's objective allows on a code space: exact spectral clustering of the same
Gaussian kNN affinity, with no network in between.

SpectralNet learns a map whose outputs approximate the bottom eigenvectors of the graph
Laplacian of each random batch (METHODS.md §1.3). This probe solves that eigenproblem exactly,
(a) on random batches of ``--batch-size`` (the graph each training step sees, with the fixed
scale the runner computes) and (b) on one kNN graph of all images, symmetric-normalised
(Ng-Jordan-Weiss; with ``--unnormalised`` also SpectralNet's unnormalised Laplacian, slow), then
runs k-means on the eigenvectors. If exact solutions stay well below a target, the affinity, not
the network, is the limit. With ``--siamese-epochs E1 E2 ...`` it trains SpectralNet's siamese
stage (upstream's settings) on the codes and repeats the analysis on the siamese embedding after
each listed epoch, to see whether a longer siamese stage gives a better graph.

Run from ``src/``:
``python ../benchmarks/spectral_ceiling_probe.py --dset mnist --n-nbrs 3 10``
(``--weights`` takes anything ``--encoder-weights`` does; default: the SpectralNet preset's AE);
``python ../benchmarks/spectral_ceiling_probe.py --dset mnist --siamese-epochs 5 10 20 40``
(``--save-embeddings DIR`` keeps them; ``--embedding DIR/siamese_epoch5.npy`` analyses one again,
``--siamese-of pretrained:FILE`` (or a run's ``model``) the siamese embedding of a trained
SpectralNet; ``--train-split`` restricts the analysis of the codes or of such an embedding to the
rows SpectralNet trains on).
README's code-space numbers ran with ``OMP_NUM_THREADS=1``; with two threads k-means on the
batches can differ in the fourth decimal (Fashion: 0.4380 against 0.4385), and on batch graphs
with more components than clusters, whose eigenvectors are not unique, by more (0.3290 against
0.3181 on a 3-NN siamese graph).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _kmeans_scores(y, vectors, n_clusters, seed):
    from core.metrics import evaluate
    from core.train import kmeans_labels
    return evaluate(y, kmeans_labels(vectors, n_clusters, seed, n_init=10)[0])


def batch_spectral(z, y, n_clusters, n_nbrs, scale, batch_size, n_batches, seed):
    """Exact bottom eigenvectors of L = D - W on random batches: per-batch ACC, components and
    the sum of the ``n_clusters`` smallest eigenvalues, the least spectral loss a network with
    orthonormal outputs can reach on the batch (the runner's loss, sum W_ij |y_i - y_j|^2 / 2m
    with Y^T Y = m I, is tr(Q^T L Q) for Q = Y / sqrt(m))."""
    from scipy.sparse.csgraph import connected_components

    from core import costs
    rng = np.random.default_rng(seed)
    accs, comps, losses = [], [], []
    for _ in range(n_batches):
        idx = rng.choice(len(z), size=min(batch_size, len(z)), replace=False)
        w = np.asarray(costs.knn_affinity(z[idx], n_nbrs, scale=scale), dtype=np.float64)
        comps.append(connected_components(w > 0, directed=False)[0])
        lap = np.diag(w.sum(1)) - w
        vals, vecs = np.linalg.eigh(lap)
        losses.append(vals[:n_clusters].sum())
        accs.append(_kmeans_scores(y[idx], vecs[:, :n_clusters], n_clusters, seed)["acc"])
    return np.array(accs), np.array(comps), np.array(losses)


def global_spectral(z, y, n_clusters, n_nbrs, scale_nbr, seed, unnormalised=False,
                    local_scale=0):
    """Spectral clustering of one symmetric kNN graph of all points (``core.pairs.knn_graph``),
    scored on its largest connected component."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    from core.pairs import knn_graph, large_components, njw_embedding

    w = knn_graph(z, n_nbrs, scale_nbr, local_scale)
    keep, n_comp = large_components(w)
    w, y = w[keep][:, keep], y[keep]
    results = {"components": n_comp, "largest_component": int(keep.sum())}
    results["normalised"] = _kmeans_scores(y, njw_embedding(w, n_clusters), n_clusters, seed)
    if unnormalised:
        # shift-invert just below 0 (L is positive semi-definite, L + 1e-3 I factorises); its
        # fill-in makes this minutes long on 70,000 points, hence opt-in
        lap = sp.diags(np.asarray(w.sum(1)).ravel()) - w
        _, vecs = eigsh(lap.tocsc(), k=n_clusters, sigma=-1e-3, which="LM")
        results["unnormalised"] = _kmeans_scores(y, vecs, n_clusters, seed)
    return results


def analyse(z, y, n_clusters, args, what):
    """k-means on ``z``, then exact spectral clustering of its kNN graphs (batches and full)."""
    from core.metrics import format_metrics
    from core.pairs import get_scale

    print(format_metrics(_kmeans_scores(y, z, n_clusters, args.seed),
                         prefix=f"{what}: k-means  "), flush=True)
    # the runner's fixed affinity scale (get_scale on the training features, without replacement)
    scale = get_scale(z, args.batch_size, args.scale_nbr, args.seed, replace=False)
    for k in args.n_nbrs:
        accs, comps, losses = batch_spectral(z, y, n_clusters, k, scale, args.batch_size,
                                             args.n_batches, args.seed)
        print(f"{what}: n_nbrs={k}: exact eigenvectors of {args.n_batches} random batches of "
              f"{args.batch_size}: ACC {accs.mean():.4f} ± {accs.std():.4f} "
              f"(min {accs.min():.4f}, max {accs.max():.4f}); graph components per batch "
              f"{np.median(comps):.0f} (median); least spectral loss {losses.mean():.4f} "
              f"± {losses.std():.4f}", flush=True)
        res = global_spectral(z, y, n_clusters, k, args.scale_nbr, args.seed,
                              args.unnormalised, args.local_scale)
        print(f"{what}: n_nbrs={k}: one graph of all {len(z)}: {res['components']} components; "
              f"scored on the largest ({res['largest_component']} points)", flush=True)
        for kind in ("normalised", "unnormalised")[:1 + args.unnormalised]:
            print(format_metrics(res[kind], prefix=f"  {kind:12s} Laplacian + k-means  "),
                  flush=True)


def siamese_snapshots(ds, weights, args):
    """Train SpectralNet's siamese stage on the codes (upstream's settings; the spectral stage
    is cut to one epoch) and run ``analyse`` on its embedding of all images after each of
    ``args.siamese_epochs``."""
    import keras

    from applications.spectralnet import SpectralNet

    snapshot_epochs = set(args.siamese_epochs)
    feats = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in snapshot_epochs:
                basis = self.model.embedder.predict(feats["all"], batch_size=4096, verbose=0)
                if args.save_embeddings:
                    Path(args.save_embeddings).mkdir(parents=True, exist_ok=True)
                    np.save(Path(args.save_embeddings) / f"siamese_epoch{epoch + 1}.npy", basis)
                analyse(basis, ds.y, ds.n_clusters, args, f"siamese epoch {epoch + 1}")

    class SnapshotSpectralNet(SpectralNet):
        def _train_siamese(self, train, val, seed, callbacks=()):
            feats["all"] = self._features(self._validate(ds.x, reset=False))
            return super()._train_siamese(train, val, seed, [*callbacks, Snapshot()])

    est = SnapshotSpectralNet(n_clusters=ds.n_clusters, encoder_weights=weights,
                              affinity="siamese", siam_epochs=max(snapshot_epochs), spec_epochs=1,
                              random_state=args.seed, verbose=2)
    est.fit(ds.x)
    print(f"siamese stage ran {len(est.history_['siamese_loss'])} epochs "
          "(the learning-rate schedule may stop it early)", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="full-70k")
    parser.add_argument("--weights", default=None,
                        help="saved AEKMeans model (as --encoder-weights)")
    parser.add_argument("--n-nbrs", type=int, nargs="+", default=[3])
    parser.add_argument("--scale-nbr", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--n-batches", type=int, default=20)
    parser.add_argument("--local-scale", type=int, default=0, metavar="J",
                        help="full graph only: self-tuning scale from the J-th neighbour "
                             "(self counted first; 0: global median scale as SpectralNet)")
    parser.add_argument("--unnormalised", action="store_true",
                        help="also solve the unnormalised Laplacian of the full graph (slow)")
    parser.add_argument("--siamese-epochs", type=int, nargs="*", default=[], metavar="E",
                        help="train the siamese stage on the codes and repeat the analysis on "
                             "its embedding after each of these epochs")
    parser.add_argument("--save-embeddings", default=None, metavar="DIR",
                        help="with --siamese-epochs: save each snapshot's embedding of all images "
                             "as DIR/siamese_epochE.npy")
    parser.add_argument("--embedding", default=None, metavar="FILE.npy",
                        help="analyse a saved embedding (rows in the dataset's order) instead of "
                             "the autoencoder's codes")
    parser.add_argument("--siamese-of", default=None, metavar="MODEL",
                        help="analyse the siamese embedding of a saved SpectralNet (RUN/model or "
                             "pretrained:FILE) instead of the autoencoder's codes")
    parser.add_argument("--train-split", action="store_true",
                        help="analyse only the rows SpectralNet trains on with --seed (it holds "
                             "out a random tenth to drive its learning rate)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from applications.ae_baseline import AEKMeans, resolve_checkpoint
    from applications.run import _presets
    from core.data import load_dataset

    ds = load_dataset(args.dset, args.protocol)
    y = ds.y
    if args.train_split:
        from applications.spectralnet import SpectralNet, split_rows

        rows = split_rows(len(y), SpectralNet().val_fraction, args.seed)[0]
    else:
        rows = np.arange(len(y))
    what = "training split" if args.train_split else "all"
    if args.embedding or args.siamese_of:
        if args.embedding:
            z, name = np.load(args.embedding), Path(args.embedding).stem
        else:
            from applications.spectralnet import SpectralNet

            est = SpectralNet.load(resolve_checkpoint(args.siamese_of))
            feats = est._features(est._validate(ds.x, reset=False))
            z, name = est.model_.siamese.predict(feats, batch_size=4096, verbose=0), "siamese"
        if z.ndim != 2 or len(z) != len(ds.y) or not np.all(np.isfinite(z)):
            raise SystemExit(f"{name}: need a finite (n, d) array with n = {len(ds.y)} "
                             f"({args.dset} {args.protocol}), got shape {z.shape}")
        analyse(z[rows].astype(np.float32), y[rows], ds.n_clusters, args, f"{name} ({what})")
        return 0
    weights = args.weights or _presets()["spectralnet"][2][args.dset]["encoder_weights"]
    z = AEKMeans.load(resolve_checkpoint(weights)).transform(ds.x).astype(np.float32)
    z /= z.std()  # as SpectralNet's standardize=True; scales do not change the clusters
    print(f"{weights}: {len(z)} codes of width {z.shape[1]}")
    analyse(z[rows], y[rows], ds.n_clusters, args, f"codes ({what})")
    if args.siamese_epochs:
        siamese_snapshots(ds, weights, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
