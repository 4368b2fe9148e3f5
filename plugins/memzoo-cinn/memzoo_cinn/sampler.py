"""Sampling-cINN: the importance-sampling proposal q(x_hard|x_reco, θ) (thesis eqs. 6.25–6.28, 6.36–6.38).

A zuko neural spline flow (arXiv:1906.04032) on standardised hard coordinates (log of positive
columns, atanh(Δφ/π) of azimuths relative to a reco object), conditioned on the standardised reco
features and θ (Butter et al., arXiv:2210.00019). ``from_unit`` maps u ∈ [0, 1]^D to the flow's
normal base by the inverse normal CDF, so VEGAS can refine the latent space (thesis 6.4.1).
Training on true pairs gives eq. 6.36; ``loss(batch, transfer=...)`` replaces the reco events
by draws of a trained transfer network, x̃_reco ~ p_θ(x_reco|x_hard) (eqs. 6.37–6.38).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from memzoo.events import Particles
from memzoo.preprocessing import Standardise
from memzoo_cinn.bayesian import BayesianConfig, BayesianMixin, NetworkConfig, build_flow, resolve_sizes
from memzoo_cinn.features import Layout, azimuth_from_feature, feature_from_azimuth, standardise
from memzoo_cinn.transfer import _check_columns, hard_log_columns, unpack

__all__ = ["BayesianCINNSampler", "CINNSampler"]

_U_EPS = 1e-7  # u is clamped into [eps, 1 - eps] so that ndtri stays finite


@dataclass(frozen=True)
class SamplerConfig(NetworkConfig):
    """Configuration of the Sampling-cINN (sizes: see :class:`~memzoo_cinn.bayesian.NetworkConfig`).

    Attributes:
        objects: the reco layout it conditions on, e.g. ``("mu", "mu")``.
        charge_order: fill same-kind slots by ascending charge (needs ``RecoParticles.charge``).
        hard_dim: D, the number of hard coordinates.
        n_parameters: P, the number of theory parameters θ.
        log_hard: positive hard columns, modelled as their log (Jacobian included).
        hard_phi: azimuthal hard columns, modelled relative to the φ of reco slot
            ``reference_object`` (outputs lie in [−π, π)).
        reference_object: index into ``objects`` of the azimuth reference.
    """

    objects: tuple[str, ...] = ("mu",)
    charge_order: bool = False
    hard_dim: int = 3
    n_parameters: int = 1
    log_hard: tuple[int, ...] = (0,)
    hard_phi: tuple[int, ...] = (2,)
    reference_object: int = 0


class CINNSampler(nn.Module):
    """Sampling-cINN q(x_hard|x_reco, θ); densities per unit of the hard coordinates.

    Example:
        >>> q = CINNSampler(CINNSampler.Config())
        >>> from memzoo.testing import ToyProblem
        >>> p = ToyProblem.one_muon(n=4)
        >>> coords, log_q = q.from_unit(torch.rand(4, 3), p.reco, p.theta[:1])
        >>> bool(torch.allclose(q.log_prob(coords, p.reco, p.theta[:1]), log_q, atol=1e-4))
        True
    """

    name = "cinn"
    Config = SamplerConfig

    def __init__(self, config: SamplerConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or self.Config()
        _check_columns(c, c.hard_dim)
        if set(c.log_hard) & set(c.hard_phi):
            raise ValueError(f"A hard column cannot be both in log_hard {c.log_hard} and hard_phi {c.hard_phi}.")
        self.layout = Layout(tuple(c.objects), c.charge_order)
        if not 0 <= c.reference_object < len(c.objects):
            raise ValueError(f"reference_object must index a slot of objects {list(c.objects)}.")
        n_reco, n_cond = self.layout.n_features, self.layout.n_features + c.n_parameters
        self.flow = build_flow(c.hard_dim, n_cond, **resolve_sizes(c))
        for name, size in (("hard", c.hard_dim), ("reco", n_reco), ("theta", c.n_parameters)):
            self.register_buffer(f"{name}_mean", torch.zeros(size, dtype=torch.float64))
            self.register_buffer(f"{name}_std", torch.ones(size, dtype=torch.float64))

    # -- preprocessing ----------------------------------------------------------------------

    def _condition(self, reco: Particles, theta: torch.Tensor, charge: torch.Tensor | None):
        """Standardised ``(B, F + P)`` float32 condition and the reference azimuth ``(B,)``."""
        p, valid = self.layout.select(reco, charge)
        if not bool(valid.all()):
            row = int((~valid).nonzero()[0])
            raise ValueError(f"CINNSampler needs the reco objects {list(self.config.objects)}; event {row} differs.")
        phi_ref = torch.atan2(p[:, self.config.reference_object, 2], p[:, self.config.reference_object, 1])
        x = self.layout.features(reco, phi_ref, charge)[0]
        theta = self._theta(theta, len(x)).to(x.device)
        c = torch.cat(
            [standardise(x, self.reco_mean, self.reco_std), standardise(theta, self.theta_mean, self.theta_std)], -1
        )
        return c.to(self.hard_mean.device, torch.float32), phi_ref.to(self.hard_mean.device)

    def _theta(self, theta: torch.Tensor, b: int) -> torch.Tensor:
        theta = theta.to(torch.float64)
        if theta.ndim != 2 or theta.shape[1] != self.config.n_parameters or theta.shape[0] not in (1, b):
            raise ValueError(f"theta must be (B, {self.config.n_parameters}) or (1, P), got {tuple(theta.shape)}.")
        return theta.expand(b, -1)

    def _to_flow(self, coords: torch.Tensor, phi_ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard coords → standardised flow variables ``(B, D)`` float64 and log |Jacobian| ``(B,)``."""
        if coords.ndim != 2 or coords.shape[1] != self.config.hard_dim:
            raise ValueError(f"coords must be (B, {self.config.hard_dim}), got {tuple(coords.shape)}.")
        x, log_det = hard_log_columns(coords.to(self.hard_mean.device), self.config.log_hard)
        for col in self.config.hard_phi:
            x[:, col], log_a = feature_from_azimuth(x[:, col], phi_ref)
            log_det = log_det + log_a
        return standardise(x, self.hard_mean, self.hard_std), log_det - torch.log(self.hard_std).sum()

    def _from_flow(self, y: torch.Tensor, phi_ref: torch.Tensor) -> torch.Tensor:
        x = standardise(y.double(), self.hard_mean, self.hard_std, inverse=True)
        for col in self.config.hard_phi:
            x[:, col] = azimuth_from_feature(x[:, col], phi_ref)
        cols = list(self.config.log_hard)
        x[:, cols] = torch.exp(x[:, cols])
        return x

    @torch.no_grad()
    def fit_preprocessing(
        self, reco: Particles, hard: torch.Tensor, theta: torch.Tensor, charge: torch.Tensor | None = None
    ) -> None:
        """Fit the standardisation of hard coordinates, reco features and θ on training triples."""
        for name in ("hard", "reco", "theta"):  # fit on unstandardised values
            getattr(self, f"{name}_mean").zero_()
            getattr(self, f"{name}_std").fill_(1.0)
        phi_ref = self._condition(reco, theta, charge)[1]
        parts = {"hard": self._to_flow(hard, phi_ref)[0], "theta": self._theta(theta, len(hard))}
        parts["reco"] = self.layout.features(reco, phi_ref, charge)[0]
        for name, data in parts.items():
            fitted = Standardise().fit(data.to(torch.float64))
            getattr(self, f"{name}_mean").copy_(fitted.mean)
            getattr(self, f"{name}_std").copy_(fitted.std)

    # -- the protocol -----------------------------------------------------------------------

    def log_prob(
        self, coords: torch.Tensor, reco: Particles, theta: torch.Tensor, charge: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B,)`` float64 log q(coords|reco, θ) for ``coords (B, D)``, ``theta (B, P)`` or ``(1, P)``."""
        cond, phi_ref = self._condition(reco, theta, charge)
        y, log_det = self._to_flow(coords, phi_ref)
        return self.flow(cond).log_prob(y.float()).double() + log_det

    def from_unit(
        self, u: torch.Tensor, reco: Particles, theta: torch.Tensor, charge: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``u (B, D)`` ∈ [0, 1]^D → ``(coords (B, D) float64, log_q (B,) float64)``.

        z = Φ⁻¹(u) (u clamped into [1e-7, 1 − 1e-7]) is the flow's base point; log_q is the
        normal base density minus the log-Jacobian of z → coords, which equals
        ``log_prob(coords)``. The density of u itself is 1, so no further term enters.
        """
        cond, phi_ref = self._condition(reco, theta, charge)
        z = torch.special.ndtri(u.to(self.hard_mean.device, torch.float64).clamp(_U_EPS, 1 - _U_EPS))
        y, log_det_inv = self.flow(cond).transform.inv.call_and_ladj(z.float())
        coords = self._from_flow(y, phi_ref)
        log_base = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
        return coords, log_base - log_det_inv.double() + self._to_flow(coords, phi_ref)[1]

    def loss(self, batch: Any, transfer: Any = None) -> torch.Tensor:
        """Mean −log q(hard|reco, θ) of a batch with ``reco``, ``hard``, ``theta`` (eq. 6.36).

        With a trained ``transfer`` network the reco events are replaced by its samples
        x̃_reco ~ p(x_reco|x_hard) (eqs. 6.37–6.38), so q learns the modelled distribution; pass
        ``functools.partial(sampler.loss, transfer=t)`` to a trainer.
        """
        reco, hard, theta, charge = unpack(batch, "reco", "hard", "theta", "charge")
        if transfer is not None:
            reco = transfer.sample(hard)
            charge = None
        return -self.log_prob(hard, reco, theta, charge).mean()


@dataclass(frozen=True)
class BayesianSamplerConfig(SamplerConfig, BayesianConfig):
    """:class:`SamplerConfig` plus the Bayesian fields of :class:`~memzoo_cinn.bayesian.BayesianConfig`."""


class BayesianCINNSampler(BayesianMixin, CINNSampler):
    """Bayesian Sampling-cINN (thesis Sec. 6.3.1): variational subnets, replicas, NLL + KL / N loss."""

    name = "cinn-bayesian"
    Config = BayesianSamplerConfig
