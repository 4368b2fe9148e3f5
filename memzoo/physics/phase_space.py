"""Maps from the unit hypercube to hadron-collider phase space, with their Jacobians.

The recursive construction dΦ_n(P) = dΦ_2(P; k₁, Q) dQ²/(2π) dΦ_{n-1}(Q) and the Breit-Wigner
flattening of an invariant mass follow Byckling & Kajantie, *Particle Kinematics* (1973), and
the phase-space chapter of the Heidelberg ML-MEM thesis (Heimel 2024). Conventions:

* ``S`` = hadronic s = sqrt_s², ``ŝ = x₁ x₂ S``; beam 1 moves along +z, x₁ = (E + p_z)/√S and
  x₂ = (E - p_z)/√S of the final state.
* dΦ_n = (2π)^{4-3n} δ⁴(p₁ + p₂ - Σk) Π d³kᵢ/(2Eᵢ); the hadronic measure is dx₁ dx₂ dΦ_n and a
  cross section is dσ = Σ f f · |M|²/(2ŝ) · dx₁ dx₂ dΦ_n (:func:`flux_factor` is 1/(2ŝ)).
* Every map returns a weight = d(measure)/du, so that ∫ f d(measure) = ∫ f·weight du.

**Hard coordinates given as final-state 3-momenta** (e.g. tHj: p⃗_t, p⃗_H and p_z of the
massless jet, seven numbers). With all but the last particle's transverse momentum given,
:func:`momenta_from_balance` fixes the last p_T by momentum balance (zero total p_T at LO),
:func:`x1x2_from_final_state` gives x₁, x₂ from E ± p_z, and :func:`hadronic_density` is
dx₁ dx₂ dΦ_n per unit of Π_{i<n} d³kᵢ · dk_{n,z} = (2/S) (2π)^{4-3n} Π_i 1/(2Eᵢ). Hence

    dσ/d(coords) = f(x₁) f(x₂) |M|²/(2ŝ) · hadronic_density,

and a unit-hypercube map for such coordinates (for instance :func:`hadronic_three_body`) has
Jacobian |d coords/du| = weight / hadronic_density.
"""

from __future__ import annotations

import math

import torch

from memzoo.physics.lorentz import boost_from_rest_frame

__all__ = [
    "breit_wigner_map",
    "breit_wigner_unmap",
    "flux_factor",
    "hadronic_density",
    "hadronic_three_body",
    "kallen",
    "momenta_from_balance",
    "rapidity_map",
    "two_body_decay",
    "two_body_density",
    "x1x2_from_final_state",
    "x1x2_from_tau_y",
]


def kallen(a: torch.Tensor, b: torch.Tensor | float, c: torch.Tensor | float) -> torch.Tensor:
    """Källén function λ(a, b, c) = a² + b² + c² - 2ab - 2ac - 2bc."""
    return a**2 + b**2 + c**2 - 2 * a * b - 2 * a * c - 2 * b * c


def flux_factor(s_hat: torch.Tensor) -> torch.Tensor:
    """Partonic flux 1/(2ŝ) in GeV⁻² for massless initial partons, ``s_hat (...)`` in GeV²."""
    return 0.5 / s_hat


# ---------------------------------------------------------------------------------------
# one-dimensional maps
# ---------------------------------------------------------------------------------------


def _bw_angles(mass: float, width: float, m2_min, m2_max) -> tuple[torch.Tensor, torch.Tensor]:
    mg = mass * width
    lo = torch.atan((torch.as_tensor(m2_min, dtype=torch.float64) - mass**2) / mg)
    hi = torch.atan((torch.as_tensor(m2_max, dtype=torch.float64) - mass**2) / mg)
    return lo, hi


def breit_wigner_map(u: torch.Tensor, mass: float, width: float, m2_min, m2_max) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariant mass² distributed as a Breit-Wigner: the density of m² is flat in u.

    m² = M² + MΓ tan(a + u (b - a)) with a, b the arctangents at the limits.

    Args:
        u: ``(...)`` in [0, 1].
        mass, width: M and Γ in GeV (both > 0).
        m2_min, m2_max: limits of m² in GeV², numbers or tensors broadcastable to ``u``.

    Returns:
        ``m2 (...)`` in GeV² and the weight dm²/du ``(...)``.
    """
    lo, hi = _bw_angles(mass, width, m2_min, m2_max)
    lo, hi = lo.to(u.device), hi.to(u.device)
    angle = lo + u * (hi - lo)
    mg = mass * width
    m2 = mass**2 + mg * torch.tan(angle)
    jac = (hi - lo) * ((m2 - mass**2) ** 2 + mg**2) / mg
    return m2, jac


def breit_wigner_unmap(m2: torch.Tensor, mass: float, width: float, m2_min, m2_max) -> torch.Tensor:
    """Inverse of :func:`breit_wigner_map`: u ``(...)`` of m² ``(...)`` in GeV²."""
    lo, hi = _bw_angles(mass, width, m2_min, m2_max)
    lo, hi = lo.to(m2.device), hi.to(m2.device)
    return (torch.atan((m2 - mass**2) / (mass * width)) - lo) / (hi - lo)


def rapidity_map(u: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rapidity y of the partonic system, flat in [ln√τ, -ln√τ] (so x₁, x₂ ≤ 1); weight dy/du = -ln τ."""
    half = -0.5 * torch.log(tau)
    return (2 * u - 1) * half, 2 * half


def x1x2_from_tau_y(tau: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x₁ = √τ e^y, x₂ = √τ e^{-y}; dx₁ dx₂ = dτ dy."""
    root = torch.sqrt(tau)
    return root * torch.exp(y), root * torch.exp(-y)


# ---------------------------------------------------------------------------------------
# two-body decays
# ---------------------------------------------------------------------------------------


def two_body_density(s: torch.Tensor, m1: float, m2: float) -> torch.Tensor:
    """dΦ₂/(dcosθ dφ) = λ^{1/2}(s, m₁², m₂²)/(32π² s) in the rest frame; 0 below threshold."""
    lam = kallen(s, m1**2, m2**2).clamp(min=0.0)
    return torch.sqrt(lam) / (32 * math.pi**2 * s)


def two_body_decay(
    parent: torch.Tensor, m1: float, m2: float, cos_theta: torch.Tensor, phi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decay ``parent (..., 4)`` into masses m1, m2 with angles of k₁ in the parent rest frame.

    The rest frame is reached by a pure boost from the frame of ``parent``, so θ, φ are measured
    against the z and x axes of that frame (the Collins-Soper-like choice is left to callers).

    Returns:
        ``k1 (..., 4)``, ``k2 (..., 4)`` in the frame of ``parent`` and the weight
        dΦ₂/(dcosθ dφ) ``(...)`` (see :func:`two_body_density`).
    """
    s = parent[..., 0] ** 2 - (parent[..., 1:] ** 2).sum(-1)
    q = torch.sqrt(kallen(s, m1**2, m2**2).clamp(min=0.0)) / (2 * torch.sqrt(s))
    sin_theta = torch.sqrt((1 - cos_theta**2).clamp(min=0.0))
    direction = torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], -1)
    k1 = torch.cat([torch.sqrt(q**2 + m1**2)[..., None], q[..., None] * direction], -1)
    k2 = torch.cat([torch.sqrt(q**2 + m2**2)[..., None], -q[..., None] * direction], -1)
    return boost_from_rest_frame(k1, parent), boost_from_rest_frame(k2, parent), two_body_density(s, m1, m2)


# ---------------------------------------------------------------------------------------
# hadronic measure of final-state momenta
# ---------------------------------------------------------------------------------------


def x1x2_from_final_state(p_final: torch.Tensor, sqrt_s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Momentum fractions from the summed final state ``p_final (B, n, 4)``: x₁,₂ = (E ± p_z)/√S."""
    total = p_final.sum(-2)
    return (total[..., 0] + total[..., 3]) / sqrt_s, (total[..., 0] - total[..., 3]) / sqrt_s


def hadronic_density(p_final: torch.Tensor, sqrt_s: float) -> torch.Tensor:
    """dx₁ dx₂ dΦ_n per unit of Π_{i<n} d³kᵢ · dk_{n,z}, ``(B,)`` in GeV^{-(3n-2)}... see module doc.

    Equals (2/S)(2π)^{4-3n} Π_i 1/(2Eᵢ): δ²(p_T) removes the last particle's transverse momentum
    and δ(E)δ(p_z) removes dx₁ dx₂ = (2/S) dE dp_z. Valid on the balanced final state returned by
    :func:`momenta_from_balance`; whether x₁, x₂ ≤ 1 is the caller's check.

    Args:
        p_final: ``(B, n, 4)`` on-shell final-state momenta in GeV.
        sqrt_s: hadronic centre-of-mass energy in GeV.
    """
    n = p_final.shape[-2]
    energies = p_final[..., 0].prod(-1)
    return 2.0 / sqrt_s**2 * (2 * math.pi) ** (4 - 3 * n) / (2.0**n * energies)


def momenta_from_balance(p3: torch.Tensor, pz_last: torch.Tensor, masses) -> torch.Tensor:
    """Final-state four-momenta ``(B, n, 4)`` from n-1 three-momenta and the last p_z.

    The last particle's (p_x, p_y) balance the others (zero total p_T); energies put every
    particle on shell.

    Args:
        p3: ``(B, n-1, 3)`` three-momenta in GeV.
        pz_last: ``(B,)`` longitudinal momentum of the last particle in GeV.
        masses: n masses in GeV (sequence or ``(n,)`` tensor).
    """
    pt_last = -p3[..., :2].sum(-2)
    all3 = torch.cat([p3, torch.cat([pt_last, pz_last[..., None]], -1)[..., None, :]], -2)
    m = torch.as_tensor(masses, dtype=p3.dtype, device=p3.device)
    energy = torch.sqrt((all3**2).sum(-1) + m**2)
    return torch.cat([energy[..., None], all3], -1)


def hadronic_three_body(
    u: torch.Tensor, sqrt_s: float, masses, tau_min: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seven unit numbers → 2 → 3 hadronic phase space dx₁ dx₂ dΦ₃, with its weight.

    Recursive construction: τ = ŝ/S log-flat in [τ_min, 1]; the rapidity y flat (see
    :func:`rapidity_map`); m₂₃² flat between its limits; particle 1 against the (2,3) system
    at (cosθ, φ) in the partonic CM frame; particle 2 at (cosθ', φ') in the (2,3) rest frame.

    Args:
        u: ``(B, 7)`` in [0, 1]: (τ, y, m₂₃², cosθ, φ, cosθ', φ').
        sqrt_s: hadronic √S in GeV.
        masses: (m₁, m₂, m₃) in GeV.
        tau_min: lower τ limit (default (m₁ + m₂ + m₃)²/S).

    Returns:
        ``p (B, 3, 4)`` lab-frame momenta, ``x1 (B,)``, ``x2 (B,)`` and the weight
        d(x₁ x₂ Φ₃)/du ``(B,)``. For hard coordinates made of final-state 3-momenta, divide the
        weight by :func:`hadronic_density` to get |d coords/du|.
    """
    m1, m2, m3 = (float(m) for m in masses)
    s_had = sqrt_s**2
    tau_lo = (m1 + m2 + m3) ** 2 / s_had if tau_min is None else tau_min
    log_range = -math.log(tau_lo)
    tau = tau_lo * torch.exp(u[:, 0] * log_range)
    y, jac_y = rapidity_map(u[:, 1], tau)
    s_hat = tau * s_had
    m23_lo, m23_hi = (m2 + m3) ** 2, (torch.sqrt(s_hat) - m1) ** 2
    m23_sq = m23_lo + u[:, 2] * (m23_hi - m23_lo)
    zeros = torch.zeros_like(tau)
    cm = torch.stack([torch.sqrt(s_hat), zeros, zeros, zeros], -1)
    k1, q23, w1 = two_body_decay(cm, m1, 0.0, 2 * u[:, 3] - 1, 2 * math.pi * u[:, 4])
    # the (2,3) system has mass m23, not 0: redo the first split with the right masses
    k1, q23, w1 = _split(cm, m1, torch.sqrt(m23_sq), 2 * u[:, 3] - 1, 2 * math.pi * u[:, 4])
    k2, k3, w2 = two_body_decay(q23, m2, m3, 2 * u[:, 5] - 1, 2 * math.pi * u[:, 6])
    # longitudinal boost from the partonic CM frame to the lab
    frame = torch.stack([torch.cosh(y), zeros, zeros, torch.sinh(y)], -1)
    p = boost_from_rest_frame(torch.stack([k1, k2, k3], -2), frame[:, None, :])
    x1, x2 = x1x2_from_tau_y(tau, y)
    valid = (m23_hi > m23_lo).to(tau.dtype)
    weight = (tau * log_range) * jac_y * (m23_hi - m23_lo).clamp(min=0) / (2 * math.pi)
    weight = weight * w1 * w2 * (2 * 2 * math.pi) ** 2 * valid
    return p, x1, x2, weight


def _split(parent: torch.Tensor, m1: float, m_rest: torch.Tensor, cos_theta, phi):
    """Two-body split into a fixed mass m1 and a per-point mass ``m_rest (B,)`` (helper of the 2→3 map)."""
    s = parent[..., 0] ** 2 - (parent[..., 1:] ** 2).sum(-1)
    lam = kallen(s, m1**2, m_rest**2).clamp(min=0.0)
    q = torch.sqrt(lam) / (2 * torch.sqrt(s))
    sin_theta = torch.sqrt((1 - cos_theta**2).clamp(min=0.0))
    direction = torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], -1)
    k1 = torch.cat([torch.sqrt(q**2 + m1**2)[..., None], q[..., None] * direction], -1)
    k2 = torch.cat([torch.sqrt(q**2 + m_rest**2)[..., None], -q[..., None] * direction], -1)
    weight = torch.sqrt(lam) / (32 * math.pi**2 * s)
    return boost_from_rest_frame(k1, parent), boost_from_rest_frame(k2, parent), weight
