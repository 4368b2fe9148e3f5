"""A one-muon toy world with exact answers, registered as a memzoo plugin for the test suite.

Hard process ``toy-muon``: one muon with dσ/(dpT dη dφ) = σ0 · λ exp(-λ (pT - pT_min)) / (2 η_max · 2π)
for pT > pT_min, |η| < η_max; parameter θ = (λ,) in GeV⁻¹. Transfer ``toy-smear``: Gaussian
smearing with absolute pT resolution and η, φ resolutions. Likelihood ``toy-analytic``: the exact
p(x_reco|θ) of that world (an exponentially modified Gaussian in pT, erf-smeared box in η,
uniform φ). Sampler ``toy-gauss``: a Gaussian proposal around the reco muon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

import memzoo
from memzoo.events import Particles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo.processes.base import ProcessBase
from memzoo.protocols import Likelihood, Parameter

SQRT2 = math.sqrt(2.0)


def _normal_logpdf(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


class ToyMuon(ProcessBase):
    name = "toy-muon"
    parameters = (Parameter("slope", "1/GeV", 0.05, (0.01, 0.2), "exponential pT slope λ"),)
    hard_dim = 3
    hard_kinds = (13,)
    coordinate_names = ("pT", "eta", "phi")

    @dataclass(frozen=True)
    class Config:
        sigma0: float = 100.0
        pt_min: float = 20.0
        eta_max: float = 2.4

    def coords_from_momenta(self, p: torch.Tensor) -> torch.Tensor:
        return to_ptetaphim(p[:, 0])[:, :3]

    def momenta_from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        m = torch.full_like(coords[:, :1], 0.10566)
        return from_ptetaphim(torch.cat([coords, m], -1))[:, None]

    def dsigma(self, coords: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        theta = self.check_theta(theta).to(coords.device)
        c = self.config
        pt, eta = coords[:, :1].double(), coords[:, 1:2].double()
        lam = theta[:, 0][None, :]
        inside = (pt > c.pt_min) & (eta.abs() < c.eta_max)
        val = c.sigma0 * lam * torch.exp(-lam * (pt - c.pt_min)) / (2 * c.eta_max * 2 * math.pi)
        return torch.where(inside, val, torch.zeros_like(val))

    def from_unit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, lam = self.config, 0.05
        pt = c.pt_min - torch.log1p(-u[:, 0]) / lam
        coords = torch.stack([pt, c.eta_max * (2 * u[:, 1] - 1), math.pi * (2 * u[:, 2] - 1)], -1)
        jac = torch.exp(lam * (pt - c.pt_min)) / lam * (2 * c.eta_max) * (2 * math.pi)
        return coords, jac


class ToySmear(nn.Module):
    name = "toy-smear"

    @dataclass(frozen=True)
    class Config:
        pt_resolution: float = 2.0
        eta_resolution: float = 0.02
        phi_resolution: float = 0.02

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        res = [config.pt_resolution, config.eta_resolution, config.phi_resolution]
        self.log_resolution = nn.Parameter(torch.log(torch.tensor(res, dtype=torch.float64)))

    def log_prob(self, reco: Particles, hard: torch.Tensor) -> torch.Tensor:
        x = to_ptetaphim(reco.p[:, 0].double())
        sigma = self.log_resolution.exp()
        diff = torch.stack([x[:, 0] - hard[:, 0], x[:, 1] - hard[:, 1], wrap_phi(x[:, 2] - hard[:, 2])], -1)
        return _normal_logpdf(diff, torch.zeros_like(diff), sigma).sum(-1)

    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        noise = torch.randn(hard.shape, generator=generator, dtype=torch.float64)
        x = hard.double() + noise * self.log_resolution.exp().detach()
        x = torch.stack([x[:, 0].abs(), x[:, 1], wrap_phi(x[:, 2]), torch.full_like(x[:, 0], 0.10566)], -1)
        b = hard.shape[0]
        return Particles(from_ptetaphim(x)[:, None], torch.full((b, 1), 13), torch.ones(b, 1, dtype=torch.bool))


class ToyGauss(nn.Module):
    name = "toy-gauss"

    @dataclass(frozen=True)
    class Config:
        width: tuple[float, float, float] = (3.0, 0.03, 0.03)

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.log_width = nn.Parameter(torch.log(torch.tensor(config.width, dtype=torch.float64)))

    def from_unit(self, u: torch.Tensor, reco: Particles, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = SQRT2 * torch.erfinv(2 * u.double().clamp(1e-12, 1 - 1e-12) - 1)
        center = to_ptetaphim(reco.p[:, 0].double())[:, :3]
        coords = center + z * self.log_width.exp()
        return coords, self.log_prob(coords, reco, theta)

    def log_prob(self, coords: torch.Tensor, reco: Particles, theta: torch.Tensor) -> torch.Tensor:
        center = to_ptetaphim(reco.p[:, 0].double())[:, :3]
        width = self.log_width.exp()
        return _normal_logpdf(coords.double(), center, width).sum(-1)


class ToyAnalytic(nn.Module):
    name = "toy-analytic"

    @dataclass(frozen=True)
    class Config:
        pt_min: float = 20.0
        eta_max: float = 2.4
        pt_resolution: float = 2.0
        eta_resolution: float = 0.02

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def log_likelihood(self, reco: Particles, theta: torch.Tensor) -> Likelihood:
        c = self.config
        x = to_ptetaphim(reco.p[:, 0].double())
        lam = theta[:, 0].double()[None, :]
        y, s = x[:, :1], c.pt_resolution
        # exponential (start pT_min, slope λ) convolved with N(0, s²): the EMG density
        log_pt = (
            torch.log(lam / 2)
            + lam / 2 * (2 * c.pt_min + lam * s**2 - 2 * y)
            + torch.log(torch.special.erfc((c.pt_min + lam * s**2 - y) / (SQRT2 * s)))
        )
        e, se = x[:, 1:2], c.eta_resolution
        box = 0.5 * (torch.erf((e + c.eta_max) / (SQRT2 * se)) - torch.erf((e - c.eta_max) / (SQRT2 * se)))
        logp = log_pt + torch.log(box / (2 * c.eta_max)) - math.log(2 * math.pi)
        return Likelihood(logp, torch.zeros_like(logp), theta.double())


class ToyTurnOn:
    """ε(pT) = sigmoid((pT - threshold) / width): a trigger turn-on curve."""

    name = "toy-turn-on"

    @dataclass(frozen=True)
    class Config:
        threshold: float = 25.0
        width: float = 2.0

    def __init__(self, config: Config) -> None:
        self.config = config

    def prob(self, coords: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((coords[:, 0] - self.config.threshold) / self.config.width)


@memzoo.hookimpl
def memzoo_register_acceptance_models():
    return [ToyTurnOn]


@memzoo.hookimpl
def memzoo_register_processes():
    return [ToyMuon]


@memzoo.hookimpl
def memzoo_register_transfer_models():
    return [ToySmear]


@memzoo.hookimpl
def memzoo_register_samplers():
    return [ToyGauss]


@memzoo.hookimpl
def memzoo_register_likelihood_models():
    return [ToyAnalytic]
