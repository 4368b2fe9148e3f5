"""Tests of the Transfusion plugin: conformance, transformer passes per density and per sampling step,
sample/log_prob consistency, multiplicity, training, processes, bundles and the entry point."""

from __future__ import annotations

import math
import os

import pytest
import torch
from memzoo_transfusion import Transfusion

import memzoo
from memzoo.events import Particles, RecoParticles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo.plugins import get_registry
from memzoo.testing import (
    FittedPreprocessing,
    ToyProblem,
    TransferModelSuite,
    check_roundtrip,
    check_transfer_model,
    drell_yan_pairs,
    fit_steps,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TINY = {
    "dim": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 2, "feedforward": 32,
    "cfm_layers": 2, "cfm_hidden": 16, "time_features": 2, "classifier_layers": 2, "classifier_hidden": 16,
}  # fmt: skip
JETS = {"objects": ("bjet", "jet"), "extra": "jet", "max_extra": 2, "hard_kinds": (1, 5)}


def jet_problem(n: int = 48, seed: int = 0, device="cpu") -> ToyProblem:
    """A light and a b quark (hard (pT, η, φ) triples) → a b-jet and a jet (5 % pT, 0.03 η/φ smearing,
    masses 8–12 GeV) plus 0–2 extra jets (pT 25–60 GeV), stored in a shuffled order."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 2, 3, generator=gen, dtype=torch.float64)
    hard = torch.stack([40 + 100 * u[..., 0], 4 * u[..., 1] - 2, math.pi * (2 * u[..., 2] - 1)], -1)
    s = torch.randn(n, 2, 3, generator=gen, dtype=torch.float64) * torch.tensor([0.05, 0.03, 0.03])
    x = torch.stack([hard[..., 0] * (1 + s[..., 0]), hard[..., 1] + s[..., 1], wrap_phi(hard[..., 2] + s[..., 2])], -1)
    mass = 8 + 4 * torch.rand(n, 2, 1, generator=gen, dtype=torch.float64)
    n_extra = torch.randint(0, 3, (n,), generator=gen)
    ue = torch.rand(n, 2, 4, generator=gen, dtype=torch.float64)
    extra = torch.stack(
        [25 + 35 * ue[..., 0], 4 * ue[..., 1] - 2, math.pi * (2 * ue[..., 2] - 1), 5 + 5 * ue[..., 3]], -1
    )
    objects = torch.cat([torch.cat([x, mass], -1), extra], 1)
    kind = torch.tensor([1, 5, 1, 1]).expand(n, -1)
    mask = torch.cat([torch.ones(n, 2, dtype=torch.bool), torch.arange(2).expand(n, -1) < n_extra[:, None]], 1)
    perm = torch.argsort(torch.rand(n, 4, generator=gen), 1)
    p = torch.gather(from_ptetaphim(objects), 1, perm[..., None].expand(-1, -1, 4))
    reco = Particles(p, torch.gather(kind, 1, perm), torch.gather(mask, 1, perm))
    return ToyProblem(hard.flatten(1).to(device), reco.to(device), torch.zeros(1, 1, device=device))


def fitted(problem: ToyProblem, **config) -> Transfusion:
    model = memzoo.create("transfer", "transfusion", **{**TINY, **config})
    model.fit_preprocessing(problem.reco, problem.hard)
    return model


class TestTransfusion(FittedPreprocessing, TransferModelSuite):
    name = "transfusion"
    config = TINY


class TestTransfusionHutchinson(FittedPreprocessing, TransferModelSuite):
    """exp of an unbiased log-density estimate is biased (Jensen): ∫ p = 1 is checked with exact divergences."""

    name = "transfusion"
    config = {**TINY, "divergence": "hutchinson"}
    check_normalisation = False


class TestVariableMultiplicity(FittedPreprocessing, TransferModelSuite):
    """A b-jet, a jet and 0–2 extra jets: 4-d jet CFM, ordered slots, multiplicity classifier."""

    name = "transfusion"
    config = {**TINY, **JETS}
    check_normalisation = False

    def problem(self, device: torch.device) -> ToyProblem:
        return jet_problem(device=device)


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_transformer_once_per_density_and_per_sampling_step():
    """log_prob: one encoder and one decoder pass for the whole batch, then per object type one ODE
    solve (RK4, step 0.05: 20 × 4 velocity evaluations); sampling: one decoder pass per
    autoregressive step, never one per ODE step, and no density solves."""
    problem = jet_problem(n=32, seed=1)
    model = fitted(problem, **JETS)
    encoder, decoder = _count_calls(model.encoder), _count_calls(model.decoder)
    velocity = _count_calls(model.flow.cfms["jet"].velocity)
    with torch.no_grad():
        model.log_prob(problem.reco, problem.hard)
    assert (encoder[0], decoder[0], velocity[0]) == (1, 1, 80)
    encoder[0] = decoder[0] = velocity[0] = 0
    model.sample(problem.hard)
    n_max = model.layout.n_max
    # the encoder runs twice (before and after drawing n); each step solves the sampling ODE once
    assert (encoder[0], decoder[0], velocity[0]) == (2, n_max, 80 * n_max)
    assert set(model.flow.cfms) == {"jet"}


def test_sample_log_prob_consistency():
    """The density accumulated during autoregressive sampling (conditions from growing prefixes, n
    transformer passes) equals the one-pass log_prob of the samples: the causal mask holds."""
    problem = jet_problem(n=128, seed=2)
    model = fitted(problem, **JETS)
    with torch.no_grad():
        sampled, log_q = model.sample_and_log_prob(problem.hard, torch.Generator().manual_seed(1))
        log_p = model.log_prob(sampled, problem.hard)
    jets = (sampled.kind == 1) | (sampled.kind == 5)
    clean = ((to_ptetaphim(sampled.p)[..., 3] > 0) | ~jets).all(1)  # no jet mass clamped to 0
    assert int(clean.sum()) > 0.8 * len(clean) and bool(torch.isfinite(log_p).all())
    diff = (log_p - log_q)[clean].abs()
    assert float((diff < 2e-3).double().mean()) > 0.95 and float(diff.max()) < 0.05, diff.max()
    assert float((log_p[clean] - log_q[clean].roll(1)).abs().median()) > 0.1  # a test that can fail
    counts = torch.bincount(sampled.multiplicity - 2, minlength=3)
    assert int((counts > 0).sum()) >= 2
    light_pt = torch.where(sampled.kind == 1, to_ptetaphim(sampled.p)[..., 0], -1.0)[:, 1:]
    assert bool((light_pt.diff(dim=1) <= 0).all())  # pT-ordered, the density's support


def test_loss_trains_cfms_and_multiplicity():
    """The loss reaches every CFM and the classifier; 150 steps lower it; events outside the support
    (here: no b-jet) are rejected."""
    problem = jet_problem(n=256, seed=3)
    model = fitted(problem, **JETS)
    batch = {"reco": problem.reco, "hard": problem.hard}
    model.loss(batch).backward()
    for part in (model.flow.cfms["jet"], model.multiplicity, model.decoder):
        assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in part.parameters())
    torch.manual_seed(0)
    with torch.no_grad():
        before = sum(float(model.loss(batch)) for _ in range(5)) / 5
    fit_steps(model, lambda: batch, 150, lr=3e-3)
    with torch.no_grad():
        after = sum(float(model.loss(batch)) for _ in range(5)) / 5
    assert after < 0.7 * before, (before, after)
    no_b = Particles(problem.reco.p, torch.where(problem.reco.kind == 5, 1, problem.reco.kind), problem.reco.mask)
    with pytest.raises(ValueError, match="support"):
        model.loss({"reco": no_b, "hard": problem.hard})


def test_solver_options_and_processes():
    """Drell-Yan with charge-ordered muons (on-shell CFM only) and tHj tokens: finite densities,
    dopri5 agrees with RK4, bundles round trip."""

    gen = torch.Generator().manual_seed(4)
    reco, hard = drell_yan_pairs(24, gen)
    dy = memzoo.create("transfer", "transfusion", process="drell-yan", objects=("mu", "mu"), charge_order=True, **TINY)
    dy.fit_preprocessing(reco, hard)
    assert set(dy.flow.cfms) == {"onshell"}
    with torch.no_grad():
        rk4 = dy.log_prob(reco, hard)
        with dy.solver_options(step=0.01):
            fine = dy.log_prob(reco, hard)
        with dy.solver_options(solver="dopri5"):  # float32 networks: tolerances of 1e-5
            adaptive = dy.log_prob(reco, hard)
    assert dy.ode.method == "rk4"
    # measured: RK4 0.05 vs 0.01 and dopri5 vs RK4 0.01 agree to ~1e-3 (float32 Jacobians)
    torch.testing.assert_close(rk4, fine, rtol=0, atol=5e-3)
    torch.testing.assert_close(adaptive, fine, rtol=0, atol=5e-3)
    out = dy.sample(hard, gen)
    assert isinstance(out, RecoParticles) and out.charge.tolist()[0] == [-1, 1]
    check_transfer_model(dy, ToyProblem(hard, reco, torch.zeros(1, 1)))
    coords = torch.cat([torch.randn(16, 6, generator=gen) * 80, torch.randn(16, 1, generator=gen) * 300], 1).double()
    thj = memzoo.create(
        "transfer", "transfusion", process="thj", objects=("photon", "bjet", "jet"), extra="jet", max_extra=1, **TINY
    )
    sampled = thj.sample(coords, gen)
    thj.fit_preprocessing(sampled, coords)
    assert set(thj.flow.cfms) == {"onshell", "jet"}
    check_roundtrip(thj, "transfer", lambda m: m.log_prob(sampled, coords))


def test_invalid_config_and_sizes():
    with pytest.raises(ValueError, match="objects"):
        Transfusion(Transfusion.Config(objects=("tau",)))
    with pytest.raises(ValueError, match="solver must be one of"):
        Transfusion(Transfusion.Config(solver="rk45"))
    with pytest.raises(memzoo.config.ConfigError):
        memzoo.create("transfer", "transfusion", bins=8)  # no spline subnets here
    paper = Transfusion(Transfusion.Config(size="paper", objects=("photon", "jet"), extra="jet", max_extra=2))
    assert len(paper.encoder.layers) == 6 and len(paper.decoder.layers) == 8  # Table A.11
    net = paper.flow.cfms["jet"].velocity.net
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6 and linears[0].out_features == 400 and isinstance(net[1], torch.nn.SiLU)
    assert set(paper.flow.cfms) == {"onshell", "jet"} and paper.ode.step == 0.05


def test_entry_point_registration():
    assert "transfusion" in memzoo.available("transfer")
    entry = get_registry().get("transfer", "transfusion")
    assert entry.plugin == "transfusion" and entry.distribution == "memzoo-transfusion" and entry.cls is Transfusion


def test_cut_direction_learns_back_to_back_muon():
    """Drell-Yan muons are back to back: relative to the reference μ⁺ the μ⁻ sits at φ_rel = ±π, on
    the atanh cut of a fixed frame. The circular loss turns ψ(c) towards it (≈ π) within 60 steps,
    while the μ⁺ slot stays at ψ ≈ 0."""

    gen = torch.Generator().manual_seed(4)
    reco, hard = drell_yan_pairs(512, gen)
    dy = memzoo.create("transfer", "transfusion", process="drell-yan", objects=("mu", "mu"), charge_order=True, **TINY)
    dy.fit_preprocessing(reco, hard)
    torch.manual_seed(0)
    fit_steps(dy, lambda: {"reco": reco, "hard": hard}, 60, lr=1e-2)
    with torch.no_grad():
        p, kind, mask, n_extra, _ = dy.layout.select(reco, None)
        memory, hard_mask, phi_ref, _ = dy._memory(dy.hard_particles(hard), n_extra)
        numeric, _, phi, *_ = dy._reco_features(p, kind, phi_ref)
        psi = dy.flow._psi(dy._conditions(memory, hard_mask, numeric, kind, mask))
    assert float(phi[:, 0].abs().min()) > 3.0  # the μ⁻ really is at the fixed frame's cut
    assert float(psi[:, 0].abs().min()) > 2.8 and float(psi[:, 1].abs().max()) < 0.3, psi
