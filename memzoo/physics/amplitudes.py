"""Vectorised tree-level helicity amplitudes in complex torch, after HELAS.

HELAS: Murayama, Watanabe, Hagiwara, KEK Report 91-11 (1992). The external wave functions and
the way amplitudes are assembled (external wave functions → off-shell currents → propagators →
a final vertex) follow that report; the code is written from the formulas, batched over points.

Conventions (state them in any amplitude built on this module):

* Four-vectors ``(..., 4)`` are contravariant ``(E, px, py, pz)`` in GeV, metric (+,-,-,-); vector
  wave functions and currents carry an upper index and are contracted with
  :func:`memzoo.physics.lorentz.minkowski_dot`.
* Dirac matrices in the **chiral (Weyl) representation**, γ⁰ = [[0, 1], [1, 0]],
  γᵏ = [[0, σᵏ], [-σᵏ, 0]], γ5 = diag(-1, -1, 1, 1); spinors are ``(..., 4)`` = (ψ_L, ψ_R), so
  P_L = (1 - γ5)/2 keeps the upper two components.
* Helicity λ = ±1 (twice the spin projection on the momentum); vectors also λ = 0 (massive).
  Two-spinors χ_λ(p̂) and u, v as in HELAS: u(p, λ) = (ω_{-λ} χ_λ, ω_λ χ_λ),
  v(p, λ) = (-λ ω_λ χ_{-λ}, λ ω_{-λ} χ_{-λ}), ω_± = sqrt(E ± |p⃗|). ū = u†γ⁰, v̄ = v†γ⁰.
* Vector polarisations ε^μ(k, ±) = (∓ε₁ - iε₂)/√2 with ε₁ = (0, cosθ cosφ, cosθ sinφ, -sinθ),
  ε₂ = (0, -sinφ, cosφ, 0) for k⃗ at polar angles (θ, φ); ε(k, 0) = (|k⃗|, E k̂)/m. Outgoing
  vectors take ε*.
* Feynman rules include their factor i, so products of vertices, propagators and external wave
  functions give **iM**; |M|² = |iM|². Vertex factors: FFV i γ^μ (g_L P_L + g_R P_R),
  FFS i (c_S + c_P γ5), VVS i g g^{μν}. E.g. QED with L = -e Q ψ̄ A̸ ψ has g_L = g_R = -e Q; the
  CP-mixed Yukawa L = -(y_t/√2) t̄ (cos α + i κ sin α γ5) t H has c_S = -(y_t/√2) cos α and
  c_P = -i (y_t/√2) κ sin α (complex couplings are accepted everywhere).
* Propagators: fermion i(p̸ + m)/(p² - m² + i m Γ) with p along the fermion-flow arrow; massive
  vector -i(g^{μν} - p^μ p^ν/M²)/(p² - M² + i M Γ) (unitary gauge, fixed width); massless vector
  -i g^{μν}/p² (Feynman gauge); scalar i/(p² - m² + i m Γ).

Couplings may be Python numbers or tensors broadcastable to the batch shape. Everything is
complex128 on the device of the momenta.
"""

from __future__ import annotations

import math

import torch

from memzoo.physics.lorentz import lower_index, minkowski_dot

__all__ = [
    "fermion_propagator",
    "ffs_amplitude",
    "ffs_scalar",
    "ffs_spinor",
    "ffs_spinor_bar",
    "ffv_amplitude",
    "ffv_current",
    "ffv_spinor",
    "ffv_spinor_bar",
    "gamma_matrices",
    "polarisation",
    "propagate_fermion",
    "propagate_fermion_bar",
    "propagate_scalar",
    "propagate_vector",
    "scalar_propagator",
    "slash",
    "spinor_u",
    "spinor_ubar",
    "spinor_v",
    "spinor_vbar",
    "vector_propagator",
    "vvs_amplitude",
    "vvs_scalar",
    "vvs_vector",
]

CDTYPE = torch.complex128

# ---------------------------------------------------------------------------------------
# Dirac algebra
# ---------------------------------------------------------------------------------------


def gamma_matrices(device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """γ^μ ``(4, 4, 4)`` (upper index first) and γ5 ``(4, 4)`` in the chiral representation."""
    one = torch.eye(2, dtype=CDTYPE, device=device)
    zero = torch.zeros(2, 2, dtype=CDTYPE, device=device)
    sigma = torch.tensor([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=CDTYPE, device=device)

    def block(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cat([a, b], 1), torch.cat([c, d], 1)], 0)

    gammas = [block(zero, one, one, zero)] + [block(zero, s, -s, zero) for s in sigma]
    return torch.stack(gammas), block(-one, zero, zero, one)


def slash(a: torch.Tensor) -> torch.Tensor:
    """``a̸ = γ^μ a_μ``, ``(..., 4, 4)`` complex, of four-vectors ``a (..., 4)`` (real or complex)."""
    gam, _ = gamma_matrices(a.device)
    return torch.einsum("mij,...m->...ij", gam, lower_index(a).to(CDTYPE))


def _c(x: complex | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A coupling as a complex tensor on the device of ``like``, ready to broadcast over ``(...)``."""
    return torch.as_tensor(x, dtype=CDTYPE, device=like.device)


def _chiral(psi: torch.Tensor, left: complex | torch.Tensor, right: complex | torch.Tensor) -> torch.Tensor:
    """``(left P_L + right P_R) ψ`` (or ψ̄ (…) for a row spinor): scale the L and R halves."""
    left, right = _c(left, psi)[..., None], _c(right, psi)[..., None]
    return torch.cat([left * psi[..., :2], right * psi[..., 2:]], dim=-1)


def _sandwich(bar: torch.Tensor, mat: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...i,...ij,...j->...", bar, mat, psi)


# ---------------------------------------------------------------------------------------
# external wave functions
# ---------------------------------------------------------------------------------------


def _chi(p: torch.Tensor, hel: int) -> torch.Tensor:
    """Helicity two-spinors χ_λ(p̂) ``(..., 2)``; p⃗ along -z (or at rest: +z) handled exactly."""
    px, py, pz = p[..., 1], p[..., 2], p[..., 3]
    pabs = torch.sqrt(px**2 + py**2 + pz**2)
    plus = pabs + pz
    regular = plus > 1e-12 * torch.clamp(pabs, min=1e-300)
    at_rest = pabs == 0
    norm = torch.rsqrt(torch.where(regular, 2 * pabs * plus, torch.ones_like(plus)))
    re, im = (plus * norm).to(CDTYPE), torch.complex(px * norm, py * norm)
    one, zero = torch.ones_like(re), torch.zeros_like(re)
    if hel == 1:
        chi = torch.stack([re, im], -1)
        special = torch.where(at_rest[..., None], torch.stack([one, zero], -1), torch.stack([zero, one], -1))
    else:
        chi = torch.stack([-im.conj(), re], -1)
        special = torch.where(at_rest[..., None], torch.stack([zero, one], -1), torch.stack([-one, zero], -1))
    return torch.where(regular[..., None], chi, special)


def _omegas(p: torch.Tensor, mass: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(ω₊, ω₋) = (sqrt(E + |p⃗|), m/ω₊), stable for massless and nearly massless momenta."""
    pabs = torch.linalg.norm(p[..., 1:], dim=-1)
    w_plus = torch.sqrt(p[..., 0] + pabs)
    return w_plus.to(CDTYPE), (mass / w_plus).to(CDTYPE)


def _check_hel(hel: int, allowed: tuple[int, ...] = (-1, 1)) -> None:
    if hel not in allowed:
        raise ValueError(f"Helicity must be one of {allowed}, got {hel!r}.")


def spinor_u(p: torch.Tensor, hel: int, mass: float = 0.0) -> torch.Tensor:
    """Incoming fermion u(p, λ), ``(..., 4)`` complex, for momenta ``p (..., 4)`` of mass ``mass``."""
    _check_hel(hel)
    w_plus, w_minus = _omegas(p, mass)
    w = {1: w_plus, -1: w_minus}
    chi = _chi(p, hel)
    return torch.cat([w[-hel][..., None] * chi, w[hel][..., None] * chi], dim=-1)


def spinor_v(p: torch.Tensor, hel: int, mass: float = 0.0) -> torch.Tensor:
    """Outgoing antifermion v(p, λ), ``(..., 4)`` complex."""
    _check_hel(hel)
    w_plus, w_minus = _omegas(p, mass)
    w = {1: w_plus, -1: w_minus}
    chi = _chi(p, -hel)
    return torch.cat([-hel * w[hel][..., None] * chi, hel * w[-hel][..., None] * chi], dim=-1)


def _bar(psi: torch.Tensor) -> torch.Tensor:
    # ψ̄ = ψ†γ⁰; γ⁰ swaps the L and R halves in the chiral representation
    return torch.cat([psi[..., 2:], psi[..., :2]], dim=-1).conj()


def spinor_ubar(p: torch.Tensor, hel: int, mass: float = 0.0) -> torch.Tensor:
    """Outgoing fermion ū(p, λ) = u†γ⁰, ``(..., 4)`` complex (a row spinor)."""
    return _bar(spinor_u(p, hel, mass))


def spinor_vbar(p: torch.Tensor, hel: int, mass: float = 0.0) -> torch.Tensor:
    """Incoming antifermion v̄(p, λ) = v†γ⁰, ``(..., 4)`` complex (a row spinor)."""
    return _bar(spinor_v(p, hel, mass))


def polarisation(k: torch.Tensor, hel: int, mass: float = 0.0, outgoing: bool = False) -> torch.Tensor:
    """Vector-boson polarisation ε^μ(k, λ), ``(..., 4)`` complex (conjugated when ``outgoing``).

    Args:
        k: ``(..., 4)`` momenta in GeV.
        hel: -1, +1, or 0 (massive vectors only).
        mass: the boson mass in GeV.
        outgoing: return ε* for a vector leaving the diagram.
    """
    _check_hel(hel, (-1, 0, 1) if mass > 0 else (-1, 1))
    kx, ky, kz = k[..., 1], k[..., 2], k[..., 3]
    pt = torch.hypot(kx, ky)
    kabs = torch.sqrt(pt**2 + kz**2)
    safe_pt = torch.where(pt > 0, pt, torch.ones_like(pt))
    cphi = torch.where(pt > 0, kx / safe_pt, torch.ones_like(pt))
    sphi = torch.where(pt > 0, ky / safe_pt, torch.zeros_like(pt))
    safe_k = torch.where(kabs > 0, kabs, torch.ones_like(kabs))
    cth = torch.where(kabs > 0, kz / safe_k, torch.ones_like(kabs))
    sth = pt / safe_k
    zero = torch.zeros_like(pt)
    if hel == 0:
        eps = torch.stack([kabs, k[..., 0] * sth * cphi, k[..., 0] * sth * sphi, k[..., 0] * cth], -1) / mass
        eps = eps.to(CDTYPE)
    else:
        e1 = torch.stack([zero, cth * cphi, cth * sphi, -sth], -1)
        e2 = torch.stack([zero, -sphi, cphi, zero], -1)
        eps = torch.complex(-hel * e1, -e2) / math.sqrt(2.0)
    return eps.conj() if outgoing else eps


# ---------------------------------------------------------------------------------------
# propagators
# ---------------------------------------------------------------------------------------


def _denominator(p: torch.Tensor, mass: float, width: float) -> torch.Tensor:
    p2 = minkowski_dot(p, p)
    return torch.complex(p2 - mass**2, torch.full_like(p2, mass * width))


def fermion_propagator(p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """i(p̸ + m)/(p² - m² + i m Γ), ``(..., 4, 4)``, with ``p (..., 4)`` along the fermion flow."""
    eye = torch.eye(4, dtype=CDTYPE, device=p.device)
    return 1j * (slash(p) + mass * eye) / _denominator(p, mass, width)[..., None, None]


def vector_propagator(p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """D^{μν}(p), ``(..., 4, 4)``, both indices upper: unitary gauge if ``mass > 0``, else Feynman."""
    g = torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=CDTYPE, device=p.device))
    num = g.expand(*p.shape[:-1], 4, 4)
    if mass > 0:
        pc = p.to(CDTYPE)
        num = num - pc[..., :, None] * pc[..., None, :] / mass**2
    return -1j * num / _denominator(p, mass, width)[..., None, None]


def scalar_propagator(p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """i/(p² - m² + i m Γ), ``(...)`` complex."""
    return 1j / _denominator(p, mass, width)


def propagate_fermion(psi: torch.Tensor, p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """S(p) ψ: an off-shell spinor ``(..., 4)`` flowing into the next vertex (p along the arrow)."""
    return (fermion_propagator(p, mass, width) @ psi[..., None]).squeeze(-1)


def propagate_fermion_bar(psibar: torch.Tensor, p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """ψ̄ S(p): an off-shell row spinor ``(..., 4)``; ``p`` is the momentum along the fermion arrow."""
    return (psibar[..., None, :] @ fermion_propagator(p, mass, width)).squeeze(-2)


def propagate_vector(current: torch.Tensor, p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """D^{μν}(p) J_ν: an off-shell vector wave function ``(..., 4)`` (upper index)."""
    d = vector_propagator(p, mass, width)
    return (d @ lower_index(current.to(CDTYPE))[..., None]).squeeze(-1)


def propagate_scalar(s: torch.Tensor, p: torch.Tensor, mass: float = 0.0, width: float = 0.0) -> torch.Tensor:
    """i s/(p² - m² + i m Γ): an off-shell scalar wave function ``(...)``."""
    return s * scalar_propagator(p, mass, width)


# ---------------------------------------------------------------------------------------
# vertices: FFV  i γ^μ (g_L P_L + g_R P_R)
# ---------------------------------------------------------------------------------------


def ffv_amplitude(psibar: torch.Tensor, psi: torch.Tensor, vec: torch.Tensor, g_l, g_r) -> torch.Tensor:
    """i ψ̄ ε̸ (g_L P_L + g_R P_R) ψ, ``(...)`` complex: the amplitude closing at an FFV vertex."""
    return 1j * _sandwich(psibar, slash(vec), _chiral(psi, g_l, g_r))


def ffv_current(psibar: torch.Tensor, psi: torch.Tensor, g_l, g_r) -> torch.Tensor:
    """J^μ = i ψ̄ γ^μ (g_L P_L + g_R P_R) ψ, ``(..., 4)``: the vector leg before its propagator."""
    gam, _ = gamma_matrices(psi.device)
    return 1j * torch.einsum("...i,mij,...j->...m", psibar, gam, _chiral(psi, g_l, g_r))


def ffv_spinor(vec: torch.Tensor, psi: torch.Tensor, g_l, g_r) -> torch.Tensor:
    """i ε̸ (g_L P_L + g_R P_R) ψ, ``(..., 4)``: the fermion line after absorbing a vector."""
    return 1j * (slash(vec) @ _chiral(psi, g_l, g_r)[..., None]).squeeze(-1)


def ffv_spinor_bar(psibar: torch.Tensor, vec: torch.Tensor, g_l, g_r) -> torch.Tensor:
    """i ψ̄ ε̸ (g_L P_L + g_R P_R), ``(..., 4)`` row spinor."""
    return 1j * _chiral((psibar[..., None, :] @ slash(vec)).squeeze(-2), g_l, g_r)


# ---------------------------------------------------------------------------------------
# vertices: FFS  i (c_S + c_P γ5);  in the chiral basis c_S + c_P γ5 = (c_S - c_P) P_L + (c_S + c_P) P_R
# ---------------------------------------------------------------------------------------


def ffs_scalar(psibar: torch.Tensor, psi: torch.Tensor, c_s, c_p) -> torch.Tensor:
    """i ψ̄ (c_S + c_P γ5) ψ, ``(...)``: the scalar leg before its propagator."""
    return 1j * (psibar * _chiral(psi, _c(c_s, psi) - _c(c_p, psi), _c(c_s, psi) + _c(c_p, psi))).sum(-1)


def ffs_amplitude(psibar: torch.Tensor, psi: torch.Tensor, s: torch.Tensor, c_s, c_p) -> torch.Tensor:
    """i ψ̄ (c_S + c_P γ5) ψ · S, ``(...)``: the amplitude closing at an FFS vertex."""
    return ffs_scalar(psibar, psi, c_s, c_p) * s


def ffs_spinor(s: torch.Tensor, psi: torch.Tensor, c_s, c_p) -> torch.Tensor:
    """i (c_S + c_P γ5) ψ S, ``(..., 4)``: the fermion line after absorbing a scalar."""
    out = _chiral(psi, _c(c_s, psi) - _c(c_p, psi), _c(c_s, psi) + _c(c_p, psi))
    return 1j * out * _c(s, psi)[..., None]


def ffs_spinor_bar(psibar: torch.Tensor, s: torch.Tensor, c_s, c_p) -> torch.Tensor:
    """i ψ̄ (c_S + c_P γ5) S, ``(..., 4)`` row spinor."""
    out = _chiral(psibar, _c(c_s, psibar) - _c(c_p, psibar), _c(c_s, psibar) + _c(c_p, psibar))
    return 1j * out * _c(s, psibar)[..., None]


# ---------------------------------------------------------------------------------------
# vertices: VVS  i g g^{μν}
# ---------------------------------------------------------------------------------------


def vvs_scalar(v1: torch.Tensor, v2: torch.Tensor, g) -> torch.Tensor:
    """i g (V₁·V₂), ``(...)``: the scalar leg before its propagator."""
    return 1j * _c(g, v1) * minkowski_dot(v1.to(CDTYPE), v2.to(CDTYPE))


def vvs_amplitude(v1: torch.Tensor, v2: torch.Tensor, s: torch.Tensor, g) -> torch.Tensor:
    """i g (V₁·V₂) S, ``(...)``: the amplitude closing at a VVS vertex."""
    return vvs_scalar(v1, v2, g) * s


def vvs_vector(v: torch.Tensor, s: torch.Tensor, g) -> torch.Tensor:
    """i g V^μ S, ``(..., 4)``: the other vector leg before its propagator."""
    return 1j * _c(g, v) * v.to(CDTYPE) * _c(s, v)[..., None]
