"""pp → t H j at leading order with a CP-mixed top Yukawa coupling (thesis Sec. 6.1).

The reference process of the ML-MEM study of Heimel, PhD thesis (Heidelberg 2024), Chapter 6,
eqs. 6.1-6.3, and of Butter et al., arXiv:2210.00019: t-channel single top plus Higgs, with the
Higgs radiated from the W or from the top, whose destructive interference makes σ sensitive to
the CP phase α of L = -(y_t/√2) [cos α t̄t + (2/3) i sin α t̄γ5t] H. Amplitudes are in
:mod:`memzoo.physics.thj_amplitude`; this module adds PDFs, flux, the hard coordinates and a
phase-space map for VEGAS.

* Partonic channels (5-flavour scheme, massless b and light quarks, diagonal CKM), both beam
  orderings: top ``u b → d t H``, ``c b → s t H``, ``d̄ b → ū t H``, ``s̄ b → c̄ t H``; antitop
  ``d b̄ → u t̄ H``, ``s b̄ → c t̄ H``, ``ū b̄ → d̄ t̄ H``, ``c̄ b̄ → s̄ t̄ H``. With ``tops="both"``
  top and antitop production are summed at the same hard point, as in the thesis ("we always
  combine top and anti-top production"); the "t" slot then holds the top or the antitop.
* MG5 ``sm`` parameters (:mod:`memzoo.physics.constants`), fixed factorisation scale μ_F = m_t,
  PDF set NNPDF2.3 NLO α_s = 0.119 QED (the thesis used MG5 with an NNPDF LO set).
* Hard coordinates (D = 7), GeV: ``(p_t^x, p_t^y, p_t^z, p_H^x, p_H^y, p_H^z, p_j^z)`` with the top
  and Higgs on shell and a massless jet whose transverse momentum balances t + H; x1, x2 follow
  from energy and p_z conservation. dσ is in fb/GeV⁷ of these coordinates.
* Factorised in the basis (1, sin α, cos α, sin α cos α, sin² α) (thesis eq. 6.33).
* Negative PDFs: NNPDF replicas may be negative (LHAPDF keeps the sign). Like the thesis
  (Sec. 6.3: "we remove ... events that have a negative differential cross section because of
  the parton distribution functions") the process drops such points. To keep the factorisation
  exact the drop must not depend on α: a point is set to zero when dσ(α) < 0 at any α of a 1°
  grid over [-180°, 180°]. Pythia clips negative PDFs to zero instead; compare with care.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch

from memzoo.physics.constants import GEV2_TO_FB, SM
from memzoo.physics.lorentz import boost, boost_from_rest_frame
from memzoo.physics.phase_space import hadronic_density, momenta_from_balance, x1x2_from_final_state
from memzoo.physics.thj_amplitude import m2_terms
from memzoo.processes.base import ProcessBase
from memzoo.protocols import Parameter
from memzoo.simulation.hard import hard_event_record, sample_channels
from memzoo.simulation.record import EventRecord

__all__ = ["THj"]

# PDG ids of (light partons, heavy parton) per (top_anti, light_anti)
_CHANNELS: dict[tuple[bool, bool], tuple[tuple[int, ...], int]] = {
    (False, False): ((2, 4), 5),  # u, c + b → d, s + t
    (False, True): ((-1, -3), 5),  # d̄, s̄ + b → ū, c̄ + t
    (True, False): ((1, 3), -5),  # d, s + b̄ → u, c + t̄
    (True, True): ((-2, -4), -5),  # ū, c̄ + b̄ → d̄, s̄ + t̄
}
# doublet partner of the light flavours (diagonal CKM): u ↔ d, c ↔ s
_PARTNER = {1: 2, 2: 1, 3: 4, 4: 3}
_ALPHA_GRID_DEG = torch.linspace(-180.0, 180.0, 361, dtype=torch.float64)


class THj(ProcessBase):
    """pp → t H j (t-channel W, CP-mixed top Yukawa) at LO; see the module docstring.

    Example:
        >>> proc = THj(THj.Config(tops="top"))
        >>> proc.hard_dim, [p.name for p in proc.parameters]
        (7, ['alpha'])
    """

    @dataclass(frozen=True)
    class Config:
        """Settings of :class:`THj`.

        Attributes:
            sqrt_s: collider energy in GeV.
            tops: ``"both"`` (t + t̄, the thesis' sample), ``"top"`` (MG5 ``p p > t h j``) or
                ``"antitop"``.
            pdf: LHAPDF set name, loaded with :func:`memzoo.physics.pdf.load_pdf`.
            pdf_member: PDF member (0 = central).
            mu_f: fixed factorisation scale in GeV (m_t).
            drop_negative: zero points where dσ(α) < 0 for some α (negative PDFs).
        """

        sqrt_s: float = 13000.0
        tops: Literal["both", "top", "antitop"] = "both"
        pdf: str = "NNPDF23_nlo_as_0119_qed"
        pdf_member: int = 0
        mu_f: float = 173.2
        drop_negative: bool = True

    name: ClassVar[str] = "thj"
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("alpha", "deg", 0.0, (-180.0, 180.0), "CP phase of the top Yukawa (thesis eq. 6.2)", period=360.0),
    )
    hard_dim: ClassVar[int] = 7
    hard_kinds: ClassVar[tuple[int, ...]] = (6, 25, 1)
    coordinate_names: ClassVar[tuple[str, ...]] = ("pt_x", "pt_y", "pt_z", "pH_x", "pH_y", "pH_z", "pj_z")
    n_terms: ClassVar[int] = 5

    def __init__(self, config: Any = None, pdf: Any = None) -> None:
        """Build from a :class:`THj.Config`; ``pdf`` overrides the PDF object (tests, custom sets)."""
        super().__init__(config)
        if self.config.tops not in ("both", "top", "antitop"):
            raise ValueError(f"tops must be 'both', 'top' or 'antitop', got {self.config.tops!r}.")
        self._pdf = pdf
        self.sm = SM

    # -- PDFs -------------------------------------------------------------------------

    @property
    def pdf(self) -> Any:
        """The PDF object (``xfxq2_all(x, q2) -> (..., 13)``), loaded on first use."""
        if self._pdf is None:
            from memzoo.physics.pdf import load_pdf

            self._pdf = load_pdf(self.config.pdf, self.config.pdf_member)
        return self._pdf

    # -- θ ----------------------------------------------------------------------------

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """``(T, 5)`` basis functions (1, sin α, cos α, sin α cos α, sin² α) of ``theta (T, 1)`` (deg)."""
        alpha = torch.deg2rad(self.check_theta(theta)[:, 0])
        s, c = torch.sin(alpha), torch.cos(alpha)
        return torch.stack([torch.ones_like(s), s, c, s * c, s * s], dim=-1)

    # -- coordinates ------------------------------------------------------------------

    def coords_from_momenta(self, p: torch.Tensor) -> torch.Tensor:
        """Hard coordinates ``(B, 7)`` of momenta ``p (B, 3, 4)`` ordered (t, H, j), GeV."""
        return torch.cat([p[:, 0, 1:], p[:, 1, 1:], p[:, 2, 3:]], dim=-1)

    def momenta_from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """On-shell momenta ``(B, 3, 4)`` (t, H, j) of coords ``(B, 7)``; jet p_T balances t + H."""
        p3 = torch.stack([coords[:, 0:3], coords[:, 3:6]], dim=1)
        return momenta_from_balance(p3, coords[:, 6], (self.sm.m_t, self.sm.m_h, 0.0))

    # -- dσ ---------------------------------------------------------------------------

    @property
    def channels(self) -> torch.Tensor:
        """``(C, 4)`` PDG codes (beam-1 parton, beam-2 parton, outgoing light quark, top) per channel.

        For every top flavour allowed by ``tops``, light quark or antiquark and light flavour of
        the module docstring, first the light parton from beam 1 then from beam 2; the order of
        the C axis of :meth:`channel_terms` (C = 16 for ``tops="both"``, 8 otherwise).
        """
        rows = []
        for top_anti, light_anti in self._channel_groups():
            light, heavy = _CHANNELS[(top_anti, light_anti)]
            top = -6 if top_anti else 6
            for q in light:
                out = (1 if q > 0 else -1) * _PARTNER[abs(q)]
                rows += [(q, heavy, out, top), (heavy, q, out, top)]
        return torch.tensor(rows, dtype=torch.int64)

    def _channel_groups(self) -> list[tuple[bool, bool]]:
        """(top_anti, light_anti) pairs of the configured ``tops``."""
        anti = {"both": (False, True), "top": (False,), "antitop": (True,)}[self.config.tops]
        return [(top_anti, light_anti) for top_anti in anti for light_anti in (False, True)]

    def channel_terms(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, C, 5)`` float64 dσ terms in fb/GeV⁷ per partonic channel (:attr:`channels`).

        dσ/d⁷x = Σ_channels f_a(x1) f_b(x2) |M|²/(2ŝ) · (2/s) (2π)⁻⁵ / (8 E_t E_H E_j): the δ⁴ of
        dΦ3 is solved for the jet p_T (unit Jacobian) and for x1, x2 (Jacobian 2/s). Every
        channel is zero outside phase space and at points dropped for negative PDFs (decided
        on the channel sum, so ``channel_terms(coords).sum(1)`` is :meth:`dsigma_terms`).
        """
        coords = coords.to(torch.float64)
        p = self.momenta_from_coords(coords)
        x1, x2 = x1x2_from_final_state(p, self.config.sqrt_s)
        valid = (x1 > 0) & (x1 < 1) & (x2 > 0) & (x2 < 1) & (p[:, 2, 0] > 0) & torch.isfinite(coords).all(-1)
        x1 = torch.where(valid, x1, torch.full_like(x1, 0.5))
        x2 = torch.where(valid, x2, torch.full_like(x2, 0.5))
        p = torch.where(valid[:, None, None], p, self.momenta_from_coords(_SAFE_COORDS.to(p)).expand_as(p))
        terms = self._luminosity_terms(p, x1, x2)
        shat = x1 * x2 * self.config.sqrt_s**2
        # 1/(x1 x2) turns the PDFs' x f(x) into f(x)
        flux_ps = hadronic_density(p, self.config.sqrt_s) / (2.0 * shat) / (x1 * x2)
        out = terms * (GEV2_TO_FB * flux_ps)[:, None, None]
        keep = valid
        if self.config.drop_negative:
            grid = self.coefficients(_ALPHA_GRID_DEG[:, None]).to(out)
            keep = keep & ((out.sum(1) @ grid.T).amin(-1) >= 0)
        return torch.where(keep[:, None, None], out, torch.zeros_like(out))

    def dsigma_terms(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, 5)`` float64 dσ terms in fb/GeV⁷, zero outside phase space and at dropped points."""
        return self.channel_terms(coords).sum(1)

    def _luminosity_terms(self, p: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """x1 f_a · x2 f_b · |M|² terms per channel of :attr:`channels`, ``(B, C, 5)``."""
        half = 0.5 * self.config.sqrt_s
        zero = torch.zeros_like(x1)
        beam1 = torch.stack([x1 * half, zero, zero, x1 * half], -1)
        beam2 = torch.stack([x2 * half, zero, zero, -x2 * half], -1)
        q2 = torch.full_like(x1, self.config.mu_f**2)
        xf1 = self.pdf.xfxq2_all(x1, q2).to(x1)  # (B, 13), index pid + 6
        xf2 = self.pdf.xfxq2_all(x2, q2).to(x1)
        # both beam orderings in one batch: light parton from beam 1, then from beam 2
        b = len(x1)
        p_in, p_b = torch.cat([beam1, beam2]), torch.cat([beam2, beam1])
        k_top, k_h, k_j = (p[:, i].repeat(2, 1) for i in range(3))
        out = []
        for top_anti, light_anti in self._channel_groups():
            light, heavy = _CHANNELS[(top_anti, light_anti)]
            m2 = m2_terms(p_in, p_b, k_j, k_top, k_h, light_anti, top_anti, self.sm)
            for q in light:
                out.append((xf1[:, q + 6] * xf2[:, heavy + 6])[:, None] * m2[:b])
                out.append((xf2[:, q + 6] * xf1[:, heavy + 6])[:, None] * m2[b:])
        return torch.stack(out, 1)

    def hard_record(
        self, coords: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None
    ) -> EventRecord:
        """Les Houches record of the hard events ``coords (B, 7)`` at ``theta (1, 1)`` or ``(B, 1)``.

        Each event gets a partonic channel (flavours, beam ordering, top or antitop) with
        probability ∝ its dσ at that point and θ. Rows: (parton 1, parton 2, t or t̄, H, light
        quark). Colour flows through the colour-singlet t-channel W: the light quark keeps its
        colour line (tag 501), the b line (tag 502) becomes the top's. Scale μ_F = ``mu_f``.
        """
        coords = coords.to(torch.float64)
        _, chan = sample_channels(self, coords, theta, generator)
        p = self.momenta_from_coords(coords)
        x1, x2 = x1x2_from_final_state(p, self.config.sqrt_s)
        light_first = chan[:, 0].abs() != 5
        light_in = torch.where(light_first, chan[:, 0], chan[:, 1])
        # a quark carries its tag as colour, an antiquark as anticolour
        line = lambda pdg, tag: torch.stack([torch.where(pdg > 0, tag, 0), torch.where(pdg > 0, 0, tag)], -1)
        light_line, heavy_line = line(light_in, 501), line(chan[:, 3], 502)
        first = torch.where(light_first[:, None], light_line, heavy_line)
        second = torch.where(light_first[:, None], heavy_line, light_line)
        colour = torch.stack([first, second, heavy_line, torch.zeros_like(first), light_line], 1)
        final_pdg = torch.stack([chan[:, 3], torch.full_like(chan[:, 3], 25), chan[:, 2]], -1)
        scale = torch.full_like(x1, self.config.mu_f)
        return hard_event_record(x1, x2, self.config.sqrt_s, chan[:, :2], p, final_pdg, colour, scale)

    # -- phase-space map --------------------------------------------------------------

    def from_unit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``u (B, 7)`` in [0, 1]⁷ to coords ``(B, 7)`` and the Jacobian ``|d⁷coords/d⁷u| (B,)``.

        u0 → τ = x1 x2 (logarithmic from the threshold), u1 → rapidity y of the tH j system
        (uniform), u2 → m_tH² (uniform), u3, u4 → jet direction in the partonic frame with a
        t-channel map 1/(1 - |cos θ| + z0), z0 = m_W²/(√ŝ E_j), peaked along both beams (either
        beam may carry the light quark), u5, u6 → top direction in the tH rest frame (flat).
        The Jacobian is that of x1 x2 Φ3 times d⁷coords/(dx1 dx2 dΦ3) = (s/2)(2π)⁵ 8 E_t E_H E_j.
        """
        u = u.to(torch.float64)
        sm, s = self.sm, self.config.sqrt_s**2
        m_t, m_h = sm.m_t, sm.m_h
        mmin2 = (m_t + m_h) ** 2
        log_tau_min = math.log(mmin2 / s)
        tau = torch.exp((1.0 - u[:, 0]) * log_tau_min)
        log_tau = torch.log(tau)
        y = (u[:, 1] - 0.5) * (-log_tau)
        jac = tau * (-log_tau_min) * (-log_tau)  # dτ dy = dx1 dx2
        shat = tau * s
        rs = torch.sqrt(shat)
        m2 = mmin2 + u[:, 2] * (shat - mmin2)
        jac = jac * (shat - mmin2) / (2.0 * math.pi)
        # ŝ → j + (tH)
        e_j = (shat - m2) / (2.0 * rs)
        z0 = sm.m_w**2 / (rs * e_j.clamp(min=1e-9))
        w = (2.0 * u[:, 3] - 1.0).abs()
        sign = torch.where(u[:, 3] >= 0.5, 1.0, -1.0).to(u)
        lg = torch.log1p(1.0 / z0)
        z = z0 * torch.expm1(w * lg)
        cos_j = (sign * (1.0 - z)).clamp(-1.0, 1.0)
        jac = jac * 2.0 * (z + z0) * lg
        phi_j = 2.0 * math.pi * u[:, 4]
        jac = jac * (shat - m2) / (8.0 * math.pi * shat) / (4.0 * math.pi) * 2.0 * math.pi
        sin_j = torch.sqrt((1.0 - cos_j**2).clamp(min=0.0))
        n_j = torch.stack([sin_j * torch.cos(phi_j), sin_j * torch.sin(phi_j), cos_j], -1)
        p_j = torch.cat([e_j[:, None], e_j[:, None] * n_j], -1)
        p_th = torch.cat([(rs - e_j)[:, None], -e_j[:, None] * n_j], -1)
        # (tH) → t + H in the tH rest frame
        m = torch.sqrt(m2)
        lam = ((m2 - mmin2) * (m2 - (m_t - m_h) ** 2)).clamp(min=0.0)
        q = torch.sqrt(lam) / (2.0 * m)
        cos_t = 2.0 * u[:, 5] - 1.0
        phi_t = 2.0 * math.pi * u[:, 6]
        sin_t = torch.sqrt((1.0 - cos_t**2).clamp(min=0.0))
        n_t = torch.stack([sin_t * torch.cos(phi_t), sin_t * torch.sin(phi_t), cos_t], -1)
        jac = jac * torch.sqrt(lam) / (8.0 * math.pi * m2) / (4.0 * math.pi) * 2.0 * 2.0 * math.pi
        p_t = torch.cat([torch.sqrt(q**2 + m_t**2)[:, None], q[:, None] * n_t], -1)
        p_h = torch.cat([torch.sqrt(q**2 + m_h**2)[:, None], -q[:, None] * n_t], -1)
        p_t, p_h = boost_from_rest_frame(p_t, p_th), boost_from_rest_frame(p_h, p_th)
        # partonic frame → lab: boost along z with rapidity y
        beta = torch.stack([torch.zeros_like(y), torch.zeros_like(y), torch.tanh(y)], -1)
        p = boost(torch.stack([p_t, p_h, p_j], dim=1), beta[:, None, :])
        jac = jac / hadronic_density(p, self.config.sqrt_s)
        return self.coords_from_momenta(p), jac


# a physical point used to keep the arithmetic finite where coordinates are unphysical
_SAFE_COORDS = torch.tensor([[30.0, 0.0, 10.0, -10.0, 20.0, -40.0, 100.0]], dtype=torch.float64)
