"""Tests of the cINN plugin: conformance suites, training, replicas, bundles, entry point."""

from __future__ import annotations

import math

import pytest
import torch
from memzoo_cinn import BayesianCINNTransfer, CINNSampler, CINNTransfer

import memzoo
from memzoo.events import Particles, from_ptetaphim, wrap_phi
from memzoo.plugins import get_registry
from memzoo.testing import (
    FittedPreprocessing,
    SamplerSuite,
    ToyProblem,
    TransferModelSuite,
    check_roundtrip,
    check_sampler,
    check_transfer_model,
    drell_yan_pairs,
    fit_steps,
    random_batches,
    smeared_muons,
    transfer_normalisation,
)

TINY = {"blocks": 2, "layers": 1, "hidden": 16, "bins": 4}


class TestTransfer(FittedPreprocessing, TransferModelSuite):
    name = "cinn"
    config = TINY


class TestBayesianTransfer(FittedPreprocessing, TransferModelSuite):
    name = "cinn-bayesian"
    config = TINY


class TestSampler(FittedPreprocessing, SamplerSuite):
    name = "cinn"
    config = TINY


class TestBayesianSampler(FittedPreprocessing, SamplerSuite):
    name = "cinn-bayesian"
    config = TINY


def test_unfitted_models_conform():
    """Freshly built models (identity standardisation) already satisfy the shape/consistency checks."""
    p = ToyProblem.one_muon(n=32)
    for name in ("cinn", "cinn-bayesian"):
        check_transfer_model(memzoo.create("transfer", name, **TINY), p)
        check_sampler(memzoo.create("sampler", name, **TINY), p)


def test_training_approaches_exact_nll():
    """200 Adam steps on 4096 pairs close >= 85 % of the gap to the exact Gaussian NLL.

    Measured with an earlier 3 s budget (2 shared cores): NLL 4.20 → −2.46 against the exact −2.86.
    """
    torch.manual_seed(0)
    reco, hard, _ = smeared_muons(4096, 0)
    val_reco, val_hard, val_exact = smeared_muons(2000, 1)
    model = CINNTransfer(CINNTransfer.Config(blocks=3, layers=2, hidden=32, bins=8))
    model.fit_preprocessing(reco, hard)
    with torch.no_grad():
        before = float(-model.log_prob(val_reco, val_hard).mean())
    # a fixed number of steps: the result must not depend on the machine's load
    fit_steps(model, random_batches({"reco": reco, "hard": hard}, 256, seed=2), 200, lr=3e-3)
    with torch.no_grad():
        after = float(-model.log_prob(val_reco, val_hard).mean())
    exact = float(-val_exact.mean())
    assert (after - exact) < 0.15 * (before - exact), f"NLL {before:.3f} → {after:.3f}, exact {exact:.3f}"


def test_relative_features_learn_a_sharp_response_and_stay_normalised():
    """log(pT/pT_hard) and η − η_hard features (hard_pt, hard_eta) for a 10⁻³ η/φ resolution.

    The same 2 s of training as absolute features closes the NLL gap to the exact density much
    further (measured: 150 steps leave absolute features 3.2 nats above the exact NLL, relative
    ones 0.03); the density stays normalised (Z within 5 standard errors).
    """
    gen = torch.Generator().manual_seed(0)

    def pairs(n):
        u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        hard = torch.stack([25 + 75 * u[:, 0], 4 * u[:, 1] - 2, math.pi * (2 * u[:, 2] - 1)], -1)
        sigma = torch.tensor([0.02, 1e-3, 1e-3], dtype=torch.float64)  # relative pT, η, φ
        z = torch.randn(n, 3, generator=gen, dtype=torch.float64)
        x = torch.stack([hard[:, 0] * (1 + sigma[0] * z[:, 0]), hard[:, 1] + sigma[1] * z[:, 1]], -1)
        phi = wrap_phi(hard[:, 2] + sigma[2] * z[:, 2])
        four = from_ptetaphim(torch.cat([x, phi[:, None], torch.full((n, 1), 0.10566)], -1))
        reco = Particles(four[:, None], torch.full((n, 1), 13), torch.ones(n, 1, dtype=torch.bool))
        exact = (-0.5 * z**2 - torch.log(sigma)).sum(-1) - 1.5 * math.log(2 * math.pi) - torch.log(x[:, 0])
        return reco, hard, exact

    reco, hard, _ = pairs(4096)
    val_reco, val_hard, val_exact = pairs(2000)
    gaps = {}
    for name, extra in (("absolute", {}), ("relative", {"hard_pt": (0,), "hard_eta": (1,)})):
        torch.manual_seed(0)
        model = CINNTransfer(CINNTransfer.Config(blocks=3, layers=2, hidden=32, bins=8, **extra))
        model.fit_preprocessing(reco, hard)
        fit_steps(model, random_batches({"reco": reco, "hard": hard}, 256, seed=2), 150, lr=3e-3)
        with torch.no_grad():
            gaps[name] = float(-model.log_prob(val_reco, val_hard).mean() + val_exact.mean())
    assert gaps["relative"] < 0.5 and gaps["relative"] < gaps["absolute"] - 1.0, gaps
    z, err, pull = transfer_normalisation(model, val_hard[:1])
    assert abs(z - 1) < 5 * err + 0.02 and pull < 5, (z, err, pull)
    with pytest.raises(ValueError, match="one hard column"):
        CINNTransfer(CINNTransfer.Config(hard_pt=(0, 0)))


def test_replicas():
    problem = ToyProblem.one_muon(n=16)
    model = BayesianCINNTransfer(BayesianCINNTransfer.Config(**TINY))
    assert isinstance(model, memzoo.protocols.SupportsReplicas) and model.n_replicas == 10
    with torch.no_grad():
        mean = model.log_prob(problem.reco, problem.hard)
        draws = []
        for index in (0, 1, 0, None):
            with model.replica(index):
                draws.append(model.log_prob(problem.reco, problem.hard))
        torch.testing.assert_close(draws[0], draws[2])  # a replica is reproducible
        torch.testing.assert_close(draws[3], mean)  # None is the posterior mean, as outside
        assert float((draws[0] - draws[1]).abs().max()) > 1e-4
        torch.testing.assert_close(model.log_prob(problem.reco, problem.hard), mean)  # deterministic
    with pytest.raises(ValueError, match="replica index"):
        model.replica(10).__enter__()
    loss = model.loss({"reco": problem.reco, "hard": problem.hard})
    loss.backward()
    assert model.kl() > 0 and torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "logvar" in n)


@pytest.mark.parametrize("kind", ["transfer", "sampler"])
def test_roundtrip_with_fitted_preprocessing(kind):
    p = ToyProblem.one_muon(n=32)
    theta = p.theta[:1].expand(len(p.reco), -1)
    model = memzoo.create(kind, "cinn", **TINY)
    if kind == "transfer":
        model.fit_preprocessing(p.reco, p.hard)
        check_roundtrip(model, kind, lambda m: m.log_prob(p.reco, p.hard))
    else:
        model.fit_preprocessing(p.reco, p.hard, theta)
        check_roundtrip(model, kind, lambda m: m.log_prob(p.hard, p.reco, theta))
    assert abs(float(model.hard_std[0]) - 1.0) > 1e-3  # fitted, not the default 1


def test_two_muons_with_charges_and_met():
    """Drell-Yan layout: two charge-ordered muons picked out of (μ, μ, MET) reco events."""
    gen = torch.Generator().manual_seed(3)
    n = 64
    reco, hard = drell_yan_pairs(n, gen)
    layout = {"objects": ("mu", "mu"), "charge_order": True, "hard_dim": 4, "log_hard": (0,), "hard_phi": (3,)}
    transfer = CINNTransfer(CINNTransfer.Config(**layout, **TINY))
    transfer.fit_preprocessing(reco, hard)
    assert torch.isfinite(transfer.log_prob(reco, hard)).all()
    sampled = transfer.sample(hard)
    assert sampled.charge.tolist()[0] == [-1, 1] and sampled.kind.tolist()[0] == [13, 13]
    assert torch.isfinite(transfer.log_prob(sampled, hard)).all()
    # the μ⁺ is back to back with the hard μ⁻ azimuth: its slot is measured from φ⁻ + π, away from the cut
    offset = wrap_phi(transfer.phi_offset - torch.tensor([0.0, math.pi], dtype=torch.float64))
    assert offset.abs().max() < 0.05
    x = transfer.layout.features(reco, transfer._phi_ref(hard))[0]
    assert x[:, 5].abs().max() < 0.1  # atanh(Δφ/π) of the μ⁺ slot stays near 0
    state = {k: v for k, v in transfer.state_dict().items() if k != "phi_offset"}
    old = CINNTransfer(CINNTransfer.Config(**layout, **TINY))
    old.load_state_dict(state, strict=True)  # bundles from before the offsets load with zero offsets
    assert old.phi_offset.abs().max() == 0
    unpaired = Particles(reco.p[:, :1], reco.kind[:, :1], reco.mask[:, :1])
    with pytest.raises(ValueError, match="charge"):
        transfer.log_prob(unpaired, hard)
    sampler = CINNSampler(CINNSampler.Config(**layout, **TINY))
    theta = torch.zeros(1, 1, dtype=torch.float64)
    sampler.fit_preprocessing(reco, hard, theta)
    check_sampler(sampler, ToyProblem(hard, reco, theta))
    coords, _ = sampler.from_unit(torch.rand(n, 4, generator=gen, dtype=torch.float64), reco, theta)
    assert bool((coords[:, 0] > 0).all()) and bool((coords[:, 3].abs() <= math.pi).all())


def test_invalid_config_and_events():
    with pytest.raises(ValueError, match="objects"):
        CINNTransfer(CINNTransfer.Config(objects=("tau",)))
    with pytest.raises(ValueError, match="hard_phi"):
        CINNTransfer(CINNTransfer.Config(hard_dim=2))
    with pytest.raises(memzoo.config.ConfigError):
        memzoo.create("transfer", "cinn", hidden_units=3)
    paper = CINNTransfer(CINNTransfer.Config(size="paper"))
    assert len(paper.flow.transform.transforms) == 20
    model = CINNTransfer(CINNTransfer.Config(objects=("mu", "mu"), **TINY))
    one_muon = ToyProblem.one_muon(n=4)
    assert torch.isneginf(model.log_prob(one_muon.reco, one_muon.hard)).all()  # layout not matched


def test_entry_point_registration():
    assert "cinn" in memzoo.available("transfer") and "cinn-bayesian" in memzoo.available("sampler")
    entry = get_registry().get("transfer", "cinn")
    assert entry.plugin == "cinn" and entry.distribution == "memzoo-cinn" and entry.cls is CINNTransfer
