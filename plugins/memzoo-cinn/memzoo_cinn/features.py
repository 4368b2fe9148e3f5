"""Reco objects ↔ flow features for the cINNs, with every log-Jacobian (thesis Sec. 6.3).

A :class:`Layout` is the fixed list of reco objects a cINN models, e.g. ``("mu", "mu")``. Per
object the features are, in the protocol measure (:func:`memzoo.protocols.reco_measure_dims`):

* massless objects (μ, e, γ): ``(log pT, η, a)``; jets (kinds 1, 5): ``(log pT, η, a, log(m + 1))``;
  missing pT (kind 12): ``(log pT, a)``;
* ``a = atanh(Δφ / π)`` with ``Δφ = wrap(φ − φ_ref)`` ∈ (−π, π): the azimuth relative to a
  reference angle (a hard coordinate for the transfer, a reco object for the sampler). The
  atanh maps the circle, cut opposite the reference, onto the real line, so a flow on ℝ gives a
  density that is exactly normalised over φ ∈ [−π, π) and samples never need wrapping. The cut
  lies where the density is negligible for resolution-like Δφ. Each slot may have its own
  reference (the Transfer-cINN adds a fitted per-slot offset, so that a μ⁺ back to back with the
  hard μ⁻ is measured from φ⁻ + π, not from the cut).

Conversions use :mod:`memzoo.preprocessing` (``PtEtaPhiM`` for coordinates, ``LogPt`` and
``LogMass`` with their log-Jacobians). ``PtEtaPhiM``'s own Jacobian is *not* added: the protocol
density is already per dpT dη dφ (dm), so only the maps from those coordinates count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from memzoo.events import Particles, RecoParticles, from_ptetaphim, wrap_phi
from memzoo.preprocessing import LogMass, LogPt, PtEtaPhiM, Standardise

__all__ = ["KIND_NAMES", "Layout", "azimuth_from_feature", "circular_mean", "feature_from_azimuth", "standardise"]

#: Object names accepted in a layout and their memzoo kind codes.
KIND_NAMES: dict[str, int] = {
    "mu": 13, "muon": 13, "e": 11, "electron": 11, "photon": 22, "gamma": 22,
    "jet": 1, "j": 1, "bjet": 5, "b": 5, "met": 12,
}  # fmt: skip
#: Mass (GeV) given to sampled objects whose mass is not modelled.
_MASS = {13: 0.10566, 11: 0.000511, 22: 0.0, 12: 0.0}
_JETS = (1, 5)
_PI = math.pi


def feature_from_azimuth(phi: torch.Tensor, phi_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a = atanh(wrap(φ − φ_ref) / π)`` and ``log |da/dφ|``, same shapes (float64)."""
    r = (wrap_phi(phi - phi_ref) / _PI).clamp(-1 + 1e-12, 1 - 1e-12)
    return torch.atanh(r), -math.log(_PI) - torch.log1p(-(r**2))


def _per_slot(phi_ref: torch.Tensor) -> torch.Tensor:
    """``(B,)`` → ``(B, 1)`` (one reference for every slot); ``(B, S)`` unchanged."""
    return phi_ref[:, None] if phi_ref.ndim == 1 else phi_ref


def circular_mean(delta: torch.Tensor) -> torch.Tensor:
    """Circular mean of angles ``delta (B, S)`` over the events, ``(S,)`` in (−π, π]."""
    return torch.atan2(delta.sin().mean(0), delta.cos().mean(0))


def azimuth_from_feature(a: torch.Tensor, phi_ref: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`feature_from_azimuth`: φ = wrap(φ_ref + π tanh a)."""
    return wrap_phi(phi_ref + _PI * torch.tanh(a))


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """``(x − mean) / std`` (or its inverse) with :class:`memzoo.preprocessing.Standardise`."""
    step = Standardise()
    step.load_tensors({"mean": mean, "std": std})
    return step.inverse(x) if inverse else step.forward(x)[0]


@dataclass(frozen=True)
class Layout:
    """The fixed reco objects a cINN models, in slot order.

    Args:
        objects: names from :data:`KIND_NAMES` (``"mu"``, ``"jet"``, ``"met"``, ...).
        charge_order: fill slots of one kind by ascending charge (μ⁻ before μ⁺), reading
            ``RecoParticles.charge``; otherwise in stored (pT-descending) order.
    """

    objects: tuple[str, ...]
    charge_order: bool = False

    def __post_init__(self) -> None:
        unknown = [o for o in self.objects if o not in KIND_NAMES]
        if not self.objects or unknown:
            raise ValueError(f"objects must be a non-empty list of {sorted(KIND_NAMES)}, got {list(self.objects)}.")

    @property
    def kinds(self) -> list[int]:
        return [KIND_NAMES[o] for o in self.objects]

    @property
    def columns(self) -> list[list[int]]:
        """Per slot, the (pT, η, φ, m) columns that are features."""
        return [[0, 2] if k == 12 else [0, 1, 2, 3] if k in _JETS else [0, 1, 2] for k in self.kinds]

    @property
    def n_features(self) -> int:
        return sum(len(c) for c in self.columns)

    def select(self, reco: Particles, charge: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The layout's objects: ``(p (B, S, 4) float64, valid (B,))``.

        An event is valid when it has exactly as many present objects of each layout kind as the
        layout has slots; objects of other kinds are ignored.
        """
        charge = getattr(reco, "charge", None) if charge is None else charge
        if self.charge_order and charge is None:
            raise ValueError("charge_order=True needs charges: pass RecoParticles with .charge or charge=(B, N).")
        b, n = reco.kind.shape
        position = torch.arange(n, device=reco.p.device).expand(b, n)
        valid = torch.ones(b, dtype=torch.bool, device=reco.p.device)
        index = torch.zeros(b, len(self.kinds), dtype=torch.long, device=reco.p.device)
        for kind in dict.fromkeys(self.kinds):
            slots = [i for i, k in enumerate(self.kinds) if k == kind]
            is_kind = reco.mask & (reco.kind == kind)
            key = position + (n * (charge.to(position.device).sign() + 1) if self.charge_order else 0)
            order = torch.argsort(torch.where(is_kind, key, 4 * n), dim=1, stable=True)
            valid &= is_kind.sum(1) == len(slots)
            index[:, slots] = order[:, : len(slots)] if len(slots) <= n else 0
        p = torch.gather(reco.p.to(torch.float64), 1, index[..., None].expand(-1, -1, 4))
        safe = p.new_tensor([2.0, 1.0, 1.0, 0.0])  # a harmless vector for invalid events
        return torch.where(valid[:, None, None], p, safe), valid

    def features(
        self,
        reco: Particles,
        phi_ref: torch.Tensor,
        charge: torch.Tensor | None = None,
        shift: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reco objects → unstandardised features.

        Args:
            reco: B reco events.
            phi_ref: ``(B,)`` reference azimuth in rad, or ``(B, S)`` one per slot.
            shift: optional ``(B, S, 2)`` references subtracted from (log pT, η) of each slot,
                e.g. the matching hard particle's: the features become log(pT/pT_ref) and
                η − η_ref (shifts, so the Jacobian is unchanged).

        Returns:
            ``x (B, F)`` float64, ``log_det (B,)`` = log |∂x/∂(pT, η, φ, m)| summed over the
            modelled coordinates, ``valid (B,)``.
        """
        p, valid = self.select(reco, charge)
        y = PtEtaPhiM(measure="m").forward(p)[0]  # coordinates only (see module docstring)
        y, log_det = LogPt().forward(y)
        jets = torch.tensor([k in _JETS for k in self.kinds], device=y.device).expand(len(y), -1)
        y, log_mass = LogMass(offset=1.0).forward(y, jets)
        if shift is not None:
            y = torch.cat([y[..., :2] - shift.to(y), y[..., 2:]], -1)
        a, log_a = feature_from_azimuth(y[..., 2], _per_slot(phi_ref.to(y)))
        y = torch.cat([y[..., :2], a[..., None], y[..., 3:]], -1)
        log_det = log_det + log_mass + log_a.sum(-1)
        x = torch.cat([y[:, i, cols] for i, cols in enumerate(self.columns)], -1)
        return x, log_det, valid

    def particles(self, x: torch.Tensor, phi_ref: torch.Tensor, shift: torch.Tensor | None = None) -> Particles:
        """Inverse of :meth:`features`: ``x (B, F)`` → B events with the layout's kinds (float64).

        With ``charge_order`` the result carries charges: per kind, the first half of its slots
        −1, the last half +1 (a middle slot of an odd count 0).
        """
        x = x.to(torch.float64)
        b, s = len(x), len(self.kinds)
        y = torch.zeros(b, s, 4, dtype=x.dtype, device=x.device)
        start = 0
        for i, cols in enumerate(self.columns):
            y[:, i, cols] = x[:, start : start + len(cols)]
            start += len(cols)
        if shift is not None:
            y[..., :2] = y[..., :2] + shift.to(y)
        jets = torch.tensor([k in _JETS for k in self.kinds], device=x.device).expand(b, -1)
        y = LogPt().inverse(LogMass(offset=1.0).inverse(y, jets))
        mass = torch.tensor([_MASS.get(k, 0.0) for k in self.kinds], dtype=x.dtype, device=x.device)
        y[..., 3] = torch.where(jets, y[..., 3].clamp(min=0.0), mass)
        y[..., 2] = azimuth_from_feature(y[..., 2], _per_slot(phi_ref.to(x)))
        kind = torch.tensor(self.kinds, device=x.device).expand(b, -1)
        mask = torch.ones(b, s, dtype=torch.bool, device=x.device)
        if not self.charge_order:
            return Particles(from_ptetaphim(y), kind, mask)
        charge = torch.zeros(s, dtype=torch.long)
        for k in set(self.kinds):
            slots = [i for i, kk in enumerate(self.kinds) if kk == k]
            half = len(slots) // 2
            charge[slots[:half]], charge[slots[len(slots) - half :]] = -1, 1
        return RecoParticles(from_ptetaphim(y), kind, mask, validate=False, charge=charge.to(x.device).expand(b, -1))
