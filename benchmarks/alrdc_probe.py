"""ALRDC stage probe on MNIST test-10k: S1 (pretrain), S2 (attack), S3 (defence), resumable.

Prints per-epoch clean/adversarial scores, then the agreement of the learned attack with the
clean labels next to random noise of the same per-sample norm, and the PGD robustness table.
Run from ``src/``; a second call with the same ``--checkpoint-dir`` and larger epoch counts
continues where the first stopped:

    python ../benchmarks/alrdc_probe.py --pretrain 30 --attack 0 --defense 0 --checkpoint-dir D
    python ../benchmarks/alrdc_probe.py --pretrain 30 --attack 10 --defense 5 --checkpoint-dir D
"""

import argparse
import json
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dset", default="mnist")
    parser.add_argument("--protocol", default="test-10k")
    parser.add_argument("--pretrain", type=int, default=30)
    parser.add_argument("--attack", type=int, default=10)
    parser.add_argument("--defense", type=int, default=5)
    parser.add_argument("--init-means", default="kmeans", choices=("kmeans", "zeros"))
    parser.add_argument("--spectral-weight", type=float, default=0.0)
    parser.add_argument("--pretrain-batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--json", default=None, help="write the final report here")
    args = parser.parse_args(argv)

    from applications.ADDC import ALRDC, assign, clean_and_attacked
    from core.data import load_dataset

    ds = load_dataset(args.dset, args.protocol)
    est = ALRDC(pretrain_epochs=args.pretrain, attack_epochs=args.attack,
                defense_epochs=args.defense, init_means=args.init_means,
                spectral_weight=args.spectral_weight,
                pretrain_batch_size=args.pretrain_batch, random_state=args.seed,
                verbose=1, eval_every=1, checkpoint_dir=args.checkpoint_dir)
    est.fit(ds.x, ds.y)
    net, x = est.model_, ds.x
    z, shift, clean, _ = clean_and_attacked(net, x)
    noise = np.random.default_rng(0).normal(size=shift.shape).astype(np.float32)
    noise *= np.linalg.norm(shift, axis=1, keepdims=True) / np.linalg.norm(noise, axis=1,
                                                                           keepdims=True)
    report = est.robustness(x, ds.y, eps_list=(0.5, 1.0, 2.0, 4.0))
    report.pop("labels")
    report["agreement"]["random_noise_same_norm"] = float(
        np.mean(assign(net, z + noise).argmax(1) == clean))
    report["command"] = "python ../benchmarks/alrdc_probe.py " + " ".join(argv or sys.argv[1:])
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
