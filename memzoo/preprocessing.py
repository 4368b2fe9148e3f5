"""Invertible preprocessing of network inputs with log-Jacobians, saved without pickles.

Each transform maps ``x`` to ``y`` with ``forward(x, mask) -> (y, log_det)`` and back with
``inverse(y, mask) -> x``; ``log_det (B,)`` is ``log |det ∂y/∂x|`` per event, summed over
every present object, so a density transforms as ``log p_x(x) = log p_y(y) + log_det``.
Inputs are ``(B, F)`` feature rows or ``(B, N, F)`` per-object features with a ``(B, N)`` bool
``mask`` of present objects; padded objects pass through unchanged and add nothing to
``log_det``. Transforms are batched, keep dtype and device, and compose with :class:`Chain`.

``to_dict(prefix)`` gives named tensors plus JSON values (a :class:`memzoo.bundle.Bundle`'s
``preprocessing``); :func:`load_transform` rebuilds the transform by its registered name
(:data:`TRANSFORMS`), so loading never unpickles or executes anything. Example::

    pre = Chain(PtEtaPhiM(), LogPt(), LogMass(offset=1.0), DeltaPhi(reference=0), Standardise())
    y, log_det = pre.fit(reco.p, reco.mask).forward(reco.p, reco.mask)
    bundle.preprocessing.update(pre.to_dict("reco."))  # later: load_transform(bundle.preprocessing, "reco.")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch

from memzoo.events import from_ptetaphim, to_ptetaphim, wrap_phi

__all__ = [
    "TRANSFORMS",
    "Chain",
    "DeltaPhi",
    "LogMass",
    "LogPt",
    "PtEtaPhiM",
    "Standardise",
    "Transform",
    "load_transform",
    "register_transform",
]

#: Registered transform classes by name; :func:`load_transform` only builds these.
TRANSFORMS: dict[str, type[Transform]] = {}


def register_transform(cls: type[Transform]) -> type[Transform]:
    """Class decorator adding a transform to :data:`TRANSFORMS` under its ``name``."""
    if cls.name in TRANSFORMS and TRANSFORMS[cls.name] is not cls:
        raise ValueError(f"Transform name {cls.name!r} is already registered by {TRANSFORMS[cls.name].__qualname__}.")
    TRANSFORMS[cls.name] = cls
    return cls


def _live(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x.shape[:-1]`` bool of the entries (rows or objects) a transform acts on."""
    if mask is None:
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    if tuple(mask.shape) != tuple(x.shape[:-1]) or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(x.shape[:-1])} (one entry per object of x "
            f"{tuple(x.shape)}), got {mask.dtype} {tuple(mask.shape)}."
        )
    return mask


def _per_event(values: torch.Tensor, live: torch.Tensor) -> torch.Tensor:
    """Sum of per-entry log-determinants ``values`` (shape of ``live``) over live entries: ``(B,)``."""
    return torch.where(live, values, 0.0).reshape(values.shape[0], -1).sum(-1)


class Transform(ABC):
    """Base class: an invertible map of ``(B, F)`` or ``(B, N, F)`` inputs (module docstring)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log_det)``: ``y`` of the shape of ``x`` and ``log_det (B,)`` = log |det ∂y/∂x|."""

    @abstractmethod
    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` with ``forward(x)[0] == y``."""

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward(x, mask)

    def fit(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Transform:
        """Set data-dependent parameters from a sample; stateless transforms return self."""
        return self

    # -- serialisation ----------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """JSON-able constructor keywords."""
        return {}

    def tensors(self) -> dict[str, torch.Tensor]:
        """Fitted parameters."""
        return {}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:  # noqa: B027 (stateless: nothing to restore)
        """Restore fitted parameters from :meth:`tensors`' names."""

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        """Flat ``{prefix + key: tensor | JSON value}`` for a bundle's ``preprocessing``."""
        out: dict[str, Any] = {f"{prefix}transform": self.name, f"{prefix}config": self.config()}
        out.update({f"{prefix}{k}": v.detach().contiguous().cpu() for k, v in self.tensors().items()})
        return out

    def __repr__(self) -> str:
        inner = getattr(self, "transforms", None)
        args = map(repr, inner) if inner is not None else (f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({', '.join(args)})"


def load_transform(state: Mapping[str, Any], prefix: str = "") -> Transform:
    """Rebuild a transform from :meth:`Transform.to_dict` output by its registered name."""
    name = state.get(f"{prefix}transform")
    if name not in TRANSFORMS:
        raise ValueError(
            f"Preprocessing entry {prefix + 'transform'!r} is {name!r}; known transforms: {sorted(TRANSFORMS)}."
        )
    cls = TRANSFORMS[name]
    config = dict(state.get(f"{prefix}config") or {})
    if cls is Chain:
        return Chain(*(load_transform(state, f"{prefix}{i}.") for i in range(int(config.get("n", 0)))))
    transform = cls(**config)
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix) and isinstance(v, torch.Tensor)}
    transform.load_tensors({k: v for k, v in tensors.items() if "." not in k})
    return transform


# ---------------------------------------------------------------------------------------
# four-momenta
# ---------------------------------------------------------------------------------------


@register_transform
class PtEtaPhiM(Transform):
    """(E, px, py, pz) → (pT, η, φ, m) per object, GeV, -, rad, GeV (inverse: ``from_ptetaphim``).

    Args:
        measure: what the input density refers to. ``"E"``: dE d³p, log_det =
            log E − log|m| − 2 log pT − log cosh η (singular for massless objects). ``"m"``:
            d³p dm, log_det = −2 log pT − log cosh η (finite at m = 0: the mass is a label,
            as in memzoo's reco measure, :func:`memzoo.protocols.reco_measure_dims`).
    """

    name = "ptetaphim"

    def __init__(self, measure: Literal["E", "m"] = "E") -> None:
        if measure not in ("E", "m"):
            raise ValueError(f"PtEtaPhiM measure must be 'E' (dE d³p) or 'm' (d³p dm), got {measure!r}.")
        self.measure = measure

    def config(self) -> dict[str, Any]:
        return {"measure": self.measure}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        live = _live(x, mask)
        # padded slots may hold zeros (pT = 0): feed a harmless vector so no NaN reaches gradients
        safe = torch.where(live[..., None], x, x.new_tensor([2.0, 1.0, 0.0, 0.0]))
        y = to_ptetaphim(safe)
        pt, eta, m = y[..., 0], y[..., 1], y[..., 3]
        log_det = -2 * torch.log(pt) - torch.log(torch.cosh(eta))
        if self.measure == "E":
            log_det = log_det + torch.log(safe[..., 0]) - torch.log(torch.abs(m))
        return torch.where(live[..., None], y, x), _per_event(log_det, live)

    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        live = _live(y, mask)
        safe = torch.where(live[..., None], y, y.new_tensor([1.0, 0.0, 0.0, 1.0]))
        return torch.where(live[..., None], from_ptetaphim(safe), y)


class _Elementwise(Transform):
    """A bijection of one feature column applied to every live entry."""

    _safe_value: float = 1.0  # stands in for padded entries, so that f and f' stay finite

    def __init__(self, column: int) -> None:
        self.column = int(column)

    def config(self) -> dict[str, Any]:
        return {"column": self.column}

    @abstractmethod
    def _map(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f(v), log |f'(v)|)``."""

    @abstractmethod
    def _unmap(self, w: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_map`."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        live = _live(x, mask)
        v = torch.where(live, x[..., self.column], self._safe_value)
        w, log_det = self._map(v)
        y = x.clone()
        y[..., self.column] = torch.where(live, w, x[..., self.column])
        return y, _per_event(log_det, live)

    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        live = _live(y, mask)
        x = y.clone()
        x[..., self.column] = torch.where(
            live, self._unmap(torch.where(live, y[..., self.column], 0.0)), y[..., self.column]
        )
        return x


@register_transform
class LogPt(_Elementwise):
    """pT → log(pT / GeV) in feature ``column`` (default 0, after :class:`PtEtaPhiM`)."""

    name = "log_pt"

    def __init__(self, column: int = 0) -> None:
        super().__init__(column)

    def _map(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_v = torch.log(v)
        return log_v, -log_v

    def _unmap(self, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(w)


@register_transform
class LogMass(_Elementwise):
    """m → log(m + offset) in feature ``column`` (default 3); ``offset`` (GeV) keeps m ≈ 0 finite.

    Requires m > −offset; numerically space-like masses of massless objects are slightly negative.
    """

    name = "log_mass"

    def __init__(self, column: int = 3, offset: float = 1.0) -> None:
        super().__init__(column)
        if not offset > 0:
            raise ValueError(f"LogMass offset must be > 0 GeV, got {offset}.")
        self.offset = float(offset)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "offset": self.offset}

    def _map(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_v = torch.log(v + self.offset)
        return log_v, -log_v

    def _unmap(self, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(w) - self.offset


@register_transform
class DeltaPhi(Transform):
    """φ of every object → φ − φ_ref wrapped into [−π, π); the reference keeps its own φ.

    The azimuth of an event is (nearly) uniform, so measuring angles relative to one object
    removes a symmetry the network need not learn. log_det = 0 (a shear, wrapped).

    Args:
        column: feature index of φ (default 2, after :class:`PtEtaPhiM`).
        reference: object index of the reference (e.g. 0, the leading object); it must be
            present in every event where others are.
    """

    name = "delta_phi"

    def __init__(self, column: int = 2, reference: int = 0) -> None:
        self.column, self.reference = int(column), int(reference)

    def config(self) -> dict[str, Any]:
        return {"column": self.column, "reference": self.reference}

    def _shift(self, x: torch.Tensor, mask: torch.Tensor | None, sign: float) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"DeltaPhi needs per-object features (B, N, F), got shape {tuple(x.shape)}.")
        live = _live(x, mask)
        phi_ref = x[:, self.reference, self.column]
        others = live & live[:, self.reference, None]
        others[:, self.reference] = False
        out = x.clone()
        shifted = wrap_phi(x[..., self.column] + sign * phi_ref[:, None])
        out[..., self.column] = torch.where(others, shifted, x[..., self.column])
        return out

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._shift(x, mask, -1.0), x.new_zeros(x.shape[0])

    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._shift(y, mask, 1.0)


# ---------------------------------------------------------------------------------------
# fitted and composite transforms
# ---------------------------------------------------------------------------------------


@register_transform
class Standardise(Transform):
    """x → (x − mean) / std with mean and std fitted on present entries.

    Args:
        share_objects: one mean/std per feature for all object slots (``(F,)``), instead of one
            per slot and feature (``(N, F)``); ignored for ``(B, F)`` inputs.
    """

    name = "standardise"

    def __init__(self, share_objects: bool = False) -> None:
        self.share_objects = bool(share_objects)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def config(self) -> dict[str, Any]:
        return {"share_objects": self.share_objects}

    def fit(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Standardise:
        live = _live(x, mask)[..., None].to(torch.float64)
        dims = (0, 1) if self.share_objects and x.ndim == 3 else (0,)
        xd = torch.where(live.bool(), x.to(torch.float64), 0.0)
        count = live.sum(dims)
        mean = xd.sum(dims) / count.clamp(min=1)
        var = (torch.where(live.bool(), xd - mean, 0.0) ** 2).sum(dims) / (count - 1).clamp(min=1)
        std = var.sqrt()
        # constant or absent features keep scale 1 instead of dividing by zero
        self.mean, self.std = mean, torch.where((std > 0) & (count > 1), std, 1.0)
        return self

    def tensors(self) -> dict[str, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise ValueError("Standardise is not fitted: call fit(x) before saving it.")
        return {"mean": self.mean, "std": self.std}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        missing = {"mean", "std"} - set(tensors)
        if missing:
            raise ValueError(f"Saved Standardise lacks tensor(s) {sorted(missing)}.")
        self.mean, self.std = tensors["mean"], tensors["std"]

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise ValueError("Standardise is not fitted: call fit(x) first.")
        if tuple(self.mean.shape) != tuple(x.shape[-self.mean.ndim :]):
            raise ValueError(f"Standardise was fitted on features {tuple(self.mean.shape)}, got x {tuple(x.shape)}.")
        return self.mean.to(x), self.std.to(x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        live = _live(x, mask)
        mean, std = self._params(x)
        y = torch.where(live[..., None], (x - mean) / std, x)
        log_det = -torch.log(std).expand_as(x).sum(-1)
        return y, _per_event(log_det, live)

    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        live = _live(y, mask)
        mean, std = self._params(y)
        return torch.where(live[..., None], y * std + mean, y)


@register_transform
class Chain(Transform):
    """Transforms applied in order; log-determinants add up, the inverse runs backwards."""

    name = "chain"

    def __init__(self, *transforms: Transform) -> None:
        if len(transforms) == 1 and isinstance(transforms[0], list | tuple):
            transforms = tuple(transforms[0])
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"Chain takes Transform objects, got {type(t).__name__}.")
        self.transforms = list(transforms)

    def config(self) -> dict[str, Any]:
        return {"n": len(self.transforms)}

    def fit(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> Chain:
        """Fit each step on the output of the steps before it."""
        for t in self.transforms:
            x = t.fit(x, mask).forward(x, mask)[0]
        return self

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(x.shape[0])
        for t in self.transforms:
            x, step = t.forward(x, mask)
            log_det = log_det + step
        return x, log_det

    def inverse(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for t in reversed(self.transforms):
            y = t.inverse(y, mask)
        return y

    def to_dict(self, prefix: str = "") -> dict[str, Any]:
        out = super().to_dict(prefix)
        for i, t in enumerate(self.transforms):
            out.update(t.to_dict(f"{prefix}{i}."))
        return out
