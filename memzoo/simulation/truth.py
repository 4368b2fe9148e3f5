"""Truth-level objects, the input of the parametric detector, and their parton-level producer.

A :class:`TruthObjects` batch holds what a detector would see before measurement: jets with
their flavour, photons, charged leptons and neutrinos. Two producers exist: :func:`truth_from_partons`
(status-1 partons of an :class:`~memzoo.simulation.record.EventRecord`; quarks and gluons closer
than ΔR = 0.4, the anti-kT radius of Heimel's thesis, Sec. 6.1, become one jet) and the Pythia 8
+ FastJet chain of :mod:`memzoo.simulation.pythia` (hadron-level jets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from memzoo.events import delta_r
from memzoo.simulation.record import EventRecord

if TYPE_CHECKING:
    from memzoo.simulation.detector import DetectorConfig

__all__ = [
    "KNOWN_LABELS",
    "NEUTRINOS",
    "PARTONS",
    "TruthObjects",
    "extra_jets",
    "merge_partons",
    "truth_from_partons",
]

#: |labels| that become jets: d, u, s, c, b quarks and the gluon.
PARTONS = (1, 2, 3, 4, 5, 21)
NEUTRINOS = (12, 14, 16)
KNOWN_LABELS = (*PARTONS, 11, 13, 22, *NEUTRINOS)


@dataclass(frozen=True)
class TruthObjects:
    """The detector's input: truth-level objects (partons or hadron-level jets).

    Attributes:
        p: ``(B, N, 4)`` four-momenta (E, px, py, pz) in GeV.
        label: ``(B, N)`` int64 truth labels: 1–4 or 21 light/c-quark or gluon jet (the flavour),
            5 b jet, 22 photon, ±13 muon, ±11 electron (PDG sign: 13 is μ⁻), ±12/14/16 neutrino
            (the Pythia chain puts all invisibles into one label-12 object).
        mask: ``(B, N)`` bool, true for present objects.
    """

    p: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.p.ndim != 3 or self.p.shape[-1] != 4:
            raise ValueError(f"TruthObjects.p must have shape (B, N, 4), got {tuple(self.p.shape)}.")
        for name in ("label", "mask"):
            if tuple(getattr(self, name).shape) != tuple(self.p.shape[:2]):
                raise ValueError(f"TruthObjects.{name} must have shape {tuple(self.p.shape[:2])} like p's (B, N).")
        unknown = self.mask & ~torch.isin(self.label.abs(), torch.tensor(KNOWN_LABELS, device=self.label.device))
        if unknown.any():
            code = int(self.label[unknown][0])
            raise ValueError(
                f"TruthObjects.label holds unsupported code {code}; accepted |codes| are {KNOWN_LABELS}. "
                "Decay tops, W/Z/H and taus before the detector (memzoo.simulation.decays)."
            )

    def __len__(self) -> int:
        return self.p.shape[0]


def _compact(p: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> TruthObjects:
    """Move present objects to the front (keeping their order) and trim the padding."""
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices
    n = int(mask.sum(1).max()) if mask.numel() else 0
    order = order[:, :n]
    p = torch.gather(p, 1, order[..., None].expand(-1, -1, 4))
    mask = torch.gather(mask, 1, order)
    return TruthObjects(torch.where(mask[..., None], p, 0.0), torch.gather(label, 1, order) * mask, mask)


def _safe(p: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace padding by a harmless unit vector along x, so η and φ stay finite there."""
    dummy = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=p.dtype, device=p.device)
    return torch.where(mask[..., None], p, dummy)


def merge_partons(p: torch.Tensor, label: torch.Tensor, is_parton: torch.Tensor, dr_max: float) -> tuple:
    """Merge partons closer than ``dr_max`` into jets, closest pair first (Cambridge/Aachen-like).

    Args:
        p: ``(B, N, 4)`` GeV; label: ``(B, N)``; is_parton: ``(B, N)`` bool, which objects may merge.
        dr_max: merging radius ΔR.

    Returns:
        ``(p, label, alive)``: merged momenta (four-vector sums, stored at the lower index),
        labels (flavour by priority b > c > s > d/u > gluon, so b wins when any b merges), and
        ``(B, N)`` bool of the objects still present. One merge per event per pass; at most N
        passes, never a loop over events.
    """
    p, label, alive = p.clone(), label.clone(), is_parton.clone()
    n = p.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=p.device)
    rows_all = torch.arange(p.shape[0], device=p.device)
    for _ in range(max(n - 1, 0)):
        safe = _safe(p, alive)
        dr = delta_r(safe[:, :, None], safe[:, None, :])
        pair = alive[:, :, None] & alive[:, None, :] & ~eye
        best, flat = torch.where(pair, dr, torch.inf).flatten(1).min(1)
        merge = best < dr_max
        if not merge.any():
            break
        i, j = flat // n, flat % n
        lo, hi, rows = torch.minimum(i, j)[merge], torch.maximum(i, j)[merge], rows_all[merge]
        p[rows, lo] = p[rows, lo] + p[rows, hi]
        key_lo = torch.where(label[rows, lo] == 21, 0, label[rows, lo])
        key_hi = torch.where(label[rows, hi] == 21, 0, label[rows, hi])
        label[rows, lo] = torch.where(key_hi > key_lo, label[rows, hi], label[rows, lo])
        alive[rows, hi] = False
    return p, label, alive


def truth_from_partons(record: EventRecord, config: DetectorConfig | None = None) -> TruthObjects:
    """Parton-level truth: the status-1 particles, quarks and gluons as jets.

    Partons closer than ``config.jet_merge_dr`` are merged (see :func:`merge_partons`); jets carry
    |PDG| as flavour, leptons keep their signed PDG code, neutrinos are kept for missing pT.

    Args:
        record: ``(B, M)`` event record after decays.
        config: supplies ``jet_merge_dr`` (default :class:`DetectorConfig`).

    Returns:
        TruthObjects ``(B, N)`` with N the largest number of objects in an event.
    """
    if config is None:
        from memzoo.simulation.detector import DetectorConfig  # detector imports this module

        config = DetectorConfig()
    final = record.final
    p = record.p.to(torch.float64)
    is_parton = final & torch.isin(record.pdg.abs(), torch.tensor(PARTONS, device=p.device))
    label = torch.where(is_parton, record.pdg.abs(), record.pdg)
    p, label, merged_alive = merge_partons(p, label, is_parton, config.jet_merge_dr)
    return _compact(p, label, final & (merged_alive | ~is_parton))


def extra_jets(
    n_events: int,
    config: DetectorConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> TruthObjects:
    """Extra ISR/FSR gluon jets: Poisson(``extra_jet_mean``) per event, pT ∝ pT^-index above pt_min.

    η is flat in ``±extra_jet_eta_max``, φ uniform, the jets massless. The hard system does not
    recoil (a parametric stand-in for a shower, not momentum conserving).

    Returns:
        TruthObjects ``(n_events, K)`` with label 21, K the largest multiplicity drawn.
    """
    kw = {"dtype": torch.float64, "device": device}
    counts = torch.poisson(torch.full((n_events,), config.extra_jet_mean, **kw), generator=generator)
    k = int(counts.max()) if n_events else 0
    u = torch.rand((3, n_events, k), generator=generator, **kw)
    # Inverse CDF of dN/dpT ∝ pT^-n on [pt_min, ∞): pT = pt_min · (1 - u)^(-1/(n-1)).
    pt = config.extra_jet_pt_min * (1.0 - u[0]) ** (-1.0 / (config.extra_jet_pt_index - 1.0))
    eta = config.extra_jet_eta_max * (2.0 * u[1] - 1.0)
    phi = math.pi * (2.0 * u[2] - 1.0)
    p = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)], -1)
    mask = torch.arange(k, device=counts.device) < counts[:, None]
    return TruthObjects(p, torch.full((n_events, k), 21, dtype=torch.int64, device=counts.device), mask)
