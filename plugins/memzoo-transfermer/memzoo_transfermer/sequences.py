"""Hard and reco particle sequences of the Transfermer (thesis Sec. 6.5.2, eq. 6.45).

Hard side: the process turns hard coordinates into on-shell momenta (``momenta_from_coords``),
one token per hard particle labelled by its PDG code. Tokens are put in a canonical order
(ascending PDG code, then descending pT), and every azimuth — hard and reco — is measured from
the first canonical hard particle, φ_rel = wrap(φ − φ_ref). Consequences, both exact:

* the density is invariant under permutations of the hard particles (they form a set labelled
  by kind; the transformer encoder is permutation-equivariant and cross-attention sums over it);
* it is invariant under a common rotation of hard and reco azimuths, a symmetry of pp physics.
  A shift of φ has unit Jacobian, so the density stays per dφ.

Reco side: the modelled objects of an event form the sequence ``objects`` (fixed base layout,
slots of one kind in descending pT or, with ``charge_order``, ascending charge) followed by up to
``max_extra`` additional objects of kind ``extra`` (ISR/FSR jets), in descending pT. Objects of
other kinds are ignored, as in the cINN. An event is in the support when every base kind has
exactly its slot count and the extra kind at most ``max_extra`` more.

Ordered slots: the density lives on pT-ordered sequences, so the pT of a slot that follows an
earlier slot of its kind is modelled through f = log(log pT_prev − log pT), which maps
pT ∈ (0, pT_prev) onto ℝ. Every sample is then ordered and the density is normalised over
events (sets of objects), not over all sequences, whatever the training reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memzoo.events import Particles, transverse_momentum, wrap_phi

__all__ = ["KIND_NAMES", "RecoLayout", "canonical_hard", "reference_azimuth"]

#: Object names accepted in a layout and their memzoo kind codes (as in memzoo-cinn).
KIND_NAMES: dict[str, int] = {
    "mu": 13, "muon": 13, "e": 11, "electron": 11, "photon": 22, "gamma": 22,
    "jet": 1, "j": 1, "bjet": 5, "b": 5, "met": 12,
}  # fmt: skip
#: Mass (GeV) given to sampled objects whose mass is not modelled.
FIXED_MASS = {13: 0.10566, 11: 0.000511, 22: 0.0, 12: 0.0}
JETS = (1, 5)
CHARGED = (11, 13)


def canonical_hard(p: torch.Tensor, kind: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sort hard particles by (PDG code ascending, pT descending), padding last.

    Args:
        p: ``(B, M, 4)`` momenta; kind: ``(B, M)`` PDG codes; mask: ``(B, M)`` bool.

    Returns:
        ``p, kind, mask`` in canonical order (same shapes).
    """
    pt = transverse_momentum(p.to(torch.float64))
    # float64 key: kind dominates (codes are integers), pT in [0, 1) breaks ties
    key = kind.to(torch.float64) + 0.5 * (1 - torch.tanh(pt / 1000.0))
    key = torch.where(mask, key, math.inf)
    order = torch.argsort(key, dim=1, stable=True)
    return (
        torch.gather(p, 1, order[..., None].expand(-1, -1, 4)),
        torch.gather(kind, 1, order),
        torch.gather(mask, 1, order),
    )


def reference_azimuth(p: torch.Tensor) -> torch.Tensor:
    """``(B,)`` φ of the first particle of canonically ordered hard momenta ``p (B, M, 4)``."""
    return torch.atan2(p[:, 0, 2], p[:, 0, 1]).to(torch.float64)


def relative_azimuth(phi: torch.Tensor, phi_ref: torch.Tensor) -> torch.Tensor:
    """wrap(φ − φ_ref), broadcasting ``phi_ref (B,)`` over trailing object axes."""
    return wrap_phi(phi - phi_ref.reshape(-1, *([1] * (phi.ndim - 1))))


@dataclass(frozen=True)
class RecoLayout:
    """The reco sequence: a base layout plus optional extra objects of one kind.

    Args:
        objects: base layout, names from :data:`KIND_NAMES` (``"photon"``, ``"jet"``, ...).
        extra: name of the kind of additional objects (``None``: fixed multiplicity).
        max_extra: largest number of additional objects modelled.
        charge_order: fill same-kind base slots by ascending charge (needs charges).
    """

    objects: tuple[str, ...]
    extra: str | None = None
    max_extra: int = 0
    charge_order: bool = False

    def __post_init__(self) -> None:
        names = [*self.objects, *([self.extra] if self.extra is not None else [])]
        unknown = [o for o in names if o not in KIND_NAMES]
        if not self.objects or unknown:
            raise ValueError(f"objects and extra must be names from {sorted(KIND_NAMES)}, got {names}.")
        if self.max_extra < 0 or (self.max_extra > 0 and self.extra is None):
            raise ValueError(f"max_extra = {self.max_extra} needs extra = <kind name> and must be >= 0.")

    @property
    def base_kinds(self) -> list[int]:
        return [KIND_NAMES[o] for o in self.objects]

    @property
    def extra_kind(self) -> int | None:
        return KIND_NAMES[self.extra] if self.extra is not None else None

    @property
    def n_base(self) -> int:
        return len(self.objects)

    @property
    def n_max(self) -> int:
        return self.n_base + self.max_extra

    def kinds(self, n_extra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, n_max)`` kind of every sequence slot for ``n_extra (B,)`` extra objects, and the slot mask."""
        b, dev = len(n_extra), n_extra.device
        base = torch.tensor(self.base_kinds, device=dev).expand(b, -1)
        if self.max_extra == 0:
            return base, torch.ones(b, self.n_base, dtype=torch.bool, device=dev)
        slot = torch.arange(self.max_extra, device=dev).expand(b, -1)
        present = slot < n_extra[:, None]
        extra = torch.where(present, self.extra_kind, 0)
        ones = torch.ones(b, self.n_base, dtype=torch.bool, device=dev)
        return torch.cat([base, extra], 1), torch.cat([ones, present], 1)

    def previous_same_kind(self) -> list[int]:
        """Per slot, the index of the closest earlier slot it is pT-ordered after (−1: none).

        Slots of one kind are in descending pT, except charged leptons with ``charge_order``.
        """
        kinds = [*self.base_kinds, *([self.extra_kind] * self.max_extra)]
        out = []
        for i, k in enumerate(kinds):
            earlier = [j for j in range(i) if kinds[j] == k]
            ordered = earlier and not (self.charge_order and k in CHARGED)
            out.append(earlier[-1] if ordered else -1)
        return out

    def select(self, reco: Particles, charge: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The reco sequence of each event.

        Returns:
            ``p (B, n_max, 4)`` float64 momenta (a harmless placeholder in empty slots), ``kind
            (B, n_max)``, ``mask (B, n_max)``, ``n_extra (B,)`` and ``valid (B,)`` (in the support).
        """
        charge = getattr(reco, "charge", None) if charge is None else charge
        if self.charge_order and charge is None:
            raise ValueError("charge_order=True needs charges: pass RecoParticles with .charge or charge=(B, N).")
        b, n = reco.kind.shape
        dev = reco.p.device
        position = torch.arange(n, device=dev).expand(b, n)
        pt = transverse_momentum(reco.p.to(torch.float64))
        index = torch.zeros(b, self.n_max, dtype=torch.long, device=dev)
        valid = torch.ones(b, dtype=torch.bool, device=dev)
        n_extra = torch.zeros(b, dtype=torch.long, device=dev)
        kinds = list(dict.fromkeys([*self.base_kinds, *([self.extra_kind] if self.max_extra else [])]))
        for kind in kinds:
            slots = [i for i, k in enumerate(self.base_kinds) if k == kind]
            is_kind = reco.mask & (reco.kind == kind)
            count = is_kind.sum(1)
            if self.charge_order and kind in CHARGED:
                key = position + n * (charge.to(dev).sign() + 1)
            else:  # descending pT, stable in stored order
                key = torch.argsort(torch.argsort(-pt, dim=1, stable=True), dim=1)
            order = torch.argsort(torch.where(is_kind, key, 4 * n), dim=1, stable=True)
            order = torch.cat([order, order.new_zeros(b, max(0, self.n_max - n))], 1)
            index[:, slots] = order[:, : len(slots)]
            if kind == self.extra_kind and self.max_extra > 0:
                extra = count - len(slots)
                valid &= (extra >= 0) & (extra <= self.max_extra)
                n_extra = extra.clamp(0, self.max_extra)
                index[:, self.n_base :] = order[:, len(slots) : len(slots) + self.max_extra]
            else:
                valid &= count == len(slots)
        n_extra = torch.where(valid, n_extra, 0)
        kind, mask = self.kinds(n_extra)
        p = torch.gather(reco.p.to(torch.float64), 1, index[..., None].expand(-1, -1, 4))
        safe = p.new_tensor([2.0, 1.0, 1.0, 0.0])  # harmless vector for empty slots and invalid events
        p = torch.where((mask & valid[:, None])[..., None], p, safe)
        return p, kind, mask, n_extra, valid
