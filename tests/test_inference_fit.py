"""Fits of −2Δlog L scans: exact answers on analytic Gaussian likelihoods, periodic wrap-around,
open intervals, replica spread and profile likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.inference import EventLikelihoods, ParameterInfo, Scan, fit_curve, fit_scan, grid_axes, profile, wrap

ALPHA = ParameterInfo("alpha", "deg", 360.0, -180.0)


def gauss(x, mu, sigma):
    return ((np.asarray(x) - mu) / sigma) ** 2


@pytest.mark.parametrize("method", ["poly", "spline"])
def test_gaussian_exact(method):
    x = np.linspace(-3, 3, 13)
    e = fit_curve(x, gauss(x, 0.3, 0.5) + 7.0, method=method)  # offsets do not matter
    assert e.value == pytest.approx(0.3, abs=1e-12)
    assert e.err_low == pytest.approx(0.5, abs=1e-12) and e.err_high == pytest.approx(0.5, abs=1e-12)
    assert e.closed and e.nll_min == pytest.approx(-gauss(0.5, 0.3, 0.5), abs=1e-12)
    assert e.interval == pytest.approx((-0.2, 0.8))
    # 95 % CL: Δ = 4 is two sigma
    e2 = fit_curve(x, gauss(x, 0.3, 0.5), method=method, level=4.0)
    assert e2.err_low == pytest.approx(1.0, abs=1e-12) and e2.err_high == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    mu=st.floats(-1.0, 1.0),
    sigma=st.floats(0.05, 0.6),
    step=st.floats(0.01, 0.2),
    offset=st.floats(0.0, 1.0),
    method=st.sampled_from(["poly", "spline"]),
)
def test_gaussian_exact_any_grid(mu, sigma, step, offset, method):
    """Any grid fine enough to hold three points with Δ < 9 gives the exact Gaussian answer."""
    x = np.arange(-3.0 + offset * step, 3.0, step)
    e = fit_curve(x, gauss(x, mu, sigma), method=method)
    tol = 1e-7 * max(1.0, sigma)
    assert e.value == pytest.approx(mu, abs=tol)
    assert e.err_low == pytest.approx(sigma, abs=tol) and e.err_high == pytest.approx(sigma, abs=tol)


def test_asymmetric_errors_from_two_half_parabolas():
    """Different curvature on either side (thesis 6.3.1): σ₋ and σ₊ come out separately."""
    x = np.linspace(0.0, 2.0, 401)
    y = np.where(x < 1.0, gauss(x, 1.0, 0.1), gauss(x, 1.0, 0.3))
    e = fit_curve(x, y, method="spline")  # the kink at the minimum costs a fraction of a grid step
    assert e.value == pytest.approx(1.0, abs=0.005)
    assert e.err_low == pytest.approx(0.1, rel=0.02) and e.err_high == pytest.approx(0.3, rel=0.02)


@settings(max_examples=30, deadline=None)
@given(mu=st.floats(-180.0, 179.99), sigma=st.floats(3.0, 20.0), step=st.sampled_from([1.0, 2.0, 2.5, 5.0]))
def test_periodic_gaussian_wraps(mu, sigma, step):
    """A minimum anywhere, also next to ±180°, is found with its exact interval."""
    x = np.arange(-180.0, 180.0 + step / 2, step)  # both ends: −180 and 180 are the same point
    e = fit_curve(x, gauss(ALPHA.delta(x, mu), 0.0, sigma), ALPHA)
    assert -180.0 <= e.value < 180.0
    assert float(ALPHA.delta(e.value, mu)) == pytest.approx(0.0, abs=1e-6)
    assert e.err_low == pytest.approx(sigma, abs=1e-6) and e.err_high == pytest.approx(sigma, abs=1e-6)


@pytest.mark.parametrize("method", ["poly", "spline"])
def test_periodic_von_mises(method):
    """−2Δlog L = 2κ(1 − cos(α − μ)): Δ = 1 at arccos(1 − 1/2κ), across the ±180° seam."""
    kappa, mu = 30.0, 175.0
    x = np.linspace(-180, 180, 73)
    e = fit_curve(x, 2 * kappa * (1 - np.cos(np.radians(x - mu))), ALPHA, method=method)
    exact = math.degrees(math.acos(1 - 1 / (2 * kappa)))
    assert e.value == pytest.approx(mu, abs=0.01)
    assert e.err_low == pytest.approx(exact, rel=2e-3) and e.err_high == pytest.approx(exact, rel=2e-3)
    assert e.interval[1] > 180.0  # reported unwrapped: the interval runs through the seam


def test_open_interval_at_grid_edge():
    x = np.linspace(0.0, 1.0, 11)
    e = fit_curve(x, gauss(x, 0.05, 0.5))
    assert not e.closed_low and e.closed_high
    assert e.err_low == pytest.approx(e.value - 0.0)  # distance to the grid edge: a lower limit
    assert e.err_high == pytest.approx(0.5, abs=1e-9)
    flat = fit_curve(
        np.linspace(-180, 175, 72), np.zeros(72) + 1e-3 * np.cos(np.radians(np.linspace(-180, 175, 72))), ALPHA
    )
    assert not flat.closed_low and not flat.closed_high


def test_poly_averages_noise_and_spline_interpolates():
    rng = np.random.default_rng(3)
    x = np.linspace(-2, 2, 41)
    y = gauss(x, 0.2, 0.4) + rng.normal(0, 0.3, x.shape)
    e = fit_curve(x, y, method="poly")
    assert e.value == pytest.approx(0.2, abs=0.05) and e.err_high == pytest.approx(0.4, abs=0.08)


def test_fit_residual_flags_a_grid_coarse_for_the_curve():
    """A curve quadratic only within ±1° of its minimum, on a 10° grid: the quartic cannot follow it."""
    coarse, fine = np.arange(-180.0, 180.0, 10.0), np.arange(-180.0, 180.0, 0.5)
    walls = lambda x: 400 * np.log(np.cosh((x - 47) / 2))  # σ = 2/√200 = 0.141
    bad, good = fit_curve(coarse, walls(coarse)), fit_curve(fine, walls(fine))
    assert bad.fit_residual > 100 and good.fit_residual < 0.1
    assert good.value == pytest.approx(47, abs=1e-3) and good.err_low == pytest.approx(0.1414, abs=2e-3)
    # an exact parabola on the coarse grid is followed exactly: no residual, exact interval
    exact = fit_curve(coarse, ((coarse - 47) / 0.6) ** 2)
    assert exact.fit_residual < 1e-6 and exact.err_high == pytest.approx(0.6, rel=1e-6)
    assert fit_curve(coarse, walls(coarse), method="spline").fit_residual == 0.0


@pytest.mark.parametrize("method", ["poly", "spline"])
def test_fit_curve_samples_pass_through_the_estimate(method):
    x = np.linspace(-2, 2, 21)
    e = fit_curve(x, gauss(x, 0.23, 0.4), method=method)
    cx, cy = e.curve
    assert cx.min() >= -2 and cx.max() <= 2 and np.all(np.diff(cx) > 0)
    assert cx[np.argmin(cy)] == pytest.approx(e.value, abs=0.01) and cy.min() == pytest.approx(e.nll_min, abs=1e-3)
    # the Δ = 1 crossings lie on the sampled curve
    np.testing.assert_allclose(np.interp(list(e.interval), cx, cy), e.nll_min + 1, atol=2e-3)
    assert "curve" not in e.as_dict() and "fit_residual" in e.as_dict()


def test_periodic_spline_minimum_away_from_the_best_grid_point():
    """Two nearly equal minima (a sign ambiguity, as α = ±90° in tHj): the spline's deeper one lies
    between grid points, 2° beyond the turn the grid minimum starts; its interval must close."""
    x = np.arange(-180.0, 180.0, 10.0)
    d1, d2 = ALPHA.delta(x, 92.0), ALPHA.delta(x, -90.0)
    y = -2 * np.log(np.exp(-(d1**2) / 32) + np.exp(-0.05) * np.exp(-(d2**2) / 32))  # σ = 4°
    assert x[np.argmin(y)] == -90.0  # the grid prefers the other minimum
    e = fit_curve(x, y, ALPHA, method="spline")
    assert e.closed and abs(e.value - 92.0) < 2.0
    assert 2 < e.err_low < 6 and 2 < e.err_high < 6


def test_bad_input():
    with pytest.raises(ValueError, match="Must be one of"):
        fit_curve([0, 1, 2], [1, 0, 1], method="cubic")
    with pytest.raises(ValueError, match="at least 3 grid points"):
        fit_curve([0, 1, 2], [1, np.nan, 1])


def test_fit_scan_replica_spread():
    """value_std is the spread of the replica minima (thesis 6.4.1: replicas through the fit)."""
    x = np.linspace(-1, 1, 41)
    shifts = np.array([-0.05, 0.0, 0.02, 0.07, -0.01])
    scan = Scan(x[:, None], [ParameterInfo("mu")], gauss(x, 0.0, 0.2), np.stack([gauss(x, s, 0.2) for s in shifts], 1))
    e = fit_scan(scan)
    assert e.value == pytest.approx(0.0, abs=1e-9)
    assert e.value_std == pytest.approx(shifts.std(ddof=1), abs=1e-8) and e.n_replicas == 5
    band, kind = scan.band()
    assert kind == "replicas" and band.shape == x.shape


def test_combine_events():
    """Event log-likelihoods add: −2 Σ log p."""
    theta = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    logp = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ev = EventLikelihoods(logp, theta, [ParameterInfo("mu")], std=torch.full_like(logp, 0.1))
    scan = ev.combine()
    np.testing.assert_allclose(scan.nll, -2 * logp.sum(0).numpy())
    assert scan.delta.min() == 0.0
    np.testing.assert_allclose(scan.nll_std, 2 * 0.1 * math.sqrt(7))
    assert len(ev[2:5]) == 3 and ev[2:5].event.tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="parameter names"):
        EventLikelihoods(logp, theta, [ParameterInfo("a"), ParameterInfo("b")])


def _grid2(a, b):
    A, B = np.meshgrid(a, b, indexing="ij")
    return np.stack([A.ravel(), B.ravel()], 1)


@pytest.mark.parametrize("rho", [0.0, 0.6, -0.8])
def test_profile_of_correlated_gaussian_is_exact(rho):
    """Profiling a 2D Gaussian gives the marginal width σ_i, whatever the correlation."""
    theta = _grid2(np.linspace(-2, 2, 17), np.linspace(-3, 3, 13))
    mu, s = np.array([0.3, -0.4]), np.array([0.5, 0.8])
    cov = np.array([[s[0] ** 2, rho * s[0] * s[1]], [rho * s[0] * s[1], s[1] ** 2]])
    d = theta - mu
    nll = np.einsum("ti,ij,tj->t", d, np.linalg.inv(cov), d)
    reps = np.stack([nll, np.roll(nll, 0) + 0.0], 1)
    scan = Scan(theta, [ParameterInfo("a"), ParameterInfo("b")], nll, reps)
    for i, name in enumerate(["a", "b"]):
        one = profile(scan, name)
        np.testing.assert_allclose(
            one.delta, gauss(one.theta[:, 0], mu[i], s[i]) - gauss(one.theta[:, 0], mu[i], s[i]).min(), atol=1e-9
        )
        for method in ("poly", "spline"):
            e = fit_scan(scan, name, method=method)
            assert e.value == pytest.approx(mu[i], abs=1e-8)
            assert e.err_low == pytest.approx(s[i], abs=1e-8) and e.err_high == pytest.approx(s[i], abs=1e-8)
        assert e.value_std == pytest.approx(0.0, abs=1e-8)


def test_profile_periodic_nuisance():
    """α is a nuisance whose minimum sits on the seam: the profile still sees the full depth."""
    theta = _grid2(np.linspace(0, 1, 11), np.arange(-180.0, 180.0, 10.0))
    info = [ParameterInfo("k"), ALPHA]
    nll = gauss(theta[:, 0], 0.4, 0.2) + gauss(ALPHA.delta(theta[:, 1], 176.0), 0.0, 15.0)
    one = profile(Scan(theta, info, nll), "k")
    np.testing.assert_allclose(one.nll, gauss(one.theta[:, 0], 0.4, 0.2), atol=1e-9)


def test_profile_needs_product_grid():
    theta = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="full Cartesian grid"):
        grid_axes(theta, ["a", "b"])
    with pytest.raises(ValueError, match="say which one"):
        fit_scan(Scan(_grid2([0, 1, 2], [0, 1, 2]), [ParameterInfo("a"), ParameterInfo("b")], np.zeros(9)))


def test_wrap():
    assert wrap(180.0, 360.0, -180.0) == -180.0
    # just below the low end: np.mod rounds up to the period, which would give 180 (hypothesis found μ = −180)
    below = float(np.nextafter(-180.0, -200.0))
    assert wrap(below, 360.0, -180.0) == -180.0
    assert np.all(wrap(np.array([below, -1e-300, 179.99]), 360.0, -180.0) < 180.0)
    np.testing.assert_allclose(ALPHA.delta([170.0, -170.0], [-170.0, 170.0]), [-20.0, 20.0])
