"""The conformance suite: it passes for good backends and fails for broken ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

import memzoo
from memzoo.testing import (
    AcceptanceSuite,
    LikelihoodSuite,
    ProcessSuite,
    SamplerSuite,
    ToyProblem,
    TransferModelSuite,
    check_acceptance,
    check_sampler,
    check_transfer_model,
    transfer_normalisation,
)


class TestToySmear(TransferModelSuite):
    name = "toy-smear"


class TestToySmearWide(TransferModelSuite):
    name = "toy-smear"
    config = {"pt_resolution": 10.0, "eta_resolution": 0.5, "phi_resolution": 1.0}


class TestToyGauss(SamplerSuite):
    name = "toy-gauss"


class TestMLPAcceptance(AcceptanceSuite):
    name = "mlp"
    config = {"hard_dim": 3, "layers": 3, "hidden": 16}


class TestConstantAcceptance(AcceptanceSuite):
    name = "constant"
    config = {"value": 0.5}


class TestToyAnalytic(LikelihoodSuite):
    name = "toy-analytic"


class TestToyMuon(ProcessSuite):
    name = "toy-muon"


# -- the checks must be able to fail ---------------------------------------------------


def test_unnormalised_transfer_fails():
    model = memzoo.create("transfer", "toy-smear")
    problem = ToyProblem.one_muon()
    original = model.log_prob
    model.log_prob = lambda reco, hard: original(reco, hard) + math.log(1.3)
    estimate, error, pull = transfer_normalisation(model, problem.hard[:1])
    assert abs(estimate - 1.3) < 5 * error and abs(estimate - 1) > 10 * error
    assert pull < 5  # sample and log_prob still agree in shape


def test_transfer_whose_sample_disagrees_with_log_prob_fails():
    model = memzoo.create("transfer", "toy-smear")
    problem = ToyProblem.one_muon()
    wider = memzoo.create("transfer", "toy-smear", pt_resolution=6.0)
    model.sample = wider.sample  # samples 3x wider than log_prob says
    estimate, error, pull = transfer_normalisation(model, problem.hard[:1])
    assert abs(estimate - 1) < 5 * error  # log_prob itself is normalised ...
    assert pull > 10  # ... but sample() does not follow it


def test_sampler_with_wrong_log_q_fails():
    sampler = memzoo.create("sampler", "toy-gauss")
    original = sampler.from_unit
    sampler.from_unit = lambda u, reco, theta: (original(u, reco, theta)[0], original(u, reco, theta)[1] + 0.1)
    with pytest.raises(AssertionError, match="differs from the log_q"):
        check_sampler(sampler, ToyProblem.one_muon())


def test_bad_shapes_and_ranges_fail():
    @dataclass(frozen=True)
    class Cfg:
        pass

    class Over:
        config = Cfg()

        def prob(self, coords):
            return torch.full(coords.shape[:1], 1.5)

    with pytest.raises(AssertionError, match=r"lie in \[0, 1\]"):
        check_acceptance(Over(), ToyProblem.one_muon())

    model = memzoo.create("transfer", "toy-smear")
    model.log_prob = lambda reco, hard: torch.zeros(len(reco), 1)
    with pytest.raises(AssertionError, match=r"log_prob must return \(B,\)"):
        check_transfer_model(model, ToyProblem.one_muon())
    model = memzoo.create("transfer", "toy-smear")
    original = model.log_prob
    model.log_prob = lambda reco, hard: original(reco, hard) * torch.where(hard[:, 0] > 50, math.nan, 1.0)
    with pytest.raises(AssertionError, match="non-finite"):
        check_transfer_model(model, ToyProblem.one_muon())


def test_toy_process_cross_section_is_exact():
    """σ of the toy process is sigma0 by construction: VEGAS must find it within its error."""
    process = memzoo.create("process", "toy-muon", sigma0=42.0)
    sigma, error = process.cross_section(process.theta(slope=[0.02, 0.1]), n_points=5000, n_iter=5)
    assert torch.all((sigma - 42.0).abs() < 5 * error + 1e-9), (sigma, error)
    assert torch.all(error < 0.01 * 42.0)


def test_toy_analytic_likelihood_matches_numerical_convolution():
    """The toy world's exact likelihood equals ∫ dσ/σ · p(reco|hard) done by quadrature."""
    process = memzoo.create("process", "toy-muon")
    transfer = memzoo.create("transfer", "toy-smear")
    likelihood = memzoo.create("likelihood", "toy-analytic")
    reco = ToyProblem.one_muon(n=4).reco
    theta = process.theta(slope=[0.03, 0.1])
    x = memzoo.events.to_ptetaphim(reco.p[:, 0])
    # pT and η on fine grids around each event; φ integrates to 1/(2π) exactly
    pt = torch.linspace(20, 140, 24001, dtype=torch.float64)
    eta = torch.linspace(-2.4, 2.4, 4801, dtype=torch.float64)
    for e in range(len(reco)):
        sig = transfer.log_resolution.exp().detach()
        p_pt = torch.exp(-0.5 * ((x[e, 0] - pt) / sig[0]) ** 2) / (sig[0] * math.sqrt(2 * math.pi))
        p_eta = torch.exp(-0.5 * ((x[e, 1] - eta) / sig[1]) ** 2) / (sig[1] * math.sqrt(2 * math.pi))
        coords_pt = torch.stack([pt, torch.zeros_like(pt), torch.zeros_like(pt)], -1)
        d_pt = process.dsigma(coords_pt, theta) * (2 * 2.4 * 2 * math.pi) / 100.0  # density in pT
        numeric = torch.trapezoid(d_pt * p_pt[:, None], pt, dim=0) * torch.trapezoid(p_eta, eta) / (2 * 2.4)
        numeric = numeric / (2 * math.pi)
        exact = likelihood.log_likelihood(reco[e], theta).logp[0].exp()
        torch.testing.assert_close(exact, numeric, rtol=1e-5, atol=0)
