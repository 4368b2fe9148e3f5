"""benchmarks/thj_regression_study.py on tiny synthetic tHj results with a known likelihood.

The synthetic "integrator" gives ln p(x|α) = −40 + u(x) + κ cos(α − α_true) with a per-event offset
u(x): the discriminant between α = 0° and 90° then separates the two samples perfectly (AUC 1) and
the summed −2Δln L of a sample is 2κ n (1 − cos(α − α_true)), minimal at its true α.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest
import torch

from memzoo.protocols import Likelihood
from memzoo.results import ResultsWriter

pytest.importorskip("memzoo_regression")

ROOT = Path(__file__).parents[1]
GRID = [-180.0 + 30.0 * i for i in range(12)]  # 30° steps: 0 and 90 on the grid
KAPPA = 0.5
N_EVENTS = 40


def _load_study():
    spec = importlib.util.spec_from_file_location(
        "thj_regression_study", ROOT / "benchmarks" / "thj_regression_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _load_study()


def _dataset(path: Path, alpha: float, seed: int) -> torch.Tensor:
    """N_EVENTS accepted tHj-like events (2 photons, b-jet, 3 jets; random kinematics); returns u(x)."""
    import memzoo
    from memzoo.data import DatasetChunk, DatasetWriter
    from memzoo.events import Particles

    gen = torch.Generator().manual_seed(seed)
    kind = torch.tensor([22, 22, 5, 1, 1, 1])
    pt = 30 + 70 * torch.rand(N_EVENTS, 6, generator=gen, dtype=torch.float64)
    eta = 4 * torch.rand(N_EVENTS, 6, generator=gen, dtype=torch.float64) - 2
    phi = 2 * math.pi * torch.rand(N_EVENTS, 6, generator=gen, dtype=torch.float64) - math.pi
    p = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)], -1)
    reco = Particles(p, kind.expand(N_EVENTS, 6).clone(), torch.ones(N_EVENTS, 6, dtype=torch.bool))
    process = memzoo.create("process", "thj")
    chunk = DatasetChunk(
        torch.full((N_EVENTS, 1), alpha, dtype=torch.float64),
        torch.zeros(N_EVENTS, len(process.hard_kinds), 4, dtype=torch.float64),
        torch.zeros(N_EVENTS, process.hard_dim, dtype=torch.float64),
        reco,
    )
    with DatasetWriter(path, process=process, n_reco_max=6, settings={"synthetic": seed}, chunk_size=N_EVENTS) as w:
        w.append(chunk)
    return torch.log(pt[:, 0] / 50)  # u(x): a function of the leading photon's pT


def _results(path: Path, alpha: float, u: torch.Tensor, bad: list[tuple[int, int]]) -> None:
    grid = torch.tensor(GRID, dtype=torch.float64)[:, None]
    logp = -40 + u[:, None] + KAPPA * torch.cos(torch.deg2rad(grid[:, 0] - alpha))[None, :]
    std = torch.full_like(logp, 0.2)
    for e, t in bad:
        std[e, t] = 1.0  # above max_std = 0.7: an invalid target
    settings = {"model": "uri:synthetic", "options": {"n_points": 1000}}
    with ResultsWriter(path, grid, settings) as writer:
        writer.append(torch.arange(N_EVENTS), Likelihood(logp, std, grid, {"n_points": torch.full((N_EVENTS,), 4000)}))


@pytest.fixture
def restore_tracking():
    """main() points MLflow at its temporary store; put back whatever this process used before."""
    import mlflow

    from memzoo import tracking

    state, uri, registry = dict(tracking._STATE), mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    env = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    tracking._STATE.clear()
    tracking._STATE.update(state)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    if env is not None:
        os.environ["MLFLOW_TRACKING_URI"] = env


def test_card_names_the_results_and_overrides_only_the_base_card():
    import tomllib

    samples = [
        {"file": "/a/r0.h5", "dataset": "/a/d0.h5", "source": 0},
        {"file": "/a/r1.h5", "dataset": "/d1", "source": 1},
    ]
    text = study.card_text(
        study.CARD.read_text(), samples, max_std=0.7, holdout=(-40.0, 130.0), epochs=3, hidden=16, layers=None,
        early_stopping_patience=5, theta_period=[360.0],
    )  # fmt: skip
    card = tomllib.loads(text)
    assert card["data"] == {
        "results": samples,
        "max_std": 0.7,
        "split": [0.7, 0.1, 0.2],
        "holdout_theta": {"alpha": [-40.0, 130.0]},
        "balance": False,
    }
    assert card["training"]["likelihood"]["epochs"] == 3 and card["likelihood"]["config"]["hidden"] == 16
    assert card["training"]["likelihood"]["early_stopping_patience"] == 5  # absent from the card: added
    assert card["likelihood"]["config"]["theta_period"] == [360.0]
    assert card["likelihood"]["config"]["layers"] == 4  # not overridden
    assert card["size"]["paper"]["training"]["likelihood"]["epochs"] == 100  # sizes untouched
    with pytest.raises(ValueError, match="no base key 'widht'"):
        study.card_text(study.CARD.read_text(), samples, max_std=0.7, holdout=(), widht=3)


def test_accuracy_of_a_known_offset():
    """Regressed = integrated + 0.1 at trained α, + 0.3 at held-out α: every number by hand."""
    gen = torch.Generator().manual_seed(1)
    integrated = 20 + 5 * torch.rand(30, 12, generator=gen, dtype=torch.float64)
    alpha = torch.tensor(GRID, dtype=torch.float64)
    held = (alpha == -30) | (alpha == 120)
    regressed = integrated + torch.where(held, 0.3, 0.1)
    valid = torch.ones(30, 12, dtype=torch.bool)
    valid[4, 2] = valid[7, 6] = False
    regressed[4, 2] += 2.0  # a bad prediction on an invalid target counts only there
    out = study.accuracy(regressed, integrated, valid, alpha, (-30.0, 120.0), torch.full((30, 12), 0.23))
    trained = out["trained θ"]
    assert trained["bias"] == pytest.approx(0.1) and trained["resolution"] == pytest.approx(0.0, abs=1e-12)
    assert trained["median"] == pytest.approx(0.1) and trained["sigma68"] == pytest.approx(0.0, abs=1e-12)
    keep = valid & ~held
    assert trained["n"] == 30 * 10 - 2
    assert trained["mape"] == pytest.approx(100 * (0.1 / integrated[keep]).mean().item())
    assert out["held-out θ"]["bias"] == pytest.approx(0.3) and out["held-out θ"]["n"] == 60
    invalid = out["invalid targets"]
    assert invalid["n"] == 2 and invalid["bias"] == pytest.approx((2.1 + 0.1) / 2)
    assert invalid["sigma68"] == pytest.approx(0.68 * (2.1 - 0.1) / 2)  # linear interpolation of 2 values
    mean_offset = (10 * 0.1 + 2 * 0.3) / 12  # the θ shape drops each event's mean over the grid
    assert out["events with every target valid"] == 28
    assert out["θ shape"]["bias"] == pytest.approx(0.3 - mean_offset)
    assert out["θ shape, trained θ"]["bias"] == pytest.approx(0.1 - mean_offset)
    assert out["θ shape"]["resolution"] == pytest.approx(0.0, abs=1e-12)
    assert out["θ shape of the mean event"]["n"] == 28 * 2
    assert out["I spread (integrator std)"] == pytest.approx(integrated[valid].std().item())
    assert out["integrator error of I (rms)"] == pytest.approx(0.23 / math.log(10))


def test_fourier_residual_is_the_noise_beyond_the_series():
    alpha = torch.tensor(GRID, dtype=torch.float64)
    a = torch.deg2rad(alpha)
    smooth = 20 + torch.cos(a)[None] * torch.arange(1.0, 4.0)[:, None] + 0.3 * torch.sin(2 * a)[None]
    assert study.fourier_residual(smooth, alpha, order=2) == pytest.approx(0.0, abs=1e-10)
    # a 6th harmonic is orthogonal to a series of order 2 on the 12-point grid: all of it is residual
    wiggle = smooth + 0.05 * torch.cos(6 * a)[None]
    assert study.fourier_residual(wiggle, alpha, order=2) == pytest.approx(0.05 * math.sqrt(12 / 7))


def test_study_on_synthetic_results(tmp_path, restore_tracking, capsys):
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    bad = [(1, 3), (2, 3), (30, 0)]
    argv = []
    for alpha, seed in ((0.0, 1), (90.0, 2)):
        u = _dataset(tmp_path / f"d{alpha:g}.h5", alpha, seed)
        _results(tmp_path / f"r{alpha:g}.h5", alpha, u, bad if alpha == 0 else [])
        argv += ["--sample", f"{alpha:g}", str(tmp_path / f"r{alpha:g}.h5"), str(tmp_path / f"d{alpha:g}.h5")]
    argv += ["--holdout", "-30", "120", "--epochs", "1", "--hidden", "8", "--layers", "1", "--periodic"]
    report = study.main([*argv, "--json", str(tmp_path / "out.json")])
    assert (tmp_path / "out.json").exists() and '"roc 0 vs 90"' in capsys.readouterr().out
    assert report["events"] == {"0": 40, "90": 40} and report["test events"] == {"0": 8, "90": 8}
    assert report["kept fraction"] == pytest.approx(1 - 3 / (80 * 12))
    assert report["integrator n_points per event"] == 4000
    # the study's test rows are the card's: its trained-θ numbers equal those of the training job
    metrics, trained = report["train metrics"], report["all"]["trained θ"]
    assert trained["n"] == metrics["test_n"] and trained["bias"] == pytest.approx(metrics["test_bias"], abs=1e-6)
    assert report["all"]["held-out θ"]["n"] == metrics["holdout_n"] == 16 * 2
    # the synthetic integrator: perfect separation and scans 2κn(1 − cos(α − α_true))
    roc = report["roc 0 vs 90"]
    assert roc["integrator"] == {"auc": 1.0, "error": 0.0} and roc["events"] == {"a": 8, "b": 8}
    delta = roc["regression − integrator"]["delta_auc"]
    assert delta == pytest.approx(roc["regression"]["auc"] - 1.0)
    for truth in (0.0, 90.0):
        scan = report["scan integrator"][f"{truth:g}"]
        expected = [2 * KAPPA * 8 * (1 - math.cos(math.radians(a - truth))) for a in GRID]
        assert scan["argmin"] == truth and scan["at truth"] == 0.0
        assert scan["-2 delta ln L"] == pytest.approx(expected, abs=0.006)
    assert report["timing"]["regression_us_per_weight"] > 0 and report["timing"]["threads"] == 1
