"""Batched particle containers and collider kinematics (pT, η, φ, m, ΔR) in torch.

Conventions: four-momenta are ``(E, px, py, pz)`` in GeV along the last axis; φ lies in
``[-π, π)``; η is the pseudorapidity; masses of slightly space-like numerical four-vectors are
returned as ``-sqrt(-m²)`` so that round trips stay exact and sign problems stay visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "KINDS",
    "Particles",
    "RecoParticles",
    "delta_phi",
    "delta_r",
    "from_ptetaphim",
    "invariant_mass",
    "mass",
    "pseudorapidity",
    "rapidity",
    "to_ptetaphim",
    "transverse_momentum",
    "validate_momenta",
    "wrap_phi",
]

#: Object codes used in ``Particles.kind`` (PDG-like, DESIGN §3). 0 marks padding.
KINDS: dict[int, str] = {
    0: "padding",
    1: "light jet",
    5: "b-jet",
    11: "electron",
    12: "missing pT",
    13: "muon",
    22: "photon",
}


# ---------------------------------------------------------------------------------------
# kinematic helpers
# ---------------------------------------------------------------------------------------


def wrap_phi(phi: torch.Tensor) -> torch.Tensor:
    """Map angles (any shape, radians) into ``[-π, π)``."""
    return torch.remainder(phi + math.pi, 2 * math.pi) - math.pi


def delta_phi(phi1: torch.Tensor, phi2: torch.Tensor) -> torch.Tensor:
    """Azimuthal difference ``φ1 - φ2`` wrapped into ``[-π, π)``."""
    return wrap_phi(phi1 - phi2)


def transverse_momentum(p: torch.Tensor) -> torch.Tensor:
    """pT in GeV of four-momenta ``p (..., 4)``."""
    return torch.hypot(p[..., 1], p[..., 2])


def pseudorapidity(p: torch.Tensor) -> torch.Tensor:
    """η = asinh(pz / pT) of four-momenta ``p (..., 4)``; ±inf along the beam axis."""
    return torch.asinh(p[..., 3] / transverse_momentum(p))


def rapidity(p: torch.Tensor) -> torch.Tensor:
    """Rapidity y = ½ log((E + pz) / (E - pz)) of four-momenta ``p (..., 4)``."""
    return 0.5 * torch.log((p[..., 0] + p[..., 3]) / (p[..., 0] - p[..., 3]))


def mass(p: torch.Tensor) -> torch.Tensor:
    """Signed invariant mass sqrt(E² - |p|²) in GeV; negative for space-like inputs."""
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    return torch.sign(m2) * torch.sqrt(torch.abs(m2))


def invariant_mass(*momenta: torch.Tensor) -> torch.Tensor:
    """Invariant mass in GeV of the sum of several four-momenta of equal shape."""
    return mass(torch.stack(momenta).sum(0))


def delta_r(p1: torch.Tensor, p2: torch.Tensor) -> torch.Tensor:
    """ΔR = sqrt(Δη² + Δφ²) between four-momenta of equal (broadcastable) shape ``(..., 4)``."""
    deta = pseudorapidity(p1) - pseudorapidity(p2)
    dphi = delta_phi(torch.atan2(p1[..., 2], p1[..., 1]), torch.atan2(p2[..., 2], p2[..., 1]))
    return torch.hypot(deta, dphi)


def to_ptetaphim(p: torch.Tensor) -> torch.Tensor:
    """Convert ``(E, px, py, pz)`` to ``(pT, η, φ, m)`` along the last axis (GeV, -, rad, GeV)."""
    pt = transverse_momentum(p)
    eta = torch.asinh(p[..., 3] / pt)
    phi = torch.atan2(p[..., 2], p[..., 1])
    return torch.stack([pt, eta, phi, mass(p)], dim=-1)


def from_ptetaphim(x: torch.Tensor) -> torch.Tensor:
    """Convert ``(pT, η, φ, m)`` to ``(E, px, py, pz)`` along the last axis.

    A negative m is read as a space-like vector with m² = -m² (the inverse of :func:`mass`).
    """
    pt, eta, phi, m = x.unbind(-1)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    m2 = torch.sign(m) * m**2
    energy = torch.sqrt(px**2 + py**2 + pz**2 + m2)
    return torch.stack([energy, px, py, pz], dim=-1)


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------


def _first_bad(bad: torch.Tensor) -> tuple[int, ...]:
    """Index (row, object, ...) of the first True entry of a boolean tensor."""
    return tuple(int(i) for i in bad.nonzero()[0].tolist())


def validate_momenta(p: Any, name: str = "p", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Check a ``(B, N, 4)`` tensor of four-momenta and return it.

    Raises ``ValueError`` naming the field, row and object of the first non-finite value or
    negative energy among the entries where ``mask`` is true (all entries without a mask).
    """
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, N, 4), got {type(p).__name__}.")
    if p.ndim != 3 or p.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (B, N, 4) = (events, objects, (E, px, py, pz)), got {tuple(p.shape)}."
        )
    if not p.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (GeV), got dtype {p.dtype}.")
    live = torch.ones(p.shape[:2], dtype=torch.bool, device=p.device) if mask is None else mask
    nonfinite = ~torch.isfinite(p).all(-1) & live
    if nonfinite.any():
        row, obj = _first_bad(nonfinite)
        raise ValueError(
            f"{name} has a non-finite (NaN or inf) four-momentum at row {row}, object {obj}: "
            f"{p[row, obj].tolist()}. Remove the event or mask the object out."
        )
    negative = (p[..., 0] < 0) & live
    if negative.any():
        row, obj = _first_bad(negative)
        raise ValueError(
            f"{name} has a negative energy E = {float(p[row, obj, 0]):.6g} GeV at row {row}, "
            f"object {obj}. Energies must be >= 0; check the (E, px, py, pz) column order."
        )
    return p


# ---------------------------------------------------------------------------------------
# Particles
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Particles:
    """A padded batch of physics objects (DESIGN §3).

    Attributes:
        p: ``(B, N, 4)`` float four-momenta ``(E, px, py, pz)`` in GeV.
        kind: ``(B, N)`` integer object codes (:data:`KINDS`: 22 photon, 13 muon, 11 electron,
            5 b-jet, 1 light jet, 12 missing pT, 0 padding).
        mask: ``(B, N)`` bool, true where an object is present. Reco events have variable
            multiplicity; padded entries may hold anything finite.

    Construction validates shapes, dtypes, object codes and momenta; errors name the field
    and row. Use ``Particles(p, kind, mask, validate=False)`` only for trusted internal data.

    Example:
        >>> p = torch.tensor([[[50.0, 30.0, 40.0, 0.0]]])
        >>> reco = Particles(p, torch.tensor([[13]]), torch.tensor([[True]]))
        >>> reco.ptetaphim[0, 0, 0].item()
        50.0
    """

    p: torch.Tensor
    kind: torch.Tensor
    mask: torch.Tensor
    validate: bool = True

    def __post_init__(self) -> None:
        if self.validate:
            self.check()

    def check(self) -> Particles:
        """Validate shapes, dtypes, object codes and finite non-negative-energy momenta."""
        for field in ("kind", "mask"):
            value = getattr(self, field)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"Particles.{field} must be a torch.Tensor, got {type(value).__name__}.")
        if not isinstance(self.p, torch.Tensor) or self.p.ndim != 3:
            shape = tuple(self.p.shape) if isinstance(self.p, torch.Tensor) else type(self.p).__name__
            raise ValueError(f"Particles.p must have shape (B, N, 4), got {shape}.")
        batch = tuple(self.p.shape[:2])
        for field in ("kind", "mask"):
            shape = tuple(getattr(self, field).shape)
            if shape != batch:
                raise ValueError(
                    f"Particles.{field} has shape {shape} but Particles.p has {tuple(self.p.shape)}: "
                    f"{field} must be (B, N) = {batch}."
                )
        if self.mask.dtype != torch.bool:
            raise TypeError(f"Particles.mask must be a bool tensor, got dtype {self.mask.dtype}.")
        if self.kind.is_floating_point() or self.kind.dtype == torch.bool:
            raise TypeError(f"Particles.kind must be an integer tensor, got dtype {self.kind.dtype}.")
        known = torch.tensor(sorted(KINDS), device=self.kind.device)
        unknown = ~torch.isin(self.kind, known) & self.mask
        if unknown.any():
            row, obj = _first_bad(unknown)
            raise ValueError(
                f"Particles.kind has unknown object code {int(self.kind[row, obj])} at row {row}, "
                f"object {obj}. Known codes: {KINDS}."
            )
        validate_momenta(self.p, "Particles.p", self.mask)
        return self

    # -- basic container behaviour ------------------------------------------------------

    def __len__(self) -> int:
        return self.p.shape[0]

    def __getitem__(self, rows: Any) -> Particles:
        """Select events (rows) by index, slice or boolean mask; keeps the batch axis."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        return Particles(self.p[rows], self.kind[rows], self.mask[rows], validate=False)

    @property
    def n_objects(self) -> int:
        """Padded number of objects N."""
        return self.p.shape[1]

    @property
    def device(self) -> torch.device:
        return self.p.device

    def to(self, *args: Any, **kwargs: Any) -> Particles:
        """Move to a device and/or cast momenta (kind and mask keep their dtypes)."""
        p = self.p.to(*args, **kwargs)
        return Particles(p, self.kind.to(p.device), self.mask.to(p.device), validate=False)

    @property
    def multiplicity(self) -> torch.Tensor:
        """``(B,)`` number of present objects per event."""
        return self.mask.sum(-1)

    @property
    def ptetaphim(self) -> torch.Tensor:
        """``(B, N, 4)`` (pT, η, φ, m) of every slot; padding slots are not meaningful."""
        return to_ptetaphim(self.p)

    def count(self, kind: int) -> torch.Tensor:
        """``(B,)`` number of present objects of one kind."""
        return ((self.kind == kind) & self.mask).sum(-1)

    @staticmethod
    def cat(batches: list[Particles]) -> Particles:
        """Concatenate events of several batches, padding to the largest N."""
        n = max(b.n_objects for b in batches)

        def pad(t: torch.Tensor, value: Any) -> torch.Tensor:
            extra = n - t.shape[1]
            if extra == 0:
                return t
            fill = torch.full((t.shape[0], extra, *t.shape[2:]), value, dtype=t.dtype, device=t.device)
            return torch.cat([t, fill], dim=1)

        return Particles(
            torch.cat([pad(b.p, 0.0) for b in batches]),
            torch.cat([pad(b.kind, 0) for b in batches]),
            torch.cat([pad(b.mask, False) for b in batches]),
            validate=False,
        )

    def __repr__(self) -> str:
        return f"Particles(events={len(self)}, objects={self.n_objects}, dtype={self.p.dtype}, device={self.device})"


@dataclass(frozen=True, repr=False)  # keep Particles' short repr
class RecoParticles(Particles):
    """Reconstructed objects with their electric charge.

    Particles carries no charge; the detector returns RecoParticles so that the charge travels
    next to ``kind`` (13 for μ⁺ and μ⁻ alike, so every consumer of Particles works unchanged)
    and datasets store it as a separate column.

    Attributes:
        p, kind, mask: as in :class:`Particles`.
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
