"""docs/benchmarks.md is generated from benchmarks/results/*.json; the results writer and bench_accuracy."""

from __future__ import annotations

import datetime
import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))  # `benchmarks` is a folder of scripts, not an installed package

from benchmarks import render_docs  # noqa: E402
from benchmarks._common import best_throughput, sig, write_result  # noqa: E402

DOC = """# Demo

Prose before. <!-- bench-machine: pdf --><!-- /bench-machine -->

<!-- bench-table: pdf/throughput -->
<!-- /bench-table -->

Prose between, kept as is.

<!-- bench-table: pdf/other -->
<!-- /bench-table -->

Prose after.
"""

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 8.0, "torch": "2.0", "device": "cpu", "threads": 1,
           "load_before": 1.0, "load_after": 1.5}  # fmt: skip


def _results(tmp_path: Path, rate: str = "1.24e4") -> Path:
    tables = {
        "throughput": {"columns": ["network", "evaluations / s"], "rows": [["cinn", rate], ["transfermer", "9.11e3"]]},
        "other": {"columns": ["a", "b"], "rows": [["x", "1"]]},
    }
    meta = {"machine": MACHINE, "command": "python benchmarks/bench_pdf.py", "date": "2026-11-23"}
    write_result("pdf", tables, meta, tmp_path / "pdf.json")
    return tmp_path


def test_committed_doc_is_rendered(capsys):
    """A changed results JSON without `python -m benchmarks.render_docs` fails here."""
    assert render_docs.main(["--check"]) == 0, capsys.readouterr().err


def test_every_results_file_has_a_marker():
    text = render_docs.DOC.read_text()
    for path in sorted(render_docs.RESULTS.glob("*.json")):
        assert f"<!-- bench-machine: {path.stem} -->" in text, f"{path.name} is not shown in docs/benchmarks.md"


def test_round_trip_changes_exactly_one_block(tmp_path):
    results = _results(tmp_path)
    first = render_docs.render(DOC, results)
    assert "| cinn | 1.24e4 |" in first and "| --- | --- |" in first
    assert "Machine: 2-core Test CPU, 8 GiB, torch 2.0, 1 thread, 1-min load average 1.0 before, 1.5 after" in first
    assert "Prose between, kept as is." in first and first.endswith("Prose after.\n")
    assert render_docs.render(first, results) == first  # idempotent
    assert render_docs.stale_blocks(first, results) == []

    _results(tmp_path, rate="2.50e4")
    assert render_docs.stale_blocks(first, results) == ["bench-table: pdf/throughput"]
    second = render_docs.render(first, results)
    changed = [(a, b) for a, b in zip(first.splitlines(), second.splitlines(), strict=True) if a != b]
    assert changed == [("| cinn | 1.24e4 |", "| cinn | 2.50e4 |")]


def test_check_names_the_stale_block(tmp_path, capsys):
    results = _results(tmp_path)
    doc = tmp_path / "bench.md"
    doc.write_text(render_docs.render(DOC, results))
    assert render_docs.main(["--check", "--doc", str(doc), "--results", str(results)]) == 0
    _results(tmp_path, rate="1.0e5")
    assert render_docs.main(["--check", "--doc", str(doc), "--results", str(results)]) == 1
    assert "bench-table: pdf/throughput" in capsys.readouterr().err
    assert render_docs.main(["--doc", str(doc), "--results", str(results)]) == 0
    assert "| cinn | 1.0e5 |" in doc.read_text()


def test_missing_json_names_the_command(tmp_path, capsys):
    with pytest.raises(render_docs.RenderError, match=r"pdf\.json is missing: run `python benchmarks/bench_pdf\.py`"):
        render_docs.render(DOC, tmp_path)
    doc = tmp_path / "bench.md"
    doc.write_text(DOC.replace("pdf", "accuracy_thj"))
    assert render_docs.main(["--check", "--doc", str(doc), "--results", str(tmp_path)]) == 2
    assert "python benchmarks/bench_accuracy.py ... --name accuracy_thj" in capsys.readouterr().err


def test_unknown_table_is_an_error(tmp_path):
    results = _results(tmp_path)
    with pytest.raises(render_docs.RenderError, match=r"no table 'nope'.*\['other', 'throughput'\]"):
        render_docs.render("<!-- bench-table: pdf/nope -->\n<!-- /bench-table -->\n", results)


def test_write_result_schema(tmp_path):
    path = write_result("demo", {"t": {"columns": ["a", "b"], "rows": [["1", 2.5]]}}, {"notes": {"n": 3}},
                        tmp_path / "demo.json")  # fmt: skip
    doc = json.loads(path.read_text())
    assert set(doc) == {"benchmark", "command", "machine", "date", "tables", "notes"}
    assert doc["benchmark"] == "demo" and doc["notes"] == {"n": 3}
    assert doc["tables"] == {"t": {"columns": ["a", "b"], "rows": [["1", "2.5"]]}}
    assert datetime.date.fromisoformat(doc["date"]) == datetime.date.today()
    machine = doc["machine"]
    assert set(machine) == {"cpu", "cores", "memory_gib", "torch", "device", "threads", "load_before", "load_after"}
    assert machine["torch"] == torch.__version__ and machine["threads"] == torch.get_num_threads()
    assert machine["cores"] >= 1 and machine["cpu"]
    assert doc["command"].startswith("python ")
    with pytest.raises(ValueError, match="row .* has 1 cells, not 2"):
        write_result("demo", {"t": {"columns": ["a", "b"], "rows": [["1"]]}}, {}, tmp_path / "bad.json")


def test_sig_and_throughput():
    assert [sig(v) for v in (12400, 430, 0.73, 12.6, 9110)] == ["1.24e4", "430", "0.73", "12.6", "9.11e3"]
    assert sig(530, 2) == "530" and sig(2.5e5, 2) == "2.5e5"
    calls = []
    rate = best_throughput(lambda: calls.append(1), 1000, repeats=3)
    assert len(calls) == 3 and rate > 1000  # an empty call takes far less than a second


# ----------------------------------------------------------------------------------------------
# bench_accuracy on Gaussian likelihoods: −2 log L = Σ_e (θ − μ_e)² / s², so θ̂ = mean(μ_e) and
# the 1σ width is s / √E, exactly, for any polynomial fit of degree ≥ 2.
# ----------------------------------------------------------------------------------------------


def _gaussian_results(path: Path, mu: torch.Tensor, s: float, replicas: int = 4) -> None:
    from memzoo.protocols import Likelihood
    from memzoo.results import ResultsWriter

    theta = torch.linspace(0.0, 1.0, 21, dtype=torch.float64)[:, None]
    logp = -0.5 * ((theta[:, 0] - mu[:, None]) / s) ** 2
    gen = torch.Generator().manual_seed(1)
    reps = logp[..., None] + 1e-4 * torch.randn(*logp.shape, replicas, generator=gen, dtype=torch.float64)
    settings = {"data": str(path.with_suffix(".missing.h5")), "model": "card:none"}
    with ResultsWriter(path, theta, settings, n_replicas=replicas) as writer:
        diag = {"logp_replicas": reps, "n_points": torch.full((len(mu),), 100)}
        writer.append(torch.arange(len(mu)), Likelihood(logp, torch.full_like(logp, 1e-3), theta, diag))


def test_bench_accuracy_gaussian(tmp_path):
    from benchmarks import bench_accuracy

    gen = torch.Generator().manual_seed(0)
    n, s, shift = 40, 0.8, 0.02
    mu = 0.45 + 0.2 * torch.rand(n, generator=gen, dtype=torch.float64)
    _gaussian_results(tmp_path / "exact.h5", mu, s)
    _gaussian_results(tmp_path / "cinn.h5", mu + shift, s)
    pulls = {"mean": 0.1, "mean_err": 0.05, "width": 1.02, "width_err": 0.03}
    group = {"truth": 0.5, "n_sets": 4, "bias": 0.01, "bias_err": 0.004, "pulls": pulls}
    calibration = {"parameter": "theta0", "set_size": 10, "groups": [group]}
    (tmp_path / "cal.json").write_text(json.dumps(calibration))
    out = tmp_path / "acc.json"
    bench_accuracy.main([
        "--reference", f"exact={tmp_path / 'exact.h5'}", "--learned", f"cinn={tmp_path / 'cinn.h5'}",
        "--hard-level", "off", "--calibration", f"cinn={tmp_path / 'cal.json'}", "--json", str(out),
    ])  # fmt: skip
    doc = json.loads(out.read_text())
    width = s / math.sqrt(n)
    for table in ("fit", "parabola"):
        notes = doc["notes"][table]
        for label, centre in (("exact", float(mu.mean())), ("cinn", float(mu.mean()) + shift)):
            assert notes[label]["value"] == pytest.approx(centre, abs=1e-3)
            assert notes[label]["err_low"] == pytest.approx(width, abs=1e-3)
            assert notes[label]["err_high"] == pytest.approx(width, abs=1e-3)
        assert notes["sigma_stat"] == pytest.approx(width, abs=1e-3)
        rows = {row[0]: row for row in doc["tables"][table]["rows"]}
        assert set(rows) == {"exact", "cinn"}
        # Δ/σ_stat = 0.02 / (0.8/√40) = 0.158; the replicas are paired, so its error is tiny
        assert rows["cinn"][5].startswith(f"+{shift / width:.2f} ± 0.0")
        assert rows["exact"][5] == "—" and rows["cinn"][6] == "—"  # no hard level asked for
    assert doc["tables"]["calibration"]["rows"] == [
        ["cinn", "theta0", "0.5", "4 × 10", "+0.01 ± 0.004", "0.10 ± 0.05", "1.02 ± 0.03", "—", "—", "—"]
    ]


def test_bench_accuracy_bad_input(tmp_path):
    from benchmarks import bench_accuracy

    with pytest.raises(SystemExit, match="NAME=PATH"):
        bench_accuracy.main(["--reference", "exact.h5", "--no-json"])
    with pytest.raises(SystemExit, match="does not exist"):
        bench_accuracy.main(["--reference", f"exact={tmp_path / 'nope.h5'}", "--no-json"])


def test_bench_accuracy_calibration_only(tmp_path):
    """Calibration summaries of several backends and processes share one table, one row per true θ."""
    from benchmarks import bench_accuracy

    def summary(parameter, truths):
        pulls = {"mean": -0.2, "mean_err": 0.1, "width": 0.9, "width_err": 0.07}
        groups = [{"truth": t, "n_sets": 10, "bias": -3.0, "bias_err": None, "pulls": pulls} for t in truths]
        return json.dumps({"parameter": parameter, "set_size": 100, "groups": groups})

    (tmp_path / "thj.json").write_text(summary("alpha", [0.0, 45.0]))
    (tmp_path / "dy.json").write_text(summary("sin2theta_eff", [0.2315]))
    out = tmp_path / "cal.json"
    bench_accuracy.main(["--calibration", f"cinn, tHj={tmp_path / 'thj.json'}",
                         "--calibration", f"cinn, DY={tmp_path / 'dy.json'}", "--json", str(out)])  # fmt: skip
    doc = json.loads(out.read_text())
    assert list(doc["tables"]) == ["calibration"]
    rows = doc["tables"]["calibration"]["rows"]
    assert [r[:4] for r in rows] == [["cinn, tHj", "alpha", "0", "10 × 100"], ["cinn, tHj", "alpha", "45", "10 × 100"],
                                     ["cinn, DY", "sin2theta_eff", "0.2315", "10 × 100"]]  # fmt: skip
    assert rows[0][4:] == ["−3", "−0.20 ± 0.10", "0.90 ± 0.07", "—", "—", "—"]
    # with --mirror and --hard-level: the mirror columns and the hard level's rows
    full = json.loads(summary("alpha", [45.0]))
    full["groups"][0].update(mirror_sets=2, pulls_without_mirror={"mean": 0.1, "mean_err": 0.2, "width": 1.1,
                                                                   "width_err": 0.3})  # fmt: skip
    full["hard_level_calibration"] = json.loads(json.dumps(full))
    (tmp_path / "full.json").write_text(json.dumps(full))
    bench_accuracy.main(["--calibration", f"cinn={tmp_path / 'full.json'}", "--json", str(out)])
    rows = json.loads(out.read_text())["tables"]["calibration"]["rows"]
    assert [r[0] for r in rows] == ["cinn", "hard level (cinn)"]
    assert rows[0][7:] == ["2", "0.10 ± 0.20", "1.10 ± 0.30"]
    with pytest.raises(SystemExit, match="needs --reference"):
        bench_accuracy.main(["--learned", f"cinn={tmp_path / 'x.h5'}", "--no-json"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a `memzoo calibrate` summary"):
        bench_accuracy.main(["--calibration", f"cinn={tmp_path / 'bad.json'}", "--no-json"])
