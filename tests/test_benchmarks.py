import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_benchmarks  # noqa: E402


def test_runner_writes_rows_and_table(tmp_path):
    results, output = tmp_path / "results.json", tmp_path / "BENCH.md"
    assert run_benchmarks.main(["--config", str(ROOT / "benchmarks" / "smoke.json"),
                                "--results", str(results), "--output", str(output)]) == 0
    rows = json.loads(results.read_text())
    assert [r["seed"] for r in rows] == [0, 1]
    assert all(r["acc"] > 0.6 and r["peak_rss_mb"] > 50 and r["fit_seconds"] > 0 for r in rows)
    table = output.read_text()
    assert "| kmeans | digits | full-70k | 0,1 |" in table
    assert "python applications/run.py --dset digits --method kmeans" in table
    # re-running with --skip-done adds nothing and keeps the rows
    assert run_benchmarks.main(["--config", str(ROOT / "benchmarks" / "smoke.json"),
                                "--results", str(results), "--output", str(output),
                                "--skip-done"]) == 0
    assert len(json.loads(results.read_text())) == 2


def test_knn_benchmark_row_is_rendered(tmp_path):
    import knn_benchmark

    results = tmp_path / "results.json"
    assert knn_benchmark.main(["--dset", "digits", "--k", "3",
                               "--results", str(tmp_path / "results_knn.json")]) == 0
    row = json.loads((tmp_path / "results_knn.json").read_text())[0]
    assert row["n"] == 1797 and row["dim"] == 64 and 0.9 < row["recall"] <= 1.0
    results.write_text("[]")
    output = tmp_path / "BENCH.md"
    assert run_benchmarks.main(["--render-only", "--results", str(results),
                                "--output", str(output)]) == 0
    assert "| digits | pixels | 1797 × 64 | 3 | 10 |" in output.read_text()


def test_seed_rows_can_start_from_their_own_autoencoder(tmp_path):
    keep = tmp_path / "ae_seed{seed}"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"runs": [
        {"method": "ae-kmeans", "dset": "digits", "protocol": "full-70k", "seeds": [4],
         "out": str(keep), "extra_args": ["--epochs", "5"]},
        {"method": "ae-gmm", "dset": "digits", "protocol": "full-70k", "seeds": [4],
         "extra_args": ["--encoder-weights", str(keep / "model")]},
    ]}))
    results = tmp_path / "results.json"
    assert run_benchmarks.main(["--config", str(config), "--results", str(results),
                                "--output", str(tmp_path / "BENCH.md")]) == 0
    ae_row, gmm_row = json.loads(results.read_text())
    assert (tmp_path / "ae_seed4" / "model.weights.h5").is_file()
    assert ae_row["command"].endswith(f"--out {tmp_path / 'ae_seed4'}")
    assert f"--encoder-weights {tmp_path / 'ae_seed4' / 'model'}" in gmm_row["command"]
    assert gmm_row["acc"] > 0.5
    # samples per second from the steps and batch size the run recorded (5 epochs of 64)
    metrics = json.loads((tmp_path / "ae_seed4" / "metrics.json").read_text())
    assert metrics["steps"] == 5 * 29 and metrics["batch_size"] == 64
    assert ae_row["samples_per_second"] == round(5 * 29 * 64 / metrics["fit_seconds"], 1)


def test_data_load_timings_of_other_datasets_are_kept(tmp_path, monkeypatch):
    results, output = tmp_path / "results.json", tmp_path / "BENCH.md"
    results.write_text("[]")
    loads = tmp_path / "results_data_load.json"
    other = {"dataset": "fashion", "protocol": "full-70k", "n": 70000, "median_seconds": 0.4}
    loads.write_text(json.dumps([other]))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"runs": [{"method": "kmeans", "dset": "mnist",
                                            "protocol": "full-70k", "seeds": []}]}))
    monkeypatch.setattr(run_benchmarks, "time_data_load", lambda name: {
        "dataset": name, "protocol": "full-70k", "n": 70000, "median_seconds": 0.3})
    assert run_benchmarks.main(["--config", str(config), "--results", str(results),
                                "--output", str(output)]) == 0
    assert [row["dataset"] for row in json.loads(loads.read_text())] == ["fashion", "mnist"]
    assert "| fashion | full-70k | 70000 | 0.400 |" in output.read_text()


def test_resumed_rows_count_for_scores_but_not_for_time():
    row = dict(method="dscdan", dataset="mnist", protocol="test-10k", nmi=0.5, ari=0.4,
               wall_seconds=1.0, peak_rss_mb=100.0, command="cmd")
    rows = [dict(row, seed=0, acc=0.7, fit_seconds=100.0, samples_per_second=10.0),
            dict(row, seed=1, acc=0.8, fit_seconds=300.0, samples_per_second=30.0),
            dict(row, seed=2, acc=0.9, fit_seconds=5.0, samples_per_second=999.0,
                 partial_time="resumed: last stage only")]
    table = run_benchmarks.render(rows, "test machine")
    assert "| 0,1,2 | 0.8000 ± 0.1000 |" in table
    assert "| 200.0 (seeds 0,1) | 20 (seeds 0,1) |" in table
    assert "5 s (resumed: last stage only)" in table


def test_variant_rows_are_grouped_apart_from_the_preset_rows():
    row = dict(method="dec", dataset="mnist", protocol="full-70k", nmi=0.5, ari=0.4,
               fit_seconds=10.0, samples_per_second=1.0, wall_seconds=1.0, peak_rss_mb=100.0,
               command="cmd")
    rows = [dict(row, seed=0, acc=0.8), dict(row, seed=1, acc=0.6),
            dict(row, seed=0, acc=0.9, variant="sgd-ae", code_version="before commit abc")]
    table = run_benchmarks.render(rows, "test machine")
    assert "ACC 0.9000, NMI 0.5000, ARI 0.4000, 10 s (before commit abc)" in table
    assert "| dec | mnist | full-70k | 0,1 | 0.7000 ± 0.1414 |" in table
    assert "| dec (sgd-ae) | mnist | full-70k | 0 | 0.9000 (1 seed) |" in table
    keys = {run_benchmarks.row_key(r) for r in rows}
    assert len(keys) == 3  # a variant's seed 0 does not replace the preset's seed 0


def test_a_run_that_prints_more_than_a_pipe_holds_does_not_hang(tmp_path, monkeypatch):
    # a stand-in for run.py that writes 1 MB to each stream, then its metrics
    fake_src = tmp_path / "src"
    (fake_src / "applications").mkdir(parents=True)
    (fake_src / "applications" / "run.py").write_text(
        "import json, sys, pathlib\n"
        "sys.stdout.write('x' * 2**20 + '\\nlast line\\n'); sys.stderr.write('y' * 2**20)\n"
        "out = pathlib.Path(sys.argv[sys.argv.index('--out') + 1]); out.mkdir(exist_ok=True)\n"
        "(out / 'metrics.json').write_text(json.dumps(dict(acc=0.5, nmi=0.4, ari=0.3, "
        "fit_seconds=1.0, n_train=10, samples_trained=10)))\n")
    monkeypatch.setattr(run_benchmarks, "SRC", fake_src)
    row = run_benchmarks.run_one("kmeans", "digits", "full-70k", 0)
    assert row["acc"] == 0.5 and row["stdout_tail"] == ["last line"]


def test_spectral_ceiling_probe_recovers_blobs():
    import numpy as np
    from sklearn.datasets import make_blobs

    import spectral_ceiling_probe as probe

    # far-apart blobs: every batch graph has one component per blob, and its exact
    # eigenvectors must recover them
    z, y = make_blobs(n_samples=600, centers=[[0, 0], [40, 0], [0, 40]], random_state=0)
    accs, comps, losses = probe.batch_spectral(z.astype(np.float32), y, 3, n_nbrs=5, scale=1.0,
                                               batch_size=300, n_batches=3, seed=0)
    assert np.all(accs == 1.0) and np.all(comps == 3)
    assert np.allclose(losses, 0.0, atol=1e-6)  # three components: three zero eigenvalues
    # touching blobs: one connected graph of all points, which the normalised Laplacian splits
    z, y = make_blobs(n_samples=900, centers=[[0, 0], [6, 0], [3, 5]], cluster_std=1.0,
                      random_state=0)
    res = probe.global_spectral(z, y, 3, n_nbrs=10, scale_nbr=2, seed=0)
    assert res["components"] == 1 and res["largest_component"] == 900
    assert res["normalised"]["acc"] > 0.99


def test_rows_from_another_machine_name_it_in_the_commands():
    row = dict(method="kmeans", dataset="mnist", protocol="full-70k", nmi=0.5, ari=0.4,
               fit_seconds=10.0, samples_per_second=1.0, wall_seconds=1.0, peak_rss_mb=100.0)
    rows = [dict(row, seed=0, acc=0.5, command="cmd0", hardware="cpu A"),
            dict(row, seed=1, acc=0.6, command="cmd1", hardware="cpu A"),
            dict(row, seed=2, acc=0.7, command="cmd2", hardware="cpu B")]
    table = run_benchmarks.render(rows, "cpu B")
    assert "Hardware: cpu A (2 of 3 rows;" in table
    assert "`cmd2` → ACC 0.7000, NMI 0.5000, ARI 0.4000, 10 s (on cpu B)" in table
    assert "`cmd0` → ACC 0.5000, NMI 0.5000, ARI 0.4000, 10 s\n" in table


def test_hardware_string_names_cpu_generation_and_vector_unit(tmp_path):
    from core.util import hardware_string

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\n"
                       "model\t\t: 49\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2\n"
                       "\nprocessor\t: 1\nmodel name\t: other\n")
    desc = hardware_string(cpuinfo)
    assert "x AMD EPYC (family 23 model 49, AVX2)" in desc
    assert desc.endswith("no GPU") or "GPU:" in desc
    # without /proc/cpuinfo it still names the machine
    assert hardware_string(tmp_path / "missing").split(" x ", 1)[1]
