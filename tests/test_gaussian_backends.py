"""The analytic parametric-detector backends (memzoo.builtin.gaussian) against the detector itself."""

from __future__ import annotations

import functools
import math

import pytest
import torch

import memzoo
from memzoo.config import ConfigError
from memzoo.events import Particles, RecoParticles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo.processes.drell_yan import DrellYan
from memzoo.simulation.detector import DetectorConfig, ParametricDetector, TruthObjects
from memzoo.testing import AcceptanceSuite, SamplerSuite, ToyProblem, TransferModelSuite

WIDE = {"lepton_eta_resolution": 0.3, "lepton_phi_resolution": 1.5}


@functools.cache
def _dy() -> DrellYan:
    return DrellYan()


def _truth(hard: torch.Tensor) -> TruthObjects:
    p = _dy().momenta_from_coords(hard.to(torch.float64))
    n = len(hard)
    return TruthObjects(p, torch.tensor([[13, -13]]).expand(n, -1), torch.ones(n, 2, dtype=torch.bool))


def _detector(hard: torch.Tensor, seed: int, **config) -> RecoParticles:
    return ParametricDetector(DetectorConfig(**config)).reconstruct(_truth(hard), torch.Generator().manual_seed(seed))


@functools.cache
def _dy_problem() -> ToyProblem:
    """Drell-Yan hard events of the process and their accepted reco events, stored like a dataset."""
    dy = _dy()
    hard = dy.sample(96, dy.theta(), generator=torch.Generator().manual_seed(3))
    reco = _detector(hard, seed=4)
    accepted = ParametricDetector().select(reco, "drell-yan")
    reco = reco[accepted]
    stored = Particles(reco.p, reco.kind, reco.mask)  # datasets keep the charge in a separate column
    return ToyProblem(hard[accepted], stored, dy.theta())


class _DrellYan:
    def problem(self, device: torch.device) -> ToyProblem:
        p = _dy_problem()
        return ToyProblem(p.hard.to(device), p.reco.to(device), p.theta.to(device))


class TestGaussianTransfer(_DrellYan, TransferModelSuite):
    name = "gaussian"
    check_normalisation = False  # the suite's check is for one reco object; see below


class TestGaussianTransferConditional(_DrellYan, TransferModelSuite):
    name = "gaussian"
    config = {"conditional": True}
    check_normalisation = False


class TestGaussianSampler(_DrellYan, SamplerSuite):
    name = "gaussian"


class TestExactAcceptance(_DrellYan, AcceptanceSuite):
    name = "parametric-exact"


# ---------------------------------------------------------------------------------------
# the transfer density against the detector
# ---------------------------------------------------------------------------------------


def _proposal(hard: torch.Tensor, n: int, gen: torch.Generator, det: DetectorConfig, k: float = 1.5):
    """Broad labelled muon pairs ``(n, 2, 3)`` (μ⁻, μ⁺) around the truth and their log density.

    Normal in (log pT, η, φ) with k times the detector's widths (uniform φ when that is wide),
    density in dpT dη dφ per muon.
    """
    truth = _truth(hard)
    pt, eta, phi = to_ptetaphim(truth.p[0])[:, :3].unbind(-1)
    rel = ParametricDetector(det).resolution(truth.label[0], truth.p[0])
    s = torch.log1p(rel**2).sqrt()
    mean = torch.stack([pt.log() - 0.5 * s**2, eta, phi], -1)
    sd = k * torch.stack(
        [s, torch.full_like(s, det.lepton_eta_resolution), torch.full_like(s, det.lepton_phi_resolution)], -1
    )
    z = mean + sd * torch.randn(n, 2, 3, generator=gen, dtype=torch.float64)
    uniform_phi = det.lepton_phi_resolution * k > 0.5
    if uniform_phi:
        z[..., 2] = math.pi * (2 * torch.rand(n, 2, generator=gen, dtype=torch.float64) - 1)

    def log_b(x: torch.Tensor) -> torch.Tensor:
        y = torch.stack([x[..., 0].log(), x[..., 1], wrap_phi(x[..., 2] - mean[:, 2]) + mean[:, 2]], -1)
        terms = -0.5 * ((y - mean) / sd) ** 2 - sd.log() - 0.5 * math.log(2 * math.pi)
        if uniform_phi:
            terms[..., 2] = -math.log(2 * math.pi)
        return (terms.sum(-1) - y[..., 0]).sum(-1)

    x = torch.stack([z[..., 0].exp(), z[..., 1], wrap_phi(z[..., 2])], -1)
    return x, log_b


def _pair_events(x: torch.Tensor, charge: bool) -> Particles:
    p = from_ptetaphim(torch.cat([x, torch.zeros_like(x[..., :1])], -1))
    kind, mask = torch.full(x.shape[:2], 13), torch.ones(x.shape[:2], dtype=torch.bool)
    if not charge:
        return Particles(p, kind, mask)
    return RecoParticles(p, kind, mask, charge=torch.tensor([[-1, 1]]).expand(len(x), -1))


def _labelled(reco: RecoParticles) -> torch.Tensor:
    """``(n, 2, 3)`` (pT, η, φ) of (μ⁻, μ⁺) of events with both muons found."""
    muon = reco.kind == 13
    keep = muon.sum(1) == 2
    x = to_ptetaphim(reco.p[keep])[..., :3]
    q = reco.charge[keep]
    minus = ((q < 0) & muon[keep]).to(torch.int8).argmax(1)
    plus = ((q > 0) & muon[keep]).to(torch.int8).argmax(1)
    rows = torch.arange(len(x))
    return torch.stack([x[rows, minus], x[rows, plus]], 1)


def _pulls(ref: torch.Tensor, pts: torch.Tensor, w: torch.Tensor, own: torch.Tensor) -> tuple[float, float]:
    """Largest quantile pulls: weighted proposal points vs ``ref`` and ``own`` samples vs ``ref``."""
    worst_w, worst_own = 0.0, 0.0
    ref, pts, own = ref.flatten(1), pts.flatten(1), own.flatten(1)
    for c in range(ref.shape[1]):
        for q in (0.16, 0.5, 0.84):
            t = torch.quantile(ref[:, c], q)
            below = (pts[:, c] < t).double()
            frac = float((w * below).sum() / w.sum())
            se = float(torch.sqrt((w**2 * (below - frac) ** 2).sum()) / w.sum())
            worst_w = max(worst_w, abs(frac - q) / math.sqrt(se**2 + q * (1 - q) / len(ref)))
            f_own = float((own[:, c] < t).double().mean())
            worst_own = max(worst_own, abs(f_own - q) / math.sqrt(q * (1 - q) * (1 / len(ref) + 1 / len(own))))
    return worst_w, worst_own


HARD_POINTS = [(40.0, 0.3, -1.1, 0.5), (300.0, 1.8, -0.7, -2.0)]


@pytest.mark.parametrize("config", [{}, WIDE], ids=["cms", "wide"])
@pytest.mark.parametrize("point", HARD_POINTS, ids=["40GeV", "300GeV"])
def test_transfer_matches_detector(point, config):
    """∫ p dx_reco = 1 and the density reproduces the detector's quantiles (both muons, charges known)."""
    n = 20_000
    hard = torch.tensor([point], dtype=torch.float64)
    det = DetectorConfig(**config)
    model = memzoo.create("transfer", "gaussian", **config)
    seed = HARD_POINTS.index(point)  # independent draws per point (the standardised shapes coincide)
    x, log_b = _proposal(hard, n, torch.Generator().manual_seed(seed), det)
    w = torch.exp(model.log_prob(_pair_events(x, charge=True), hard.expand(n, -1)) - log_b(x))
    z, err = float(w.mean()), float(w.std() / math.sqrt(n))
    assert abs(z - 1) < 4 * err and err < 0.02, f"∫ p dx_reco = {z:.4f} ± {err:.4f}"
    # Found muons are unbiased where the detector's efficiency is flat: extend its |η| range.
    ref = _labelled(_detector(hard.expand(n, -1), seed=10 + seed, muon_efficiency=((10.0, 0.95),), **config))
    own = _labelled(model.sample(hard.expand(n, -1), torch.Generator().manual_seed(20 + seed)))
    pull_w, pull_own = _pulls(ref, x, w, own)
    assert pull_w < 4.5, f"log_prob disagrees with the detector: quantile pull {pull_w:.1f}"
    assert pull_own < 4.5, f"sample() disagrees with the detector: quantile pull {pull_own:.1f}"


@pytest.mark.parametrize("config", [{}, WIDE], ids=["cms", "wide"])
def test_unordered_pair_normalised(config):
    """Without charges the density of the unordered pair integrates to 1 over pT₁ > pT₂."""
    n = 20_000
    hard = torch.tensor([(40.0, 0.3, 0.1, 0.5)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    model = memzoo.create("transfer", "gaussian", **config)
    x, log_b = _proposal(hard, n, gen, DetectorConfig(**config))
    swap = torch.rand(n, generator=gen) < 0.5
    x = torch.where(swap[:, None, None], x.flip(1), x)
    log_b_sym = torch.logaddexp(log_b(x), log_b(x.flip(1))) - math.log(2)
    logp = model.log_prob(_pair_events(x, charge=False), hard.expand(n, -1))
    ordered = x[:, 0, 0] > x[:, 1, 0]
    w = torch.where(ordered, torch.exp(logp - log_b_sym), 0.0)
    z, err = float(w.mean()), float(w.std() / math.sqrt(n))
    assert abs(z - 1) < 4 * err and err < 0.03, f"∫_(pT1>pT2) p dx_reco = {z:.4f} ± {err:.4f}"
    # the order of the objects does not matter, and a charge column picks one term of the sum
    flipped = model.log_prob(_pair_events(x.flip(1), charge=False), hard.expand(n, -1))
    torch.testing.assert_close(flipped, logp)
    labelled = model.log_prob(_pair_events(x, charge=True), hard.expand(n, -1))
    assert bool((labelled <= logp + 1e-12).all())


def test_conditional_density_of_accepted_events():
    """conditional=True: normalised over the accepted region, equal to the detector's accepted events."""
    n = 20_000
    hard = torch.tensor([(20.5, 2.3995, -0.5, 0.5)], dtype=torch.float64)
    model = memzoo.create("transfer", "gaussian", conditional=True)
    x, log_b = _proposal(hard, n, torch.Generator().manual_seed(6), DetectorConfig())
    w = torch.exp(model.log_prob(_pair_events(x, charge=True), hard.expand(n, -1)) - log_b(x))
    z, err = float(w.mean()), float(w.std() / math.sqrt(n))
    assert abs(z - 1) < 4 * err and err < 0.03, f"∫ p dx_reco = {z:.4f} ± {err:.4f}"
    reco = _detector(hard.expand(4 * n, -1), seed=7)
    ref = _labelled(reco[ParametricDetector().select(reco, "drell-yan")])
    own = model.sample(hard.expand(n, -1), torch.Generator().manual_seed(8))
    assert bool(ParametricDetector().select(own, "drell-yan").all())
    pull_w, pull_own = _pulls(ref, x, w, _labelled(own))
    assert pull_w < 4.5 and pull_own < 4.5, (pull_w, pull_own)


def test_transfer_log_prob_edge_cases():
    model = memzoo.create("transfer", "gaussian")
    hard = torch.tensor([(40.0, 0.3, -1.1, 0.5)], dtype=torch.float64).expand(3, -1)
    reco = model.sample(hard, torch.Generator().manual_seed(0))
    one_muon = Particles(reco.p, torch.tensor([[13, 0, 12]] * 3), torch.tensor([[True, False, True]] * 3))
    assert bool(torch.isinf(model.log_prob(one_muon, hard)).all())
    same_sign = model.log_prob(reco, hard, charge=torch.tensor([[1, 1, 0]] * 3))
    assert bool(torch.isinf(same_sign).all())
    # missing pT is ignored: dropping it changes nothing
    muons_only = RecoParticles(reco.p[:, :2], reco.kind[:, :2], reco.mask[:, :2], charge=reco.charge[:, :2])
    torch.testing.assert_close(model.log_prob(muons_only, hard), model.log_prob(reco, hard))


def test_config_errors_and_defaults():
    with pytest.raises(ValueError, match="drell-yan"):
        memzoo.create("transfer", "gaussian", process="thj")
    with pytest.raises(ConfigError):
        memzoo.create("sampler", "gaussian", pt_resolution=1.0)
    model = memzoo.create("acceptance", "parametric-exact")
    det = DetectorConfig()
    assert model.detector_config.muon_pt_resolution == det.muon_pt_resolution
    assert model.detector_config.muon_efficiency == det.muon_efficiency


# ---------------------------------------------------------------------------------------
# the acceptance against the detector + selection
# ---------------------------------------------------------------------------------------

STEPPED = {"muon_efficiency": ((1.0, 0.9), (2.0, 0.7)), "muon_pt_min": 25.0, "lepton_eta_resolution": 0.2}


@pytest.mark.parametrize(
    ("config", "point"),
    [
        ({}, (40.0, 0.3, -1.1, 0.5)),
        ({}, (20.5, 2.3995, -0.5, 0.5)),
        ({}, (20.2, -1.0, 1.45, 2.0)),
        ({}, (100.0, 2.41, 0.0, -1.0)),
        (STEPPED, (25.5, 1.05, -1.9, 0.0)),
        (STEPPED, (800.0, 0.1, 2.1, 1.0)),
    ],
)
def test_acceptance_matches_detector(config, point):
    n = 20_000
    hard = torch.tensor([point], dtype=torch.float64)
    exact = float(memzoo.create("acceptance", "parametric-exact", **config).prob(hard)[0])
    reco = _detector(hard.expand(n, -1), seed=11, **config)
    mc = float(ParametricDetector(DetectorConfig(**config)).select(reco, "drell-yan").double().mean())
    sigma = math.sqrt(max(exact * (1 - exact), 1e-12) / n)
    assert abs(mc - exact) < 4 * sigma, f"exact {exact:.4f}, MC {mc:.4f} ± {sigma:.4f}"


def test_conditional_transfer_times_acceptance_is_the_joint_density():
    """ε(x_hard) · p(x_reco|x_hard, accepted) = p_smear · efficiency · selection for accepted reco."""
    hard = torch.tensor([(20.5, 2.3995, -0.5, 0.5)], dtype=torch.float64).expand(500, -1)
    smear = memzoo.create("transfer", "gaussian")
    reco = smear.sample(hard, torch.Generator().manual_seed(9))
    accepted = ParametricDetector().select(reco, "drell-yan")
    joint = memzoo.create("transfer", "gaussian", conditional=True).log_prob(reco, hard)
    joint = joint + memzoo.create("acceptance", "parametric-exact").prob(hard).log()
    expected = torch.where(accepted, smear.log_prob(reco, hard) + 2 * math.log(0.95), -torch.inf)
    torch.testing.assert_close(joint, expected)


# ---------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("charge", [True, False], ids=["charge", "no-charge"])
def test_sampler_covers_the_transfer_peak(charge):
    """Importance weights p(x_reco|x_hard)/q(x_hard|x_reco) are well behaved (flat prior)."""
    n = 4000
    problem = _dy_problem()
    transfer, sampler = memzoo.create("transfer", "gaussian"), memzoo.create("sampler", "gaussian")
    gen = torch.Generator().manual_seed(12)
    estimates = []
    for row in range(4):
        reco = _detector(problem.hard[row : row + 1], seed=20 + row)
        if not bool(ParametricDetector().select(reco, "drell-yan")[0]):
            continue
        events = reco[[0] * n] if charge else Particles(reco.p, reco.kind, reco.mask)[[0] * n]
        u = torch.rand(n, 4, generator=gen, dtype=torch.float64)
        coords, log_q = sampler.from_unit(u, events, problem.theta)
        torch.testing.assert_close(log_q, sampler.log_prob(coords, events, problem.theta))
        w = torch.exp(transfer.log_prob(events, coords) - log_q)
        ess = float(w.sum() ** 2 / (w**2).sum()) / n
        # width_factor 2 gives (√7/4)⁴ ≈ 0.19. Without charges the transfer density has a second
        # mode (μ⁻ ↔ μ⁺ swapped in hard space) that the other mixture half covers: same ESS.
        assert ess > 0.15, f"event {row}: effective sample fraction {ess:.3f}"
        estimates.append(float(w.mean()))
    assert estimates


def test_sampler_mixture_is_a_density():
    """Without charges q is the 50/50 mixture; its integral over the hard coordinates is 1."""
    n = 20_000
    problem = _dy_problem()
    sampler = memzoo.create("sampler", "gaussian")
    reco = problem.reco[[0] * n]
    coords, log_q = sampler.from_unit(
        torch.rand(n, 4, generator=torch.Generator().manual_seed(13)), reco, problem.theta
    )
    # each half of the mixture: coords near one assignment of the reco muons
    x = to_ptetaphim(reco.p[0, :2])
    first = (coords[:, 1] - x[0, 1]).abs() < 0.05
    assert abs(float(first.double().mean()) - 0.5) < 4 * math.sqrt(0.25 / n)
    # q(coords) from the charge-known components: log q = log(½ q_A + ½ q_B)
    q_a = sampler.log_prob(coords, reco, problem.theta, charge=torch.tensor([[-1, 1, 0]]).expand(n, -1))
    q_b = sampler.log_prob(coords, reco, problem.theta, charge=torch.tensor([[1, -1, 0]]).expand(n, -1))
    torch.testing.assert_close(log_q, torch.logaddexp(q_a, q_b) - math.log(2))
