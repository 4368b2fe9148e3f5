"""The small per-particle cINN of the Transfermer (thesis Sec. 6.5.2, eq. 6.42, Fig. 6.18 right).

p(x_i|c_i) = p(pT, η, φ | c_i) · p(m | pT, η, φ, c_i): every momentum component is transformed
once by a rational-quadratic spline (Durkan et al., arXiv:1906.04032; zuko's implementation)
whose parameters a feed-forward subnet computes from the transformer output c_i and the
components before it — a minimal autoregressive cINN. Per component:

* pT: u = (log pT − μ)/σ, a conditional affine map, then a spline on [−5, 5] (identity tails) to
  a standard-normal latent;
* η: a spline on [−η_max, η_max] to a uniform latent (η is bounded by the detector; outside,
  the density is zero);
* φ (relative to the hard reference, see :mod:`~memzoo_transfermer.sequences`): a conditional
  rotation φ − ψ(c) (unit Jacobian) then zuko's circular spline (a circular shift composed with
  a spline whose end derivatives are both 1, Rezende et al., arXiv:2002.02428) to a uniform
  latent on [−π, π), so the density is periodic and continuous in φ;
* m (jets only): u = (log(m + m_offset) − μ)/σ, affine and spline to a normal latent.

Missing pT (kind 12) has only pT and φ. Densities are per dpT dη dφ (dm for jets), the measure
of :func:`memzoo.protocols.reco_measure_dims`: the log-Jacobians of log pT, log(m + m_offset)
and the standardisation are included.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from zuko.flows.spline import CircularRQSTransform
from zuko.transforms import MonotonicRQSTransform

from memzoo.builtin.acceptance import mlp

__all__ = ["ParticleFlow"]

_LOG_2PI = math.log(2 * math.pi)
_BOUND = 5.0  # spline domain of the standardised log pT and log m


def _normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * z**2 - 0.5 * _LOG_2PI


class ParticleFlow(nn.Module):
    """Conditional density of one reco object's (pT, η, φ, m) given a condition c.

    Args:
        context: C, size of the condition (transformer output plus kind one-hot).
        layers, hidden: subnet depth (linear layers) and width (thesis: 5 and 256).
        bins: spline bins (thesis: 16).
        eta_max: |η| bound of the η latent space.

    Inputs are *features*: ``u_pt`` (standardised log pT), ``eta``, ``phi`` (relative, in
    [−π, π)) and ``u_m`` (standardised log(m + m_offset)), each ``(T,)`` for T objects, plus
    ``has_eta``/``has_mass`` booleans ``(T,)`` telling which components the object has.
    """

    def __init__(self, context: int, layers: int = 5, hidden: int = 256, bins: int = 16, eta_max: float = 5.0):
        super().__init__()
        self.bins, self.eta_max = bins, eta_max
        n_spline = 3 * bins - 1
        # subnets: (inputs, outputs) per component; affine components add shift and log-scale,
        # φ adds the two components of its rotation vector
        self.pt_net = mlp(context, n_spline + 2, layers, hidden)
        self.eta_net = mlp(context + 1, n_spline, layers, hidden)
        self.phi_net = mlp(context + 2, n_spline + 2, layers, hidden)
        self.m_net = mlp(context + 4, n_spline + 2, layers, hidden)

    def _spline(self, params: torch.Tensor, bound: float) -> MonotonicRQSTransform:
        k = self.bins
        return MonotonicRQSTransform(params[..., :k], params[..., k : 2 * k], params[..., 2 * k :], bound=bound)

    def _circular(self, params: torch.Tensor):
        k = self.bins
        return CircularRQSTransform(params[..., :k], params[..., k : 2 * k], params[..., 2 * k :])

    @staticmethod
    def _affine(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shift, bounded log-scale (soft-clamped to ±3) and spline parameters of a subnet output."""
        return out[..., 0], 3 * torch.tanh(out[..., 1] / 3), out[..., 2:]

    @staticmethod
    def _rotation(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.atan2(out[..., 1], out[..., 0] + 1.0), out[..., 2:]

    def _eta_in(self, eta: torch.Tensor, has_eta: torch.Tensor) -> torch.Tensor:
        return torch.where(has_eta, eta / self.eta_max, 0.0)[..., None]

    def log_prob(
        self,
        c: torch.Tensor,
        u_pt: torch.Tensor,
        eta: torch.Tensor,
        phi: torch.Tensor,
        u_m: torch.Tensor,
        has_eta: torch.Tensor,
        has_mass: torch.Tensor,
    ) -> torch.Tensor:
        """``(T,)`` log density of the features (per du_pt dη dφ du_m; Jacobians to physical
        coordinates are added by the caller). η outside [−η_max, η_max] gives −inf."""
        shift, log_scale, params = self._affine(self.pt_net(c))
        y = (u_pt - shift) * torch.exp(-log_scale)
        z, ladj = self._spline(params, _BOUND).call_and_ladj(y)
        log_p = _normal_log_prob(z) + ladj - log_scale

        eta_in = self._eta_in(eta, has_eta)
        inside = eta.abs() <= self.eta_max
        eta_safe = torch.where(has_eta & inside, eta, 0.0)
        z, ladj = self._spline(self.eta_net(torch.cat([c, u_pt[..., None]], -1)), self.eta_max).call_and_ladj(eta_safe)
        log_eta = ladj - math.log(2 * self.eta_max)
        log_eta = torch.where(inside, log_eta, -torch.inf)
        log_p = log_p + torch.where(has_eta, log_eta, 0.0)

        psi, params = self._rotation(self.phi_net(torch.cat([c, u_pt[..., None], eta_in], -1)))
        phi_rot = torch.remainder(phi - psi + math.pi, 2 * math.pi) - math.pi
        z, ladj = self._circular(params).call_and_ladj(phi_rot)
        log_p = log_p + ladj - _LOG_2PI

        angle = torch.stack([torch.cos(phi), torch.sin(phi)], -1)
        shift, log_scale, params = self._affine(self.m_net(torch.cat([c, u_pt[..., None], eta_in, angle], -1)))
        y = (torch.where(has_mass, u_m, 0.0) - shift) * torch.exp(-log_scale)
        z, ladj = self._spline(params, _BOUND).call_and_ladj(y)
        return log_p + torch.where(has_mass, _normal_log_prob(z) + ladj - log_scale, 0.0)

    @torch.no_grad()
    def sample(
        self, c: torch.Tensor, has_eta: torch.Tensor, has_mass: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``(u_pt, eta, phi, u_m)``, each ``(T,)``, from latent ``noise (T, 4)`` ~ U(0, 1)⁴.

        Components an object does not have come back as 0.
        """
        z = torch.special.ndtri(noise.clamp(1e-7, 1 - 1e-7))
        shift, log_scale, params = self._affine(self.pt_net(c))
        u_pt = self._spline(params, _BOUND).inv(z[:, 0]) * torch.exp(log_scale) + shift

        eta = self._spline(self.eta_net(torch.cat([c, u_pt[..., None]], -1)), self.eta_max).inv(
            (2 * noise[:, 1] - 1) * self.eta_max
        )
        eta = torch.where(has_eta, eta, 0.0)

        psi, params = self._rotation(self.phi_net(torch.cat([c, u_pt[..., None], self._eta_in(eta, has_eta)], -1)))
        phi_rot = self._circular(params).inv((2 * noise[:, 2] - 1) * math.pi)
        phi = torch.remainder(phi_rot + psi + math.pi, 2 * math.pi) - math.pi

        angle = torch.stack([torch.cos(phi), torch.sin(phi)], -1)
        m_in = torch.cat([c, u_pt[..., None], self._eta_in(eta, has_eta), angle], -1)
        shift, log_scale, params = self._affine(self.m_net(m_in))
        u_m = self._spline(params, _BOUND).inv(z[:, 3]) * torch.exp(log_scale) + shift
        return u_pt, eta, phi, torch.where(has_mass, u_m, 0.0)
