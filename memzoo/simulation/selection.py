"""Reco-level event selections of the memzoo analyses, and the charged reco container.

The tHj selections follow the reconstruction cuts of Heimel's thesis (2024, Sec. 6.1 and
Fig. 6.15, channels 6.4 and 6.5/6.6): two photons (H → γγ), exactly one b-tagged jet (t → bW)
and either three further jets (hadronic W) or a muon and one further jet (leptonic W), all
within the tracker, |η| < 2.4. The Drell-Yan selection asks for an opposite-sign muon pair as
in the thesis' Z → μμ + jets data set (Ch. 4).

Particles carries no charge, so :func:`~memzoo.simulation.detector.ParametricDetector.reconstruct`
returns :class:`RecoParticles`: a :class:`~memzoo.events.Particles` with one extra ``charge``
tensor (±1 for reconstructed leptons, 0 for everything else). Kind codes stay those of
:data:`memzoo.events.KINDS` (13 for μ⁺ and μ⁻ alike), so every consumer of Particles works
unchanged, and the charge is a separate column for datasets to store next to ``kind``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from memzoo.events import Particles, pseudorapidity, transverse_momentum

__all__ = ["SELECTIONS", "RecoParticles", "count_objects", "select"]


@dataclass(frozen=True, repr=False)  # keep Particles' short repr
class RecoParticles(Particles):
    """Reconstructed objects with their electric charge.

    Attributes:
        p, kind, mask: as in :class:`~memzoo.events.Particles`.
        charge: ``(B, N)`` int64 charge in units of e: ±1 for muons and electrons, 0 for
            photons, jets, missing pT and padding. ``None`` when unknown (e.g. data read from
            a file without a charge column); selections that need it then raise.

    ``Particles.cat`` returns plain Particles (it drops the charge); indexing and ``to`` keep it.
    """

    charge: torch.Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.charge is not None and tuple(self.charge.shape) != tuple(self.kind.shape):
            raise ValueError(
                f"RecoParticles.charge has shape {tuple(self.charge.shape)} but kind has "
                f"{tuple(self.kind.shape)}: charge must be (B, N), one entry per object."
            )

    def __getitem__(self, rows: Any) -> RecoParticles:
        """Select events (rows) by index, slice or boolean mask; keeps the batch axis."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        charge = None if self.charge is None else self.charge[rows]
        return RecoParticles(self.p[rows], self.kind[rows], self.mask[rows], validate=False, charge=charge)

    def to(self, *args: Any, **kwargs: Any) -> RecoParticles:
        """Move to a device and/or cast momenta (kind, mask and charge keep their dtypes)."""
        p = self.p.to(*args, **kwargs)
        charge = None if self.charge is None else self.charge.to(p.device)
        return RecoParticles(p, self.kind.to(p.device), self.mask.to(p.device), validate=False, charge=charge)


# The thesis' cuts (Sec. 6.1): photons and muons pT > 20 GeV, jets pT > 25 GeV, all |η| < 2.4.
LEPTON_PHOTON_PT_MIN = 20.0
JET_PT_MIN = 25.0
ETA_MAX = 2.4


def count_objects(
    reco: Particles,
    kind: int,
    pt_min: float,
    eta_max: float,
    charge: torch.Tensor | None = None,
    sign: int | None = None,
) -> torch.Tensor:
    """``(B,)`` number of present objects of one kind with pT > ``pt_min`` (GeV) and |η| < ``eta_max``.

    With ``sign`` (+1 or -1) only objects of that charge are counted; ``charge (B, N)`` is then required.
    """
    pt = transverse_momentum(reco.p)
    # Padding may hold zero vectors (η undefined); the mask decides, never the NaN.
    eta = torch.where(reco.mask & (pt > 0), pseudorapidity(reco.p), torch.inf)
    chosen = reco.mask & (reco.kind == kind) & (pt > pt_min) & (eta.abs() < eta_max)
    if sign is not None:
        chosen = chosen & (charge == sign)
    return chosen.sum(-1)


def _thj_common(reco: Particles) -> torch.Tensor:
    photons = count_objects(reco, 22, LEPTON_PHOTON_PT_MIN, ETA_MAX)
    b_jets = count_objects(reco, 5, JET_PT_MIN, ETA_MAX)
    return (photons >= 2) & (b_jets == 1)


def _thj_hadronic(reco: Particles, charge: torch.Tensor | None) -> torch.Tensor:
    # "Further" jets are untagged: a second tagged jet inside the cuts already fails b_jets == 1.
    return _thj_common(reco) & (count_objects(reco, 1, JET_PT_MIN, ETA_MAX) >= 3)


def _thj_leptonic(reco: Particles, charge: torch.Tensor | None) -> torch.Tensor:
    muons = count_objects(reco, 13, LEPTON_PHOTON_PT_MIN, ETA_MAX)
    return _thj_common(reco) & (muons >= 1) & (count_objects(reco, 1, JET_PT_MIN, ETA_MAX) >= 1)


def _drell_yan(reco: Particles, charge: torch.Tensor | None) -> torch.Tensor:
    if charge is None:
        raise ValueError(
            "The 'drell-yan' selection needs muon charges: pass RecoParticles from "
            "ParametricDetector.reconstruct, or charge=(B, N) tensor to select()."
        )
    plus = count_objects(reco, 13, LEPTON_PHOTON_PT_MIN, ETA_MAX, charge, +1)
    minus = count_objects(reco, 13, LEPTON_PHOTON_PT_MIN, ETA_MAX, charge, -1)
    # Exactly the Z candidate: one μ⁺ and one μ⁻, so the muon pairing is never ambiguous.
    return (plus == 1) & (minus == 1)


#: Selection name -> (description, function of (reco, charge) returning (B,) bool).
SELECTIONS: dict[str, tuple[str, Callable[[Particles, torch.Tensor | None], torch.Tensor]]] = {
    "thj-hadronic": (
        ">= 2 photons pT > 20 GeV; exactly 1 b-tagged jet pT > 25 GeV; >= 3 untagged jets pT > 25 GeV; |eta| < 2.4",
        _thj_hadronic,
    ),
    "thj-leptonic": (
        ">= 2 photons pT > 20 GeV; exactly 1 b-tagged jet pT > 25 GeV; >= 1 muon pT > 20 GeV; "
        ">= 1 untagged jet pT > 25 GeV; |eta| < 2.4",
        _thj_leptonic,
    ),
    "drell-yan": ("exactly one mu+ and one mu- with pT > 20 GeV, |eta| < 2.4", _drell_yan),
}


def select(reco: Particles, selection: str, charge: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a named selection to reconstructed events.

    Args:
        reco: ``(B, N)`` reconstructed objects (kinds as in :data:`memzoo.events.KINDS`).
        selection: one of :data:`SELECTIONS` (``"thj-hadronic"``, ``"thj-leptonic"``, ``"drell-yan"``).
        charge: ``(B, N)`` object charges; defaults to ``reco.charge`` for :class:`RecoParticles`.

    Returns:
        ``(B,)`` bool, true for events that pass.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"Unknown selection {selection!r}. Must be one of {sorted(SELECTIONS)}.")
    if charge is None:
        charge = getattr(reco, "charge", None)
    return SELECTIONS[selection][1](reco, charge)
