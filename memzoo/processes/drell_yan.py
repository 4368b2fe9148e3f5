"""Drell-Yan pp → γ*/Z → μ⁺μ⁻ at leading order, factorised in the effective weak mixing angle.

The hard coordinates, the Breit-Wigner-flattened phase-space map and the polynomial basis in
sin²θ_eff are memzoo's; the matrix element is built from :mod:`memzoo.physics.amplitudes`
(HELAS conventions) and checked against the textbook helicity formula, e.g. Peskin & Schroeder
eq. (5.22) extended by the Z (Ellis, Stirling & Webber, *QCD and collider physics*, §9.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memzoo.physics import amplitudes as amp
from memzoo.physics.constants import GEV2_TO_FB, SM
from memzoo.physics.pdf import load_pdf
from memzoo.physics.phase_space import breit_wigner_map, rapidity_map, two_body_decay, x1x2_from_final_state
from memzoo.processes.base import ProcessBase
from memzoo.protocols import Parameter
from memzoo.simulation.hard import hard_event_record, sample_channels
from memzoo.simulation.record import EventRecord

__all__ = ["DrellYan", "DrellYanConfig"]

N_COLOURS = 3
#: (electric charge Q, weak isospin T3) of the up-type and down-type quarks and of the muon.
UP, DOWN, MUON = (2 / 3, 0.5), (-1 / 3, -0.5), (-1.0, -0.5)


@dataclass(frozen=True)
class DrellYanConfig:
    """Settings of :class:`DrellYan`.

    Attributes:
        sqrt_s: proton-proton centre-of-mass energy in GeV.
        m_min, m_max: the m_μμ window in GeV; dσ is zero outside.
        pdf: lhagrid1 set name for :func:`memzoo.physics.pdf.load_pdf` (μ_F = m_μμ).
        pdf_member: member of the set.
        n_flavours: incoming quark flavours d, u, s, c, b (1 to 5), antiquarks from both beams.
        m_z, width_z: Z mass and (fixed) width in GeV of the propagator and the phase-space map;
            MG5 ``sm`` defaults. Event generators may recompute the width (Pythia does).
    """

    sqrt_s: float = 13000.0
    m_min: float = 60.0
    m_max: float = 120.0
    pdf: str = "NNPDF23_lo_as_0130_qed"
    pdf_member: int = 0
    n_flavours: int = 5
    m_z: float = SM.m_z
    width_z: float = SM.width_z

    def __post_init__(self) -> None:
        if not 0.0 < self.m_min < self.m_max < self.sqrt_s:
            raise ValueError(
                f"Drell-Yan needs 0 < m_min < m_max < sqrt_s, got m_min={self.m_min}, m_max={self.m_max}, "
                f"sqrt_s={self.sqrt_s} (GeV)."
            )
        if not 1 <= self.n_flavours <= 5:
            raise ValueError(f"n_flavours must be 1 to 5 (d, u, s, c, b), got {self.n_flavours}.")


def _coupling_polynomials(
    quark: tuple[float, float], s_hat: torch.Tensor, m_z: float = SM.m_z, width_z: float = SM.width_z
) -> torch.Tensor:
    """Amplitude factors A_ab(s) = a₀ + a₁ s + a₂ s² for chiralities (a, b), ``(B, 2, 2, 3)`` complex.

    A_ab = e²[Q_q Q_μ + g_a^q g_b^μ/(sin²θ_W cos²θ_W) · ŝ/(ŝ - M_Z² + i M_Z Γ_Z)] with
    g_L = T3 - Q s, g_R = -Q s and s = sin²θ_eff; the normalisation uses the on-shell sin²θ_W.
    """
    chi = s_hat / torch.complex(s_hat - m_z**2, torch.full_like(s_hat, m_z * width_z))
    kappa = chi / (SM.sin2_theta_w * SM.cos2_theta_w)
    (q_q, t_q), (q_l, t_l) = quark, MUON
    out = torch.zeros(*s_hat.shape, 2, 2, 3, dtype=torch.complex128, device=s_hat.device)
    for a, ta in enumerate((t_q, 0.0)):  # a = 0: left, 1: right
        for b, tb in enumerate((t_l, 0.0)):
            # (ta - Q_q s)(tb - Q_l s) = ta tb - (ta Q_l + tb Q_q) s + Q_q Q_l s²
            out[..., a, b, 0] = SM.e**2 * (q_q * q_l + kappa * ta * tb)
            out[..., a, b, 1] = -(SM.e**2) * kappa * (ta * q_l + tb * q_q)
            out[..., a, b, 2] = SM.e**2 * kappa * q_q * q_l
    return out


def _squared_polynomial(a: torch.Tensor) -> torch.Tensor:
    """|a₀ + a₁ s + a₂ s²|² as real coefficients of s⁰…s⁴, ``(..., 5)`` from ``(..., 3)``."""
    a0, a1, a2 = a.unbind(-1)
    re = lambda x, y: (x * y.conj()).real
    return torch.stack([re(a0, a0), 2 * re(a0, a1), re(a1, a1) + 2 * re(a0, a2), 2 * re(a1, a2), re(a2, a2)], -1)


def chiral_weights(p_q: torch.Tensor, p_qbar: torch.Tensor, k_minus: torch.Tensor, k_plus: torch.Tensor):
    """Σ_hel |T_ab|² for unit couplings and a photon propagator, ``(B, 2, 2)`` (a: quark, b: muon).

    For massless fermions each helicity configuration has one chirality pair (a, b), so the
    spin-summed |M|² = Σ_ab chiral_weights_ab · |A_ab|² with the factors of
    :func:`_coupling_polynomials` (the Z's p^μp^ν term vanishes on conserved currents).
    """
    s_vec = p_q + p_qbar
    out = []
    for h_q, cq in ((-1, (1.0, 0.0)), (1, (0.0, 1.0))):  # left-handed quark meets a + helicity antiquark
        current = amp.ffv_current(amp.spinor_vbar(p_qbar, -h_q), amp.spinor_u(p_q, h_q), *cq)
        photon = amp.propagate_vector(current, s_vec)
        row = []
        for h_l, cl in ((-1, (1.0, 0.0)), (1, (0.0, 1.0))):
            t = amp.ffv_amplitude(amp.spinor_ubar(k_minus, h_l), amp.spinor_v(k_plus, -h_l), photon, *cl)
            row.append(t.abs() ** 2)
        out.append(torch.stack(row, -1))
    return torch.stack(out, -2)


class DrellYan(ProcessBase):
    """pp → γ*/Z → μ⁻μ⁺ at LO with full γ/Z interference; θ = (sin²θ_eff,).

    **Hard coordinates** (D = 4): ``(pT, η₋, η₊, φ₋)`` = the common muon transverse momentum in
    GeV, the pseudorapidities of μ⁻ and μ⁺ and the azimuth of μ⁻ in [-π, π). At LO the dimuon
    pT is zero, so the six muon momentum components obey two constraints and four numbers
    remain; these four are what a detector measures most directly. μ⁺ has the same pT and
    φ₊ = φ₋ + π. ``coords_from_momenta`` reads pT and φ from the μ⁻ (on non-LO momenta it is a
    projection); x₁, x₂ = pT(e^{±η₋} + e^{±η₊})/√S.

    **Measure**: dx₁ dx₂ dΦ₂ = pT/(8π² S) dpT dη₋ dη₊ dφ₋, hence
    dσ/d(coords) = Σ x₁f x₂f̄ · |M̄|² pT/(16π² ŝ²) (fb, |M̄|² spin- and colour-averaged).

    **Factorisation**: every amplitude is quadratic in s = sin²θ_eff (through the Z vector
    couplings), so dσ = Σ_{k=0}^{4} s^k g_k(x) with K = 5 terms. Pythia's convention is kept:
    sin²θ_eff enters only the vector couplings, the Z coupling normalisation e/(sinθ_W cosθ_W)
    uses the on-shell MG5 value (:attr:`SMParameters.sin2_theta_w`), α = α(m_Z) is fixed, and
    the Z propagator has a fixed width.

    Example:
        >>> dy = DrellYan(DrellYan.Config())
        >>> coords, jac = dy.from_unit(torch.full((2, 4), 0.5, dtype=torch.float64))
        >>> dy.dsigma(coords, dy.theta()).shape
        torch.Size([2, 1])
    """

    name = "drell-yan"
    Config = DrellYanConfig
    parameters = (
        Parameter("sin2theta_eff", "", 0.2315, (0.1, 0.4), "effective weak mixing angle in the Z vector couplings"),
    )
    hard_dim = 4
    hard_kinds = (13, -13)
    coordinate_names = ("pt", "eta_mu_minus", "eta_mu_plus", "phi_mu_minus")
    n_terms = 5

    def __init__(self, config: DrellYanConfig | None = None) -> None:
        super().__init__(config)
        self.pdf = load_pdf(self.config.pdf, self.config.pdf_member)

    # -- θ basis ------------------------------------------------------------------------

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """``(T, 5)`` powers s⁰…s⁴ of s = sin²θ_eff for ``theta (T, 1)``."""
        s = self.check_theta(theta)[:, 0]
        return torch.stack([s**k for k in range(self.n_terms)], -1)

    # -- coordinates --------------------------------------------------------------------

    def momenta_from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, 2, 4)`` momenta of (μ⁻, μ⁺) in GeV from ``coords (B, 4)`` (massless muons)."""
        pt, eta_m, eta_p, phi = coords.unbind(-1)
        px, py = pt * torch.cos(phi), pt * torch.sin(phi)
        mu_m = torch.stack([pt * torch.cosh(eta_m), px, py, pt * torch.sinh(eta_m)], -1)
        mu_p = torch.stack([pt * torch.cosh(eta_p), -px, -py, pt * torch.sinh(eta_p)], -1)
        return torch.stack([mu_m, mu_p], -2)

    def coords_from_momenta(self, p: torch.Tensor) -> torch.Tensor:
        """``(B, 4)`` coordinates from ``p (B, 2, 4)`` = (μ⁻, μ⁺) momenta in GeV."""
        mu_m, mu_p = p[..., 0, :], p[..., 1, :]
        pt = torch.hypot(mu_m[..., 1], mu_m[..., 2])
        eta_m = torch.asinh(mu_m[..., 3] / pt)
        eta_p = torch.asinh(mu_p[..., 3] / torch.hypot(mu_p[..., 1], mu_p[..., 2]))
        return torch.stack([pt, eta_m, eta_p, torch.atan2(mu_m[..., 2], mu_m[..., 1])], -1)

    # -- matrix element -------------------------------------------------------------------

    def incoming(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Beam partons of final states ``p (B, 2, 4)``: ``(x1, x2, p1 (B, 4), p2 (B, 4))``."""
        x1, x2 = x1x2_from_final_state(p, self.config.sqrt_s)
        half = 0.5 * self.config.sqrt_s
        zero = torch.zeros_like(x1)
        p1 = torch.stack([x1 * half, zero, zero, x1 * half], -1)
        p2 = torch.stack([x2 * half, zero, zero, -x2 * half], -1)
        return x1, x2, p1, p2

    def me2_terms(self, p_q: torch.Tensor, p_qbar: torch.Tensor, k_minus: torch.Tensor, k_plus: torch.Tensor, pid: int):
        """``(B, 5)`` spin- and colour-averaged |M|² of q q̄ → μ⁻μ⁺ as coefficients of s⁰…s⁴.

        Args:
            p_q, p_qbar, k_minus, k_plus: ``(B, 4)`` momenta of quark, antiquark, μ⁻, μ⁺ (GeV).
            pid: quark flavour 1..5 (d, u, s, c, b).
        """
        weights = chiral_weights(p_q, p_qbar, k_minus, k_plus)
        s_hat = 2 * (p_q[:, 0] * p_qbar[:, 0] - (p_q[:, 1:] * p_qbar[:, 1:]).sum(-1))
        return self._average(
            weights,
            _squared_polynomial(
                _coupling_polynomials(UP if pid % 2 == 0 else DOWN, s_hat, self.config.m_z, self.config.width_z)
            ),
        )

    @staticmethod
    def _average(weights: torch.Tensor, polys: torch.Tensor) -> torch.Tensor:
        """Σ_ab weights_ab |A_ab|²_k averaged over spins (1/4) and colours (1/N_c), ``(B, 5)``."""
        return torch.einsum("bij,bijk->bk", weights, polys) / (4 * N_COLOURS)

    @property
    def channels(self) -> torch.Tensor:
        """``(C, 2)`` PDG codes of the partons from beam 1 and beam 2 of every partonic channel.

        C = 2 n_flavours: for each flavour q = d, u, s, c, b first q q̄ (quark from beam 1), then
        q̄ q; the order of the C axis of :meth:`channel_terms`.
        """
        pids = range(1, self.config.n_flavours + 1)
        return torch.tensor([pair for f in pids for pair in ((f, -f), (-f, f))], dtype=torch.int64)

    def channel_terms(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, C, 5)`` float64 terms of dσ split by partonic channel (:attr:`channels`), fb GeV⁻¹.

        ``channel_terms(coords).sum(1)`` is :meth:`dsigma_terms`; zero outside the window.
        """
        coords = coords.to(torch.float64)
        p = self.momenta_from_coords(coords)
        x1, x2, p1, p2 = self.incoming(p)
        s_hat = x1 * x2 * self.config.sqrt_s**2
        m = torch.sqrt(s_hat)
        pt = coords[:, 0]
        inside = (m >= self.config.m_min) & (m <= self.config.m_max) & (x1 < 1) & (x2 < 1) & (pt > 0)
        inside &= torch.isfinite(coords).all(-1)
        # evaluate on a harmless stand-in point outside, then zero, so no NaN reaches the batch
        safe_x1, safe_x2 = torch.where(inside, x1, 0.1), torch.where(inside, x2, 0.1)
        xf1 = self.pdf.xfxq2_all(safe_x1, s_hat)  # (B, 13), index pid + 6
        xf2 = self.pdf.xfxq2_all(safe_x2, s_hat)
        k_minus, k_plus = p[:, 0], p[:, 1]
        # the helicity structure is flavour-blind: one evaluation per beam orientation, and one
        # coupling polynomial per quark charge; channels differ only by their luminosity
        weights_a = chiral_weights(p1, p2, k_minus, k_plus)  # quark from beam 1
        weights_b = chiral_weights(p2, p1, k_minus, k_plus)  # quark from beam 2
        base = {}
        for charges, parity in ((DOWN, 1), (UP, 0)):
            polys = _squared_polynomial(_coupling_polynomials(charges, s_hat, self.config.m_z, self.config.width_z))
            base[parity] = (self._average(weights_a, polys), self._average(weights_b, polys))
        out = []
        for f in range(1, self.config.n_flavours + 1):
            me_a, me_b = base[f % 2]
            out.append(xf1[:, f + 6, None] * xf2[:, 6 - f, None] * me_a)
            out.append(xf2[:, f + 6, None] * xf1[:, 6 - f, None] * me_b)
        measure = pt / (16 * math.pi**2 * s_hat**2)
        terms = torch.stack(out, 1) * (measure * GEV2_TO_FB)[:, None, None]
        return torch.where(inside[:, None, None], terms, 0.0)

    def dsigma_terms(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, 5)`` float64 terms g_k of dσ/d(pT dη₋ dη₊ dφ₋) in fb GeV⁻¹ (zero outside the window)."""
        return self.channel_terms(coords).sum(1)

    def hard_record(
        self, coords: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None
    ) -> EventRecord:
        """Les Houches record of the hard events ``coords (B, 4)`` at ``theta (1, 1)`` or ``(B, 1)``.

        Each event gets the partonic channel q q̄ or q̄ q with probability ∝ its dσ at that point
        and θ; rows are (parton 1, parton 2, μ⁻, μ⁺), colours q (501, 0) and q̄ (0, 501), and
        the scale is μ_F = m_μμ. Returns a :class:`memzoo.simulation.record.EventRecord`.
        """
        coords = coords.to(torch.float64)
        _, incoming = sample_channels(self, coords, theta, generator)
        p = self.momenta_from_coords(coords)
        x1, x2, _, _ = self.incoming(p)
        colour = torch.zeros(len(coords), 4, 2, dtype=torch.int64, device=coords.device)
        quark_first = incoming[:, 0] > 0
        colour[:, 0, 0] = torch.where(quark_first, 501, 0)
        colour[:, 0, 1] = torch.where(quark_first, 0, 501)
        colour[:, 1] = colour[:, 0].flip(-1)
        final_pdg = torch.tensor([13, -13], device=coords.device).expand(len(coords), -1)
        scale = torch.sqrt(x1 * x2) * self.config.sqrt_s
        return hard_event_record(x1, x2, self.config.sqrt_s, incoming, p, final_pdg, colour, scale)

    # -- phase space ----------------------------------------------------------------------

    def from_unit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u (B, 4)`` → ``(coords (B, 4), |d coords/du| (B,))``.

        u₀ → m² Breit-Wigner-flat over the window, u₁ → dimuon rapidity (x₁, x₂ ≤ 1), u₂ → cosθ*
        and u₃ → φ* of the μ⁻ in the dimuon rest frame. The Jacobian is
        d(x₁x₂Φ₂)/du divided by the measure density pT/(8π² S) of the coordinates.
        """
        u = u.to(torch.float64)
        cfg = self.config
        s_had = cfg.sqrt_s**2
        m2, jac_m2 = breit_wigner_map(u[:, 0], cfg.m_z, cfg.width_z, cfg.m_min**2, cfg.m_max**2)
        tau = m2 / s_had
        y, jac_y = rapidity_map(u[:, 1], tau)
        m = torch.sqrt(m2)
        zero = torch.zeros_like(m)
        system = torch.stack([m * torch.cosh(y), zero, zero, m * torch.sinh(y)], -1)
        cos_theta, phi = 2 * u[:, 2] - 1, math.pi * (2 * u[:, 3] - 1)
        k_minus, k_plus, w2 = two_body_decay(system, 0.0, 0.0, cos_theta, phi)
        coords = self.coords_from_momenta(torch.stack([k_minus, k_plus], -2))
        weight = jac_m2 / s_had * jac_y * w2 * (2 * 2 * math.pi)  # d(x₁ x₂ Φ₂)/du
        return coords, weight * 8 * math.pi**2 * s_had / coords[:, 0]
