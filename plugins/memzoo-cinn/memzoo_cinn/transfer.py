"""Transfer-cINN: p(x_reco|x_hard) as a conditional spline flow (thesis eq. 6.21, arXiv:2210.00019).

The reco objects of a fixed :class:`~memzoo_cinn.features.Layout` become features (log pT, η,
atanh(Δφ/π), log(m + 1) for jets; Δφ relative to a hard azimuth), are standardised with
statistics fitted on data (:meth:`CINNTransfer.fit_preprocessing`, stored as buffers so they
travel in a bundle's safetensors) and modelled by a zuko neural spline flow (arXiv:1906.04032)
conditioned on the standardised hard coordinates. ``log_prob`` includes every Jacobian, so it
is a density per dpT dη dφ (dm) of each object, the measure of :mod:`memzoo.protocols`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from memzoo.events import Particles, wrap_phi
from memzoo.preprocessing import Standardise
from memzoo_cinn.bayesian import BayesianConfig, BayesianMixin, NetworkConfig, build_flow, resolve_sizes
from memzoo_cinn.features import Layout, circular_mean, standardise

__all__ = ["BayesianCINNTransfer", "CINNTransfer", "hard_log_columns", "unpack"]


def unpack(batch: Any, *names: str) -> list[Any]:
    """Fields of a training batch: a mapping, an object with attributes (a ``DatasetChunk``)
    or a tuple in the order of ``names``. ``hard`` also answers to ``hard_coords``; a missing
    ``charge`` is ``None``."""
    aliases = {"hard": ("hard", "hard_coords")}
    if isinstance(batch, tuple | list):
        return [*batch, *([None] * (len(names) - len(batch)))][: len(names)]
    out = []
    for name in names:
        value = None
        for key in aliases.get(name, (name,)):
            value = batch.get(key) if isinstance(batch, Mapping) else getattr(batch, key, None)
            if value is not None:
                break
        if value is None and name != "charge":
            raise ValueError(f"Training batch lacks {name!r}; give a mapping or object with {list(names)}.")
        out.append(value)
    return out


def hard_log_columns(hard: torch.Tensor, columns: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 copy of ``hard (B, D)`` with ``columns`` replaced by their log, and log |Jacobian| (B,)."""
    out = hard.to(torch.float64).clone()
    if not columns:
        return out, out.new_zeros(len(out))
    cols = list(columns)
    logs = torch.log(out[:, cols].clamp(min=1e-300))
    out[:, cols] = logs
    return out, -logs.sum(-1)


def _check_columns(config: Any, dim: int) -> None:
    for field in ("log_hard", "hard_phi"):
        bad = [c for c in getattr(config, field) if not 0 <= c < dim]
        if bad:
            raise ValueError(f"{field} = {list(getattr(config, field))} has columns outside [0, {dim}).")
    for field in ("hard_pt", "hard_eta"):
        columns = getattr(config, field, ())
        if columns and (len(columns) != len(config.objects) or any(not -1 <= c < dim for c in columns)):
            raise ValueError(
                f"{field} = {list(columns)} must give one hard column in [0, {dim}) (or -1) per reco object "
                f"({len(config.objects)} objects), or be empty."
            )


@dataclass(frozen=True)
class TransferConfig(NetworkConfig):
    """Configuration of the Transfer-cINN (sizes: see :class:`~memzoo_cinn.bayesian.NetworkConfig`).

    Attributes:
        objects: the reco layout, e.g. ``("mu", "mu")`` (names in ``features.KIND_NAMES``).
        charge_order: fill same-kind slots by ascending charge (needs ``RecoParticles.charge``).
        hard_dim: D, the number of hard coordinates.
        log_hard: hard columns given to the network as their log (positive ones, like pT).
        hard_phi: azimuthal hard columns; reco φ are measured from the first (``()``: from 0).
        hard_pt: per reco slot, the hard column holding the pT it is measured from (the feature
            becomes log(pT_reco / pT_hard)); ``-1`` for none; ``()``: absolute pT everywhere.
        hard_eta: per reco slot, the hard column of its η reference (feature η_reco − η_hard),
            ``-1`` for none. Relative features turn a sharp response (σ_η ≈ 10⁻³) into an O(1)
            standardised feature the flow can learn; the density is unchanged (shifts).
    """

    objects: tuple[str, ...] = ("mu",)
    charge_order: bool = False
    hard_dim: int = 3
    log_hard: tuple[int, ...] = (0,)
    hard_phi: tuple[int, ...] = (2,)
    hard_pt: tuple[int, ...] = ()
    hard_eta: tuple[int, ...] = ()


class CINNTransfer(nn.Module):
    """Transfer-cINN p(x_reco|x_hard) for a fixed set of reco objects.

    Events without exactly the layout's objects get log p = −inf. Defaults fit one reco muon
    and hard coordinates (pT, η, φ).

    Example:
        >>> model = CINNTransfer(CINNTransfer.Config(objects=("mu",), hard_dim=3))
        >>> hard = torch.tensor([[40.0, 0.5, 1.0]], dtype=torch.float64)
        >>> model.log_prob(model.sample(hard), hard).shape
        torch.Size([1])
    """

    name = "cinn"
    Config = TransferConfig

    def __init__(self, config: TransferConfig | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        _check_columns(self.config, self.config.hard_dim)
        self.layout = Layout(tuple(self.config.objects), self.config.charge_order)
        n_reco, n_hard = self.layout.n_features, self.config.hard_dim
        self.flow = build_flow(n_reco, n_hard, **resolve_sizes(self.config))
        self.register_buffer("reco_mean", torch.zeros(n_reco, dtype=torch.float64))
        self.register_buffer("reco_std", torch.ones(n_reco, dtype=torch.float64))
        self.register_buffer("hard_mean", torch.zeros(n_hard, dtype=torch.float64))
        self.register_buffer("hard_std", torch.ones(n_hard, dtype=torch.float64))
        # per-slot azimuth offsets from the reference (fitted): keeps each slot's Δφ away from the cut
        self.register_buffer("phi_offset", torch.zeros(len(self.layout.kinds), dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # bundles written before the per-slot offsets existed measured every slot from the reference
        state_dict.setdefault(prefix + "phi_offset", torch.zeros_like(self.phi_offset))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _phi_ref(self, hard: torch.Tensor) -> torch.Tensor:
        """``(B, S)`` reference azimuth of each slot: the first ``hard_phi`` column plus the slot's offset."""
        phi = self.config.hard_phi
        ref = hard[:, phi[0]].to(torch.float64) if phi else hard.new_zeros(len(hard), dtype=torch.float64)
        return ref[:, None] + self.phi_offset.to(ref.device)

    def _shift(self, hard: torch.Tensor) -> torch.Tensor | None:
        """``(B, S, 2)`` (log pT, η) references of the slots from ``hard_pt``/``hard_eta``, or None."""
        if not self.config.hard_pt and not self.config.hard_eta:
            return None
        hard = hard.to(torch.float64)
        shift = hard.new_zeros(len(hard), len(self.layout.kinds), 2)
        for j, (field, fn) in enumerate((("hard_pt", torch.log), ("hard_eta", lambda v: v))):
            for slot, col in enumerate(getattr(self.config, field)):
                if col >= 0:
                    shift[:, slot, j] = fn(hard[:, col])
        return shift

    def _check_hard(self, hard: torch.Tensor) -> None:
        if hard.ndim != 2 or hard.shape[1] != self.config.hard_dim:
            raise ValueError(f"hard must be (B, {self.config.hard_dim}), got {tuple(hard.shape)}.")

    def _context(self, hard: torch.Tensor) -> torch.Tensor:
        c = hard_log_columns(hard, self.config.log_hard)[0]
        return standardise(c, self.hard_mean, self.hard_std).to(self.reco_mean.device, torch.float32)

    @torch.no_grad()
    def fit_preprocessing(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> None:
        """Fit the feature standardisation on training pairs (events of the layout only)."""
        self._check_hard(hard)
        self.phi_offset.zero_()
        p, valid = self.layout.select(reco, charge)
        if int(valid.sum()) < 2:
            raise ValueError("fit_preprocessing needs at least two events with the layout's reco objects.")
        ref = self._phi_ref(hard).to(p.device)
        self.phi_offset.copy_(circular_mean(wrap_phi(p[..., 2].atan2(p[..., 1]) - ref)[valid]).to(self.phi_offset))
        x, _, valid = self.layout.features(reco, self._phi_ref(hard), charge, self._shift(hard))
        c = hard_log_columns(hard, self.config.log_hard)[0]
        for (mean, std), data in (((self.reco_mean, self.reco_std), x), ((self.hard_mean, self.hard_std), c)):
            fitted = Standardise().fit(data[valid.to(data.device)])
            mean.copy_(fitted.mean)
            std.copy_(fitted.std)

    def log_prob(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> torch.Tensor:
        """``(B,)`` float64 log p(x_reco|x_hard) per dpT dη dφ (dm) of each layout object.

        Args:
            reco: B reco events; the layout's objects are picked by kind (others ignored).
            hard: ``(B, D)`` hard coordinates.
            charge: ``(B, N)`` charges for ``charge_order`` (default ``reco.charge``).
        """
        self._check_hard(hard)
        x, log_det, valid = self.layout.features(reco, self._phi_ref(hard), charge, self._shift(hard))
        y = standardise(x, self.reco_mean, self.reco_std)
        log_det = log_det - torch.log(self.reco_std).sum()
        dev = self.reco_mean.device
        log_p = self.flow(self._context(hard)).log_prob(y.to(dev, torch.float32)).double() + log_det.to(dev)
        return torch.where(valid.to(dev), log_p, -torch.inf)

    @torch.no_grad()
    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        """One reco event per hard point ``hard (B, D)``: the layout's objects, float64 momenta."""
        self._check_hard(hard)
        dev = self.reco_mean.device
        z = torch.randn(len(hard), self.layout.n_features, generator=generator, device=generator and generator.device)
        y = self.flow(self._context(hard)).transform.inv(z.to(dev))
        x = standardise(y.double(), self.reco_mean, self.reco_std, inverse=True)
        return self.layout.particles(x, self._phi_ref(hard).to(dev), self._shift(hard))

    def loss(self, batch: Any) -> torch.Tensor:
        """Mean negative log-likelihood of a batch with ``reco`` and ``hard`` (thesis eq. 3.34)."""
        reco, hard, charge = unpack(batch, "reco", "hard", "charge")
        log_p = self.log_prob(reco, hard, charge)
        ok = torch.isfinite(log_p)
        if not bool(ok.any()):
            raise ValueError("No event of the batch has the layout's reco objects; check `objects`.")
        return -log_p[ok].mean()


@dataclass(frozen=True)
class BayesianTransferConfig(TransferConfig, BayesianConfig):
    """:class:`TransferConfig` plus the Bayesian fields of :class:`~memzoo_cinn.bayesian.BayesianConfig`."""


class BayesianCINNTransfer(BayesianMixin, CINNTransfer):
    """Bayesian Transfer-cINN: variational weights in every subnet, replicas for the integrator.

    ``log_prob`` uses the posterior means unless a replica is fixed with ``replica(i)``;
    ``loss`` adds KL / N to the NLL of one local-reparametrisation draw (thesis eq. 3.67).
    """

    name = "cinn-bayesian"
    Config = BayesianTransferConfig
