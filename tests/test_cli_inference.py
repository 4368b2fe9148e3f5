"""``memzoo scan``, ``memzoo calibrate`` and ``memzoo discriminant`` on small results files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from memzoo.cli import main
from memzoo.protocols import Likelihood
from memzoo.results import ResultsWriter

REGISTRY = Path(__file__).resolve().parents[1] / "registry"


def write_results(path, theta, logp, settings, replicas=None, event=None):
    """A results file as ``memzoo integrate`` writes it, with the given log-likelihoods."""
    theta = torch.as_tensor(theta, dtype=torch.float64).reshape(len(theta), -1)
    logp = torch.as_tensor(logp, dtype=torch.float64)
    diag = {} if replicas is None else {"logp_replicas": replicas}
    event = torch.arange(len(logp)) if event is None else event
    n_rep = 0 if replicas is None else replicas.shape[-1]
    with ResultsWriter(path, theta, settings, n_replicas=n_rep) as w:
        w.append(event, Likelihood(logp, torch.full_like(logp, 0.01), theta, diag))
    return str(path)


@pytest.fixture(scope="module")
def dy_results(tmp_path_factory):
    """Drell-Yan events at the SM point and results holding their exact hard-level likelihood."""
    import memzoo
    from memzoo.data import read_dataset
    from memzoo.inference import hard_level_likelihood
    from memzoo.simulation.simulate import SimulationConfig, simulate

    root = tmp_path_factory.mktemp("dy")
    data = simulate(SimulationConfig("drell-yan", n_events=300, chunk_size=300, seed=3), root / "dy.h5")
    d = read_dataset(data)
    rows = torch.nonzero(d.accepted)[:, 0]
    dy = memzoo.create("process", "drell-yan")
    theta = dy.theta(sin2theta_eff=torch.linspace(0.15, 0.31, 17, dtype=torch.float64).tolist())
    hard = hard_level_likelihood(dy, d.hard_coords[rows], theta, n_points=4000)  # as --sigma-points 4000
    noise = 0.02 * torch.randn(*hard.logp.shape, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    settings = {"model": f"card:{REGISTRY / 'drell-yan' / 'gaussian.toml'}", "data": str(data)}
    path = write_results(root / "dy_mem.h5", theta, hard.logp, settings, hard.logp[..., None] + noise, rows)
    return {"path": path, "n": len(rows), "root": root}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_scan_matches_the_hard_level(dy_results, capsys, tmp_path):
    """Results that hold the hard-level likelihood give the hard-level curve and estimate back."""
    code, out, err = run(
        capsys,
        "scan",
        dy_results["path"],
        "--hard-level",
        "total",
        "--sigma-points",
        "4000",
        "--out",
        tmp_path,
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_events"] == dy_results["n"] and summary["truth"] == {"sin2theta_eff": 0.2315}
    curves = summary["curves"]["sin2theta_eff"]
    mem, hard = curves["dy_mem"], curves["hard level"]
    # the same σ(θ) integral (seeded VEGAS), the same events: the same numbers
    np.testing.assert_allclose(mem["delta_nll"], hard["delta_nll"], rtol=1e-12, atol=1e-9)
    assert mem["band_from"] == "replicas" and hard["band_from"] == "mc-uncorrelated"
    est = summary["parameters"]["sin2theta_eff"]["dy_mem"]
    assert est["value_std"] > 0 and est["n_replicas"] == 6 and est["method"] == "poly"
    assert 0.15 <= est["value"] <= 0.31
    assert Path(summary["plots"][0]).stat().st_size > 10_000
    assert json.loads((tmp_path / "scan.json").read_text())["parameters"] == summary["parameters"]


def test_calibrate_reads_the_truth_from_the_dataset(dy_results, capsys, tmp_path):
    code, out, err = run(capsys, "calibrate", dy_results["path"], "--set-size", 20, "--out", tmp_path)
    assert code == 0, err
    assert "0.2315" in out and "pull mean" in out
    summary = json.loads((tmp_path / "calibration.json").read_text())
    group = summary["groups"][0]
    assert group["truth"] == 0.2315 and group["n_sets"] == dy_results["n"] // 20
    assert group["events_left_out"] == dy_results["n"] % 20
    assert (tmp_path / "calibration.png").stat().st_size > 10_000
    # --events: the first N events of the file, e.g. to compare files of different lengths
    code, out, err = run(capsys, "calibrate", dy_results["path"], "--set-size", 20, "--events", 40, "--out", tmp_path)
    assert code == 0, err
    group = json.loads((tmp_path / "calibration.json").read_text())["groups"][0]
    assert group["n_sets"] == 2 and group["events_left_out"] == 0


def test_calibrate_hard_level_of_the_same_sets(dy_results, capsys, tmp_path):
    """Results holding the hard-level likelihood calibrate exactly as their own hard level does."""
    argv = ["calibrate", dy_results["path"], "--set-size", 20, "--out", tmp_path, "--json"]
    code, out, err = run(capsys, *argv, "--hard-level", "total", "--sigma-points", 4000)
    assert code == 0, err
    s = json.loads(out)
    mem, hard = s["groups"][0], s["hard_level_calibration"]["groups"][0]
    assert hard["n_sets"] == mem["n_sets"] == dy_results["n"] // 20 and hard["truth"] == 0.2315
    # the same events, sets and σ(θ) integral (seeded VEGAS): the same estimates
    np.testing.assert_allclose(
        [e["value"] for e in hard["sets"]], [e["value"] for e in mem["sets"]], rtol=1e-9, atol=1e-12
    )
    assert s["hard_level"] == "total" and len(s["plots"]) == 2
    assert (tmp_path / "calibration_hard_level.png").stat().st_size > 10_000


def split_results(path, cut, out_a, out_b, settings_b=None):
    """The events of a results file before and after ``cut``, written as two files."""
    from memzoo.results import read_results

    res = read_results(path)
    paths = []
    for out, rows, settings in ((out_a, slice(0, cut), None), (out_b, slice(cut, None), settings_b)):
        reps = None if res.logp_replicas is None else res.logp_replicas[rows]
        paths.append(write_results(out, res.theta, res.logp[rows], settings or res.settings, reps, res.event[rows]))
    return paths


def test_joined_files_are_one_event_set(dy_results, capsys, tmp_path):
    """``A.h5,B.h5`` gives the numbers of the one file holding both halves: scan, hard level, calibration."""
    a, b = split_results(dy_results["path"], 47, tmp_path / "first.h5", tmp_path / "second.h5")
    common = ["--hard-level", "total", "--sigma-points", 4000, "--json"]
    summaries = []
    for spec in (dy_results["path"], f"{a},{b}"):
        code, out, err = run(capsys, "scan", spec, "--out", tmp_path / "scan", *common)
        assert code == 0, err
        summaries.append(json.loads(out))
    whole, joined = summaries
    assert joined["n_events"] == whole["n_events"] == dy_results["n"]
    assert joined["truth"] == whole["truth"] == {"sin2theta_eff": 0.2315}
    for label in ("hard level",):
        np.testing.assert_allclose(
            joined["curves"]["sin2theta_eff"][label]["delta_nll"],
            whole["curves"]["sin2theta_eff"][label]["delta_nll"],
            rtol=1e-12,
            atol=1e-9,
        )
    mine = joined["curves"]["sin2theta_eff"]["first+second"]
    np.testing.assert_allclose(mine["delta_nll"], whole["curves"]["sin2theta_eff"]["dy_mem"]["delta_nll"], atol=1e-9)
    assert mine["band"] == pytest.approx(whole["curves"]["sin2theta_eff"]["dy_mem"]["band"], abs=1e-9)
    # calibration: the sets run across the boundary of the files (47 is not a multiple of 20)
    cal = []
    for spec in (dy_results["path"], f"{a},{b}"):
        code, out, err = run(capsys, "calibrate", spec, "--set-size", 20, "--events", 80, "--out", tmp_path, "--json")
        assert code == 0, err
        cal.append(json.loads(out)["groups"][0])
    assert cal[0]["n_sets"] == cal[1]["n_sets"] == 4
    assert [e["value"] for e in cal[1]["sets"]] == pytest.approx([e["value"] for e in cal[0]["sets"]], abs=1e-12)


def test_joins_only_one_likelihood(dy_results, capsys, tmp_path):
    """A join of other models, options, grids or the same events twice is refused, saying why."""
    from memzoo.inference.io import same_likelihood
    from memzoo.results import read_results

    settings = read_results(dy_results["path"]).settings
    for change, what in (
        ({"model": "card:other.toml"}, "different likelihoods (model"),
        ({"options": {"n_points": 500}}, "option n_points"),
    ):
        a, b = split_results(dy_results["path"], 40, tmp_path / "a.h5", tmp_path / "b.h5", {**settings, **change})
        code, _, err = run(capsys, "scan", f"{a},{b}")
        assert code == 2 and what in err and "b.h5" in err, err
        for p in (a, b):
            Path(p).unlink()
    code, _, err = run(capsys, "scan", f"{dy_results['path']},{dy_results['path']}")
    assert code == 2 and "both hold row" in err and "twice" in err
    # the same rows of a dataset grown in place since (another checksum, the same file)
    res = read_results(dy_results["path"])
    grown = write_results(
        tmp_path / "grown.h5", res.theta, res.logp[:5], {**settings, "data_sha256": "0" * 16}, None, res.event[:5]
    )
    code, _, err = run(capsys, "scan", f"{dy_results['path']},{grown}")
    assert code == 2 and f"both hold row {int(res.event[0])}" in err
    used = set(read_results(dy_results["path"]).event.tolist())
    unused = torch.tensor([row for row in range(300) if row not in used][:3])
    other = write_results(tmp_path / "grid.h5", [0.2, 0.25], torch.zeros(3, 2), settings, event=unused)
    code, _, err = run(capsys, "scan", f"{dy_results['path']},{other}")
    assert code == 2 and "different θ grids" in err
    # a registry alias pinned to a version in one file and not in the other is the same model
    # (the request agrees, one version is unknown); two different pins are not
    alias = "uri:models:/thj@champion"
    assert same_likelihood({"model": alias}, {"model": f"{alias} = models:/thj/1"}) == []
    assert same_likelihood({"model": f"{alias} = models:/thj/2"}, {"model": f"{alias} = models:/thj/1"})


def gaussian_results(path, mu_true, n, grid, seed, names_in_data=False):
    """Toy results without a readable dataset: x ~ N(μ_true, 1), log N(x|μ, 1) on a grid."""
    x = mu_true + torch.randn(n, 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    mu = torch.as_tensor(grid, dtype=torch.float64)[None, :]
    logp = -0.5 * (x - mu) ** 2 - 0.5 * math.log(2 * math.pi)
    return write_results(path, mu.T, logp, {"model": "toy", "data": str(Path(path).with_suffix(".missing"))})


def test_calibrate_several_files(capsys, tmp_path):
    grid = np.linspace(-2, 3, 26)
    files = [gaussian_results(tmp_path / f"toy{t}.h5", t, 1000, grid, seed=t) for t in (0, 1)]
    code, _, err = run(capsys, "calibrate", *files, "--set-size", 50, "--names", "mu")
    assert code == 2 and "--truth mu=VALUE" in err
    code, out, err = run(
        capsys,
        "calibrate",
        *files,
        "--names",
        "mu",
        "--truth",
        "mu=0",
        "--truth",
        "mu=1",
        "--set-size",
        50,
        "--out",
        tmp_path / "cal",
        "--json",
    )
    assert code == 0, err
    s = json.loads(out)
    assert [g["truth"] for g in s["groups"]] == [0.0, 1.0] and s["overall_pulls"]["n"] == 40
    assert all(g["sets"][0]["err_low"] == pytest.approx(1 / math.sqrt(50)) for g in s["groups"])
    assert abs(s["overall_pulls"]["mean"]) < 4 / math.sqrt(40)
    code, out, err = run(capsys, "calibrate", *files, "--names", "mu", "--truth", "mu=0", "--truth", "mu=1",
                         "--set-size", 50, "--out", tmp_path / "cal2", "--mirror")  # fmt: skip
    assert code == 0, err
    assert "at −truth" in out and "width (others)" in out
    s = json.loads((tmp_path / "cal2" / "calibration.json").read_text())
    assert [g["mirror_sets"] for g in s["groups"]] == [0, 0]  # N(1, 1)/√50 never nearer −1 than 1


def test_scan_periodic_parameter(capsys, tmp_path):
    """α near the seam: the fit wraps (the period given because the toy has no dataset)."""
    grid = np.arange(-180.0, 180.0, 5.0)
    logp = -0.5 * (((grid + 180 - 178.0) % 360 - 180) / 20.0) ** 2  # one event, α̂ = 178° ± 20°
    path = write_results(tmp_path / "a.h5", grid, torch.as_tensor(logp)[None, :], {"model": "toy"})
    code, out, err = run(capsys, "scan", path, "--names", "alpha", "--period", "alpha=360", "--json", "--out", tmp_path)
    assert code == 0, err
    est = json.loads(out)["parameters"]["alpha"]["a"]
    assert est["value"] == pytest.approx(178.0, abs=1e-6) and est["err_high"] == pytest.approx(20.0, abs=1e-6)
    assert est["interval"][1] == pytest.approx(198.0, abs=1e-6)


def test_discriminant_hypotheses_and_models(capsys, tmp_path):
    """Two θ points of one grid, or the same numbers split over two 'models', give the same AUC."""
    n, grid = 4000, [0.0, 1.0]
    a = gaussian_results(tmp_path / "a.h5", 1.0, n, grid, seed=1)
    b = gaussian_results(tmp_path / "b.h5", 0.0, n, grid, seed=2)
    code, out, err = run(
        capsys, "discriminant", a, b, "--names", "mu", "--a", "mu=1", "--b", "mu=0", "--json", "--out", tmp_path / "d1"
    )
    assert code == 0, err
    s = json.loads(out)
    exact = 0.5 * (1 + math.erf(1 / 2))  # Φ(1/√2)
    assert abs(s["auc"] - exact) < 4 * s["auc_err"] and s["n_a"] == n
    assert (tmp_path / "d1" / "discriminant.png").stat().st_size > 10_000
    # the b hypothesis from separate files (another model), matched event by event
    from memzoo.results import read_results

    split = []
    for f in (a, b):
        r = read_results(f)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # stored in another order
        split.append(
            write_results(
                Path(f).with_name(Path(f).stem + "_b.h5"),
                [0.0],
                r.logp[perm, :1],
                {"model": "toy"},
                event=r.event[perm],
            )
        )
    code, out, err = run(
        capsys,
        "discriminant",
        a,
        b,
        "--names",
        "mu",
        "--a",
        "mu=1",
        "--b-results",
        *split,
        "--json",
        "--out",
        tmp_path / "d2",
    )
    assert code == 0, err
    assert json.loads(out)["auc"] == s["auc"]


def test_scan_warns_of_a_grid_coarse_for_the_curve(capsys, tmp_path):
    """A minimum narrower than the grid step: the polynomial misses its points and the scan says so."""
    grid = np.arange(-180.0, 180.0, 10.0)
    logp = -200 * np.log(np.cosh((grid - 47) / 2))[None, :]  # −2Δlog L quadratic only within ±1°
    path = write_results(tmp_path / "narrow.h5", grid, torch.as_tensor(logp), {"model": "toy"})
    code, out, err = run(capsys, "scan", path, "--names", "x", "--out", tmp_path / "poly")
    assert code == 0, err
    assert "warning: narrow, x: the polynomial misses grid points" in out and "--method spline" in out
    summary = json.loads((tmp_path / "poly" / "scan.json").read_text())
    assert summary["warnings"] and summary["parameters"]["x"]["narrow"]["fit_residual"] > 100
    fit = summary["curves"]["x"]["narrow"]["fit"]
    assert len(fit["theta"]) == len(fit["delta_nll"]) > 100
    code, out, err = run(capsys, "scan", path, "--names", "x", "--method", "spline", "--out", tmp_path / "spline")
    assert code == 0 and "warning" not in out, out + err
    assert json.loads((tmp_path / "spline" / "scan.json").read_text())["warnings"] == []


def test_errors_name_the_file(capsys, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "memzoo-paired-dataset"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad, what in (
        (other, "not a memzoo likelihood-results file"),
        (text, "not an HDF5 file"),
        (tmp_path / "none.h5", "does not exist"),
    ):
        code, _, err = run(capsys, "scan", bad)
        assert code == 2 and str(bad) in err and what in err and "memzoo integrate" in err
    path = write_results(tmp_path / "r.h5", [0.0, 1.0, 2.0], torch.zeros(3, 3), {"model": "toy"})
    code, _, err = run(capsys, "discriminant", path, path, "--a", "theta0=1", "--b", "theta0=5")
    assert code == 2 and "nearest: theta0=2" in err
    code, _, err = run(capsys, "scan", path, "--parameter", "alpha")
    assert code == 2 and "Unknown --parameter 'alpha'" in err


@pytest.mark.parametrize("argv", [["--help"], ["scan", "--help"], ["calibrate", "--help"], ["discriminant", "--help"]])
def test_help_texts(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0 and "usage: memzoo" in capsys.readouterr().out
