"""Tests of the MEM integrator on the toy world of the test plugin, whose likelihood is exact.

The toy world (tests/resources/memzoo-toyplugin): one muon, exponential pT spectrum with slope
θ = λ, Gaussian smearing; ``toy-analytic`` is the exact p(x_reco|θ) with ε = 1 and σ_fid = σ0 =
100 fb for every λ. Most tests pass ``sigma_fid=100.0`` to skip the σ_fid integration.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

import memzoo
from memzoo.integrator import MEMIntegrator
from memzoo.protocols import LikelihoodModel

SIGMA0 = 100.0


@pytest.fixture(scope="module")
def toy():
    memzoo.reset_plugins()
    proc = memzoo.create("process", "toy-muon")
    transfer = memzoo.create("transfer", "toy-smear")
    sampler = memzoo.create("sampler", "toy-gauss")
    exact = memzoo.create("likelihood", "toy-analytic")
    gen = torch.Generator().manual_seed(11)
    hard = proc.sample(100, proc.theta(slope=0.05), generator=gen)
    reco = transfer.sample(hard, generator=gen)
    theta = proc.theta(slope=[0.02, 0.05, 0.1])
    return proc, transfer, sampler, exact, reco, theta


def test_is_a_likelihood_model(toy):
    proc, transfer, sampler, *_ = toy
    integ = MEMIntegrator(proc, transfer, sampler)
    assert isinstance(integ, LikelihoodModel) and integ.name == "mem-integrator"


def test_coverage_against_exact_likelihood(toy):
    """Pulls (logp - exact)/std over 100 events × 3 θ: mean 0 ± 0.25, width 1 ± 0.25."""
    proc, transfer, sampler, exact, reco, _ = toy
    # λ ≥ 0.03: below 0.025 toy-muon's own phase-space map (built for λ = 0.05) gives the σ_fid
    # integrand infinite variance, and the σ_fid error estimate would be unreliable
    theta = proc.theta(slope=[0.03, 0.05, 0.1])
    integ = MEMIntegrator(proc, transfer, sampler, n_points=2000, seed=3, sigma_fid_points=20_000)
    result = integ.log_likelihood(reco, theta)
    pull = (result.logp - exact.log_likelihood(reco, theta).logp) / result.std
    assert result.logp.shape == result.std.shape == (100, 3)
    # pulls of one event are correlated over θ (single pass), and σ_fid's error is common to
    # all events, so the effective sample is smaller than 300: generous but meaningful bounds
    assert abs(float(pull.mean())) < 0.25
    assert 0.75 < float(pull.std()) < 1.25
    assert set(result.diagnostics) >= {"n_points", "n_iterations", "n_nonfinite", "rel_error"}
    assert (result.diagnostics["n_nonfinite"] == 0).all()


def test_single_pass_equals_separate_integrations(toy):
    proc, transfer, sampler, _, reco, theta = toy
    reco = reco[:30]
    kw = {"n_points": 2000, "sigma_fid": SIGMA0}
    joint = MEMIntegrator(proc, transfer, sampler, seed=1, **kw).log_likelihood(reco, theta)
    for t in range(3):
        alone = MEMIntegrator(proc, transfer, sampler, seed=2 + t, **kw).log_likelihood(reco, theta[t : t + 1])
        pull = (joint.logp[:, t] - alone.logp[:, 0]) / torch.hypot(joint.std[:, t], alone.std[:, 0])
        assert pull.abs().max() < 4.5 and abs(float(pull.mean())) < 0.6


# -- a factorised toy: a mixture of two exponential pT spectra ---------------------------


class _MixtureBase:
    """dσ = σ0 [(1 - w) e₁(pT) + w e₂(pT)] / (2 η_max 2π): slopes 0.03 and 0.1, θ = (w,)."""

    name = "toy-mixture"
    parameters = (memzoo.Parameter("w", "", 0.5, (0.0, 1.0)),)
    hard_dim = 3
    hard_kinds = (13,)
    slopes = (0.03, 0.1)

    def __init__(self) -> None:
        self.base = memzoo.create("process", "toy-muon")
        self.terms_calls = 0

    def from_unit(self, u):
        return self.base.from_unit(u)

    def check_theta(self, theta):
        return theta.to(torch.float64)

    def _terms(self, coords):
        self.terms_calls += 1
        lam = torch.tensor([self.slopes], dtype=torch.float64)
        return torch.cat([self.base.dsigma(coords, lam[:, k : k + 1]) for k in range(2)], -1)

    def _coefficients(self, theta):
        w = theta[:, :1].to(torch.float64)
        return torch.cat([1 - w, w], -1)


class MixtureFactorised(_MixtureBase):
    def dsigma_terms(self, coords):
        return self._terms(coords)

    def coefficients(self, theta):
        return self._coefficients(theta)


class MixtureDirect(_MixtureBase):
    def dsigma(self, coords, theta):
        return self._terms(coords) @ self._coefficients(theta).T


def mixture_exact(exact, reco, theta):
    """Exact log-likelihood of the mixture: the two slope likelihoods mixed with (1 - w, w)."""
    lam = torch.tensor([[0.03], [0.1]], dtype=torch.float64)
    logp = exact.log_likelihood(reco, lam).logp  # (E, 2)
    coeff = torch.cat([1 - theta, theta], -1)
    return torch.logsumexp(logp[:, None, :] + torch.log(coeff)[None], -1)


def test_factorised_equals_direct_and_exact(toy):
    _, transfer, sampler, exact, reco, _ = toy
    reco = reco[:40]
    theta = torch.tensor([[0.0], [0.3], [0.7], [1.0]], dtype=torch.float64)
    fact = MixtureFactorised()
    kw = {"n_points": 2000, "seed": 4, "sigma_fid_points": 20_000}
    res_f = MEMIntegrator(fact, transfer, sampler, **kw).log_likelihood(reco, theta)
    direct = MixtureDirect()
    assert not hasattr(direct, "dsigma_terms")
    integ_d = MEMIntegrator(direct, transfer, sampler, **kw)
    res_d = integ_d.log_likelihood(reco, theta)
    # same seed, same points: the two evaluations agree to rounding, σ_fid within errors
    fid_f = res_f.diagnostics["sigma_fid"][0]
    fid_d = res_d.diagnostics["sigma_fid"][0]
    torch.testing.assert_close(res_f.logp + torch.log(fid_f), res_d.logp + torch.log(fid_d), rtol=0, atol=1e-9)
    err = res_f.diagnostics["sigma_fid_error"][0]
    assert ((fid_f - SIGMA0).abs() < 5 * err + 1e-9).all()
    # the K terms are evaluated once per batch for all four θ (one batch per iteration here)
    # plus once per σ_fid iteration (10) for all θ present and future
    assert fact.terms_calls == int(res_f.diagnostics["n_iterations"].max()) + 10
    pull = (res_f.logp - mixture_exact(exact, reco, theta)) / res_f.std
    assert abs(float(pull.mean())) < 0.35 and 0.7 < float(pull.std()) < 1.3


def test_vegas_reduces_variance(toy):
    proc, transfer, _, _, reco, theta = toy
    wide = memzoo.create("sampler", "toy-gauss", width=(12.0, 0.12, 0.12))  # a poor proposal
    kw = {"n_points": 2000, "min_iterations": 5, "max_iterations": 5, "sigma_fid": SIGMA0, "seed": 5}
    with_vegas = MEMIntegrator(proc, transfer, wide, vegas=True, **kw).log_likelihood(reco[:20], theta)
    without = MEMIntegrator(proc, transfer, wide, vegas=False, **kw).log_likelihood(reco[:20], theta)
    ratio = (without.std**2).mean() / (with_vegas.std**2).mean()
    assert ratio > 3.0, f"variance reduction factor {float(ratio):.2f}"


def test_bootstrap_std_matches_rerun_spread(toy):
    proc, transfer, sampler, _, reco, theta = toy
    reco = reco[:10]
    kw = {"n_points": 1000, "min_iterations": 2, "max_iterations": 2, "sigma_fid": SIGMA0, "bootstrap": 40}
    runs = [MEMIntegrator(proc, transfer, sampler, seed=s, **kw).log_likelihood(reco, theta) for s in range(20)]
    logp = torch.stack([r.logp for r in runs])  # (runs, E, T)
    boot_std = torch.stack([r.std for r in runs]).mean(0)
    ratio = float(boot_std.mean() / logp.std(0).mean())
    assert 0.7 < ratio < 1.3, f"bootstrap std / rerun spread = {ratio:.2f}"
    # ratios between θ points: replicas are correlated, their spread matches the reruns too
    reps = runs[0].diagnostics["logp_replicas"]
    assert reps.shape == (10, 3, 40)
    boot_ratio = torch.stack(
        [(r.diagnostics["logp_replicas"][:, 2] - r.diagnostics["logp_replicas"][:, 0]).std(-1) for r in runs]
    ).mean(0)
    rerun_ratio = (logp[..., 2] - logp[..., 0]).std(0)
    assert 0.7 < float(boot_ratio.mean() / rerun_ratio.mean()) < 1.3
    assert float(boot_ratio.mean()) < 0.5 * float(boot_std.mean())  # single pass: correlated


class NaNTransfer:
    """toy-smear, but NaN for every row whose reco muon is that of one chosen event."""

    name = "nan-transfer"

    def __init__(self, inner, reco_p, fraction: float = 1.0):
        self.inner, self.reco_p, self.fraction = inner, reco_p, fraction

    def log_prob(self, reco, hard):
        out = self.inner.log_prob(reco, hard)
        hit = (reco.p[:, 0] == self.reco_p).all(-1)
        if self.fraction < 1.0:  # only part of the points: the event still converges, differently
            hit &= torch.frac(hard[:, 2] * 1000).abs() < self.fraction
        return torch.where(hit, torch.nan, out)

    def sample(self, hard, generator=None):
        return self.inner.sample(hard, generator)


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_nan_in_one_event_leaves_others_bit_identical(toy, fraction):
    proc, transfer, sampler, _, reco, theta = toy
    reco = reco[:8]
    kw = {"n_points": 1000, "max_iterations": 6, "target_rel_error": 0.01, "sigma_fid": SIGMA0, "bootstrap": 4}
    kw["max_batch_points"] = 3000  # several events per batch, and batches change as events converge
    clean = MEMIntegrator(proc, transfer, sampler, **kw).log_likelihood(reco, theta)
    broken_t = NaNTransfer(transfer, reco.p[3, 0], fraction)
    broken = MEMIntegrator(proc, broken_t, sampler, **kw).log_likelihood(reco, theta)
    others = [0, 1, 2, 4, 5, 6, 7]
    assert torch.equal(clean.logp[others], broken.logp[others])
    assert torch.equal(clean.std[others], broken.std[others])
    for key, value in clean.diagnostics.items():
        assert torch.equal(value[others], broken.diagnostics[key][others]), key
    n_bad = broken.diagnostics["n_nonfinite"]
    assert int(n_bad[3]) > 0 and (n_bad[others] == 0).all()
    if fraction == 1.0:
        assert torch.isneginf(broken.logp[3]).all()
    else:
        assert torch.isfinite(broken.logp[3]).all()


def _zero_region(hard: torch.Tensor) -> torch.Tensor:
    return torch.frac(hard[:, 2].abs() * 1000) < 0.2


class ZeroRegionProcess:
    """The toy process with dσ = 0 on a fifth of the hard points (as outside a phase space)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def dsigma_terms(self, x):
        return torch.where(_zero_region(x)[:, None], 0.0, self.inner.dsigma_terms(x))

    def dsigma(self, x, theta):
        return torch.where(_zero_region(x)[:, None], 0.0, self.inner.dsigma(x, theta))


class SpikeTransfer:
    """toy-smear, with log p raised by ``spike`` exactly where the process has dσ = 0."""

    name = "spike-transfer"

    def __init__(self, inner, spike: float):
        self.inner, self.spike = inner, spike

    def log_prob(self, reco, hard):
        return self.inner.log_prob(reco, hard) + torch.where(_zero_region(hard), self.spike, 0.0)

    def sample(self, hard, generator=None):
        return self.inner.sample(hard, generator)


def test_huge_weights_where_dsigma_vanishes_do_not_underflow_the_rest(toy):
    """Points with dσ = 0 contribute nothing, however large their weight (a badly trained sampler's
    or transfer's outliers): the result equals that without the outliers, instead of -inf."""
    proc, transfer, sampler, _, reco, theta = toy
    zero = ZeroRegionProcess(proc)
    kw = {"n_points": 1000, "max_iterations": 3, "sigma_fid": SIGMA0, "seed": 5}
    clean = MEMIntegrator(zero, transfer, sampler, **kw).log_likelihood(reco[:6], theta)
    spiked = MEMIntegrator(zero, SpikeTransfer(transfer, 2000.0), sampler, **kw).log_likelihood(reco[:6], theta)
    assert torch.isfinite(clean.logp).all()
    torch.testing.assert_close(spiked.logp, clean.logp, rtol=0, atol=1e-9)
    torch.testing.assert_close(spiked.std, clean.std, rtol=1e-9, atol=1e-12)


def test_convergence_loop_respects_target_and_bounds(toy):
    proc, transfer, sampler, _, reco, theta = toy
    reco = reco[:20]
    base = {"n_points": 500, "sigma_fid": SIGMA0, "min_iterations": 2, "max_iterations": 6}
    loose = MEMIntegrator(proc, transfer, sampler, target_rel_error=0.5, **base).log_likelihood(reco, theta)
    assert (loose.diagnostics["n_iterations"] == 2).all()
    tight = MEMIntegrator(proc, transfer, sampler, target_rel_error=1e-6, **base).log_likelihood(reco, theta)
    assert (tight.diagnostics["n_iterations"] == 6).all()
    mid = MEMIntegrator(proc, transfer, sampler, target_rel_error=0.012, **base).log_likelihood(reco, theta)
    n_it, rel = mid.diagnostics["n_iterations"], mid.diagnostics["rel_error"]
    assert ((n_it >= 2) & (n_it <= 6)).all() and len(set(n_it.tolist())) > 1
    stopped = n_it < 6
    assert (rel[stopped] <= 0.012).all()
    assert torch.equal(mid.diagnostics["n_points"], n_it * 500)


@pytest.mark.parametrize("acceptance", [None, "toy-turn-on"])
def test_sigma_fid(toy, acceptance):
    proc, transfer, sampler, _, _, theta = toy
    eps = None if acceptance is None else memzoo.create("acceptance", acceptance)
    integ = MEMIntegrator(proc, transfer, sampler, eps, sigma_fid_points=20_000)
    sigma, err = integ.sigma_fid(theta)
    if eps is None:
        ref, ref_err = proc.cross_section(theta, n_points=5000, n_adapt=4, n_iter=4)
        assert (torch.abs(sigma - ref) < 5 * torch.hypot(err, ref_err) + 1e-9).all()
        expected = torch.full((3,), SIGMA0, dtype=torch.float64)
    else:
        # ∫ λ e^{-λ (pT - 20)} sigmoid((pT - 25)/2) dpT by the trapezoidal rule
        pt = torch.linspace(20.0, 2000.0, 400_001, dtype=torch.float64)
        lam = theta[:, :1]
        expected = SIGMA0 * torch.trapezoid(lam * torch.exp(-lam * (pt - 20)) * torch.sigmoid((pt - 25) / 2), pt)
    assert (torch.abs(sigma - expected) < 5 * err + 1e-9).all()
    assert (err / sigma < 5e-3).all()
    # cached: a second call returns the same numbers without integrating
    again = integ.sigma_fid(theta[[2, 0]])
    assert torch.equal(again[0], sigma[[2, 0]])


class ReplicaSmear:
    """A fake Bayesian transfer: replica i scales the pT resolution by (0.9, 1.1, 1.2)[i]."""

    name = "replica-smear"
    n_replicas = 3
    factors = (0.9, 1.1, 1.2)

    def __init__(self) -> None:
        self.nets = [memzoo.create("transfer", "toy-smear", pt_resolution=2.0 * f) for f in self.factors]
        self.mean = memzoo.create("transfer", "toy-smear")
        self.active = self.mean

    def replica(self, index):
        @contextlib.contextmanager
        def ctx():
            self.active = self.mean if index is None else self.nets[index]
            yield
            self.active = self.mean

        return ctx()

    def log_prob(self, reco, hard):
        return self.active.log_prob(reco, hard)

    def sample(self, hard, generator=None):
        return self.mean.sample(hard, generator)


def test_bayesian_replicas_on_the_same_points(toy):
    proc, _, sampler, _, reco, theta = toy
    reco = reco[:20]
    integ = MEMIntegrator(proc, ReplicaSmear(), sampler, n_points=2000, replicas=3, sigma_fid=SIGMA0)
    result = integ.log_likelihood(reco, theta)
    reps = result.diagnostics["logp_replicas"]
    assert reps.shape == (20, 3, 3)
    for i, f in enumerate(ReplicaSmear.factors):
        exact = memzoo.create("likelihood", "toy-analytic", pt_resolution=2.0 * f).log_likelihood(reco, theta)
        pull = (reps[..., i] - exact.logp) / result.diagnostics["rel_error"]
        assert pull.abs().max() < 6
    # the network spread is part of the std
    assert (result.std**2 >= reps.var(-1) - 1e-12).all()


@pytest.mark.parametrize("max_batch_points", [700, 5000])
def test_batching_does_not_change_the_numbers(toy, max_batch_points):
    """700 rows per call split each event's 2000 points over three slices (VEGAS data binned per θ
    and normalised after the iteration); 5000 puts two events in a call. Both equal the default
    batching (all 15 events in one call) up to summation order, and agree with the exact answer."""
    proc, transfer, sampler, exact, reco, theta = toy
    reco = reco[:15]

    def run(**kw):
        return MEMIntegrator(proc, transfer, sampler, n_points=2000, sigma_fid=SIGMA0, **kw).log_likelihood(reco, theta)

    result, default = run(max_batch_points=max_batch_points), run()
    torch.testing.assert_close(result.logp, default.logp, rtol=0, atol=1e-9)
    torch.testing.assert_close(result.std, default.std, rtol=0, atol=1e-9)
    assert torch.equal(result.diagnostics["n_iterations"], default.diagnostics["n_iterations"])
    pull = (result.logp - exact.log_likelihood(reco, theta).logp) / result.std
    assert pull.abs().max() < 5 and math.isfinite(float(pull.mean()))


@pytest.mark.slow
def test_coverage_many_events_default_settings(toy):
    """400 events with the thesis' settings (10k points, 2–15 iterations, 2 % target)."""
    proc, transfer, sampler, exact, _, _ = toy
    gen = torch.Generator().manual_seed(12)
    reco = transfer.sample(proc.sample(400, proc.theta(slope=0.05), generator=gen), generator=gen)
    theta = proc.theta(slope=[0.03, 0.04, 0.05, 0.07, 0.1])
    result = MEMIntegrator(proc, transfer, sampler, bootstrap=20).log_likelihood(reco, theta)
    pull = (result.logp - exact.log_likelihood(reco, theta).logp) / result.std
    assert abs(float(pull.mean())) < 0.2 and 0.8 < float(pull.std()) < 1.2
    assert (result.diagnostics["rel_error"] <= 0.02).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(toy):
    proc, _, _, exact, reco, theta = toy
    transfer_cuda = memzoo.create("transfer", "toy-smear").to("cuda")
    sampler_cuda = memzoo.create("sampler", "toy-gauss").to("cuda")
    integ = MEMIntegrator(proc, transfer_cuda, sampler_cuda, n_points=2000, sigma_fid=SIGMA0, bootstrap=4)
    result = integ.log_likelihood(reco[:20].to("cuda"), theta.cuda())
    pull = (result.logp.cpu() - exact.log_likelihood(reco[:20], theta).logp) / result.std.cpu()
    assert result.logp.device.type == "cuda" and pull.abs().max() < 5
