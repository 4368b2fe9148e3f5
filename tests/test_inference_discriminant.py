"""Discriminant, ROC and AUC against analytic cases (no scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.inference import auc, auc_error, discriminant, roc_curve, theta_column

PHI = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))


def normal_logp(x, mu):
    return -0.5 * (x - mu) ** 2 - 0.5 * math.log(2 * math.pi)


def test_discriminant_values_and_stability():
    la, lb = torch.tensor([0.0, math.log(3.0), 1000.0, -1000.0]), torch.tensor([0.0, 0.0, 0.0, 0.0])
    d = discriminant(la, lb, gamma=2.0)  # P_a / (P_a + 2 P_b)
    torch.testing.assert_close(d[:2], torch.tensor([1 / 3, 3 / 5]))
    assert d[2] == 1.0 and d[3] == 0.0 and torch.isfinite(d).all()
    with pytest.raises(ValueError, match="gamma must be positive"):
        discriminant(la, lb, gamma=0.0)


def test_roc_small_exact():
    fpr, tpr, thr = roc_curve(torch.tensor([3.0, 2.0, 2.0, 0.5]), torch.tensor([2.0, 1.0]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert tpr.tolist() == [0.0, 0.25, 0.75, 0.75, 1.0]
    assert thr.tolist() == [math.inf, 3.0, 2.0, 1.0, 0.5]
    # pairs: (3>2,3>1), (2=2 half, 2>1) twice, (0.5 < both) -> (2 + 1.5 + 1.5 + 0) / 8
    assert auc(torch.tensor([3.0, 2.0, 2.0, 0.5]), torch.tensor([2.0, 1.0])) == pytest.approx(5 / 8)


@settings(max_examples=60, deadline=None)
@given(
    a=st.lists(st.integers(0, 6), min_size=1, max_size=25),
    b=st.lists(st.integers(0, 6), min_size=1, max_size=25),
)
def test_auc_is_the_mann_whitney_statistic(a, b):
    """AUC = P(s_a > s_b) + ½ P(s_a = s_b), counted over all pairs (ties included)."""
    sa, sb = np.array(a, float), np.array(b, float)
    pairs = (sa[:, None] > sb[None, :]).mean() + 0.5 * (sa[:, None] == sb[None, :]).mean()
    assert auc(torch.as_tensor(sa), torch.as_tensor(sb)) == pytest.approx(pairs, abs=1e-12)
    fpr, tpr, _ = roc_curve(torch.as_tensor(sa), torch.as_tensor(sb))
    assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all() and fpr[-1] == 1 and tpr[-1] == 1


def test_gaussian_hypotheses_analytic_roc():
    """x ~ N(μ, 1) (a) vs N(0, 1) (b): D from the exact likelihoods gives AUC = Φ(μ/√2) and
    the Neyman–Pearson ROC tpr = 1 − Φ(Φ⁻¹(1 − fpr) − μ)."""
    mu, n = 1.2, 20_000
    gen = torch.Generator().manual_seed(4)
    xa = mu + torch.randn(n, generator=gen, dtype=torch.float64)
    xb = torch.randn(n, generator=gen, dtype=torch.float64)
    d_a = discriminant(normal_logp(xa, mu), normal_logp(xa, 0.0), gamma=5.0)
    d_b = discriminant(normal_logp(xb, mu), normal_logp(xb, 0.0), gamma=5.0)
    area = auc(d_a, d_b)
    exact = PHI(mu / math.sqrt(2))
    err = auc_error(exact, n, n)
    assert abs(area - exact) < 4 * err
    fpr, tpr, _ = roc_curve(d_a, d_b)
    from statistics import NormalDist

    for f in (0.05, 0.2, 0.5):
        expected = 1 - PHI(NormalDist().inv_cdf(1 - f) - mu)
        measured = float(np.interp(f, fpr.numpy(), tpr.numpy()))
        # binomial error of tpr at n events, plus the slope times the binomial error of fpr
        slope = math.exp(-0.5 * (NormalDist().inv_cdf(1 - f) - mu) ** 2 + 0.5 * NormalDist().inv_cdf(1 - f) ** 2)
        tol = 4 * math.sqrt(expected * (1 - expected) / n + slope**2 * f * (1 - f) / n)
        assert abs(measured - expected) < tol
    # γ and the monotonic map do not change the ROC
    assert auc(normal_logp(xa, mu) - normal_logp(xa, 0.0), normal_logp(xb, mu) - normal_logp(xb, 0.0)) == area


def test_identical_classes_and_perfect_separation():
    x = torch.arange(10.0)
    assert auc(x, x) == pytest.approx(0.5)
    assert auc(x + 100, x) == 1.0 and auc(x, x + 100) == 0.0


def test_auc_error_matches_toy_spread():
    """Hanley–McNeil's error against the spread of the AUC over 300 toys of 100 + 100 events."""
    gen = torch.Generator().manual_seed(8)
    areas = [auc(1.0 + torch.randn(100, generator=gen), torch.randn(100, generator=gen)) for _ in range(300)]
    spread = float(np.std(areas, ddof=1))
    predicted = auc_error(PHI(1 / math.sqrt(2)), 100, 100)
    # the spread of 300 toys is known to 1/√(2·299) ≈ 4 %; Hanley–McNeil is an approximation
    assert spread == pytest.approx(predicted, rel=0.2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="Both classes need events"):
        roc_curve(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="NaN/inf"):
        roc_curve(torch.tensor([1.0, float("nan")]), torch.tensor([1.0]))


def test_theta_column():
    theta = torch.tensor([[0.0, 1.0], [0.0, 2.0], [45.0, 1.0]], dtype=torch.float64)
    assert theta_column(theta, ["alpha", "k"], {"alpha": 45.0}) == 2
    assert theta_column(theta, ["alpha", "k"], {"alpha": 0.0, "k": 2.0}) == 1
    with pytest.raises(ValueError, match="nearest: alpha=45"):
        theta_column(theta, ["alpha", "k"], {"alpha": 40.0})
    with pytest.raises(ValueError, match="give a value for every parameter"):
        theta_column(theta, ["alpha", "k"], {"alpha": 0.0})
    with pytest.raises(ValueError, match="Unknown parameter"):
        theta_column(theta, ["alpha", "k"], {"beta": 0.0})
