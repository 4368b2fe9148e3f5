"""Tests of the helicity-amplitude toolkit and the Lorentz helpers."""

from __future__ import annotations

import math

import pytest
import torch

from memzoo.physics import amplitudes as amp
from memzoo.physics.constants import SM
from memzoo.physics.lorentz import (
    apply,
    boost_from_rest_frame,
    boost_to_rest_frame,
    mass_squared,
    metric,
    minkowski_dot,
    random_lorentz_transform,
)

GEN = 20240611


def on_shell(n: int, mass: float, gen: torch.Generator, scale: float = 100.0) -> torch.Tensor:
    """``(n, 4)`` random momenta of a given mass; a few exactly along ±z."""
    p3 = scale * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    p3[0] = torch.tensor([0.0, 0.0, -40.0])
    p3[1] = torch.tensor([0.0, 0.0, 35.0])
    energy = torch.sqrt((p3**2).sum(-1) + mass**2)
    return torch.cat([energy[:, None], p3], -1)


def two_body(parent: torch.Tensor, m1: float, m2: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Isotropic two-body decay of ``parent (n, 4)`` into masses m1, m2 (test-local kinematics)."""
    n = parent.shape[0]
    m = torch.sqrt(mass_squared(parent))
    q = torch.sqrt((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2)) / (2 * m)
    cth = 2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1
    phi = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    sth = torch.sqrt(1 - cth**2)
    d = torch.stack([sth * torch.cos(phi), sth * torch.sin(phi), cth], -1) * q[:, None]
    k1 = torch.cat([torch.sqrt(q**2 + m1**2)[:, None], d], -1)
    k2 = torch.cat([torch.sqrt(q**2 + m2**2)[:, None], -d], -1)
    return boost_from_rest_frame(k1, parent), boost_from_rest_frame(k2, parent)


@pytest.mark.parametrize("mass", [0.0, 173.2])
def test_spinors_solve_dirac_equation_and_complete(mass: float) -> None:
    gen = torch.Generator().manual_seed(GEN)
    p = on_shell(64, mass, gen)
    pslash = amp.slash(p)
    eye = torch.eye(4, dtype=torch.complex128)
    scale = p[:, 0].max() ** 2
    sum_u = torch.zeros(64, 4, 4, dtype=torch.complex128)
    sum_v = torch.zeros_like(sum_u)
    for hel in (-1, 1):
        u, v = amp.spinor_u(p, hel, mass), amp.spinor_v(p, hel, mass)
        ubar, vbar = amp.spinor_ubar(p, hel, mass), amp.spinor_vbar(p, hel, mass)
        assert ((pslash - mass * eye) @ u[..., None]).abs().max() < 1e-10 * scale
        assert ((pslash + mass * eye) @ v[..., None]).abs().max() < 1e-10 * scale
        assert (ubar[:, None, :] @ (pslash - mass * eye)).abs().max() < 1e-10 * scale
        torch.testing.assert_close((ubar * u).sum(-1).real, torch.full((64,), 2 * mass, dtype=torch.float64))
        sum_u += u[:, :, None] * ubar[:, None, :]
        sum_v += v[:, :, None] * vbar[:, None, :]
    torch.testing.assert_close(sum_u, pslash + mass * eye, atol=1e-9 * scale, rtol=0)
    torch.testing.assert_close(sum_v, pslash - mass * eye, atol=1e-9 * scale, rtol=0)


def test_massless_helicity_is_chirality() -> None:
    gen = torch.Generator().manual_seed(GEN)
    p = on_shell(16, 0.0, gen)
    assert amp.spinor_u(p, 1)[:, :2].abs().max() == 0  # right-handed particle: lower half only
    assert amp.spinor_u(p, -1)[:, 2:].abs().max() == 0
    assert amp.spinor_v(p, 1)[:, 2:].abs().max() == 0  # positive-helicity antiparticle: left-chiral


@pytest.mark.parametrize("mass", [0.0, 91.188])
def test_polarisations(mass: float) -> None:
    gen = torch.Generator().manual_seed(GEN)
    k = on_shell(32, mass, gen)
    hels = (-1, 0, 1) if mass > 0 else (-1, 1)
    total = torch.zeros(32, 4, 4, dtype=torch.complex128)
    for hel in hels:
        eps = amp.polarisation(k, hel, mass)
        assert minkowski_dot(eps, k.to(eps.dtype)).abs().max() < 1e-9 * k[:, 0].max()
        torch.testing.assert_close(minkowski_dot(eps, eps.conj()).real, -torch.ones(32, dtype=torch.float64))
        total += eps[:, :, None] * eps.conj()[:, None, :]
    g = metric()
    if mass > 0:
        torch.testing.assert_close(total.real, -g + k[:, :, None] * k[:, None, :] / mass**2, atol=1e-8, rtol=1e-8)
    else:  # the transverse sum equals -g on the plane orthogonal to k and the beam-ish reference
        assert (torch.einsum("bij,bj->bi", total.real, k * torch.tensor([1.0, -1, -1, -1]))).abs().max() < 1e-9


def test_ffs_trace_with_complex_pseudoscalar_coupling() -> None:
    """Σ|v̄(p2)(c_S + c_P γ5)u(p1)|² = 4[(p1·p2)(|c_S|²+|c_P|²) - m²(|c_S|²-|c_P|²)] (t t̄ → H)."""
    gen = torch.Generator().manual_seed(GEN)
    m = SM.m_t
    p1, p2 = on_shell(32, m, gen), on_shell(32, m, gen)
    c_s, c_p = -0.6 + 0.1j, -0.4j + 0.2
    total = torch.zeros(32, dtype=torch.float64)
    for h1 in (-1, 1):
        for h2 in (-1, 1):
            s = amp.ffs_scalar(amp.spinor_vbar(p2, h2, m), amp.spinor_u(p1, h1, m), c_s, c_p)
            total += s.abs() ** 2
    a2, b2 = abs(c_s) ** 2, abs(c_p) ** 2
    expected = 4 * (minkowski_dot(p1, p2) * (a2 + b2) - m**2 * (a2 - b2))
    torch.testing.assert_close(total, expected, rtol=1e-10, atol=0)


def test_massive_ffv_width_of_z_to_top_pair() -> None:
    """Γ(V → f f̄) = M β/(24π) [(g_L²+g_R²)(1 - m²/M²) + 6 g_L g_R m²/M²] for real couplings."""
    gen = torch.Generator().manual_seed(GEN)
    big_m, m, g_l, g_r = 500.0, 173.2, 0.35, -0.15
    k = on_shell(16, big_m, gen)
    f, fbar = two_body(k, m, m, gen)
    total = torch.zeros(16, dtype=torch.float64)
    for hv in (-1, 0, 1):
        eps = amp.polarisation(k, hv, big_m)
        for h1 in (-1, 1):
            for h2 in (-1, 1):
                ubar, v = amp.spinor_ubar(f, h1, m), amp.spinor_v(fbar, h2, m)
                total += amp.ffv_amplitude(ubar, v, eps, g_l, g_r).abs() ** 2
    x = m**2 / big_m**2
    beta = math.sqrt(1 - 4 * x)
    width = total / 3 * beta / (16 * math.pi * big_m)  # spin average, two-body phase space
    expected = big_m * beta / (24 * math.pi) * ((g_l**2 + g_r**2) * (1 - x) + 6 * g_l * g_r * x)
    torch.testing.assert_close(width, torch.full_like(width, expected), rtol=1e-10, atol=0)


def test_vvs_polarisation_sum() -> None:
    """Σ|g ε₁*·ε₂*|² = g² [2 + (k₁·k₂)²/(M₁²M₂²)] for a scalar decaying to two massive vectors."""
    gen = torch.Generator().manual_seed(GEN)
    m1, m2, g = 80.4, 91.2, 0.7
    parent = on_shell(16, 400.0, gen)
    k1, k2 = two_body(parent, m1, m2, gen)
    total = torch.zeros(16, dtype=torch.float64)
    for h1 in (-1, 0, 1):
        for h2 in (-1, 0, 1):
            e1, e2 = amp.polarisation(k1, h1, m1, outgoing=True), amp.polarisation(k2, h2, m2, outgoing=True)
            total += amp.vvs_amplitude(e1, e2, torch.ones(16, dtype=torch.complex128), g).abs() ** 2
    expected = g**2 * (2 + minkowski_dot(k1, k2) ** 2 / (m1**2 * m2**2))
    torch.testing.assert_close(total, expected, rtol=1e-10, atol=0)


def ttbar_to_zh_squared(pt: torch.Tensor, ptbar: torch.Tensor, pz: torch.Tensor, ph: torch.Tensor) -> torch.Tensor:
    """Σ_hel |M|² of t t̄ → Z H: s-channel Z* (FFV, VVS) + t- and u-channel top (FFS, FFV)."""
    mt, mz, wz, wt = SM.m_t, SM.m_z, SM.width_z, SM.width_t
    g_l, g_r = -0.3, 0.12
    c_s, c_p = -0.5, -0.5j * (2 / 3)
    g_zzh = SM.g_z * mz
    total = torch.zeros(pt.shape[0], dtype=torch.float64)
    one = torch.ones(pt.shape[0], dtype=torch.complex128)
    for h1 in (-1, 1):
        u = amp.spinor_u(pt, h1, mt)
        for h2 in (-1, 1):
            vbar = amp.spinor_vbar(ptbar, h2, mt)
            zstar = amp.propagate_vector(amp.ffv_current(vbar, u, g_l, g_r), pt + ptbar, mz, wz)
            for hz in (-1, 0, 1):
                eps = amp.polarisation(pz, hz, mz, outgoing=True)
                m_s = amp.vvs_amplitude(zstar, eps, one, g_zzh)
                top_t = amp.propagate_fermion(amp.ffs_spinor(one, u, c_s, c_p), pt - ph, mt, wt)
                m_t = amp.ffv_amplitude(vbar, top_t, eps, g_l, g_r)
                top_u = amp.propagate_fermion(amp.ffv_spinor(eps, u, g_l, g_r), pt - pz, mt, wt)
                m_u = amp.ffs_amplitude(vbar, top_u, one, c_s, c_p)
                # the u-channel diagram built from the antitop end must agree
                bar_u = amp.propagate_fermion_bar(amp.ffs_spinor_bar(vbar, one, c_s, c_p), ph - ptbar, mt, wt)
                torch.testing.assert_close(amp.ffv_amplitude(bar_u, u, eps, g_l, g_r), m_u)
                total += (m_s + m_t + m_u).abs() ** 2
    return total


def test_squared_amplitude_is_lorentz_invariant() -> None:
    gen = torch.Generator().manual_seed(GEN)
    n = 32
    sqrt_s = 900.0
    cm = torch.zeros(n, 4, dtype=torch.float64)
    cm[:, 0] = sqrt_s
    pt, ptbar = two_body(cm, SM.m_t, SM.m_t, gen)
    pz, ph = two_body(cm, SM.m_z, SM.m_h, gen)
    before = ttbar_to_zh_squared(pt, ptbar, pz, ph)
    lam = random_lorentz_transform(n, max_rapidity=2.5, generator=gen)
    after = ttbar_to_zh_squared(*(apply(lam, p) for p in (pt, ptbar, pz, ph)))
    assert (before > 0).all()
    torch.testing.assert_close(after, before, rtol=1e-8, atol=0)


def test_fermion_propagator_bar_matches_matrix_product() -> None:
    gen = torch.Generator().manual_seed(GEN)
    p = on_shell(8, 50.0, gen)
    q = on_shell(8, 0.0, gen)
    vbar = amp.spinor_vbar(q, 1)
    direct = (vbar[:, None, :] @ amp.fermion_propagator(p, 173.2, 1.5)).squeeze(1)
    torch.testing.assert_close(amp.propagate_fermion_bar(vbar, p, 173.2, 1.5), direct)


def test_lorentz_transforms_preserve_metric_and_rest_frame() -> None:
    gen = torch.Generator().manual_seed(GEN)
    lam = random_lorentz_transform(16, generator=gen)
    g = metric()
    torch.testing.assert_close(lam.transpose(-1, -2) @ g @ lam, g.expand(16, 4, 4), atol=1e-12, rtol=0)
    p = on_shell(16, 10.0, gen)
    rest = boost_to_rest_frame(p, p)
    torch.testing.assert_close(rest[:, 1:], torch.zeros(16, 3, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(rest[:, 0], torch.full((16,), 10.0, dtype=torch.float64))
