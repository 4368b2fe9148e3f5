"""Tree-level helicity amplitudes of q b → q' t H (t-channel single top + Higgs) with a CP-mixed Yukawa.

Process and couplings follow Heimel, PhD thesis (Heidelberg 2024), Sec. 6.1, eqs. 6.1-6.3 (and
Butter et al., arXiv:2210.00019): two leading-order diagrams, both with a t-channel W between
the light-quark line and the b → t line,

* **W diagram** (A_W): the Higgs is radiated from the W (W W H vertex, i g m_W g^{μν});
* **top diagram**: the Higgs is radiated from the top, with the CP-mixed Yukawa (eq. 6.2)
  L = -(y_t/√2) [cos α t̄t + (2/3) i sin α t̄γ5t] H, split into its scalar part A_S (coupling
  cos α factored out) and pseudoscalar part A_P (sin α factored out).

Higgs radiation off the (massless) b and light quarks vanishes. So for every helicity

    M(α) = A_W + cos α · A_S + sin α · A_P,

and |M|² expands exactly (cos²α = 1 - sin²α) in the basis (1, sin α, cos α, sin α cos α,
sin² α) of thesis eq. 6.33 with the terms

    g = (|A_W|² + |A_S|², 2 Re A_W A_P*, 2 Re A_W A_S*, 2 Re A_S A_P*, |A_P|² - |A_S|²).

Conventions: Feynman rules, spinors and gauge of :mod:`memzoo.physics.amplitudes` (HELAS,
chiral basis, unitary-gauge W with fixed widths in every propagator, also the space-like ones,
as MG5 standalone output and ``ufoamp`` do); couplings of the MG5 ``sm`` model
(:mod:`memzoo.physics.constants`): g_W = e/sin θ_W, W f f' vertex i g_W/√2 γ^μ P_L (diagonal
CKM), W W H vertex i g_W m_W, top Yukawa y_t = √2 m_t/v. Light quarks and b are massless.
"""

from __future__ import annotations

import math

import torch

from memzoo.physics import amplitudes as amp
from memzoo.physics.constants import SM, SMParameters

__all__ = ["CP_ODD_SCALE", "amplitude_pieces", "m2_direct", "m2_terms"]

#: b = 2/3 of thesis eq. 6.2: keeps σ(gg → H) independent of α.
CP_ODD_SCALE: float = 2.0 / 3.0

# colour: both quark lines are colour singlets, Σ|colour|² = N_c² cancels the 1/N_c² average;
# spin average 1/4 of the two incoming quarks
_AVERAGE = 0.25


def _external(
    p_in: torch.Tensor,
    p_b: torch.Tensor,
    k_out: torch.Tensor,
    k_top: torch.Tensor,
    m_t: float,
    light_anti: bool,
    top_anti: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """External wave functions: light ψ̄, ψ ``(B, 4)``, heavy end spinor ``(B, 4)``, top ``(2, B, 4)``.

    Only the helicities that survive the left-handed W coupling are built for the massless
    legs (quarks λ = -1, antiquarks λ = +1); the top carries both helicities on axis 0.
    """
    if light_anti:  # q̄(p_in) → q̄'(k_out): v̄(p_in) γ^μ P_L v(k_out)
        lbar, lpsi = amp.spinor_vbar(p_in, 1), amp.spinor_v(k_out, 1)
    else:  # q(p_in) → q'(k_out): ū(k_out) γ^μ P_L u(p_in)
        lbar, lpsi = amp.spinor_ubar(k_out, -1), amp.spinor_u(p_in, -1)
    if top_anti:  # b̄(p_b) → t̄(k_top): v̄_b ... v_t
        heavy = amp.spinor_vbar(p_b, 1)
        top = torch.stack([amp.spinor_v(k_top, h, m_t) for h in (-1, 1)])
    else:  # b(p_b) → t(k_top): ū_t ... u_b
        heavy = amp.spinor_u(p_b, -1)
        top = torch.stack([amp.spinor_ubar(k_top, h, m_t) for h in (-1, 1)])
    return lbar, lpsi, heavy, top


def _amplitudes(
    p_in: torch.Tensor,
    p_b: torch.Tensor,
    k_out: torch.Tensor,
    k_top: torch.Tensor,
    k_h: torch.Tensor,
    yukawas: list[tuple[complex, complex]],
    light_anti: bool,
    top_anti: bool,
    sm: SMParameters,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A_W ``(2, B)`` and one top-diagram amplitude ``(2, B)`` per FFS coupling pair (c_S, c_P)."""
    m_w, m_t, g_w = sm.m_w, sm.m_t, sm.g_w
    g_l = g_w / math.sqrt(2.0)
    lbar, lpsi, heavy, top = _external(p_in, p_b, k_out, k_top, m_t, light_anti, top_anti)
    # W emitted by the light line, momentum q1 = p_in - k_out (its sign is irrelevant: the
    # unitary-gauge numerator is even in q)
    q1 = p_in - k_out
    w1 = amp.propagate_vector(amp.ffv_current(lbar, lpsi, g_l, 0.0), q1, m_w, sm.width_w)
    # W diagram: second W between the W W H vertex and the b → t line, q2 = k_top - p_b
    q2 = k_top - p_b
    if top_anti:
        j_heavy = amp.ffv_current(heavy, top, g_l, 0.0)
    else:
        j_heavy = amp.ffv_current(top, heavy, g_l, 0.0)
    w2 = amp.propagate_vector(j_heavy, q2, m_w, sm.width_w)
    a_w = amp.vvs_scalar(w1, w2, g_w * m_w)  # external Higgs: scalar wave function 1
    # top diagram: the b line absorbs W1, the off-shell top (k_top + k_h) radiates the Higgs
    p_star = k_top + k_h
    one = torch.ones((), dtype=amp.CDTYPE, device=p_in.device)
    tops = []
    if top_anti:  # fermion flow runs from the t̄ end to the b̄ end: the top line momentum is -p*
        off = amp.propagate_fermion_bar(amp.ffv_spinor_bar(heavy, w1, g_l, 0.0), -p_star, m_t, sm.width_t)
        for c_s, c_p in yukawas:
            tops.append(amp.ffs_amplitude(off, top, one, c_s, c_p))
    else:
        off = amp.propagate_fermion(amp.ffv_spinor(w1, heavy, g_l, 0.0), p_star, m_t, sm.width_t)
        for c_s, c_p in yukawas:
            tops.append(amp.ffs_amplitude(top, off, one, c_s, c_p))
    return a_w, tops


def amplitude_pieces(
    p_in: torch.Tensor,
    p_b: torch.Tensor,
    k_out: torch.Tensor,
    k_top: torch.Tensor,
    k_h: torch.Tensor,
    light_anti: bool = False,
    top_anti: bool = False,
    sm: SMParameters = SM,
) -> torch.Tensor:
    """The amplitude pieces (A_W, A_S, A_P) per top helicity.

    Args:
        p_in: ``(B, 4)`` incoming light (anti)quark momentum, GeV.
        p_b: ``(B, 4)`` incoming b (b̄ if ``top_anti``), massless.
        k_out: ``(B, 4)`` outgoing light (anti)quark (the jet), massless.
        k_top: ``(B, 4)`` outgoing top (antitop if ``top_anti``), on shell.
        k_h: ``(B, 4)`` outgoing Higgs, on shell.
        light_anti: the light line is an antiquark line (e.g. d̄ b → ū t H).
        top_anti: the heavy line is b̄ → t̄ (W⁻ exchange).
        sm: electroweak parameters.

    Returns:
        ``(B, 3, 2)`` complex128: pieces (W, S, P) × top helicity (-1, +1). The light and b
        helicities are fixed by the V-A coupling (all others vanish exactly).
    """
    y = sm.y_t / math.sqrt(2.0)
    a_w, (a_s, a_p) = _amplitudes(
        p_in, p_b, k_out, k_top, k_h, [(-y, 0.0), (0.0, -1j * y * CP_ODD_SCALE)], light_anti, top_anti, sm
    )
    return torch.stack([a_w, a_s, a_p]).permute(2, 0, 1)


def m2_terms(
    p_in: torch.Tensor,
    p_b: torch.Tensor,
    k_out: torch.Tensor,
    k_top: torch.Tensor,
    k_h: torch.Tensor,
    light_anti: bool = False,
    top_anti: bool = False,
    sm: SMParameters = SM,
) -> torch.Tensor:
    """Spin- and colour-averaged |M|² in the basis (1, sin α, cos α, sin α cos α, sin² α).

    Arguments as in :func:`amplitude_pieces`. Returns ``(B, 5)`` float64 (|M|² of a 2 → 3
    process is in GeV⁻²); ``m2_terms @ (1, s, c, s c, s²)`` is |M(α)|² exactly.
    """
    a = amplitude_pieces(p_in, p_b, k_out, k_top, k_h, light_anti, top_anti, sm)
    a_w, a_s, a_p = a[:, 0], a[:, 1], a[:, 2]

    def re(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y.conj()).real.sum(-1)

    ww, ss, pp = re(a_w, a_w), re(a_s, a_s), re(a_p, a_p)
    terms = [ww + ss, 2 * re(a_w, a_p), 2 * re(a_w, a_s), 2 * re(a_s, a_p), pp - ss]
    return _AVERAGE * torch.stack(terms, dim=-1)


def m2_direct(
    p_in: torch.Tensor,
    p_b: torch.Tensor,
    k_out: torch.Tensor,
    k_top: torch.Tensor,
    k_h: torch.Tensor,
    alpha_deg: float,
    light_anti: bool = False,
    top_anti: bool = False,
    sm: SMParameters = SM,
) -> torch.Tensor:
    """|M(α)|² ``(B,)`` evaluated with the full Yukawa at ``alpha_deg`` (no factorisation).

    Meant to cross-check :func:`m2_terms`; arguments as in :func:`amplitude_pieces`.
    """
    alpha = math.radians(alpha_deg)
    y = sm.y_t / math.sqrt(2.0)
    coupling = (-y * math.cos(alpha), -1j * y * CP_ODD_SCALE * math.sin(alpha))
    a_w, (a_t,) = _amplitudes(p_in, p_b, k_out, k_top, k_h, [coupling], light_anti, top_anti, sm)
    return _AVERAGE * ((a_w + a_t).abs() ** 2).sum(0)
