"""Tests of the ODE and divergence machinery of memzoo-cfm against closed forms.

A linear velocity field v = A(c) x + b(c) has the flow x(t) = e^{At} x₀ + A⁻¹(e^{At} − 1) b and
divergence tr A, so the density of eq. 3.55 is known exactly:
log p(x₀) = log N(x(1)) + tr A. Everything runs in float64 to separate solver error from rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from memzoo_cfm import ConditionalFlowMatching, ODESolver, VelocityMLP, exact_divergence, hutchinson_divergence
from memzoo_cfm.ode import hutchinson_probes, log_density, sample_flow, standard_normal_log_prob
from torch import nn


class LinearField(nn.Module):
    """v(x, t | c) = (A₀ + c A₁) x + c b, constant in t (rows independent)."""

    def __init__(self, dim: int = 3, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.a0 = nn.Parameter(0.6 * torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        self.a1 = nn.Parameter(0.3 * torch.randn(dim, dim, generator=gen, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(dim, generator=gen, dtype=torch.float64))

    def matrix(self, c: torch.Tensor) -> torch.Tensor:
        return self.a0 + c[:, :1, None] * self.a1  # (B, d, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (self.matrix(c) @ x[..., None])[..., 0] + c[:, :1] * self.b

    def exact(self, x0: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form z = x(1) and log p(x₀|c)."""
        a = self.matrix(c)
        e = torch.linalg.matrix_exp(a)
        shift = torch.linalg.solve(a, ((e - torch.eye(len(self.b), dtype=a.dtype)) @ (c[:, :1] * self.b)[..., None]))
        z = (e @ x0[..., None] + shift)[..., 0]
        return z, standard_normal_log_prob(z) + a.diagonal(dim1=-2, dim2=-1).sum(-1)

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        a = self.matrix(c)
        e = torch.linalg.matrix_exp(a)
        shift = torch.linalg.solve(a, ((e - torch.eye(len(self.b), dtype=a.dtype)) @ (c[:, :1] * self.b)[..., None]))
        return torch.linalg.solve(e, z[..., None] - shift)[..., 0]


def _points(n: int = 64, dim: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=gen, dtype=torch.float64), torch.rand(n, 1, generator=gen, dtype=torch.float64)


def test_linear_field_density_and_sample_exact():
    """RK4 (step 0.05) and dopri5 reproduce the closed-form density and inverse flow; the RK4 error
    falls as step⁴ (global order 4), so the step really trades accuracy."""
    field = LinearField()
    x0, c = _points()
    z_exact, logp_exact = field.exact(x0, c)
    with torch.no_grad():
        errors = {}
        for step in (0.2, 0.1, 0.05):
            logp, z = log_density(field, x0, c, ODESolver(step=step))
            errors[step] = float((logp - logp_exact).abs().max())
            assert float((z - z_exact).abs().max()) < 50 * errors[step] + 1e-12
        assert errors[0.05] < 1e-5, errors
        assert 8 < errors[0.1] / errors[0.05] < 32, errors  # ratio 2⁴ = 16 for a fourth-order method
        logp, _ = log_density(field, x0, c, ODESolver("dopri5", rtol=1e-10, atol=1e-10))
        torch.testing.assert_close(logp, logp_exact, rtol=0, atol=1e-8)
        x_back = sample_flow(field, z_exact, c, ODESolver(step=0.05))
        torch.testing.assert_close(x_back, field.inverse(z_exact, c), rtol=0, atol=1e-5)
        torch.testing.assert_close(x_back, x0, rtol=0, atol=1e-5)
    trace = field.matrix(c).detach().diagonal(dim1=-2, dim2=-1).sum(-1)
    assert float(trace.abs().min()) > 1e-3  # dropping the divergence term would fail the 1e-5 check


def test_exact_divergence_is_jacobian_trace_and_differentiable():
    field = LinearField(dim=4, seed=3)
    x, c = _points(16, 4)
    v, div = exact_divergence(field, x, torch.zeros(16, dtype=torch.float64), c)
    torch.testing.assert_close(v, field(x, torch.zeros(16), c))
    torch.testing.assert_close(div, field.matrix(c).diagonal(dim1=-2, dim2=-1).sum(-1))
    div.sum().backward()  # tr(A₀ + c A₁): d/dA₀ = 1 on the diagonal, times B rows
    torch.testing.assert_close(field.a0.grad, 16 * torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_with_stated_variance(probe):
    """Hutchinson on a nonlinear MLP field: the mean over K probes is within 5 standard errors of the
    exact divergence for every row, and the probe variance matches its closed form
    (Rademacher: Σ_{i<j} (J_ij + J_ji)²; Gaussian: ‖J‖_F² + tr(J²))."""
    torch.manual_seed(0)
    net = VelocityMLP(4, 2, layers=3, hidden=32, activation="tanh", time_features=2).double()
    x, c = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    t = torch.full((6,), 0.3, dtype=torch.float64)
    with torch.no_grad():
        _, exact = exact_divergence(net, x, t, c)
        k = 4000
        eps = hutchinson_probes(k, (6, 4), probe, like=x, generator=torch.Generator().manual_seed(1))
        # one estimate per probe: K single-probe calls, vectorised over the probe axis
        single = torch.stack([hutchinson_divergence(net, x, t, c, eps[i : i + 1])[1] for i in range(0, k, 400)])
        _, mean_k = hutchinson_divergence(net, x, t, c, eps)
        jac = torch.func.vmap(torch.func.jacrev(lambda xi, ti, ci: net(xi[None], ti[None], ci[None])[0]))(x, t, c)
    per_probe = (eps * torch.einsum("bij,kbj->kbi", jac, eps)).sum(-1)  # (K, B) the same estimates, explicitly
    torch.testing.assert_close(per_probe.mean(0), mean_k)
    torch.testing.assert_close(single, per_probe[::400])
    se = per_probe.std(0) / math.sqrt(k)
    assert bool(((mean_k - exact).abs() < 5 * se).all()), (mean_k - exact) / se
    if probe == "rademacher":
        sym = jac + jac.transpose(1, 2)
        variance = (sym**2).sum((1, 2)) / 2 - (sym.diagonal(dim1=1, dim2=2) ** 2).sum(-1) / 2
    else:
        variance = (jac**2).sum((1, 2)) + (jac @ jac).diagonal(dim1=1, dim2=2).sum(-1)
    ratio = per_probe.var(0) / variance
    assert bool(((ratio - 1).abs() < 0.15).all()), ratio  # 4000 draws: the variance is known to ~5 %
    assert float(se.max()) > 1e-3  # the estimator really is noisy: the agreement above is not trivial


def test_hutchinson_log_density_unbiased():
    """RK4 is linear in the divergence values along a trajectory that does not depend on the probes,
    so the mean of Hutchinson log-densities equals the exact-divergence log-density (5 SE)."""
    torch.manual_seed(2)
    cfm = ConditionalFlowMatching(VelocityMLP(3, 1, layers=3, hidden=32, activation="tanh").double(), 3)
    x, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    repeats = 300
    with torch.no_grad():
        exact = cfm.log_prob(x, c, ODESolver(step=0.1))
        noisy = cfm.log_prob(
            x.repeat(repeats, 1), c.repeat(repeats, 1), ODESolver(step=0.1, divergence="hutchinson"),
            torch.Generator().manual_seed(3),
        ).reshape(repeats, 5)  # fmt: skip
    se = noisy.std(0) / math.sqrt(repeats)
    assert bool(((noisy.mean(0) - exact).abs() < 5 * se).all()), (noisy.mean(0) - exact) / se
    assert float(noisy.std(0).min()) > 1e-3  # a test that can fail: the estimates do scatter


def test_density_integrates_to_one_on_grid():
    """A strongly nonlinear 2-d conditional flow (random tanh MLP, weights scaled ×2) integrates to
    1 on a grid, for two conditions, and its grid mean matches the mean of its samples.

    Tolerance 10⁻⁴, set by the ODE: the RK4 (step 0.05) error of log p, measured against dopri5
    (rtol 10⁻⁸), is < 10⁻⁵ here, so Z is off by at most ~10⁻⁵. The trapezoid sum of a smooth,
    rapidly decaying density converges spectrally (measured: the same Z to 10⁻⁹ at spacings 0.08,
    0.16 and 0.25; |Z − 1| = 7·10⁻⁸), and the mass beyond |x| = 8 is < 10⁻¹⁰ (|v| is bounded by the
    tanh network, so the tails stay Gaussian-like). Dropping or flipping the divergence misses 1
    by far more.
    """
    torch.manual_seed(4)
    net = VelocityMLP(2, 1, layers=3, hidden=32, activation="tanh", time_features=2).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2.0)
    cfm = ConditionalFlowMatching(net, 2)
    h = 0.25
    axis = torch.arange(-8, 8 + h / 2, h, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    gauss = standard_normal_log_prob(grid).exp()
    for cond in (-1.0, 1.0):
        c = torch.full((len(grid), 1), cond, dtype=torch.float64)
        with torch.no_grad():
            p = cfm.log_prob(grid, c, ODESolver()).exp()
            ref = cfm.log_prob(grid[::17], c[::17], ODESolver("dopri5", rtol=1e-8, atol=1e-8)).exp()
        assert float((p[::17].log() - ref.log()).abs().max()) < 1e-5
        total = float(p.sum() * h * h)
        assert abs(total - 1) < 1e-4, total
        assert float((p - gauss).abs().sum() * h * h) > 0.3  # far from the latent: a real test
        mean = (grid * p[:, None]).sum(0) * h * h
        with torch.no_grad():
            z = torch.randn(20000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
            xs = cfm.sample(torch.full((20000, 1), cond, dtype=torch.float64), ODESolver(), z)
        se = xs.std(0) / math.sqrt(len(xs))
        assert bool(((xs.mean(0) - mean).abs() < 5 * se).all()), (xs.mean(0), mean)


def test_solver_validation():
    with pytest.raises(ValueError, match="solver must be one of"):
        ODESolver("rk45")
    with pytest.raises(ValueError, match="step"):
        ODESolver(step=0.0)
    with pytest.raises(ValueError, match="divergence"):
        ODESolver(divergence="trace")
    with pytest.raises(ValueError, match="probes"):
        ODESolver(probes=0)
    assert ODESolver(step=0.05).n_steps == 20 and ODESolver(step=0.3).n_steps == 4
    with pytest.raises(ValueError, match=r"need x \(B, 2\)"):
        ConditionalFlowMatching(VelocityMLP(2, 1, 2, 8), 2).log_prob(torch.zeros(3, 3), torch.zeros(3, 1), ODESolver())
