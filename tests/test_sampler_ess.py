"""``benchmarks/sampler_ess.py``: effective sample size of the MEM importance weights."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from benchmarks import sampler_ess


def test_summarise_analytic_cases():
    flat = sampler_ess.summarise(torch.zeros(2000, dtype=torch.float64))
    assert flat == pytest.approx({"ess": 1.0, "top": 1 / 2000, "small_minus_full": 0.0})
    # one weight e^50 above 1999 equal ones: ESS = (e^50 + 1999)^2 / (e^100 + 1999) / N → 1/N
    spike = torch.zeros(2000, dtype=torch.float64)
    spike[1500] = 50.0
    out = sampler_ess.summarise(spike)
    assert out["ess"] == pytest.approx(1 / 2000, rel=1e-6) and out["top"] == pytest.approx(1.0, rel=1e-6)
    # the first 1000 points miss the spike: their mean is e^-50·(…) below the full one
    assert out["small_minus_full"] == pytest.approx(math.log(1000 / 1000) - math.log((math.exp(50) + 1999) / 2000))
    assert sampler_ess.summarise(torch.full((1000,), -math.inf))["ess"] == 0.0


def test_weights_reproduce_the_integrator(tmp_path):
    """The weights are the MEM integrand: their mean over σ_fid is the integrator's p(x_reco|θ)."""
    from memzoo.cards import load_card
    from memzoo.data import read_dataset
    from memzoo.integrator import MEMIntegrator
    from memzoo.simulation.simulate import SimulationConfig, simulate

    parts = load_card(Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml").build()
    process = parts["process"]
    simulate(SimulationConfig("drell-yan", n_events=40, chunk_size=40, seed=5), tmp_path / "dy.h5", progress=False)
    reco = read_dataset(tmp_path / "dy.h5", accepted_only=True)[:2].charged_reco
    theta = process.theta(sin2theta_eff=[0.23])
    mem = MEMIntegrator(process, parts["transfer"], parts["sampler"], parts["acceptance"], n_points=20000,
                        min_iterations=2, max_iterations=2, sigma_fid_points=20000)  # fmt: skip
    reference = mem.log_likelihood(reco, theta)
    log_fid = math.log(float(mem.sigma_fid(theta)[0][0]))
    for e in range(2):
        log_w = sampler_ess.event_weights(parts, reco[[e]], theta, 40000, torch.Generator().manual_seed(e))
        stats = sampler_ess.summarise(log_w)
        top = log_w.max()
        estimate = float(torch.log(torch.exp(log_w - top).mean()) + top) - log_fid
        # both are MC estimates: agreement within 4 combined standard errors of log p
        w = torch.exp(log_w - top)
        err = float(w.std() / w.mean()) / math.sqrt(len(w))
        tolerance = 4 * math.hypot(err, float(reference.std[e, 0]))
        assert estimate == pytest.approx(float(reference.logp[e, 0]), abs=tolerance)
        assert 0.01 < stats["ess"] <= 1.0  # the exact-transfer sampler covers the integrand


def test_bad_input(tmp_path):
    with pytest.raises(SystemExit, match="no such file"):
        sampler_ess.main(["--data", str(tmp_path / "x.h5"), "--model", "a=b", "--theta", "alpha=0", "--no-json"])
    with pytest.raises(SystemExit, match="points"):
        sampler_ess.main(["--data", "x.h5", "--model", "a=b", "--theta", "a=0", "--points", "10", "--no-json"])
