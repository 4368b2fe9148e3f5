"""Boost- and φ-invariant event features for the regression surrogate (Bury & Delaere, Sec. 3).

Following Bury & Delaere (JHEP 04 (2021) 020, arXiv:2008.10949, Sec. 3) the network sees, per
reco object, pT, η and the azimuth *relative to a reference object* (the first slot) instead of
four-momenta: Δη between objects is (nearly) invariant under longitudinal boosts and the detector
is symmetric in φ, so the network need not learn either. DeepMEM (CHEP 2023) uses the same
inputs (pT, η, φ of leptons and jets; magnitude and φ of missing pT) and leaves masses out.

Per slot of a fixed list of objects (e.g. ``("mu", "mu")``), in this order:

* ``present``: 1 where the event has the object, else 0 (its other features are then 0);
* ``log pT`` (GeV); ``η`` (not for missing pT, kind 12);
* the azimuth relative to slot 0, Δφ = wrap(φ − φ_0): as ``(cos Δφ, sin Δφ)`` (default
  ``phi_encoding="cossin"``, continuous where back-to-back objects sit at Δφ ≈ ±π) or as Δφ
  itself (``"delta"``, the paper's choice). Slot 0 has no azimuth feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memzoo.events import Particles, wrap_phi
from memzoo.preprocessing import LogPt, PtEtaPhiM

__all__ = ["KIND_NAMES", "EventFeatures"]

#: Object names accepted in ``objects`` and their memzoo kind codes.
KIND_NAMES: dict[str, int] = {
    "mu": 13, "muon": 13, "e": 11, "electron": 11, "photon": 22, "gamma": 22,
    "jet": 1, "j": 1, "bjet": 5, "b": 5, "met": 12,
}  # fmt: skip
PHI_ENCODINGS = ("cossin", "delta")


@dataclass(frozen=True)
class EventFeatures:
    """Reco events → a fixed-length feature row per event.

    Args:
        objects: slot list by name (:data:`KIND_NAMES`); each slot takes the next object of its
            kind in stored (pT-descending) order.
        charge_order: within a kind, negative charges first (μ⁻ before μ⁺), from
            ``RecoParticles.charge`` or the ``charge`` argument.
        phi_encoding: ``"cossin"`` or ``"delta"`` (module docstring).

    Example:
        >>> from memzoo.events import from_ptetaphim
        >>> x = torch.tensor([[[50.0, 0.3, 1.0, 0.1], [40.0, -0.2, -2.0, 0.1]]], dtype=torch.float64)
        >>> reco = Particles(from_ptetaphim(x), torch.tensor([[13, 13]]), torch.ones(1, 2, dtype=torch.bool))
        >>> EventFeatures(("mu", "mu")).names
        ['present_0', 'log_pt_0', 'eta_0', 'present_1', 'log_pt_1', 'eta_1', 'cos_dphi_1', 'sin_dphi_1']
        >>> EventFeatures(("mu", "mu"))(reco).shape
        torch.Size([1, 8])
    """

    objects: tuple[str, ...]
    charge_order: bool = False
    phi_encoding: str = "cossin"

    def __post_init__(self) -> None:
        unknown = [o for o in self.objects if o not in KIND_NAMES]
        if not self.objects or unknown:
            raise ValueError(f"objects must be a non-empty list of {sorted(KIND_NAMES)}, got {list(self.objects)}.")
        if self.phi_encoding not in PHI_ENCODINGS:
            raise ValueError(f"phi_encoding must be one of {list(PHI_ENCODINGS)}, got {self.phi_encoding!r}.")

    @property
    def kinds(self) -> list[int]:
        return [KIND_NAMES[o] for o in self.objects]

    @property
    def names(self) -> list[str]:
        """Feature names in column order."""
        out = []
        for i, kind in enumerate(self.kinds):
            out += [f"present_{i}", f"log_pt_{i}"] + ([] if kind == 12 else [f"eta_{i}"])
            if i > 0:
                out += [f"cos_dphi_{i}", f"sin_dphi_{i}"] if self.phi_encoding == "cossin" else [f"dphi_{i}"]
        return out

    @property
    def n_features(self) -> int:
        return len(self.names)

    def select(self, reco: Particles, charge: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The slots' objects: ``p (B, S, 4)`` float64 and ``present (B, S)`` bool."""
        charge = getattr(reco, "charge", None) if charge is None else charge
        if self.charge_order and charge is None:
            raise ValueError("charge_order=True needs charges: pass RecoParticles with .charge or charge=(B, N).")
        b, n = reco.kind.shape
        dev = reco.p.device
        position = torch.arange(n, device=dev).expand(b, n)
        index = torch.zeros(b, len(self.kinds), dtype=torch.long, device=dev)
        present = torch.zeros(b, len(self.kinds), dtype=torch.bool, device=dev)
        for kind in dict.fromkeys(self.kinds):
            slots = [i for i, k in enumerate(self.kinds) if k == kind]
            is_kind = reco.mask & (reco.kind == kind)
            key = position + (n * (charge.to(dev).sign() + 1) if self.charge_order else 0)
            order = torch.argsort(torch.where(is_kind, key, 4 * n), dim=1, stable=True)
            take = min(len(slots), n)
            index[:, slots[:take]] = order[:, :take]
            present[:, slots] = torch.arange(len(slots), device=dev) < is_kind.sum(1, keepdim=True)
        p = torch.gather(reco.p.to(torch.float64), 1, index[..., None].expand(-1, -1, 4))
        return p, present

    def __call__(self, reco: Particles, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, F)`` float64 features of B reco events (columns: :attr:`names`)."""
        p, present = self.select(reco, charge)
        y, _ = PtEtaPhiM(measure="m").forward(p, present)
        y, _ = LogPt().forward(y, present)  # padded slots pass through and are zeroed below
        dphi = wrap_phi(y[..., 2] - torch.where(present[:, :1], y[:, :1, 2], 0.0))
        columns = []
        for i, kind in enumerate(self.kinds):
            columns += [present[:, i].to(y.dtype), y[:, i, 0]] + ([] if kind == 12 else [y[:, i, 1]])
            if i > 0:
                d = dphi[:, i]
                columns += [torch.cos(d), torch.sin(d)] if self.phi_encoding == "cossin" else [d]
        x = torch.stack(columns, -1)
        slot_of_column = torch.tensor(
            [int(name.rsplit("_", 1)[1]) for name in self.names], device=x.device, dtype=torch.long
        )
        return torch.where(present[:, slot_of_column], x, 0.0)
