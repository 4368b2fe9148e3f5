"""Analytic reference backends: the exact transfer density, a Gaussian sampler and the exact
acceptance of memzoo's parametric detector for Drell-Yan muons.

They make the shared MEM integrator testable without networks: with these three and the
:class:`~memzoo.processes.drell_yan.DrellYan` process the integrand dσ · ε · p(x_reco|x_hard) is
known in closed form. The detector (:class:`~memzoo.simulation.detector.ParametricDetector`)
treats each muon independently: pT_reco = r · pT_true with a log-normal response r of mean 1 and
standard deviation σ(|η_true|, pT_true) (``muon_pt_resolution``), η_reco = η_true + σ_η z,
φ_reco = φ_true + σ_φ z' (wrapped), and keeps the muon with the efficiency of the measured
|η_reco| and pT_reco. The ``drell-yan`` selection asks for one μ⁺ and one μ⁻ with pT > 20 GeV and
|η| < 2.4. Valid for parton-level truth without extra jets (``extra_jet_mean = 0``), where muon
isolation never fires.

Reco events are :class:`~memzoo.events.Particles` as stored in datasets: the two muons (kind 13)
are read wherever they are; other objects, missing pT (kind 12) included, are ignored. Missing
pT carries no density: at LO it is minus the vector sum of the measured muon pT, a deterministic
function of the muons (a delta function, which the measure of :mod:`memzoo.protocols` leaves out).

**Charge.** Particles carry no charge and the detector sorts muons by pT, so without charges the
reco muons are an unordered pair: the density then sums both assignments of the two reco muons
to the hard μ⁻ and μ⁺ (the exact density of the pT-ordered pair, normalised over pT₁ > pT₂). With
charges (the dataset's ``charge`` column, a ``charge=`` argument or ``RecoParticles.charge``) the
one assignment they fix is used, normalised over the labelled (μ⁻, μ⁺) pair. The measure is
dpT dη dφ per muon (GeV⁻² rad⁻² in all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from memzoo.events import Particles, RecoParticles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo.simulation.detector import DetectorConfig, _lookup
from memzoo.simulation.selection import ETA_MAX, LEPTON_PHOTON_PT_MIN

__all__ = ["ExactAcceptance", "GaussianSampler", "GaussianTransfer"]

_DEFAULT = DetectorConfig()
_PROCESSES = ("drell-yan",)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _plain(table: tuple) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in table)


@dataclass(frozen=True)
class _Resolution:
    """Attributes:
    process: the hard process (only ``drell-yan``: hard coordinates (pT, η₋, η₊, φ₋)).
    muon_pt_resolution, lepton_eta_resolution, lepton_phi_resolution: as in
        :class:`~memzoo.simulation.detector.DetectorConfig` (same defaults).
    """

    process: str = "drell-yan"
    muon_pt_resolution: tuple[tuple[float, ...], ...] = _plain(_DEFAULT.muon_pt_resolution)
    lepton_eta_resolution: float = _DEFAULT.lepton_eta_resolution
    lepton_phi_resolution: float = _DEFAULT.lepton_phi_resolution


@dataclass(frozen=True)
class _Efficiency(_Resolution):
    """Attributes (besides the resolutions): muon_efficiency, muon_pt_min: as in DetectorConfig."""

    muon_efficiency: tuple[tuple[float, ...], ...] = _plain(_DEFAULT.muon_efficiency)
    muon_pt_min: float = _DEFAULT.muon_pt_min


def _detector_config(config: _Resolution) -> DetectorConfig:
    if config.process not in _PROCESSES:
        raise ValueError(
            f"The analytic parametric-detector backends support process {list(_PROCESSES)}, got {config.process!r}."
        )
    if config.lepton_eta_resolution <= 0 or config.lepton_phi_resolution <= 0:
        raise ValueError("lepton_eta_resolution and lepton_phi_resolution must be > 0 for a density to exist.")
    fields = {"muon_pt_resolution", "lepton_eta_resolution", "lepton_phi_resolution", "muon_efficiency", "muon_pt_min"}
    det = DetectorConfig(**{k: getattr(config, k) for k in fields if hasattr(config, k)})  # validates the tables
    if any(row.constant <= 0 and row.slope <= 0 for row in det.muon_pt_resolution):
        raise ValueError("muon_pt_resolution rows need a constant or slope > 0 for a density to exist.")
    return det


# ---------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------


def _truth_muons(hard: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pT, η, φ), each ``(B, 2)`` for (μ⁻, μ⁺), of Drell-Yan coordinates ``hard (B, 4)``."""
    pt, eta_m, eta_p, phi = hard.to(torch.float64).unbind(-1)
    return torch.stack([pt, pt], -1), torch.stack([eta_m, eta_p], -1), torch.stack([phi, wrap_phi(phi + math.pi)], -1)


def _log_sigma(det: DetectorConfig, eta: torch.Tensor, pt: torch.Tensor) -> torch.Tensor:
    """Width sqrt(log(1 + σ²)) of log r, σ(|η|, pT) the relative pT resolution (as ``_log_normal``)."""
    const, slope = _lookup(det.muon_pt_resolution, eta.abs())[0].unbind(-1)
    return torch.log1p(torch.hypot(const, slope * pt) ** 2).sqrt()


def _log_normal_pdf(x: torch.Tensor, mean: torch.Tensor | float, sd: torch.Tensor | float) -> torch.Tensor:
    sd = torch.as_tensor(sd, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) / sd) ** 2 - torch.log(sd) - _LOG_SQRT_2PI


def _log_wrapped_normal(phi: torch.Tensor, mean: torch.Tensor, sd: float | torch.Tensor) -> torch.Tensor:
    """log of the normal density N(mean, sd²) wrapped onto the circle, at ``phi`` (rad)."""
    images = math.ceil(6 * float(torch.as_tensor(sd).max()) / (2 * math.pi)) + 1
    k = torch.arange(-images, images + 1, dtype=phi.dtype, device=phi.device)
    d = wrap_phi(phi - mean)[..., None] + 2 * math.pi * k
    sd = sd[..., None] if isinstance(sd, torch.Tensor) else sd
    return torch.logsumexp(_log_normal_pdf(d, 0.0, sd), -1)


def _muon_log_prob(det: DetectorConfig, reco: torch.Tensor, pt, eta, phi) -> torch.Tensor:
    """log p(pT', η', φ' | pT, η, φ) per muon; ``reco (..., 3)``, truth tensors ``(...)``."""
    s = _log_sigma(det, eta, pt)
    pt_r = reco[..., 0].clamp(min=1e-300)
    y = torch.log(pt_r / pt)
    log_pt = _log_normal_pdf(y, -0.5 * s**2, s) - torch.log(pt_r)
    out = log_pt + _log_normal_pdf(reco[..., 1], eta, det.lepton_eta_resolution)
    out = out + _log_wrapped_normal(reco[..., 2], phi, det.lepton_phi_resolution)
    return torch.where((reco[..., 0] > 0) & (pt > 0), out, -torch.inf)


def _reco_muons(reco: Particles, charge: torch.Tensor | None):
    """The two reco muons of each event.

    Returns:
        ``x (B, 2, 3)`` float64 (pT, η, φ) in the stored order, ``valid (B,)`` (exactly two muons
        and, with charges, one of each sign), ``minus_first (B,)`` bool (with charges: whether the
        first muon is the μ⁻) and whether charges were known.
    """
    if charge is None:
        charge = getattr(reco, "charge", None)
    is_mu = reco.mask & (reco.kind == 13)
    if is_mu.shape[1] < 2:
        pad = 2 - is_mu.shape[1]
        is_mu = nn.functional.pad(is_mu, (0, pad))
        p = nn.functional.pad(reco.p, (0, 0, 0, pad))
        charge = None if charge is None else nn.functional.pad(charge, (0, pad))
    else:
        p = reco.p
    order = torch.argsort((~is_mu).to(torch.int8), dim=1, stable=True)[:, :2]
    valid = is_mu.sum(1) == 2
    four = torch.gather(p.to(torch.float64), 1, order[..., None].expand(-1, -1, 4))
    safe = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64, device=four.device)
    x = to_ptetaphim(torch.where(valid[:, None, None], four, safe))[..., :3]
    minus_first = torch.zeros_like(valid)
    if charge is not None:
        q = torch.gather(charge.to(reco.p.device), 1, order)
        minus_first = (q[:, 0] < 0) & (q[:, 1] > 0)
        valid = valid & (minus_first | ((q[:, 0] > 0) & (q[:, 1] < 0)))
    return x, valid, minus_first, charge is not None


def _eta_window(eta: torch.Tensor, sd: float, low: float, high: float) -> torch.Tensor:
    """P(low < |η + sd·z| < high) for a standard normal z."""
    cdf = lambda v: torch.special.ndtr((v - eta) / sd)
    return cdf(high) - cdf(low) + cdf(-low) - cdf(-high)


def _muon_acceptance(det: DetectorConfig, pt: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """P(found, pT_reco > 20 GeV and |η_reco| < 2.4 | truth pT, η), each ``(...)``.

    The efficiency table is a step function of the measured |η| (zero beyond its last row) and
    needs pT_reco > muon_pt_min; η and pT are smeared independently, so the probability is
    Σ_rows efficiency · P(|η_reco| in the row's range ∩ [0, 2.4)) · P(pT_reco > max(20, pt_min)).
    """
    s = _log_sigma(det, eta, pt)
    threshold = max(LEPTON_PHOTON_PT_MIN, det.muon_pt_min)
    p_pt = torch.special.ndtr((torch.log(pt.clamp(min=1e-300) / threshold) - 0.5 * s**2) / s)
    p_eta = torch.zeros_like(eta)
    low = 0.0
    for row in det.muon_efficiency:
        high = min(row.eta_max, ETA_MAX)
        if high > low:
            p_eta = p_eta + row.efficiency * _eta_window(eta, det.lepton_eta_resolution, low, high)
        low = row.eta_max
    return torch.where(pt > 0, p_pt, 0.0) * p_eta


def _log_found_and_selected(det: DetectorConfig, x: torch.Tensor) -> torch.Tensor:
    """log(efficiency × selection) of measured muons ``x (..., 3)`` = (pT, η, φ): 0-probability → -inf."""
    values, inside = _lookup(det.muon_efficiency, x[..., 1].abs())
    passed = inside & (x[..., 0] > det.muon_pt_min) & (x[..., 0] > LEPTON_PHOTON_PT_MIN) & (x[..., 1].abs() < ETA_MAX)
    return torch.where(passed, values[..., 0].log(), -torch.inf)


# ---------------------------------------------------------------------------------------
# the backends
# ---------------------------------------------------------------------------------------


class GaussianTransfer(nn.Module):
    """Exact transfer density p(x_reco|x_hard) of the parametric detector for Drell-Yan muons.

    p = Π_μ LogNormal(pT'; pT, σ(|η|, pT)) · N(η'; η, σ_η) · WrappedNormal(φ'; φ, σ_φ), in the
    measure dpT dη dφ per muon (see the module docstring for charges and missing pT). With
    ``conditional=True`` it is the density of *accepted* events, p · Π_μ ε_μ(x_reco) · 1[selected]
    / ε(x_hard), normalised over the accepted region: the transfer a network trained on accepted
    events learns, and the one that makes dσ · ε · p exact with :class:`ExactAcceptance`.

    Example:
        >>> model = GaussianTransfer()
        >>> hard = torch.tensor([[40.0, 0.3, -1.1, 0.5]], dtype=torch.float64)
        >>> model.log_prob(model.sample(hard), hard).shape
        torch.Size([1])
    """

    name = "gaussian"

    @dataclass(frozen=True)
    class Config(_Efficiency):
        """Detector fields as in DetectorConfig (defaults equal), ``process`` and
        ``conditional``: the density of accepted events instead of the bare smearing."""

        conditional: bool = False

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        self.detector_config = _detector_config(self.config)

    def log_prob(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` float64 log p(x_reco|x_hard); -inf for events without exactly two muons.

        Args:
            reco: B reco events; the kind-13 objects are the muons, others are ignored.
            hard: ``(B, 4)`` Drell-Yan coordinates (pT, η₋, η₊, φ₋).
            charge: ``(B, N)`` object charges (the dataset's ``charge``); default
                ``reco.charge`` where present, else both assignments are summed.
        """
        det = self.detector_config
        x, valid, minus_first, known = _reco_muons(reco, charge)
        pt, eta, phi = (t.to(x.device) for t in _truth_muons(hard))
        # log p of reco muon i as hard muon j: (B, i, j)
        lp = _muon_log_prob(det, x[:, :, None], pt[:, None], eta[:, None], phi[:, None])
        straight, swapped = lp[:, 0, 0] + lp[:, 1, 1], lp[:, 0, 1] + lp[:, 1, 0]
        out = torch.where(minus_first, straight, swapped) if known else torch.logaddexp(straight, swapped)
        if self.config.conditional:
            eps = _muon_acceptance(det, pt, eta).prod(-1)
            out = out + _log_found_and_selected(det, x).sum(-1) - eps.log()
            out = torch.where(eps > 0, out, -torch.inf)  # never accepted: no density of accepted events
        return torch.where(valid, out, -torch.inf)

    def _smear(self, pt, eta, phi, generator) -> torch.Tensor:
        det = self.detector_config
        z = torch.randn((3, *pt.shape), generator=generator, dtype=torch.float64, device=pt.device)
        s = _log_sigma(det, eta, pt)
        pt_r = pt * torch.exp(-0.5 * s**2 + s * z[0])  # the detector's _log_normal response
        return torch.stack(
            [pt_r, eta + det.lepton_eta_resolution * z[1], wrap_phi(phi + det.lepton_phi_resolution * z[2])], -1
        )

    @torch.no_grad()
    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> RecoParticles:
        """One reco event per hard point, laid out like the detector's: the two muons by
        descending pT, then missing pT (kind 12); float64, with ``charge`` (μ⁻ → −1).

        With ``conditional=True`` only accepted events are returned (per-row rejection sampling;
        hard points with ε(x_hard) < 1e-9 raise ``ValueError``).
        """
        det = self.detector_config
        pt, eta, phi = _truth_muons(hard)
        x = self._smear(pt, eta, phi, generator)
        if self.config.conditional:
            if bool((_muon_acceptance(det, pt, eta).prod(-1) < 1e-9).any()):
                raise ValueError("Some hard points are (almost) never accepted; cannot sample accepted events.")
            todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
            for _ in range(100_000):
                u = torch.rand(len(x), generator=generator, dtype=torch.float64, device=x.device)
                todo = todo & ~(u.log() < _log_found_and_selected(det, x).sum(-1))
                if not todo.any():
                    break
                x[todo] = self._smear(pt[todo], eta[todo], phi[todo], generator)
        muons = from_ptetaphim(torch.cat([x, torch.zeros_like(x[..., :1])], -1))
        charge = torch.tensor([-1, 1], device=x.device).expand(len(x), -1)
        first_minus = x[:, 0, 0] >= x[:, 1, 0]
        muons = torch.where(first_minus[:, None, None], muons, muons.flip(1))
        charge = torch.where(first_minus[:, None], charge, charge.flip(1))
        met = -muons[..., 1:3].sum(1)
        met = torch.stack([met.norm(dim=-1), met[:, 0], met[:, 1], torch.zeros_like(met[:, 0])], -1)
        p = torch.cat([muons, met[:, None]], 1)
        kind = torch.tensor([13, 13, 12], device=x.device).expand(len(x), -1)
        charge = torch.cat([charge, torch.zeros_like(charge[:, :1])], 1)
        return RecoParticles(p, kind, torch.ones_like(kind, dtype=torch.bool), validate=False, charge=charge)


class GaussianSampler(nn.Module):
    """Proposal q(x_hard|x_reco) for Drell-Yan: independent normals around the reco muons.

    log pT ~ N(Σᵢ wᵢ (log pT'ᵢ + sᵢ²/2) / Σᵢ wᵢ, f² / Σᵢ wᵢ), wᵢ = sᵢ⁻², sᵢ = sqrt(log(1 + σᵢ²)) and
    σᵢ the detector's relative resolution at the measured muon i (the combination of the two
    pT measurements; normal in log pT as the response is log-normal, so pT > 0 always);
    η₋, η₊ ~ N(η' of the μ⁻/μ⁺ candidate, (f·σ_η)²); φ₋ ~ wrapped N(circular mean of φ'₋ and
    φ'₊ − π, (f·σ_φ/√2)²); f = ``width_factor``. The coordinates are in the
    measure dpT dη₋ dη₊ dφ₋ (the Jacobian 1/pT of the log is included). Without charges
    q is the 50/50 mixture of both assignments of the reco muons (u₀ < ½ picks the first). θ is
    unused: q follows the transfer peak, which dominates dσ · p(x_reco|x_hard).
    """

    name = "gaussian"

    @dataclass(frozen=True)
    class Config(_Resolution):
        """Resolutions as in DetectorConfig, ``process``, and ``width_factor`` f (> 1 keeps the
        importance weights bounded)."""

        width_factor: float = 2.0

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        if not self.config.width_factor > 0:
            raise ValueError(f"width_factor must be > 0, got {self.config.width_factor}.")
        self.detector_config = _detector_config(self.config)

    def _components(self, reco: Particles, charge: torch.Tensor | None):
        """Centres ``(B, 2, 4)`` of the two assignments, widths ``(B, 4)``, minus_first, known."""
        det, f = self.detector_config, self.config.width_factor
        x, valid, minus_first, known = _reco_muons(reco, charge)
        if not bool(valid.all()):
            row = int((~valid).nonzero()[0])
            raise ValueError(
                f"GaussianSampler needs exactly two reco muons (of opposite charge where charges are given); "
                f"event {row} has not."
            )
        # Both muons measure pT and φ₋ (φ₊ = φ₋ + π): combine them. log pT'ᵢ = log pT − sᵢ²/2 + sᵢ z,
        # so the inverse-variance mean of log pT'ᵢ + sᵢ²/2 and the width (Σ sᵢ⁻²)^(-1/2) follow.
        s_i = _log_sigma(det, x[..., 1], x[..., 0])
        inv = s_i**-2
        log_pt = ((x[..., 0].log() + 0.5 * s_i**2) * inv).sum(-1) / inv.sum(-1)
        s = inv.sum(-1).rsqrt()
        phi_first = wrap_phi(x[:, 0, 2] + 0.5 * wrap_phi(x[:, 1, 2] + math.pi - x[:, 0, 2]))
        phi_second = wrap_phi(phi_first + math.pi)
        straight = torch.stack([log_pt, x[:, 0, 1], x[:, 1, 1], phi_first], -1)
        swapped = torch.stack([log_pt, x[:, 1, 1], x[:, 0, 1], phi_second], -1)
        eta_sd = torch.full_like(s, det.lepton_eta_resolution)
        phi_sd = torch.full_like(s, det.lepton_phi_resolution / math.sqrt(2))
        widths = torch.stack([s, eta_sd, eta_sd, phi_sd], -1)
        return torch.stack([straight, swapped], 1), f * widths, minus_first, known

    @staticmethod
    def _log_component(coords: torch.Tensor, centre: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        pt = coords[:, 0].clamp(min=1e-300)
        out = _log_normal_pdf(torch.log(pt), centre[:, 0], width[:, 0]) - torch.log(pt)
        out = out + _log_normal_pdf(coords[:, 1:3], centre[:, 1:3], width[:, 1:3]).sum(-1)
        out = out + _log_wrapped_normal(coords[:, 3], centre[:, 3], width[:, 3])
        return torch.where(coords[:, 0] > 0, out, -torch.inf)

    def log_prob(
        self, coords: torch.Tensor, reco: Particles, theta: torch.Tensor, charge: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B,)`` float64 log q(coords|reco) for ``coords (B, 4)``; ``theta`` is unused.

        ``charge (B, N)`` fixes the assignment (default ``reco.charge`` where present).
        """
        centres, widths, minus_first, known = self._components(reco, charge)
        coords = coords.to(torch.float64)
        straight = self._log_component(coords, centres[:, 0], widths)
        swapped = self._log_component(coords, centres[:, 1], widths)
        if known:
            return torch.where(minus_first, straight, swapped)
        return torch.logaddexp(straight, swapped) - math.log(2)

    def from_unit(
        self, u: torch.Tensor, reco: Particles, theta: torch.Tensor, charge: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``u (B, 4)`` in [0, 1]⁴ → ``(coords (B, 4), log_q (B,))`` by the inverse normal CDF.

        Without charges u₀ < ½ selects the first assignment and 2u₀ mod 1 drives log pT, so the
        coords follow the 50/50 mixture and log_q is the mixture's density.
        """
        centres, widths, minus_first, known = self._components(reco, charge)
        u = u.to(torch.float64).clamp(1e-15, 1 - 1e-15)
        if known:
            first = minus_first
        else:
            first = u[:, 0] < 0.5
            u = torch.cat([torch.remainder(2 * u[:, :1], 1.0).clamp(1e-15, 1 - 1e-15), u[:, 1:]], -1)
        centre = torch.where(first[:, None], centres[:, 0], centres[:, 1])
        z = centre + widths * torch.special.ndtri(u)
        coords = torch.stack([z[:, 0].exp(), z[:, 1], z[:, 2], wrap_phi(z[:, 3])], -1)
        return coords, self.log_prob(coords, reco, theta, charge)


class ExactAcceptance(nn.Module):
    """Exact ε(x_hard) of the parametric detector and the Drell-Yan selection, in closed form.

    ε = Π over μ⁻, μ⁺ of P(found, pT_reco > 20 GeV, |η_reco| < 2.4 | x_hard): the log-normal CDF
    in pT times the efficiency table (a step function of the measured |η|, needing pT_reco >
    ``muon_pt_min``) integrated over the Gaussian η smearing.

    Example:
        >>> ExactAcceptance().prob(torch.tensor([[40.0, 0.3, -1.1, 0.5]])).round(decimals=4)
        tensor([0.9025])
    """

    name = "parametric-exact"

    @dataclass(frozen=True)
    class Config(_Efficiency):
        """Detector fields as in DetectorConfig (defaults equal) and ``process``."""

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        self.detector_config = _detector_config(self.config)

    def prob(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B,)`` acceptance of Drell-Yan coordinates ``coords (B, 4)`` (dtype of ``coords``)."""
        pt, eta, _ = _truth_muons(coords)
        return _muon_acceptance(self.detector_config, pt, eta).prod(-1).to(coords.dtype)
