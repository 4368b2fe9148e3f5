"""Tests of the regression surrogate: conformance, features, network, loss, loader, metrics, training."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from memzoo_regression import EventFeatures, RegressionLikelihood
from memzoo_regression.fit import fit_regression
from memzoo_regression.loader import ChunkedTensorLoader
from memzoo_regression.metrics import discriminant, regression_metrics, roc
from memzoo_regression.training_data import RegressionRows

import memzoo
from memzoo.events import Particles, RecoParticles, from_ptetaphim
from memzoo.plugins import get_registry
from memzoo.testing import LikelihoodSuite, ToyProblem, check_likelihood
from memzoo.training_config import TrainingConfig

TINY = {"layers": 2, "hidden": 16}


class TestRegression(LikelihoodSuite):
    name = "regression"
    config = TINY


class TestRegressionResNet(LikelihoodSuite):
    name = "regression"
    config = {**TINY, "architecture": "resnet", "output_activation": "linear", "loss": "huber"}


def test_entry_point_registers_the_likelihood():
    entry = get_registry().get("likelihood", "regression")
    assert entry.cls is RegressionLikelihood and entry.plugin == "regression"
    assert entry.distribution == "memzoo-regression"


def test_unknown_config_is_rejected_with_the_accepted_keys():
    with pytest.raises(ValueError, match="Accepted keys"):
        memzoo.create("likelihood", "regression", depth=3)
    with pytest.raises(ValueError, match="architecture"):
        memzoo.create("likelihood", "regression", architecture="transformer")
    with pytest.raises(ValueError, match="objects must be"):
        memzoo.create("likelihood", "regression", objects=["muon", "tau"])


# ---------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------


def two_muons(pt_eta_phi: torch.Tensor, charge: torch.Tensor | None = None) -> RecoParticles:
    """``(B, 2, 3)`` (pT, η, φ) → B events of two muons."""
    b = len(pt_eta_phi)
    x = torch.cat([pt_eta_phi, torch.full((b, 2, 1), 0.10566, dtype=pt_eta_phi.dtype)], -1)
    charge = torch.tensor([[1, -1]]).expand(b, -1) if charge is None else charge
    return RecoParticles(from_ptetaphim(x), torch.full((b, 2), 13), torch.ones(b, 2, dtype=torch.bool), charge=charge)


def test_features_have_the_analytic_values():
    x = torch.tensor([[[50.0, 0.3, 1.0], [40.0, -0.2, -2.0]]], dtype=torch.float64)
    f = EventFeatures(("mu", "mu"), charge_order=True)(two_muons(x))
    # charge order puts the μ⁻ (second stored object) into slot 0
    dphi = 1.0 - (-2.0)
    expected = [1, math.log(40.0), -0.2, 1, math.log(50.0), 0.3, math.cos(dphi), math.sin(dphi)]
    torch.testing.assert_close(f[0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-9)
    delta = EventFeatures(("mu", "mu"), phi_encoding="delta")(two_muons(x))
    wrapped = (-2.0 - 1.0 + math.pi) % (2 * math.pi) - math.pi
    assert delta[0, -1].item() == pytest.approx(wrapped, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(rotation=st.floats(-10.0, 10.0), seed=st.integers(0, 2**16))
def test_features_are_invariant_under_azimuthal_rotations(rotation, seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(8, 2, 3, generator=gen, dtype=torch.float64)
    x = torch.stack([20 + 80 * u[..., 0], 4 * u[..., 1] - 2, 2 * math.pi * u[..., 2] - math.pi], -1)
    turned = x.clone()
    turned[..., 2] = torch.remainder(x[..., 2] + rotation + math.pi, 2 * math.pi) - math.pi
    features = EventFeatures(("mu", "mu"))
    torch.testing.assert_close(features(two_muons(turned)), features(two_muons(x)), rtol=0, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(boost=st.floats(-2.0, 2.0), seed=st.integers(0, 2**16))
def test_a_longitudinal_boost_shifts_only_the_rapidities(boost, seed):
    """Massless objects: a boost along z adds the same Δy = Δη to every η; pT and Δφ stay (paper Sec. 3)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(8, 2, 3, generator=gen, dtype=torch.float64)
    x = torch.stack([20 + 80 * u[..., 0], 4 * u[..., 1] - 2, 2 * math.pi * u[..., 2] - math.pi], -1)
    p = from_ptetaphim(torch.cat([x, torch.zeros(8, 2, 1, dtype=torch.float64)], -1))
    e, pz = p[..., 0].clone(), p[..., 3].clone()
    p[..., 0], p[..., 3] = e * math.cosh(boost) + pz * math.sinh(boost), pz * math.cosh(boost) + e * math.sinh(boost)
    reco = Particles(p, torch.full((8, 2), 13), torch.ones(8, 2, dtype=torch.bool))
    features = EventFeatures(("mu", "mu"))
    before, after = features(two_muons(x)), features(reco)
    eta = [i for i, n in enumerate(features.names) if n.startswith("eta")]
    rest = [i for i in range(features.n_features) if i not in eta]
    torch.testing.assert_close(after[:, eta] - before[:, eta], torch.full((8, 2), boost, dtype=torch.float64))
    torch.testing.assert_close(after[:, rest], before[:, rest], rtol=0, atol=1e-7)


def test_missing_objects_are_flagged_and_zeroed():
    x = torch.tensor([[[50.0, 0.3, 1.0], [40.0, -0.2, -2.0]]], dtype=torch.float64)
    reco = two_muons(x)
    one = RecoParticles(reco.p, reco.kind, torch.tensor([[True, False]]), charge=reco.charge)
    features = EventFeatures(("mu", "mu", "met"))
    f = features(one)[0]
    names = features.names
    assert f[names.index("present_0")] == 1 and f[names.index("log_pt_0")] == pytest.approx(math.log(50.0))
    second = [i for i, n in enumerate(names) if n.endswith("_1") or n.endswith("_2")]
    assert bool((f[second] == 0).all())
    model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu", "mu"), **TINY))
    result = model.log_likelihood(Particles.cat([reco, one]), torch.tensor([[0.2]]))
    assert result.diagnostics["complete"].tolist() == [True, False]


def test_charge_order_needs_charges():
    x = torch.tensor([[[50.0, 0.3, 1.0], [40.0, -0.2, -2.0]]], dtype=torch.float64)
    reco = two_muons(x)
    plain = Particles(reco.p, reco.kind, reco.mask)
    with pytest.raises(ValueError, match="charge_order=True needs charges"):
        EventFeatures(("mu", "mu"), charge_order=True)(plain)


# ---------------------------------------------------------------------------------------
# model: preprocessing, loss, likelihood
# ---------------------------------------------------------------------------------------


def test_selu_output_keeps_every_training_target_reachable():
    model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), **TINY))
    p = ToyProblem.one_muon(n=50)
    f = model.event_features(p.reco)
    target = torch.linspace(-3.0, 5.0, 50, dtype=torch.float64)
    model.fit_preprocessing(f, p.theta[:1].expand(50, -1), target)
    scale = target.std()
    assert float(model.target_scale) == pytest.approx(float(scale))
    # the smallest target maps to −1, above SELU's floor −λα ≈ −1.758
    assert float((target.min() - model.target_loc) / model.target_scale) == pytest.approx(-1.0)


def test_weighted_losses_match_their_definitions():
    torch.manual_seed(0)
    p = ToyProblem.one_muon(n=20)
    for loss in ("mse", "huber"):
        model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), loss=loss, huber_delta=0.5, **TINY))
        f, th = model.event_features(p.reco), p.theta[:1].expand(20, -1)
        target = torch.randn(20, dtype=torch.float64)
        model.fit_preprocessing(f, th, target)
        weight = torch.rand(20, dtype=torch.float64)
        out = (model(f, th) - model.target_loc) / model.target_scale
        t = (target - model.target_loc) / model.target_scale
        r = (out - t).abs()
        per_row = r**2 if loss == "mse" else torch.where(r < 0.5, 0.5 * r**2, 0.5 * (r - 0.25))
        expected = ((weight * per_row).sum() / weight.sum()).detach()
        assert float(model.loss(f, th, target, weight).detach()) == pytest.approx(float(expected), rel=1e-5)


class TestRegressionPeriodicTheta(LikelihoodSuite):
    name = "regression"
    config = {**TINY, "theta_period": [360.0]}


def test_a_periodic_parameter_gives_a_periodic_information():
    """``theta_period``: θ enters as (cos, sin) of 2πθ/period, so θ and θ ± period are one input."""
    torch.manual_seed(2)
    p = ToyProblem.one_muon(n=6)
    theta = torch.tensor([[-170.0], [10.0], [90.0]], dtype=torch.float64)
    periodic = memzoo.create("likelihood", "regression", **TINY, theta_period=[360.0])
    linear = memzoo.create("likelihood", "regression", **TINY)
    assert periodic.net[0].in_features == linear.net[0].in_features + 1
    with torch.no_grad():
        info = periodic.information(p.reco, theta)
        torch.testing.assert_close(periodic.information(p.reco, theta + 360), info, rtol=0, atol=1e-5)
        torch.testing.assert_close(periodic.information(p.reco, theta - 720), info, rtol=0, atol=1e-5)
        assert not torch.allclose(linear.information(p.reco, theta + 360), linear.information(p.reco, theta))
    for bad in ([360.0, 360.0], [-1.0], [math.inf]):
        with pytest.raises(ValueError, match="theta_period needs one period"):
            RegressionLikelihood.Config(objects=("mu",), theta_period=tuple(bad))


def test_log_likelihood_is_minus_ln10_times_the_information_and_std_the_resolution():
    model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), max_batch=7, **TINY))
    model.set_resolution(0.01, 0.05)
    p = ToyProblem.one_muon(n=9)
    with torch.no_grad():
        info = model.information(p.reco, p.theta)
        result = model.log_likelihood(p.reco, p.theta)
        features = model.event_features(p.reco)
        row = model(features[4:5].expand(3, -1), p.theta)
    torch.testing.assert_close(result.logp, -math.log(10) * info)
    torch.testing.assert_close(info[4], row)  # chunking over (event, θ) rows keeps the pairing
    assert torch.allclose(result.std, torch.full_like(result.std, 0.05 * math.log(10)))
    with pytest.raises(ValueError, match=r"theta must be \(T, 1\)"):
        model.information(p.reco, torch.zeros(3, 2))


# ---------------------------------------------------------------------------------------
# loader
# ---------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 300), batch=st.integers(1, 64), chunk=st.integers(1, 5), shuffle=st.booleans())
def test_loader_serves_every_row_once_per_epoch(n, batch, chunk, shuffle):
    rows = torch.arange(n)
    loader = ChunkedTensorLoader(rows, rows * 2.0, batch_size=batch, chunk_batches=chunk, shuffle=shuffle, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == math.ceil(n / batch)
    assert all(len(b[0]) == batch for b in batches[:-1])
    seen = torch.cat([b[0] for b in batches])
    assert sorted(seen.tolist()) == list(range(n))
    assert all(torch.equal(b[1], b[0] * 2.0) for b in batches)  # tensors stay row-aligned
    if not shuffle:
        assert torch.equal(seen, rows)


def test_loader_epochs_are_reproducible_and_differ():
    rows = torch.arange(1000)
    first = [torch.cat([b[0] for b in ChunkedTensorLoader(rows, batch_size=100, seed=5)]) for _ in range(2)]
    torch.testing.assert_close(first[0], first[1])
    loader = ChunkedTensorLoader(rows, batch_size=100, seed=5)
    epoch0, epoch1 = (torch.cat([b[0] for b in loader]) for _ in range(2))
    assert not torch.equal(epoch0, epoch1)
    loader.set_epoch(0)
    torch.testing.assert_close(torch.cat([b[0] for b in loader]), epoch0)


def test_loader_rejects_misaligned_tensors():
    with pytest.raises(ValueError, match="same number of rows"):
        ChunkedTensorLoader(torch.zeros(3), torch.zeros(4), batch_size=2)


# ---------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------


def test_regression_metrics_against_hand_computed_values():
    integrated = torch.tensor([1.0, 2.0, 4.0, float("nan")])
    regressed = torch.tensor([1.5, 1.5, 4.0, 3.0])
    m = regression_metrics(regressed, integrated)
    # differences 0.5, −0.5, 0 (the NaN reference is skipped)
    assert m["n"] == 3 and m["bias"] == pytest.approx(0.0)
    assert m["resolution"] == pytest.approx(math.sqrt(0.5 / 3))
    assert m["mape"] == pytest.approx(100 * (0.5 + 0.25 + 0) / 3)
    weighted = regression_metrics(regressed[:3], integrated[:3], torch.tensor([1.0, 0.0, 1.0]))
    assert weighted["bias"] == pytest.approx(0.25)


def test_discriminant_and_auc():
    logp_a, logp_b = torch.tensor([0.0, math.log(3.0)]), torch.tensor([0.0, 0.0])
    torch.testing.assert_close(discriminant(logp_a, logp_b), torch.tensor([0.5, 0.75], dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, generator=gen) + 1.0, torch.randn(400, generator=gen)
    labels = torch.cat([torch.ones(400, dtype=torch.bool), torch.zeros(400, dtype=torch.bool)])
    _, _, auc = roc(torch.cat([a, b]), labels)
    mann_whitney = float((a[:, None] > b[None, :]).double().mean())
    assert auc == pytest.approx(mann_whitney, abs=1e-12)
    # two unit Gaussians one σ apart: AUC = Φ(1/√2) = 0.760
    assert auc == pytest.approx(0.5 * (1 + math.erf(0.5)), abs=0.04)


# ---------------------------------------------------------------------------------------
# training on an analytic target
# ---------------------------------------------------------------------------------------


def test_training_learns_a_parametric_target_and_interpolates_in_theta():
    """I(x, θ) = log10 pT + 3 θ η² (a smooth θ dependence): trained at 3 θ points, tested between them."""
    torch.manual_seed(0)
    p = ToyProblem.one_muon(n=1500, seed=1)
    model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), layers=3, hidden=32))
    features = model.event_features(p.reco)
    x = p.reco.ptetaphim[:, 0]

    def truth(theta: float) -> torch.Tensor:
        return torch.log10(x[:, 0]) + 3 * theta * x[:, 1] ** 2

    def rows(events: slice, thetas: list[float]) -> RegressionRows:
        n = len(features[events])
        parts = [
            RegressionRows(
                features[events], torch.full((n, 1), t, dtype=torch.float64), truth(t)[events],
                torch.ones(n, dtype=torch.float64), torch.arange(n), torch.full((n,), i),
            )
            for i, t in enumerate(thetas)
        ]  # fmt: skip
        return RegressionRows.cat(parts)

    train, val = rows(slice(0, 1200), [0.1, 0.2, 0.3]), rows(slice(1200, None), [0.1, 0.2, 0.3])
    model.fit_preprocessing(train.features, train.theta, train.target)
    config = TrainingConfig(lr=3e-3, max_lr=3e-3, schedule="cosine", epochs=25, batch_size=128)
    result = fit_regression(model, train, val, config, mlflow=False)
    assert result.history["val_loss"][-1] < 0.1 * result.history["val_loss"][0]
    unseen = rows(slice(1200, None), [0.15, 0.25])
    with torch.no_grad():
        m = regression_metrics(model(unseen.features, unseen.theta), unseen.target)
    spread = float(unseen.target.std())
    assert abs(m["bias"]) < 0.1 * spread and m["resolution"] < 0.2 * spread, (m, spread)


def test_likelihood_conformance_after_training_preprocessing():
    model = memzoo.create("likelihood", "regression", **TINY)
    p = ToyProblem.one_muon(n=16)
    f = model.event_features(p.reco)
    model.fit_preprocessing(f, p.theta[:1].expand(16, -1), torch.linspace(0, 2, 16, dtype=torch.float64))
    check_likelihood(model, p)


@pytest.mark.gpu
def test_cuda_training_and_likelihood_match_cpu():
    """The loader moves chunks to the GPU; the likelihood of CPU events is computed on the model's device."""
    p = ToyProblem.one_muon(n=64)
    model = RegressionLikelihood(RegressionLikelihood.Config(objects=("mu",), **TINY))
    f, th = model.event_features(p.reco), p.theta[:1].expand(64, -1)
    target = torch.log10(p.reco.ptetaphim[:, 0, 0])
    model.fit_preprocessing(f, th, target)
    with torch.no_grad():
        cpu = model.log_likelihood(p.reco, p.theta).logp
        gpu = model.to("cuda").log_likelihood(p.reco, p.theta).logp
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)
    rows = RegressionRows(f, th, target, torch.ones(64, dtype=torch.float64), torch.arange(64), torch.zeros(64))
    config = TrainingConfig(epochs=2, batch_size=16, device="cuda", schedule="constant")
    result = fit_regression(model, rows, rows, config, mlflow=False)
    assert math.isfinite(result.history["val_loss"][-1])
