"""Benchmark runner: train each (method, dataset, protocol, seed) with ``applications/run.py
--train`` in a fresh process, collect ACC/NMI/ARI, wall time, samples per second and peak memory,
and render ``BENCHMARKS.md`` (mean +- std over seeds, next to the published numbers).

Run from ``src/``:  ``python ../benchmarks/run_benchmarks.py --config ../benchmarks/baselines.json``
A run spec may keep its output folder (``"out"``, ``{seed}`` filled in) and add arguments
(``"extra_args"``, ``{seed}`` filled in; ``"seed_args"``, per seed), so that each seed of DEC or
AE+GMM starts from that seed's own autoencoder (``--encoder-weights``), and may name a
``"variant"`` (e.g. another autoencoder schedule): its rows are grouped, shown and replaced apart
from the preset's rows of the same method.
Results accumulate in ``benchmarks/results.json`` (one row per run, replaced when re-run), so a
long benchmark can be resumed and extended; ``--render-only`` rewrites the table from it.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"

# Published numbers (METHODS.md §14 and per-method sections); tags as in METHODS.md §0.
PUBLISHED = {
    ("ae-kmeans", "mnist"): "AE+GMM 0.822 (VaDE paper, [mem]; GMM, not k-means)",
    ("ae-gmm", "mnist"): "0.822 (VaDE paper, [mem])",
    ("dec", "mnist"): "0.843 (paper); 0.91 / NMI 0.87 (DEC-keras, [readme])",
    ("dec", "fashion"): "0.62 / NMI 0.65 (DEC-keras, [readme])",
    ("ae-kmeans", "fashion"): "– (field: 0.60–0.68 for AE-based methods, METHODS.md §14.2)",
    ("ae-gmm", "fashion"): "– (field: 0.60–0.68 for AE-based methods, METHODS.md §14.2)",
    ("dagmc", "mnist"): "≈ 0.94 (paper, unverified; issue target 0.90)",
    ("dbc", "mnist"): "0.964 / NMI 0.917 (paper); issue target 0.95",
    ("fcae-kmeans", "mnist"): "– (DBC's FCAE + k-means stage)",
    ("vae-gmm", "mnist"): "0.73 (VaDE paper, [mem])",
    ("vae-kmeans", "mnist"): "– (VaDE paper gives VAE+GMM 0.73)",
    ("vade", "mnist"): "0.9446 (upstream README, 3000 epochs)",
    ("vade", "fashion"): "≈ 0.58 / NMI 0.63 (third-party tables, [mem])",
    ("spectralnet", "mnist"): "0.971 / NMI 0.924 (paper)",
    ("spectralnet", "fashion"): "– (not reported, METHODS.md §2.6)",
    ("alrdc", "mnist"): "not recovered (METHODS.md §4.7); issue target 0.97",
    ("alrdc", "fashion"): "not recovered (METHODS.md §4.7); issue target 0.62",
    ("dscdan", "mnist"): "0.978 / NMI 0.941 full-70k; 0.980 / NMI 0.946 test-10k ([mem])",
    ("dscdan", "fashion"): "0.662 / NMI 0.645 ([mem]); issue target 0.62",
    ("clustergan", "mnist"): "purity 0.91 ± 0.04 (README), 0.95 (paper, [mem])",
    ("clustergan", "fashion"): "purity 0.61 ± 0.02 (README, [readme]), 0.63 (paper, [mem]); "
                               "issue target 0.60",
    ("infogan", "mnist"): "≈ 0.95 (paper text, [mem]); 0.89 / NMI 0.86 (ClusterGAN's table, "
                          "[mem]); issue target 0.85",
    ("catgan", "mnist"): "≈ 0.957 (paper, [mem, low confidence], K unverified); "
                         "issue target 0.85",
    ("kmeans", "mnist"): "– (not in METHODS.md)",
    ("kmeans", "fashion"): "– (not in METHODS.md)",
}


def row_key(row):
    """What identifies a result row: a re-run with the same key replaces it."""
    return (row["method"], row["dataset"], row["protocol"], row.get("variant", ""), row["seed"])


def load_rows(results_path):
    """The result rows on disk (``[]`` before the first run)."""
    return json.loads(results_path.read_text()) if results_path.is_file() else []


def run_one(method, dset, protocol, seed, extra_args=(), keep_out=None):
    """Train one configuration in a subprocess; returns a result row. ``keep_out`` (relative to
    ``src/``) keeps the run's folder, e.g. the autoencoder that later rows start from."""
    with tempfile.TemporaryDirectory() as tmp:
        out = tmp if keep_out is None else keep_out  # relative to src/, the run's cwd
        argv = ["--dset", dset, "--method", method, "--protocol", protocol, "--train",
                "--seed", str(seed), "--no-plots", "--verbose", "0", *extra_args]
        command = "python applications/run.py " + " ".join(argv) + (
            f" --out {keep_out}" if keep_out else "")
        # output goes to files, not pipes: wait4 does not read, and a child that fills a
        # 64 KiB pipe blocks forever (a long DEC run did)
        with tempfile.TemporaryFile("w+") as out_log, tempfile.TemporaryFile("w+") as err_log:
            start = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "applications/run.py", *argv, "--out", out],
                                    cwd=SRC, stdout=out_log, stderr=err_log, text=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            out_log.seek(0), err_log.seek(0)
            stdout, stderr = out_log.read(), err_log.read()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{command} failed ({proc.returncode}):\n{stderr[-3000:]}")
        metrics = json.loads((SRC / out / "metrics.json").read_text())
    steps, batch = metrics.get("steps"), metrics.get("batch_size")
    # trained samples: the estimator's own count, else steps x batch where the run reports them
    # (DEC counts steps, not epochs), else the preset's epochs x n (one pass for k-means or GMM)
    processed = metrics.get("samples_trained") or (steps * batch if steps and batch else (
        metrics["n_train"] * _epochs_of(method, dset, extra_args)))
    return {
        "method": method, "dataset": dset, "protocol": protocol, "seed": seed,
        "acc": metrics["acc"], "nmi": metrics["nmi"], "ari": metrics["ari"],
        "fit_seconds": metrics["fit_seconds"], "wall_seconds": round(wall, 1),
        "samples_per_second": round(processed / metrics["fit_seconds"], 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024.0, 1), "command": command,
        "stdout_tail": stdout.strip().splitlines()[-1:],
    }


def time_data_load(dset, protocol="full-70k", repeats=5):
    """Median seconds to load a dataset from the decoded cache, in a fresh process each time."""
    code = ("import time; t = time.perf_counter(); from core.data import load_dataset; "
            f"ds = load_dataset({dset!r}, {protocol!r}); "
            "print(time.perf_counter() - t, len(ds.x))")
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], cwd=SRC, capture_output=True,
                             text=True, check=True).stdout.split()
        times.append(float(out[0]))
    return {"dataset": dset, "protocol": protocol, "n": int(out[1]),
            "median_seconds": round(statistics.median(times), 3), "repeats": repeats}


def _epochs_of(method, dset, extra_args):
    if "--epochs" in extra_args:
        return int(extra_args[list(extra_args).index("--epochs") + 1])
    sys.path.insert(0, str(SRC))
    from applications.run import _presets

    presets = _presets()[method][2]
    return int(presets.get(dset, presets["*"]).get("epochs", 1))


def _max_or_dash(values):
    """The largest known value (rows imported from a run folder have no peak RSS)."""
    known = [v for v in values if v is not None]
    return f"{max(known):.0f}" if known else "–"


def _mean_std(values):
    mean = statistics.fmean(values)
    if len(values) == 1:  # one seed: no spread to report
        return f"{mean:.4f} (1 seed)"
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}"


def _mean_or_dash(values, spec=".0f"):
    """Mean of the recorded values; "–" when there are none or a row did not record it."""
    return "–" if not values or any(v is None for v in values) else \
        format(statistics.fmean(values), spec)


def render(rows, hardware, loads=(), shipped=(), knn=()):
    # the most common machine heads the page; rows trained elsewhere name theirs in "Commands"
    machines = collections.Counter(row.get("hardware") or hardware for row in rows)
    if machines:
        hardware = machines.most_common(1)[0][0]
    others = len(rows) - machines.get(hardware, 0)
    groups = {}
    for row in rows:
        groups.setdefault(row_key(row)[:4], []).append(row)
    lines = [
        "# Benchmarks",
        "",
        "Produced by `benchmarks/run_benchmarks.py` (run from `src/`); every row is the mean ± "
        "sample std over the listed seeds, each trained from scratch in its own process with "
        "`python applications/run.py ... --train --seed N`. Raw rows: `benchmarks/results.json`.",
        "Published numbers are quoted with the tags of `../shared/METHODS.md` ([mem] = recalled, "
        "unverified).",
        "",
        f"Hardware: {hardware}"
        + (f" ({len(rows) - others} of {len(rows)} rows; the others name their machine in "
           "\"Commands\")." if others else "."),
        "",
        "| method | dataset | protocol | seeds | ACC | NMI | ARI | fit time (s) | samples/s |"
        " peak RSS (MB) | published |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (method, dset, protocol, variant), group in sorted(groups.items()):
        group.sort(key=lambda r: r["seed"])
        # a resumed run timed only its last part: its scores count, its time does not
        timed = [r for r in group if not r.get("partial_time")]
        only = "" if len(timed) in (0, len(group)) else \
            f" (seeds {','.join(str(r['seed']) for r in timed)})"
        lines.append(
            f"| {method}{f' ({variant})' if variant else ''} | {dset} | {protocol} | "
            f"{','.join(str(r['seed']) for r in group)} | "
            f"{_mean_std([r['acc'] for r in group])} | {_mean_std([r['nmi'] for r in group])} | "
            f"{_mean_std([r['ari'] for r in group])} | "
            f"{_mean_or_dash([r['fit_seconds'] for r in timed], '.1f')}{only} | "
            f"{_mean_or_dash([r['samples_per_second'] for r in timed])}{only} | "
            f"{_max_or_dash([r.get('peak_rss_mb') for r in group])} | "
            f"{PUBLISHED.get((method, dset), '–')} |")
    if loads:
        lines += ["", "## Data loading", "",
                  "Median over fresh processes of `load_dataset(name, protocol)` from the decoded "
                  "cache (import of `core.data` included), measured by the runner.", "",
                  "| dataset | protocol | images | median seconds |", "|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['protocol']} | {r['n']} | {r['median_seconds']:.3f} |"
                  for r in loads]
    if knn:
        lines += ["", "## Siamese kNN: exact vs approximate", "",
                  "`core.pairs.knn_indices` (exact, sklearn) against `approximate_knn_indices` "
                  "(random-projection forest, SpectralNet's `approx_knn=True`); recall = share of "
                  "the exact k neighbours found. From `benchmarks/knn_benchmark.py` (from `src/`); "
                  "the MNIST rows were timed while a training job shared the 2 cores.",
                  "", "| dataset | space | n × dim | k | trees | exact s | approx s | recall |"
                  " hardware |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['dataset']} | {r['space']} | {r['n']} × {r['dim']} | {r['k']} | "
                  f"{r['n_trees']} | {r['exact_seconds']:.1f} | {r['approx_seconds']:.1f} | "
                  f"{r['recall']:.4f} | {r['hardware']} |" for r in knn]
        lines += [""] + [f"- `{r['command']}`" for r in knn]
    if shipped:
        lines += ["", "## Shipped checkpoints (one seed each)", "",
                  "From `pretrained/manifest.json`: each file was trained once with the command "
                  "shown (from `src/`) and scored right after training on the images of its "
                  "protocol. Single-seed numbers, not means; `train s` was measured while other "
                  "jobs shared the 2 cores unless stated, so it is an upper bound.", "",
                  "| file | method | dataset | protocol | seed | ACC | NMI | ARI | steps "
                  "| train s | published |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for e in sorted(shipped, key=lambda e: e["file"]):
            lines.append(
                f"| `{e['file']}` | {e['method']}{f' ({v})' if (v := e.get('variant')) else ''} | "
                f"{e['dataset']} | {e['protocol']} | "
                f"{e['seed']} | {e['acc']:.4f} | {e['nmi']:.4f} | {e['ari']:.4f} | {e['steps']} | "
                f"{e.get('train_seconds', '–')} | "
                f"{PUBLISHED.get((e['method'], e['dataset']), '–')} |")
        lines += ["", "`steps` counts the method's own optimisation steps; methods marked with an "
                  "`encoder_weights` in their config start from the shared autoencoder "
                  "(`ae-kmeans`, 27,400 steps).", ""]
        lines += [f"- `{e['file']}`: `{e['command']}`"
                  + (f", shipped with `{e['exported_by']}`" if e.get("exported_by") else "")
                  + (f" ({e['code_version']})" if e.get("code_version") else "")
                  for e in sorted(shipped, key=lambda e: e["file"])]
        for e in shipped:
            rob = e.get("robustness")
            if not rob:
                continue
            keys = [k for k in rob if isinstance(rob[k], dict) and "acc" in rob[k]]
            before = rob.get("before_defense") or {}
            lines += ["", f"Robustness of `{e['file']}` (mean |A(x)| {rob['mean_shift']:.3f}, "
                      f"mean |mu| {rob['mean_embedding_norm']:.3f}): ACC of argmax C(.) on the "
                      "clean embedding, under the learned attack and under PGD in the "
                      "embedding (radius eps), with the share of labels left unchanged"
                      + ("; and the ACC of the S2 model, before the defence stage" if before
                         else "") + ".", "",
                      "| embedding | ACC | NMI | ARI | agreement with clean |"
                      + (" ACC before S3 |" if before else ""),
                      "|---|---|---|---|---|" + ("---|" if before else "")]
            for k in keys:
                agree = rob.get("agreement_with_clean", {}).get(k, 1.0)
                lines.append(f"| {k} | {rob[k]['acc']:.4f} | {rob[k]['nmi']:.4f} | "
                             f"{rob[k]['ari']:.4f} | {agree:.4f} |"
                             + (f" {before[k]:.4f} |" if k in before else
                                (" – |" if before else "")))
    lines += ["", "## Commands", ""]
    for row in sorted(rows, key=row_key):
        notes = [row[k] for k in ("partial_time", "code_version", "note") if row.get(k)]
        if row.get("hardware") and row["hardware"] != hardware:
            notes.append(f"on {row['hardware']}")
        note = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"- `{row['command']}` → ACC {row['acc']:.4f}, NMI {row['nmi']:.4f}, "
                     f"ARI {row['ari']:.4f}, {row['fit_seconds']:.0f} s{note}")
    lines += ["", "Samples/s counts training samples processed per second of fitting "
              "(steps × batch, or epochs × n, / fit time; k-means and GMM fits count one pass; "
              "– where the run did not record its steps). Rows that start from a pretrained "
              "autoencoder (the preset's shared one for seed 0, `--encoder-weights` for the "
              "others) time their own stage only; the autoencoders are the ae-kmeans rows. "
              "NMI is the arithmetic mean normalisation (sklearn ≥ 0.22).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "baselines.json"))
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--skip-done", action="store_true",
                        help="skip (method, dataset, protocol, seed) rows already in results")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(SRC))
    from core.util import hardware_string

    results_path = Path(args.results)
    rows = load_rows(results_path)
    if not args.render_only:
        config = json.loads(Path(args.config).read_text())
        for spec in config["runs"]:
            for seed in spec["seeds"]:
                key = (spec["method"], spec["dset"], spec["protocol"], spec.get("variant", ""),
                       seed)
                if args.skip_done and any(row_key(r) == key for r in rows):
                    continue
                print(f"running {key} ...", flush=True)
                extra = [a.format(seed=seed) for a in spec.get("extra_args", [])]
                extra += spec.get("seed_args", {}).get(str(seed), [])
                keep = spec["out"].format(seed=seed) if "out" in spec else None
                row = run_one(spec["method"], spec["dset"], spec["protocol"], seed, extra, keep)
                row["hardware"] = hardware_string()
                if spec.get("variant"):
                    row["variant"] = spec["variant"]
                print(f"  ACC {row['acc']:.4f} NMI {row['nmi']:.4f} ARI {row['ari']:.4f} "
                      f"in {row['fit_seconds']:.0f} s", flush=True)
                # re-read: another runner may have added rows while this one trained
                rows = [r for r in load_rows(results_path) if row_key(r) != key] + [row]
                results_path.write_text(json.dumps(rows, indent=2) + "\n")
    loads_path = results_path.with_name(results_path.stem + "_data_load.json")
    loads = json.loads(loads_path.read_text()) if loads_path.is_file() else []
    if not args.render_only:
        named = sorted({spec["dset"] for spec in config["runs"]} & {"mnist", "fashion"})
        if named:  # re-time this config's datasets, keep the others' rows
            fresh = [time_data_load(name) for name in named]
            timed = {(row["dataset"], row["protocol"]) for row in fresh}
            loads = sorted([row for row in loads if (row["dataset"], row["protocol"]) not in timed]
                           + fresh, key=lambda row: (row["dataset"], row["protocol"]))
            loads_path.write_text(json.dumps(loads, indent=2) + "\n")
    hardware = rows[0]["hardware"] if rows else hardware_string()
    manifest = ROOT / "pretrained" / "manifest.json"
    shipped = json.loads(manifest.read_text()) if manifest.is_file() else []
    knn_path = results_path.with_name(results_path.stem + "_knn.json")
    knn = json.loads(knn_path.read_text()) if knn_path.is_file() else []
    Path(args.output).write_text(render(rows, hardware, loads, shipped, knn))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
