"""Calibration over disjoint event sets: pulls of toys with known truth.

Tolerances: with n sets, the pull mean has a statistical error 1/√n and the width 1/√(2(n−1));
the checks allow four of those (a seeded toy, so the outcome is fixed; four sigma says the
tolerance is not tuned to the seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memzoo.inference import (
    Estimate,
    EventLikelihoods,
    ParameterInfo,
    calibrate,
    fit_sets,
    pull,
    summarise_pulls,
)

ALPHA = ParameterInfo("alpha", "deg", 360.0, -180.0)


def gaussian_toy(n_events, mu_true, width, grid, seed):
    """Events x ~ N(μ_true, width); per-event log N(x|μ, width) on a μ grid."""
    gen = torch.Generator().manual_seed(seed)
    x = mu_true + width * torch.randn(n_events, 1, generator=gen, dtype=torch.float64)
    mu = torch.as_tensor(grid, dtype=torch.float64)[None, :]
    logp = -0.5 * ((x - mu) / width) ** 2 - math.log(width * math.sqrt(2 * math.pi))
    truth = torch.full((n_events, 1), float(mu_true), dtype=torch.float64)
    return EventLikelihoods(logp, mu.T.clone(), [ParameterInfo("mu")], truth=truth, source=f"toy {mu_true}")


def test_pull_definition_uses_the_side_of_the_truth():
    e = Estimate("mu", 1.0, err_low=0.5, err_high=2.0, closed_low=True, closed_high=True, nll_min=0.0, method="poly")
    assert pull(e, 3.0) == pytest.approx(-1.0)  # truth above: σ₊
    assert pull(e, 0.0) == pytest.approx(2.0)  # truth below: σ₋
    a = Estimate("alpha", 175.0, 4.0, 10.0, True, True, 0.0, "poly")
    assert pull(a, -175.0, ALPHA) == pytest.approx(-1.0)  # 10° the short way round, above
    s = summarise_pulls([0.0, 2.0, np.inf])
    assert (s.n, s.mean, s.width) == (2, 1.0, pytest.approx(math.sqrt(2)))
    assert s.mean_err == pytest.approx(1.0) and s.width_err == pytest.approx(math.sqrt(2) / math.sqrt(2))


def test_gaussian_toy_pulls():
    grid = np.linspace(-1.5, 2.5, 41)
    truths = [0.0, 1.0]
    groups = [gaussian_toy(400 * 25, t, 1.0, grid, seed=i) for i, t in enumerate(truths)]
    cal = calibrate(groups, set_size=25)
    n = cal.overall.n
    assert n == 800 and cal.truths == truths and cal.left_out == [0, 0]
    assert abs(cal.overall.mean) < 4 / math.sqrt(n)
    assert abs(cal.overall.width - 1) < 4 / math.sqrt(2 * (n - 1))
    # per set: σ = 1/√25 exactly (Gaussian likelihood), θ̂ = the set's sample mean
    est = cal.estimates[0]
    assert all(e.err_low == pytest.approx(0.2, abs=1e-9) and e.err_high == pytest.approx(0.2, abs=1e-9) for e in est)
    x0 = -2 * groups[0].logp  # recover the events: −2 log p is quadratic with minimum at x
    assert est[0].value == pytest.approx(float(groups[0].theta[x0[:25].sum(0).argmin(), 0]), abs=0.1)
    d = cal.as_dict()
    assert d["groups"][1]["truth"] == 1.0 and len(d["groups"][1]["sets"]) == 400
    assert d["overall_pulls"]["n"] == 800


def test_exponential_toy_coverage():
    """Asymmetric likelihood (lifetime τ from 30 decays): the Δ = 1 intervals cover ≈ 68.3 %."""
    gen = torch.Generator().manual_seed(11)
    n_sets, size, tau_true = 500, 30, 2.0
    t = -tau_true * torch.rand(n_sets * size, 1, generator=gen, dtype=torch.float64).log()
    tau = torch.linspace(0.8, 5.0, 211, dtype=torch.float64)[None, :]
    ev = EventLikelihoods(-tau.log() - t / tau, tau.T.clone(), [ParameterInfo("tau")])
    estimates, _ = fit_sets(ev, size, method="spline")
    assert all(e.err_high > e.err_low for e in estimates)  # the likelihood is skewed to high τ
    covered = np.mean([e.interval[0] <= tau_true <= e.interval[1] for e in estimates])
    assert abs(covered - 0.6827) < 4 * math.sqrt(0.6827 * 0.3173 / n_sets)
    means = t.reshape(n_sets, size).mean(1)  # the MLE of τ is the sample mean
    np.testing.assert_allclose([e.value for e in estimates], means.numpy(), atol=2e-3)


def test_periodic_toy_pulls_across_the_seam():
    """von Mises events around α = 172°: many fits land beyond 180°, pulls stay N(0, 1)."""
    gen = np.random.default_rng(5)
    kappa, truth, size, n_sets = 2.0, 172.0, 60, 300
    x = gen.vonmises(np.radians(truth), kappa, size * n_sets)[:, None]  # radians
    grid = np.arange(-180.0, 180.0, 2.0)
    logp = kappa * np.cos(x - np.radians(grid)[None, :])  # normalisation: θ-independent
    ev = EventLikelihoods(
        torch.as_tensor(logp),
        torch.as_tensor(grid)[:, None],
        [ALPHA],
        truth=torch.full((len(x), 1), truth, dtype=torch.float64),
    )
    cal = calibrate([ev], set_size=size)
    values = np.array([e.value for e in cal.estimates[0]])
    assert (values < 0).sum() > 10  # wrapped past the seam
    s = cal.overall
    assert s.n == n_sets
    assert abs(s.mean) < 4 / math.sqrt(n_sets) and abs(s.width - 1) < 4 / math.sqrt(2 * (n_sets - 1))


def test_calibration_errors():
    ev = gaussian_toy(50, 0.0, 1.0, np.linspace(-2, 2, 21), 0)
    with pytest.raises(ValueError, match="fewer than one set"):
        calibrate([ev], set_size=100)
    mixed = EventLikelihoods(ev.logp, ev.theta, ev.parameters, truth=torch.linspace(0, 1, 50)[:, None].double())
    with pytest.raises(ValueError, match="different true mu"):
        calibrate([mixed], set_size=10)
    unknown = EventLikelihoods(ev.logp, ev.theta, ev.parameters)
    with pytest.raises(ValueError, match="--truth mu=VALUE"):
        calibrate([unknown], set_size=10)
    assert calibrate([unknown], set_size=10, truths=[0.0]).truths == [0.0]
    assert calibrate([ev], set_size=15).left_out == [5]


def test_mirror_sets_are_counted_and_left_out_of_the_second_summary():
    """θ ↔ −θ ambiguity: 5 of 20 sets (by construction) fit −θ_true; ``mirror=True`` counts exactly those
    and summarises the pulls of the other 15, which are then N(0, 1) again."""
    grid = np.linspace(-3.0, 3.0, 121)
    wrong = gaussian_toy(5 * 25, -1.0, 1.0, grid, seed=3)  # sets drawn at the mirror image
    right = gaussian_toy(15 * 25, 1.0, 1.0, grid, seed=4)
    both = EventLikelihoods(
        torch.cat([wrong.logp, right.logp]),
        right.theta,
        right.parameters,
        truth=torch.ones(20 * 25, 1, dtype=torch.float64),
    )
    cal = calibrate([both], set_size=25, mirror=True)
    group = cal.as_dict()["groups"][0]
    assert group["mirror_sets"] == 5 and group["mirror_fraction"] == pytest.approx(0.25)
    assert cal.mirrored(0).tolist() == [True] * 5 + [False] * 15
    kept = group["pulls_without_mirror"]
    assert kept["n"] == 15 and abs(kept["mean"]) < 4 / math.sqrt(15) and abs(kept["width"] - 1) < 4 / math.sqrt(28)
    assert group["pulls"]["width"] > 3  # the mirror sets' pulls of ≈ −10 dominate the plain summary
    assert "mirror_sets" not in calibrate([both], set_size=25).as_dict()["groups"][0]
    at_zero = calibrate([gaussian_toy(100, 0.0, 1.0, grid, seed=5)], set_size=25, mirror=True)
    assert at_zero.as_dict()["groups"][0]["mirror_sets"] == 0  # −0 is 0: no mirror image
