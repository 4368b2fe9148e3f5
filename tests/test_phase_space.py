"""Tests of the unit-hypercube phase-space maps and the hadronic measure of final-state momenta."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.physics import phase_space as ps
from memzoo.physics.lorentz import mass_squared

SQRT_S = 13000.0
MASSES = (0.0, 173.2, 125.0)  # j, t, H as in tHj


def rand(n: int, d: int, seed: int = 7) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_three_body_map_conserves_momentum_and_puts_particles_on_shell() -> None:
    p, x1, x2, weight = ps.hadronic_three_body(rand(256, 7), SQRT_S, MASSES)
    total = p.sum(-2)
    expected = torch.stack([x1 + x2, 0 * x1, 0 * x1, x1 - x2], -1) * SQRT_S / 2
    torch.testing.assert_close(total, expected, atol=1e-8, rtol=1e-12)
    m2 = torch.tensor([m**2 for m in MASSES], dtype=torch.float64)
    torch.testing.assert_close(mass_squared(p), m2.expand(256, 3), atol=1e-6, rtol=1e-9)
    assert ((x1 <= 1) & (x2 <= 1) & (weight > 0)).all()
    torch.testing.assert_close(x1x2 := torch.stack(ps.x1x2_from_final_state(p, SQRT_S)), torch.stack([x1, x2]))
    assert x1x2.shape == (2, 256)


def test_three_body_weight_equals_hadronic_density_times_coordinate_jacobian() -> None:
    """weight / hadronic_density = |det d(k⃗_t, k⃗_H, k_{j,z})/du|: checks both independently."""

    def coords(u: torch.Tensor) -> torch.Tensor:
        p, _, _, _ = ps.hadronic_three_body(u[None], SQRT_S, MASSES)
        return torch.cat([p[0, 1, 1:], p[0, 2, 1:], p[0, 0, 3:]])

    for u in rand(6, 7, seed=3):
        jac = torch.autograd.functional.jacobian(coords, u)
        p, _, _, weight = ps.hadronic_three_body(u[None], SQRT_S, MASSES)
        # put the jet (balanced p_T) last, as hadronic_density assumes
        density = ps.hadronic_density(p[:, [1, 2, 0]], SQRT_S)
        torch.testing.assert_close(weight / density, torch.det(jac).abs()[None], rtol=1e-8, atol=0)


def test_momenta_from_balance_round_trip() -> None:
    p, _, _, _ = ps.hadronic_three_body(rand(32, 7), SQRT_S, MASSES)
    ordered = p[:, [1, 2, 0]]
    rebuilt = ps.momenta_from_balance(ordered[:, :2, 1:], ordered[:, 2, 3], [173.2, 125.0, 0.0])
    torch.testing.assert_close(rebuilt, ordered, atol=1e-8, rtol=1e-10)


def test_massless_three_body_volume() -> None:
    """At fixed ŝ the massless Φ₃ volume is ŝ/(256π³)."""
    u = rand(20000, 7, seed=11)
    s_hat = 500.0**2
    # τ = τ_min^{1-u₀}: with τ_min = (ŝ/S)² and u₀ = 1/2 every point has τ = ŝ/S
    u[:, 0] = 0.5
    tau_min = (s_hat / SQRT_S**2) ** 2
    _, _, _, weight = ps.hadronic_three_body(u, SQRT_S, (0.0, 0.0, 0.0), tau_min=tau_min)
    tau = s_hat / SQRT_S**2
    dtau_du = tau * -math.log(tau_min)
    dy_du = -math.log(tau)
    volume = (weight / (dtau_du * dy_du)).mean()
    assert abs(volume / (s_hat / (256 * math.pi**3)) - 1) < 0.02


def test_two_body_decay() -> None:
    parent = torch.tensor([[300.0, 20.0, -50.0, 100.0]], dtype=torch.float64).expand(64, 4)
    u = rand(64, 2)
    k1, k2, w = ps.two_body_decay(parent, 91.188, 10.0, 2 * u[:, 0] - 1, 2 * math.pi * u[:, 1])
    torch.testing.assert_close(k1 + k2, parent)
    torch.testing.assert_close(mass_squared(k1), torch.full((64,), 91.188**2, dtype=torch.float64))
    # massless two-body volume 4π · 1/(32π²) = 1/(8π)
    w0 = ps.two_body_density(torch.tensor(100.0**2, dtype=torch.float64), 0.0, 0.0)
    torch.testing.assert_close(4 * math.pi * w0, torch.tensor(1 / (8 * math.pi), dtype=torch.float64))
    assert (w > 0).all()


@settings(max_examples=50, deadline=None)
@given(u=st.floats(0.0, 1.0), lo=st.floats(20.0, 90.0), width=st.floats(40.0, 200.0))
def test_breit_wigner_map_round_trip_and_weight(u: float, lo: float, width: float) -> None:
    m2_min, m2_max = lo**2, (lo + width) ** 2
    ut = torch.tensor([u], dtype=torch.float64, requires_grad=True)
    m2, jac = ps.breit_wigner_map(ut, 91.188, 2.4414, m2_min, m2_max)
    (grad,) = torch.autograd.grad(m2.sum(), ut)
    torch.testing.assert_close(jac, grad, rtol=1e-9, atol=0)
    back = ps.breit_wigner_unmap(m2.detach(), 91.188, 2.4414, m2_min, m2_max)
    torch.testing.assert_close(back, ut.detach(), atol=1e-9, rtol=0)
    assert m2_min * (1 - 1e-12) <= float(m2.detach()) <= m2_max * (1 + 1e-12)


def test_rapidity_map_keeps_fractions_below_one() -> None:
    tau = torch.tensor([1e-4, 0.3, 0.9], dtype=torch.float64)
    for u in (0.0, 0.5, 1.0):
        y, jac = ps.rapidity_map(torch.full((3,), u, dtype=torch.float64), tau)
        x1, x2 = ps.x1x2_from_tau_y(tau, y)
        assert (x1 <= 1 + 1e-12).all() and (x2 <= 1 + 1e-12).all()
        torch.testing.assert_close(x1 * x2, tau)
        torch.testing.assert_close(jac, -torch.log(tau))
