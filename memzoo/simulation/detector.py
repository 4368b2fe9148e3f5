"""A parametric, Delphes-CMS-like detector: truth objects -> smeared, tagged reco objects.

Defaults follow ``cards/delphes_card_CMS.tcl`` of Delphes (de Favereau et al., JHEP 02 (2014)
057, arXiv:1307.6346), whose formulas cite the CMS performance papers arXiv:1405.6569
(tracks), arXiv:1306.2016 and arXiv:1502.02701 (ECAL) and arXiv:1211.4462 (b-tagging). The
analysis setup (anti-kT R = 0.4 jets, H → γγ, tracker |η| < 2.4) is that of Heimel's thesis
(2024, Sec. 6.1). What the detector does, in order:

1. optional extra ISR/FSR jets (:func:`extra_jets`; their recoil on the hard system is ignored);
2. isolation: a photon or lepton whose ΔR < ``isolation_dr`` cone holds truth-jet pT above
   ``*_isolation_ratio`` × its own pT is merged (four-vector sum) into the nearest jet, as its
   energy would be clustered there;
3. smearing: jets and photons in energy (calorimeter form, log-normal with mean E as Delphes'
   calorimeters), muons and electrons in pT (track form), all in η and φ (Gaussian);
4. identification on the measured kinematics: photon/lepton efficiencies, jet pT and |η|
   thresholds, b-tagging by truth flavour;
5. missing pT (kind 12, one per event) = Σ pT of all truth objects (neutrinos included) − Σ
   measured pT of the visible ones: jets, photons and electrons within the calorimeter
   (identified or not, they leave energy) and reconstructed muons (lost muons are invisible).
   It equals the neutrinos' pT plus the mismeasurement, and −Σ pT(reco) for a balanced truth.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from memzoo.events import delta_r, pseudorapidity, transverse_momentum, wrap_phi
from memzoo.simulation.selection import RecoParticles, select
from memzoo.simulation.truth import PARTONS, TruthObjects, _safe, extra_jets, merge_partons, truth_from_partons

__all__ = [
    "KIND_ORDER",
    "CaloRegion",
    "DetectorConfig",
    "EfficiencyRegion",
    "ParametricDetector",
    "TrackRegion",
    "TruthObjects",
    "extra_jets",
    "merge_partons",
    "truth_from_partons",
]

#: Order of kinds in reco events, as the thesis' x_reco (eq. 6.8): γ, b, μ, e, jets, missing pT.
KIND_ORDER = (22, 5, 13, 11, 1, 12)


class CaloRegion(NamedTuple):
    """σ_E/E = (shape_const + shape_quad·(|η| − shape_pivot)²)·sqrt(a²/E + b² + c²/E²) for |η| ≤ eta_max."""

    eta_max: float
    stochastic: float  # a in sqrt(GeV)
    constant: float  # b
    noise: float = 0.0  # c in GeV
    shape_const: float = 1.0
    shape_quad: float = 0.0
    shape_pivot: float = 0.0


class TrackRegion(NamedTuple):
    """σ_pT/pT = sqrt(constant² + (slope·pT)²) for |η| ≤ eta_max (slope in 1/GeV)."""

    eta_max: float
    constant: float
    slope: float


class EfficiencyRegion(NamedTuple):
    """Reconstruction efficiency for |η| ≤ eta_max (zero beyond the last region)."""

    eta_max: float
    efficiency: float


_TABLES = {
    "jet_energy_resolution": CaloRegion,
    "photon_energy_resolution": CaloRegion,
    "muon_pt_resolution": TrackRegion,
    "electron_pt_resolution": TrackRegion,
    "photon_efficiency": EfficiencyRegion,
    "muon_efficiency": EfficiencyRegion,
    "electron_efficiency": EfficiencyRegion,
}


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters; defaults from the Delphes CMS card unless stated (GeV, radians).

    Resolution and efficiency tables are rows ordered in |η| (plain tuples are accepted and
    turned into :class:`CaloRegion`, :class:`TrackRegion`, :class:`EfficiencyRegion`).

    Attributes:
        jet_energy_resolution: HCal form, |η| ≤ 3: a = 1.5, b = 0.05; 3 < |η| ≤ 5: a = 2.7, b = 0.13.
        photon_energy_resolution: ECal, |η| ≤ 1.5: (1 + 0.64η²)·sqrt(0.11²/E + 0.008² + 0.40²/E²);
            1.5–2.5: (2.16 + 5.6(|η|−2)²)·(same); 2.5–5: sqrt(2.08²/E + 0.107²).
        muon_pt_resolution: |η| ≤ 0.5: (0.01, 1e-4); ≤ 1.5: (0.015, 1.5e-4); ≤ 2.5: (0.025, 3.5e-4).
        electron_pt_resolution: |η| ≤ 0.5: (0.03, 1.3e-3); ≤ 1.5: (0.05, 1.7e-3); ≤ 2.5: (0.15, 3.1e-3).
        jet_eta_resolution, jet_phi_resolution: 0.025 = HCal tower width 0.087/√12.
        photon_eta_resolution, photon_phi_resolution: 0.005 = ECal crystal width 0.0174/√12.
        lepton_eta_resolution, lepton_phi_resolution: 0.001 (tracks; negligible at these energies).
        photon_efficiency, electron_efficiency: 0.95 for |η| ≤ 1.5, 0.85 to 2.5; zero below pT 10.
        muon_efficiency: 0.95 for |η| ≤ 2.4, zero below pT 10 (Delphes' tracking efficiency
            and the TeV-scale fall-off are not applied separately).
        photon_pt_min, muon_pt_min, electron_pt_min: 10 GeV identification thresholds.
        jet_pt_min: 20 GeV (JetPTMin); jet_eta_max: 5.0 (calorimeter coverage, also used for
            missing pT).
        btag_b, btag_c, btag_light: ε(pT) = a·tanh(b·pT)/(1 + c·pT) + d + e·pT as ``(a, b, c,
            d, e)``, clipped to [0, 1]; the card's 0.85·25 tanh(0.0025 pT)/(1 + 0.063 pT) for b
            (≈ 0.72 at 100 GeV), 0.25 tanh(0.018 pT)/(1 + 0.0013 pT) for c (≈ 0.2) and
            0.01 + 3.8e-5 pT for light jets. A flat 0.7 is ``(0, 0, 0, 0.7, 0)``.
        btag_eta_max: 2.5, tracker coverage (JetFlavorAssociation's PartonEtaMax).
        isolation_dr: 0.5 (DeltaRMax); photon/electron/muon_isolation_ratio: 0.12/0.12/0.25
            (PTRatioMax), compared to the summed truth-jet pT inside the cone. 0 switches isolation
            off, e.g. for the Pythia chain, whose photons and leptons are isolated already.
        jet_merge_dr: 0.4, the thesis' anti-kT radius (the card uses 0.5); partons closer than
            this become one jet in :func:`truth_from_partons`.
        extra_jet_mean: Poisson mean of extra ISR/FSR jets per event (0 = off; not in Delphes).
        extra_jet_pt_min, extra_jet_pt_index: their pT follows dN/dpT ∝ pT^-index above pt_min.
        extra_jet_eta_max: their η is flat in [-eta_max, eta_max]; φ is uniform.
    """

    jet_energy_resolution: tuple[tuple[float, ...], ...] = ((3.0, 1.5, 0.05), (5.0, 2.7, 0.13))
    photon_energy_resolution: tuple[tuple[float, ...], ...] = (
        (1.5, 0.11, 0.008, 0.40, 1.0, 0.64, 0.0),
        (2.5, 0.11, 0.008, 0.40, 2.16, 5.6, 2.0),
        (5.0, 2.08, 0.107),
    )
    muon_pt_resolution: tuple[tuple[float, ...], ...] = (
        (0.5, 0.01, 1.0e-4),
        (1.5, 0.015, 1.5e-4),
        (2.5, 0.025, 3.5e-4),
    )
    electron_pt_resolution: tuple[tuple[float, ...], ...] = (
        (0.5, 0.03, 1.3e-3),
        (1.5, 0.05, 1.7e-3),
        (2.5, 0.15, 3.1e-3),
    )
    jet_eta_resolution: float = 0.025
    jet_phi_resolution: float = 0.025
    photon_eta_resolution: float = 0.005
    photon_phi_resolution: float = 0.005
    lepton_eta_resolution: float = 0.001
    lepton_phi_resolution: float = 0.001
    photon_efficiency: tuple[tuple[float, ...], ...] = ((1.5, 0.95), (2.5, 0.85))
    muon_efficiency: tuple[tuple[float, ...], ...] = ((2.4, 0.95),)
    electron_efficiency: tuple[tuple[float, ...], ...] = ((1.5, 0.95), (2.5, 0.85))
    photon_pt_min: float = 10.0
    muon_pt_min: float = 10.0
    electron_pt_min: float = 10.0
    jet_pt_min: float = 20.0
    jet_eta_max: float = 5.0
    btag_b: tuple[float, float, float, float, float] = (21.25, 0.0025, 0.063, 0.0, 0.0)
    btag_c: tuple[float, float, float, float, float] = (0.25, 0.018, 0.0013, 0.0, 0.0)
    btag_light: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.01, 3.8e-5)
    btag_eta_max: float = 2.5
    isolation_dr: float = 0.5
    photon_isolation_ratio: float = 0.12
    electron_isolation_ratio: float = 0.12
    muon_isolation_ratio: float = 0.25
    jet_merge_dr: float = 0.4
    extra_jet_mean: float = 0.0
    extra_jet_pt_min: float = 20.0
    extra_jet_pt_index: float = 4.0
    extra_jet_eta_max: float = 5.0

    def __post_init__(self) -> None:
        for name, row_type in _TABLES.items():
            rows = getattr(self, name)
            if len(rows) == 0:
                raise ValueError(f"DetectorConfig.{name} needs at least one |eta| region.")
            try:
                table = tuple(row_type(*map(float, row)) for row in rows)
            except TypeError as err:
                raise ValueError(f"DetectorConfig.{name}: each row must match {row_type._fields}; {err}.") from None
            for i, row in enumerate(table):
                if any(not math.isfinite(v) or v < 0 for v in row):
                    raise ValueError(f"DetectorConfig.{name}[{i}] = {tuple(row)}: entries must be finite and >= 0.")
                if isinstance(row, EfficiencyRegion) and row.efficiency > 1:
                    raise ValueError(f"DetectorConfig.{name}[{i}]: efficiency {row.efficiency} exceeds 1.")
            edges = [row.eta_max for row in table]
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ValueError(f"DetectorConfig.{name}: the eta_max of the rows must increase, got {edges}.")
            object.__setattr__(self, name, table)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("btag_b", "btag_c", "btag_light"):
                if len(value) != 5 or any(not math.isfinite(float(v)) for v in value):
                    raise ValueError(f"DetectorConfig.{f.name} must be 5 finite numbers (a, b, c, d, e), got {value}.")
                object.__setattr__(self, f.name, tuple(float(v) for v in value))
            elif f.name not in _TABLES and (isinstance(value, bool) or not math.isfinite(value) or value < 0):
                raise ValueError(f"DetectorConfig.{f.name} must be a finite number >= 0, got {value!r}.")
        if self.extra_jet_mean > 0 and self.extra_jet_pt_index <= 1:
            raise ValueError("DetectorConfig.extra_jet_pt_index must exceed 1 for a normalisable pT spectrum.")


def _lookup(table: tuple, abs_eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-object rows of an |η| table: ``(values (..., F), inside (...))``; beyond the table the
    last row is returned with ``inside`` false."""
    edges = torch.tensor([row[0] for row in table], dtype=abs_eta.dtype, device=abs_eta.device)
    values = torch.tensor([row[1:] for row in table], dtype=abs_eta.dtype, device=abs_eta.device)
    index = torch.searchsorted(edges, abs_eta.contiguous())  # region i covers (edge_{i-1}, edge_i]
    return values[index.clamp(max=len(table) - 1)], index < len(table)


def _btag(params: tuple, pt: torch.Tensor) -> torch.Tensor:
    a, b, c, d, e = params
    return (a * torch.tanh(b * pt) / (1.0 + c * pt) + d + e * pt).clamp(0.0, 1.0)


def _log_normal(sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Response factor with mean 1 and standard deviation ``sigma`` (always positive)."""
    s2 = torch.log1p(sigma**2)
    return torch.exp(-0.5 * s2 + s2.sqrt() * z)


class ParametricDetector:
    """Delphes-CMS-like parametric detector (see the module docstring for the steps).

    Example:
        >>> det = ParametricDetector(DetectorConfig())
        >>> reco = det.reconstruct(truth, torch.Generator().manual_seed(1))  # doctest: +SKIP
        >>> passed = det.select(reco, "thj-leptonic")  # doctest: +SKIP
    """

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()

    # -- the parametrisations, public so that tests and plots can compare with them ----------

    def resolution(self, label: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Relative resolution ``(B, N)``: σ_E/E for jets and photons, σ_pT/pT for leptons, 0 else."""
        cfg, absl = self.config, label.abs()
        energy, pt = p[..., 0].clamp(min=1e-9), transverse_momentum(p)
        abs_eta = pseudorapidity(p).abs().nan_to_num(nan=0.0)

        def calo(table: tuple) -> torch.Tensor:
            a, b, c, s0, s2, pivot = _lookup(table, abs_eta)[0].unbind(-1)
            shape = s0 + s2 * (abs_eta - pivot) ** 2
            return shape * torch.sqrt(a**2 / energy + b**2 + c**2 / energy**2)

        def track(table: tuple) -> torch.Tensor:
            const, slope = _lookup(table, abs_eta)[0].unbind(-1)
            return torch.hypot(const, slope * pt)

        is_jet = torch.isin(absl, torch.tensor(PARTONS, device=label.device))
        out = torch.zeros_like(energy)
        out = torch.where(is_jet, calo(cfg.jet_energy_resolution), out)
        out = torch.where(absl == 22, calo(cfg.photon_energy_resolution), out)
        out = torch.where(absl == 13, track(cfg.muon_pt_resolution), out)
        return torch.where(absl == 11, track(cfg.electron_pt_resolution), out)

    def efficiency(self, label: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Reconstruction efficiency ``(B, N)`` of photons and leptons at momenta ``p``; 1 for others."""
        cfg, absl = self.config, label.abs()
        pt, abs_eta = transverse_momentum(p), pseudorapidity(p).abs().nan_to_num(nan=torch.inf)
        out = torch.ones_like(pt)
        for code, table, pt_min in (
            (22, cfg.photon_efficiency, cfg.photon_pt_min),
            (13, cfg.muon_efficiency, cfg.muon_pt_min),
            (11, cfg.electron_efficiency, cfg.electron_pt_min),
        ):
            values, inside = _lookup(table, abs_eta)
            eff = torch.where(inside & (pt > pt_min), values[..., 0], 0.0)
            out = torch.where(absl == code, eff, out)
        return out

    def btag_efficiency(self, flavour: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Probability ``(B, N)`` that a jet of truth ``flavour`` (|PDG|, 21 gluon) at ``p`` is b-tagged."""
        cfg, pt = self.config, transverse_momentum(p)
        eff = torch.where(flavour == 5, _btag(cfg.btag_b, pt), _btag(cfg.btag_light, pt))
        eff = torch.where(flavour == 4, _btag(cfg.btag_c, pt), eff)
        return torch.where(pseudorapidity(p).abs() < cfg.btag_eta_max, eff, 0.0)

    # -- the simulation ----------------------------------------------------------------------

    def _isolate(self, p: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, is_jet: torch.Tensor):
        """Merge non-isolated photons and leptons into their nearest truth jet; returns (p, mask)."""
        cfg, absl = self.config, label.abs()
        if cfg.isolation_dr <= 0 or p.shape[1] == 0:
            return p, mask
        ratio = torch.zeros_like(p[..., 0])
        for code, value in (
            (22, cfg.photon_isolation_ratio),
            (11, cfg.electron_isolation_ratio),
            (13, cfg.muon_isolation_ratio),
        ):
            ratio = torch.where(absl == code, value, ratio)
        candidate = mask & torch.isin(absl, torch.tensor((11, 13, 22), device=p.device))
        safe = _safe(p, mask)
        dr = torch.where(is_jet[:, None, :], delta_r(safe[:, :, None], safe[:, None, :]), torch.inf)
        cone = torch.where(dr < cfg.isolation_dr, transverse_momentum(safe)[:, None, :], 0.0).sum(-1)
        lost = candidate & (cone > ratio * transverse_momentum(safe))
        # lost implies a jet inside the cone, so the nearest jet exists.
        target = torch.nn.functional.one_hot(dr.argmin(-1), p.shape[1]).to(p.dtype) * lost[..., None]
        return p + torch.einsum("bij,bid->bjd", target, torch.where(mask[..., None], p, 0.0)), mask & ~lost

    def reconstruct(self, truth: TruthObjects, generator: torch.Generator | None = None) -> RecoParticles:
        """Simulate the detector response to truth objects.

        Args:
            truth: ``(B, N)`` truth objects (GeV).
            generator: torch.Generator on the device of ``truth.p``; the same seed gives the same
                reco events. ``None`` uses torch's global generator.

        Returns:
            RecoParticles ``(B, N')`` float64: kinds 22, 5, 13, 11, 1 in :data:`KIND_ORDER`, each
            sorted by descending pT, then exactly one missing-pT object (kind 12, E = |pT|,
            pz = 0); padded with kind 0; ``charge`` ±1 for leptons (PDG 13 is μ⁻ → −1).
        """
        cfg = self.config
        p, label, mask = truth.p.to(torch.float64), truth.label.to(torch.int64), truth.mask.to(torch.bool)
        if cfg.extra_jet_mean > 0:
            extra = extra_jets(len(truth), cfg, generator, p.device)
            p, label, mask = (
                torch.cat([p, extra.p], 1),
                torch.cat([label, extra.label], 1),
                torch.cat([mask, extra.mask], 1),
            )
        b, n = label.shape
        absl = label.abs()
        # Everything's pT before measurement: the reference the measured visible pT is subtracted from.
        truth_pt_sum = torch.where(mask[..., None], p, 0.0)[..., 1:3].sum(1)
        is_jet = mask & torch.isin(absl, torch.tensor(PARTONS, device=p.device))
        p, mask = self._isolate(p, label, mask, is_jet)
        safe = _safe(p, mask)

        kw = {"generator": generator, "dtype": torch.float64, "device": p.device}
        z = torch.randn((3, b, n), **kw)
        u = torch.rand((2, b, n), **kw)
        response = _log_normal(self.resolution(label, safe), z[0])
        is_photon, is_electron, is_muon = absl == 22, absl == 11, absl == 13
        is_lepton = is_electron | is_muon

        def per_type(jet: float, photon: float, lepton: float) -> torch.Tensor:
            return torch.where(is_jet, jet, torch.where(is_photon, photon, lepton))

        sigma_eta = per_type(cfg.jet_eta_resolution, cfg.photon_eta_resolution, cfg.lepton_eta_resolution)
        sigma_phi = per_type(cfg.jet_phi_resolution, cfg.photon_phi_resolution, cfg.lepton_phi_resolution)
        eta_true = pseudorapidity(safe)
        eta = eta_true + sigma_eta * z[1]
        phi = wrap_phi(torch.atan2(safe[..., 2], safe[..., 1]) + sigma_phi * z[2])
        p_abs = safe[..., 1:].norm(dim=-1)
        m2 = (safe[..., 0] ** 2 - p_abs**2).clamp(min=0.0)
        # Calorimeter objects: E scales by the response, direction re-measured; tracks: pT scales.
        p_abs = torch.where(is_lepton, response * transverse_momentum(safe) * torch.cosh(eta), response * p_abs)
        energy = torch.where(is_lepton, torch.sqrt(p_abs**2 + m2), response * safe[..., 0])
        pt = p_abs / torch.cosh(eta)
        measured = torch.stack([energy, pt * torch.cos(phi), pt * torch.sin(phi), p_abs * torch.tanh(eta)], -1)

        found = mask & ((is_photon | is_lepton) & (u[0] < self.efficiency(label, measured)))
        jets = is_jet & mask & (pt > cfg.jet_pt_min) & (eta.abs() < cfg.jet_eta_max)
        tagged = jets & (u[1] < self.btag_efficiency(absl, measured))
        kind = torch.zeros_like(label)
        for code, where in ((22, is_photon), (13, is_muon), (11, is_electron)):
            kind = torch.where(where & found, code, kind)
        kind = torch.where(tagged, 5, torch.where(jets, 1, kind))

        in_calo = (is_jet | is_photon | is_electron) & mask & (eta_true.abs() < cfg.jet_eta_max)
        visible = in_calo | (is_muon & found)
        met = truth_pt_sum - torch.where(visible[..., None], measured[..., 1:3], 0.0).sum(1)
        met_p = torch.stack([met.norm(dim=-1), met[:, 0], met[:, 1], torch.zeros_like(met[:, 0])], -1)

        charge = torch.where(is_lepton & (kind > 0), -torch.sign(label), 0)
        p_all = torch.cat([torch.where((kind > 0)[..., None], measured, 0.0), met_p[:, None]], 1)
        kind = torch.cat([kind, torch.full((b, 1), 12, dtype=kind.dtype, device=kind.device)], 1)
        charge = torch.cat([charge, torch.zeros((b, 1), dtype=charge.dtype, device=charge.device)], 1)
        return _sorted(p_all, kind, charge)

    def select(self, reco: RecoParticles, selection: str, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` bool: events passing ``selection`` (see :func:`memzoo.simulation.selection.select`)."""
        return select(reco, selection, charge)


def _sorted(p: torch.Tensor, kind: torch.Tensor, charge: torch.Tensor) -> RecoParticles:
    """Order objects by :data:`KIND_ORDER`, then by descending pT; padding (kind 0) last, trimmed."""
    rank_of = torch.full((int(max(KIND_ORDER)) + 1,), len(KIND_ORDER), dtype=torch.int64, device=kind.device)
    rank_of[list(KIND_ORDER)] = torch.arange(len(KIND_ORDER), device=kind.device)
    by_pt = torch.sort(-transverse_momentum(p), dim=1, stable=True).indices
    rank = torch.gather(rank_of[kind], 1, by_pt)
    order = torch.gather(by_pt, 1, torch.sort(rank, dim=1, stable=True).indices)
    n = int((kind > 0).sum(1).max()) if len(kind) else 1
    order = order[:, :n]
    kind = torch.gather(kind, 1, order)
    return RecoParticles(
        torch.gather(p, 1, order[..., None].expand(-1, -1, 4)),
        kind,
        kind > 0,
        validate=False,
        charge=torch.gather(charge, 1, order),
    )
