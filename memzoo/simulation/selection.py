"""Reco-level event selections of the memzoo analyses, and the charged reco container.

The tHj selections follow the reconstruction cuts of Heimel's thesis (2024, Sec. 6.1 and
Fig. 6.15, channels 6.4 and 6.5/6.6): two photons (H → γγ), exactly one b-tagged jet (t → bW)
and either three further jets (hadronic W) or a muon and one further jet (leptonic W), all
within the tracker, |η| < 2.4. The Drell-Yan selection asks for an opposite-sign muon pair as
in the thesis' Z → μμ + jets data set (Ch. 4).

The detector returns :class:`memzoo.events.RecoParticles` (Particles plus a ``charge`` tensor;
re-exported here), which the Drell-Yan selection needs for the opposite-sign requirement.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from memzoo.events import Particles, RecoParticles, pseudorapidity, transverse_momentum

__all__ = ["SELECTIONS", "RecoParticles", "count_objects", "select"]


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
