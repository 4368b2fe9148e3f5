"""A batched, LHE-like event record: the interface between generation, decays, shower and detector.

Every event is a padded list of particles with the Les Houches meaning of its columns
(status -1 incoming, 2 intermediate resonance, 1 final state; mothers as 1-based row numbers,
0 for none; colour tags ≥ 501, 0 for none). Hard-process generation fills the incoming partons
and the hard final state, :mod:`memzoo.simulation.decays` appends the decay products (marking
decayed particles status 2), the parametric detector reads the status-1 particles, and the
Pythia chain writes the whole record as LHE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["EventRecord"]

INCOMING, RESONANCE, FINAL = -1, 2, 1


@dataclass
class EventRecord:
    """B events of at most M particles each.

    Attributes:
        p: ``(B, M, 4)`` float64 four-momenta (E, px, py, pz) in GeV (lab frame).
        pdg: ``(B, M)`` int64 PDG codes (0 in padding).
        status: ``(B, M)`` int64 LHE status: -1 incoming, 2 decayed resonance, 1 final (0 padding).
        mothers: ``(B, M, 2)`` int64 1-based row numbers of the first and last mother (0 = none),
            as in LHE.
        colour: ``(B, M, 2)`` int64 colour and anticolour tags (≥ 501, 0 = none), as in LHE.
        mask: ``(B, M)`` bool, true for real particles.
        weight: ``(B,)`` float64 event weight (1 for unweighted events).
        scale: ``(B,)`` float64 factorisation scale in GeV (LHE SCALUP).
    """

    p: torch.Tensor
    pdg: torch.Tensor
    status: torch.Tensor
    mothers: torch.Tensor
    colour: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor
    scale: torch.Tensor

    def __post_init__(self) -> None:
        b, m = self.pdg.shape
        expected = {
            "p": (b, m, 4),
            "status": (b, m),
            "mothers": (b, m, 2),
            "colour": (b, m, 2),
            "mask": (b, m),
            "weight": (b,),
            "scale": (b,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"EventRecord.{name} must have shape {shape} (pdg is {(b, m)}), got {got}.")

    def __len__(self) -> int:
        return self.pdg.shape[0]

    @property
    def final(self) -> torch.Tensor:
        """``(B, M)`` bool: final-state particles (status 1)."""
        return self.mask & (self.status == FINAL)

    def __getitem__(self, rows) -> EventRecord:
        """Select events by index, slice or boolean mask (keeps the batch axis)."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        return EventRecord(
            self.p[rows],
            self.pdg[rows],
            self.status[rows],
            self.mothers[rows],
            self.colour[rows],
            self.mask[rows],
            self.weight[rows],
            self.scale[rows],
        )

    def momentum_imbalance(self) -> torch.Tensor:
        """``(B, 4)`` Σ p(final) − Σ p(incoming): zero for a complete record."""
        final = torch.where(self.final[..., None], self.p, 0.0).sum(1)
        incoming = torch.where((self.mask & (self.status == INCOMING))[..., None], self.p, 0.0).sum(1)
        return final - incoming
