"""The hard-level reference likelihood: exact formula and normalisation to one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from memzoo.inference import hard_level_likelihood, normalisation

REGISTRY = Path(__file__).resolve().parents[1] / "registry"


@pytest.fixture(scope="module")
def uniform_points(dy):
    """Uniform points of the unit cube mapped to hard coordinates, with their Jacobians."""
    u = torch.rand(40_000, dy.hard_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return dy.from_unit(u)


def _integral(logp, jac):
    """∫ p(x) dx by plain MC over the unit cube, with its standard error."""
    w = logp.exp().nan_to_num(0.0) * jac[:, None]
    return w.mean(0), w.std(0) / math.sqrt(len(w))


def test_formula_with_given_sigma(dy, uniform_points):
    coords = uniform_points[0][:50]
    theta = dy.theta(sin2theta_eff=[0.2, 0.25])
    sigma = torch.tensor([2.0, 4.0], dtype=torch.float64)
    out = hard_level_likelihood(dy, coords, theta, sigma=(sigma, 0.1 * sigma))
    torch.testing.assert_close(out.logp, dy.dsigma(coords, theta).log() - sigma.log())
    assert out.logp.shape == (50, 2) and (out.std == 0).all()
    torch.testing.assert_close(out.diagnostics["sigma_error"][0], 0.1 * sigma)


def test_normalised_to_one(dy, uniform_points):
    """∫ dσ(x|θ)/σ(θ) dx = 1 at every θ (σ from VEGAS, the check from independent uniform points)."""
    coords, jac = uniform_points
    theta = dy.theta(sin2theta_eff=[0.18, 0.2315, 0.3])
    sigma, sigma_err = normalisation(dy, theta, n_points=5000, n_adapt=4, n_iter=4)
    out = hard_level_likelihood(dy, coords, theta, sigma=(sigma, sigma_err))
    mean, err = _integral(out.logp, jac)
    total_err = (err**2 + (sigma_err / sigma) ** 2).sqrt()
    assert ((mean - 1).abs() < 4 * total_err).all(), (mean, total_err)
    assert (total_err < 0.02).all()  # the check has teeth: a 2 % wrong normalisation would fail


def test_fiducial_normalisation_with_acceptance(uniform_points):
    """With an acceptance, ∫ ε dσ/σ_fid = 1: σ_fid from the MEM integrator's own VEGAS."""
    from memzoo.cards import load_card

    parts = load_card(REGISTRY / "drell-yan" / "gaussian.toml").build()
    dy, acceptance = parts["process"], parts["acceptance"]
    coords, jac = uniform_points
    theta = dy.theta(sin2theta_eff=[0.2, 0.26])
    out = hard_level_likelihood(dy, coords, theta, acceptance=acceptance, sigma_fid_points=8000)
    mean, err = _integral(out.logp, jac)
    rel = out.diagnostics["sigma_error"][0] / out.diagnostics["sigma"][0]
    assert ((mean - 1).abs() < 4 * (err**2 + rel**2).sqrt()).all(), (mean, err, rel)
    total, _ = normalisation(dy, theta, n_points=5000, n_adapt=4, n_iter=4)
    assert (out.diagnostics["sigma"][0] < 0.6 * total).all()  # the selection removes a large part


def test_bad_input(dy):
    theta = dy.theta()
    with pytest.raises(ValueError, match=r"hard_coords must be \(E, 4\)"):
        hard_level_likelihood(dy, torch.zeros(4, 2), theta, sigma=torch.ones(1))
    with pytest.raises(ValueError, match="positive cross sections"):
        hard_level_likelihood(dy, torch.zeros(4, 4), theta, sigma=torch.zeros(1))
