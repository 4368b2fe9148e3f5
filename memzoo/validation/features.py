"""Event features of reco events: the feature layout, per-object and pair features, detector response.

The per-object (pT-ordered slots of each kind) pT, η, φ and m (jets), multiplicities and pair
invariant masses compared between generated and true reco events, after Heimel, PhD thesis
2024, Secs. 3.1.3 and 4.4; :func:`response_features` adds the response to the hard event.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from memzoo.events import KINDS, Particles, delta_phi, invariant_mass, to_ptetaphim

__all__ = ["ORDER", "SYMBOL", "FeatureSet", "event_features", "feature_layout", "response_features"]

#: Kinds in the detector's order (memzoo.simulation.detector): γ, b, μ, e, jets, missing pT.
ORDER = (22, 5, 13, 11, 1, 12)
SYMBOL = {22: "γ", 5: "b", 13: "μ", 11: "e", 1: "j", 12: "miss"}
_JETS = (1, 5)


@dataclass(frozen=True)
class FeatureSet:
    """Per-event features of B reco events.

    Attributes:
        values: ``(B, F)`` float64; 0 where the object is absent.
        present: ``(B, F)`` bool, false where the feature's object is absent.
        names: F names (``"pT(j1)"``, ``"m(γ1,γ2)"``, ``"n(j)"``).
        groups: F ASCII group names, one figure each (``"light_jet_1"``, ``"multiplicity"``).
        scales: F of ``"log"`` (positive GeV: log1p for the classifier), ``"linear"``,
            ``"angle"`` (φ in [-π, π)) or ``"count"`` (integers).
    """

    values: torch.Tensor
    present: torch.Tensor
    names: tuple[str, ...]
    groups: tuple[str, ...]
    scales: tuple[str, ...]

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> torch.Tensor:
        """The values of feature ``name`` in the events where its object is present."""
        j = self.names.index(name)
        return self.values[self.present[:, j], j]

    def join(self, other: FeatureSet) -> FeatureSet:
        """The features of both sets side by side (same events)."""
        if len(other) != len(self):
            raise ValueError(
                f"Cannot join features of {len(self)} and {len(other)} events; they must be the same events."
            )
        cat = lambda a, b: torch.cat([a, b], -1)
        return FeatureSet(
            cat(self.values, other.values),
            cat(self.present, other.present),
            self.names + other.names,
            self.groups + other.groups,
            self.scales + other.scales,
        )

    def network_inputs(self) -> torch.Tensor:
        """``(B, F)`` float64 classifier inputs: log1p of GeV columns, others as they are."""
        logs = torch.tensor([s == "log" for s in self.scales], device=self.values.device)
        v = self.values
        return torch.where(logs, torch.sign(v) * torch.log1p(v.abs()), v)


def feature_layout(*samples: Particles, kinds: list[int] | None = None, max_per_kind: int = 4) -> dict[int, int]:
    """Slots per object kind shared by several samples of reco events (the feature layout).

    Args:
        samples: reco events, e.g. true and generated ones.
        kinds: object codes to compare (default: those present in every sample, so that
            objects a transfer does not model, e.g. missing pT, are left out).
        max_per_kind: at most this many pT-ordered objects of one kind get their own slot.

    Returns:
        ``{kind: number of slots}`` in the detector's order (missing pT: one slot).
    """
    if not samples:
        raise ValueError("feature_layout needs at least one sample of reco events.")
    if max_per_kind < 1:
        raise ValueError(f"max_per_kind must be >= 1, got {max_per_kind}.")
    found = [{k for k in ORDER if bool(s.count(k).gt(0).any())} for s in samples]
    if kinds is None:
        chosen = set.intersection(*found)
    else:
        unknown = sorted(set(kinds) - set(ORDER))
        if unknown:
            raise ValueError(f"Unknown object kind(s) {unknown}; known: { {k: KINDS[k] for k in ORDER} }.")
        chosen = set(kinds)
    if not chosen:
        raise ValueError(f"The samples share no object kind (kinds per sample: {[sorted(f) for f in found]}).")
    layout = {}
    for k in ORDER:
        if k in chosen:
            n = max(int(s.count(k).max()) if len(s) else 0 for s in samples)
            layout[k] = max(1, min(n, 1 if k == 12 else max_per_kind))
    return layout


def _slug(kind: int, rank: int, n: int) -> str:
    base = KINDS[kind].replace(" ", "_").replace("missing_pT", "missing_pt")
    return base if n == 1 else f"{base}_{rank + 1}"


def event_features(reco: Particles, layout: Mapping[int, int], pair_masses: bool = True) -> FeatureSet:
    """Features of reco events in a fixed layout (:func:`feature_layout`).

    Per slot (the rank-th object of a kind by descending pT): pT, η (not for missing pT), φ and
    m (jets only; photons and leptons are massless by construction). Per kind the number of
    objects; the scalar sum H_T of the visible objects of the layout's kinds; with
    ``pair_masses`` the invariant mass of every pair of visible slots.
    """
    if not isinstance(reco, Particles):
        raise TypeError(f"reco must be memzoo.events.Particles, got {type(reco).__name__}.")
    bad = sorted(set(layout) - set(ORDER))
    if bad:
        raise ValueError(f"The layout names unknown object kind(s) {bad}; build it with feature_layout().")
    slots = max(layout.values(), default=0)
    if reco.n_objects < slots:  # pad, so that every slot of the layout exists (absent objects)
        reco = Particles.cat(
            [
                reco,
                Particles(reco.p.new_zeros(0, slots, 4), reco.kind.new_zeros(0, slots), reco.mask.new_zeros(0, slots)),
            ]
        )
    p = reco.p.double()
    x = to_ptetaphim(torch.where(reco.mask[..., None], p, 1.0))  # padding: finite dummy momenta
    b = len(reco)
    rows = torch.arange(b, device=p.device)
    cols, names, groups, scales, objects = [], [], [], [], []

    def add(value, ok, name, group, scale):
        cols.append((torch.where(ok, value, torch.zeros_like(value)), ok))
        names.append(name)
        groups.append(group)
        scales.append(scale)

    for kind, n in layout.items():
        is_kind = reco.mask & (reco.kind == kind)
        pt = torch.where(is_kind, x[..., 0], -torch.inf)
        order = pt.argsort(dim=-1, descending=True, stable=True)
        for r in range(n):
            idx = order[:, r]
            ok = is_kind[rows, idx]
            xi, label, group = x[rows, idx], SYMBOL[kind] + (str(r + 1) if kind != 12 else ""), _slug(kind, r, n)
            add(xi[:, 0], ok, f"pT({label})", group, "log")
            if kind != 12:
                add(xi[:, 1], ok, f"η({label})", group, "linear")
            add(xi[:, 2], ok, f"φ({label})", group, "angle")
            if kind in _JETS:
                add(xi[:, 3], ok, f"m({label})", group, "log")
            if kind != 12:
                objects.append((label, p[rows, idx], ok))
    everyone = torch.ones(b, dtype=torch.bool, device=p.device)
    for kind in layout:
        add(reco.count(kind).double(), everyone, f"n({SYMBOL[kind]})", "multiplicity", "count")
    visible = reco.mask & torch.isin(reco.kind, torch.tensor([k for k in layout if k != 12], device=p.device))
    add(torch.where(visible, x[..., 0], 0.0).sum(-1), everyone, "H_T", "event", "log")
    if pair_masses:
        for (la, pa, oka), (lb, pb, okb) in itertools.combinations(objects, 2):
            add(invariant_mass(pa, pb), oka & okb, f"m({la},{lb})", "pair_masses", "log")
    values = torch.stack([c[0] for c in cols], -1) if cols else p.new_zeros(b, 0)
    present = torch.stack([c[1] for c in cols], -1) if cols else everyone[:, None][:, :0]
    return FeatureSet(values, present, tuple(names), tuple(groups), tuple(scales))


def response_features(reco: Particles, hard_momenta: torch.Tensor, layout: Mapping[int, int]) -> FeatureSet:
    """How each visible slot relates to the hard event: the detector response, not the physics.

    For every visible slot of :func:`event_features` (same layout): log(pT / pT_hard),
    η − η_hard and φ − φ_hard (wrapped) with respect to the hard particle nearest in ΔR.
    Appended to the event features they let the two-sample classifier test the conditional
    p(x_reco|x_hard) at the given hard events, where resolutions far below the spread of the
    physics distributions are invisible in the reco distributions alone.

    Args:
        reco: B reco events.
        hard_momenta: ``(B, n_hard, 4)`` the true hard final state (E, px, py, pz) in GeV.
    """
    if hard_momenta.ndim != 3 or hard_momenta.shape[0] != len(reco) or hard_momenta.shape[-1] != 4:
        raise ValueError(f"hard_momenta must be (B, n_hard, 4) with B = {len(reco)}, got {tuple(hard_momenta.shape)}.")
    f = event_features(reco, {k: n for k, n in layout.items() if k != 12}, pair_masses=False)
    h = to_ptetaphim(hard_momenta.double().to(f.values.device))
    rows = torch.arange(len(reco), device=h.device)
    values, present, names = [], [], []
    for i, name in enumerate(f.names):
        if not name.startswith("pT("):
            continue
        label, ok = name[3:-1], f.present[:, i]
        pt, eta, phi = (
            f.values[:, i],
            f.values[:, f.names.index(f"η({label})")],
            f.values[:, f.names.index(f"φ({label})")],
        )
        j = torch.hypot(eta[:, None] - h[..., 1], delta_phi(phi[:, None], h[..., 2])).argmin(-1)
        near = h[rows, j]
        ratio = torch.log(torch.where(ok, pt, 1.0) / near[:, 0].clamp(min=1e-9))
        for value, var in ((ratio, "log pT/pT_hard"), (eta - near[:, 1], "Δη"), (delta_phi(phi, near[:, 2]), "Δφ")):
            values.append(torch.where(ok, value, 0.0))
            present.append(ok)
            names.append(f"{var}({label})")
    return FeatureSet(
        torch.stack(values, -1),
        torch.stack(present, -1),
        tuple(names),
        ("response",) * len(names),
        ("linear",) * len(names),
    )


def _check_compatible(a: FeatureSet, b: FeatureSet, what: str) -> None:
    if not isinstance(a, FeatureSet) or not isinstance(b, FeatureSet):
        raise TypeError(
            f"{what} compares FeatureSets (from event_features), got {type(a).__name__}, {type(b).__name__}."
        )
    if a.names != b.names:
        only_a, only_b = sorted(set(a.names) - set(b.names)), sorted(set(b.names) - set(a.names))
        raise ValueError(
            f"{what}: the two samples have different features (only in the first: {only_a}, only in the "
            f"second: {only_b}, or another order); build both with one layout = feature_layout(true, generated)."
        )
