"""Conformance suite for memzoo backends: shapes, finiteness, gradients, consistency, save/load.

Plugin authors subclass one suite per backend and pytest collects the inherited tests::

    from memzoo.testing import TransferModelSuite

    class TestMyTransfer(TransferModelSuite):
        name = "my-transfer"
        config = {"hidden": 16}

The default problem (:class:`ToyProblem`) is one reco muon per event and three hard
coordinates (pT, η, φ); override :meth:`Suite.problem` for backends that need another layout.
The ``check_*`` functions can also be called directly.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from memzoo.bundle import Bundle, load_bundle_dir, save_bundle_dir
from memzoo.events import Particles, from_ptetaphim, to_ptetaphim, wrap_phi
from memzoo.plugins import create
from memzoo.protocols import Likelihood
from memzoo.testing.training import drell_yan_pairs, fit_steps, random_batches, smeared_muons

__all__ = [
    "AcceptanceSuite",
    "FittedPreprocessing",
    "LikelihoodSuite",
    "ProcessSuite",
    "SamplerSuite",
    "Suite",
    "ToyProblem",
    "TransferModelSuite",
    "check_acceptance",
    "check_likelihood",
    "check_process",
    "check_roundtrip",
    "check_sampler",
    "check_transfer_model",
    "drell_yan_pairs",
    "fit_steps",
    "random_batches",
    "smeared_muons",
    "transfer_normalisation",
]


@dataclass
class ToyProblem:
    """Inputs for conformance tests: hard points, matching reco events and θ points.

    Attributes:
        hard: ``(B, D)`` hard coordinates.
        reco: B reco events.
        theta: ``(T, P)`` parameter points.
    """

    hard: torch.Tensor
    reco: Particles
    theta: torch.Tensor

    @classmethod
    def one_muon(cls, n: int = 64, seed: int = 0, device: Any = "cpu") -> ToyProblem:
        """Muons with pT in [25, 100] GeV, |η| < 2, (pT, η, φ) hard coordinates, θ of one parameter."""
        gen = torch.Generator().manual_seed(seed)
        u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        hard = torch.stack([25 + 75 * u[:, 0], 4 * u[:, 1] - 2, math.pi * (2 * u[:, 2] - 1)], -1)
        smear = hard + torch.randn(n, 3, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 0.02, 0.02])
        x = torch.cat([smear[:, :2], wrap_phi(smear[:, 2:3]), torch.full((n, 1), 0.10566)], -1)
        reco = Particles(from_ptetaphim(x)[:, None], torch.full((n, 1), 13), torch.ones(n, 1, dtype=torch.bool))
        theta = torch.tensor([[0.03], [0.05], [0.08]], dtype=torch.float64)
        return cls(hard.to(device), reco.to(device), theta.to(device))


# ---------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------


def _finite(t: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(t)
    assert not bad.any(), f"{what} has {int(bad.sum())} non-finite entries, first at {bad.nonzero()[0].tolist()}"


def _check_grads(module: Any, loss: torch.Tensor, what: str) -> None:
    params = [p for p in getattr(module, "parameters", lambda: [])() if p.requires_grad]
    if not params:
        return
    module.zero_grad()
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    assert grads, f"{what}: no parameter received a gradient"
    for g in grads:
        _finite(g, f"{what} gradient")


def check_transfer_model(model: Any, problem: ToyProblem) -> None:
    """log_prob shape/finiteness/gradients, sample validity, and log_prob of own samples."""
    b = problem.hard.shape[0]
    logp = model.log_prob(problem.reco, problem.hard)
    assert logp.shape == (b,), f"log_prob must return (B,) = ({b},), got {tuple(logp.shape)}"
    _finite(logp, "log_prob")
    _check_grads(model, -logp.mean(), "transfer log_prob")
    with torch.no_grad():
        sampled = model.sample(problem.hard)
        assert isinstance(sampled, Particles), f"sample must return Particles, got {type(sampled).__name__}"
        assert len(sampled) == b, f"sample must return one event per hard point ({b}), got {len(sampled)}"
        sampled.check()
        _finite(model.log_prob(sampled, problem.hard), "log_prob of the model's own samples")


def transfer_normalisation(model: Any, hard: torch.Tensor, n: int = 8000, seed: int = 0) -> tuple[float, float, float]:
    """Normalisation of p(x_reco|x_hard) for one hard point, and its agreement with ``sample``.

    Works for one non-jet reco object per event (measure dpT dη dφ, see :mod:`memzoo.protocols`).
    A broad density b (log-normal in pT, normal in η and φ, 2x the spread of the model's own
    samples; uniform φ when that is wide) gives the importance-sampling estimate
    Z = E_b[p/b] of ∫ p dx_reco, which is 1 for a normalised model. Consistency of ``sample``
    with ``log_prob``: at the 16/50/84 % quantiles of the model's samples in each of pT, η, φ,
    the fraction of samples below the quantile is compared with the p/b-weighted fraction of
    the broad points; the largest pull is returned.

    Args:
        hard: ``(1, D)`` one hard point.

    Returns:
        (Z, standard error of Z, largest |pull| of the quantile comparison).
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        own = model.sample(hard.expand(n, -1))
        if own.n_objects != 1 or not bool(own.mask.all()) or bool((own.kind == 1).any() | (own.kind == 5).any()):
            raise ValueError("transfer_normalisation supports one non-jet reco object per event.")
        x = to_ptetaphim(own.p[:, 0].double().cpu())
        mass, kind = x[0, 3], int(own.kind[0, 0])
        mu = torch.stack([x[:, 0].log().mean(), x[:, 1].mean(), x[:, 2].mean()])
        sd = 2 * torch.stack([x[:, 0].log().std(), x[:, 1].std(), x[:, 2].std()]).clamp(min=1e-3)
        uniform_phi = bool(sd[2] > 0.5)
        z = mu + sd * torch.randn(n, 3, generator=gen, dtype=torch.float64)
        phi = (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1) * math.pi if uniform_phi else z[:, 2]
        pts = torch.stack([z[:, 0].exp(), z[:, 1], wrap_phi(phi)], -1)

        def logn(a: torch.Tensor, m: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return -0.5 * ((a - m) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)

        log_b = logn(z[:, 0], mu[0], sd[0]) - z[:, 0] + logn(z[:, 1], mu[1], sd[1])
        log_b = log_b + (-math.log(2 * math.pi) if uniform_phi else logn(z[:, 2], mu[2], sd[2]))
        four = torch.cat([pts, mass.expand(n, 1)], -1)
        dev, dtype = hard.device, own.p.dtype
        reco = Particles(
            from_ptetaphim(four).to(dev, dtype)[:, None],
            torch.full((n, 1), kind, device=dev),
            torch.ones(n, 1, dtype=torch.bool, device=dev),
        )
        w = torch.exp(model.log_prob(reco, hard.expand(n, -1)).double().cpu() - log_b)
    estimate, error = float(w.mean()), float(w.std() / math.sqrt(n))
    pulls = []
    for c in range(3):
        for q in (0.16, 0.5, 0.84):
            t = torch.quantile(x[:, c], q)
            below = (pts[:, c] < t).double()
            frac = float((w * below).sum() / w.sum())
            se = float(torch.sqrt((w**2 * (below - frac) ** 2).sum()) / w.sum())
            pulls.append(abs(frac - q) / math.sqrt(se**2 + q * (1 - q) / n))
    return estimate, error, max(pulls)


def check_sampler(sampler: Any, problem: ToyProblem, atol: float = 1e-3) -> None:
    """from_unit shapes and finiteness, and log_q from from_unit equal to log_prob of its coords."""
    b, d = problem.hard.shape
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(b, d, generator=gen, dtype=torch.float64).to(problem.hard.device)
    theta = problem.theta[:1].expand(b, -1)
    coords, log_q = sampler.from_unit(u, problem.reco, theta)
    assert coords.shape == (b, d), f"from_unit coords must be (B, D) = ({b}, {d}), got {tuple(coords.shape)}"
    assert log_q.shape == (b,), f"from_unit log_q must be (B,), got {tuple(log_q.shape)}"
    _finite(coords, "from_unit coords")
    _finite(log_q, "from_unit log_q")
    again = sampler.log_prob(coords, problem.reco, theta)
    diff = (again.double() - log_q.double()).abs().max()
    assert diff < atol, f"log_prob(from_unit(u)) differs from the log_q of from_unit by {float(diff.detach()):.3g}"
    _check_grads(sampler, -again.mean(), "sampler log_prob")


def check_acceptance(model: Any, problem: ToyProblem) -> None:
    """prob has shape (B,) and lies in [0, 1]."""
    p = model.prob(problem.hard)
    assert p.shape == problem.hard.shape[:1], f"prob must return (B,), got {tuple(p.shape)}"
    _finite(p, "acceptance prob")
    assert bool(((p >= 0) & (p <= 1)).all()), "acceptance prob must lie in [0, 1]"


def check_likelihood(model: Any, problem: ToyProblem) -> None:
    """log_likelihood returns a Likelihood with finite (E, T) logp and std >= 0."""
    result = model.log_likelihood(problem.reco, problem.theta)
    assert isinstance(result, Likelihood), f"log_likelihood must return Likelihood, got {type(result).__name__}"
    shape = (len(problem.reco), problem.theta.shape[0])
    assert tuple(result.logp.shape) == shape, f"logp must be (E, T) = {shape}, got {tuple(result.logp.shape)}"
    _finite(result.logp, "logp")
    assert bool((result.std >= 0).all()), "std must be >= 0"


def check_process(process: Any, n: int = 200, seed: int = 0) -> None:
    """Sampled events are physical, coordinates round-trip, dσ is (B, T), finite and >= 0."""
    theta = process.theta() if hasattr(process, "theta") else torch.tensor([[p.default for p in process.parameters]])
    coords = process.sample(n, theta, generator=torch.Generator().manual_seed(seed))
    assert coords.shape == (n, process.hard_dim), f"sample must return (n, D), got {tuple(coords.shape)}"
    momenta = process.momenta_from_coords(coords)
    assert momenta.shape == (n, len(process.hard_kinds), 4)
    back = process.coords_from_momenta(momenta)
    torch.testing.assert_close(back, coords, rtol=1e-6, atol=1e-6 * float(coords.abs().max()))
    dsig = process.dsigma(coords, torch.cat([theta, theta]))
    assert dsig.shape == (n, 2) and dsig.dtype == torch.float64, "dsigma must be (B, T) float64"
    _finite(dsig, "dsigma")
    assert bool((dsig >= 0).all()), "dsigma must be >= 0"
    assert bool((dsig[:, 0] > 0).all()), "dsigma vanishes on events the process sampled"


def check_roundtrip(obj: Any, role: str, evaluate: Any) -> None:
    """Saving ``obj`` in a bundle (safetensors + JSON) and rebuilding it by name reproduces ``evaluate``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_bundle_dir(Bundle(process="-", **{role: obj}), Path(tmp) / "bundle")
        device = next((t.device for t in getattr(obj, "state_dict", dict)().values()), torch.device("cpu"))
        rebuilt = getattr(load_bundle_dir(folder, device=device), role)
    assert type(rebuilt) is type(obj)
    with torch.no_grad():
        torch.testing.assert_close(evaluate(rebuilt), evaluate(obj))


# ---------------------------------------------------------------------------------------
# suites
# ---------------------------------------------------------------------------------------


class Suite:
    """Base of the per-kind suites: set ``kind`` (done by the subclasses), ``name`` and ``config``."""

    kind: ClassVar[str]
    name: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}

    def problem(self, device: torch.device) -> ToyProblem:
        """The inputs; override for backends that need another layout."""
        return ToyProblem.one_muon(device=device)

    def build(self, device: torch.device) -> Any:
        obj = create(self.kind, self.name, **self.config)
        return obj.to(device) if isinstance(obj, torch.nn.Module) else obj


class FittedPreprocessing:
    """Mixin for a suite (listed before it) whose backend standardises its inputs: :meth:`build`
    fits ``fit_preprocessing`` to the suite's problem, as training setup does.

    Transfer models get ``fit_preprocessing(reco, hard)``, samplers ``fit_preprocessing(reco,
    hard, theta[:1])``. Unfitted, features such as a pT context of ~100 reach the networks
    unscaled and the normalisation check sees heavy-tailed weights::

        class TestMyTransfer(FittedPreprocessing, TransferModelSuite):
            name = "my-transfer"
    """

    def build(self, device: torch.device) -> Any:
        model = super().build(device)  # type: ignore[misc]
        p = self.problem(device)  # type: ignore[attr-defined]
        if self.kind == "sampler":  # type: ignore[attr-defined]
            model.fit_preprocessing(p.reco, p.hard, p.theta[:1])
        else:
            model.fit_preprocessing(p.reco, p.hard)
        return model


class TransferModelSuite(Suite):
    kind = "transfer"
    #: Check ∫ p dx_reco = 1 (for single-object reco problems); tolerance is 5σ of the estimate.
    check_normalisation: ClassVar[bool] = True

    def test_conformance(self, memzoo_device: torch.device) -> None:
        check_transfer_model(self.build(memzoo_device), self.problem(memzoo_device))

    def test_normalisation(self, memzoo_device: torch.device) -> None:
        if not self.check_normalisation:
            return
        problem = self.problem(memzoo_device)
        estimate, error, pull = transfer_normalisation(self.build(memzoo_device), problem.hard[:1])
        assert abs(estimate - 1) < max(5 * error, 0.02), f"∫ p dx_reco = {estimate:.4f} ± {error:.4f}"
        assert pull < 5, f"sample() disagrees with log_prob(): largest quantile pull {pull:.1f}"

    def test_roundtrip(self, memzoo_device: torch.device) -> None:
        problem = self.problem(memzoo_device)
        check_roundtrip(self.build(memzoo_device), "transfer", lambda m: m.log_prob(problem.reco, problem.hard))


class SamplerSuite(Suite):
    kind = "sampler"

    def test_conformance(self, memzoo_device: torch.device) -> None:
        check_sampler(self.build(memzoo_device), self.problem(memzoo_device))

    def test_roundtrip(self, memzoo_device: torch.device) -> None:
        p = self.problem(memzoo_device)
        theta = p.theta[:1].expand(len(p.reco), -1)
        check_roundtrip(self.build(memzoo_device), "sampler", lambda s: s.log_prob(p.hard, p.reco, theta))


class AcceptanceSuite(Suite):
    kind = "acceptance"

    def test_conformance(self, memzoo_device: torch.device) -> None:
        check_acceptance(self.build(memzoo_device), self.problem(memzoo_device))

    def test_roundtrip(self, memzoo_device: torch.device) -> None:
        p = self.problem(memzoo_device)
        check_roundtrip(self.build(memzoo_device), "acceptance", lambda a: a.prob(p.hard))


class LikelihoodSuite(Suite):
    kind = "likelihood"

    def test_conformance(self, memzoo_device: torch.device) -> None:
        check_likelihood(self.build(memzoo_device), self.problem(memzoo_device))

    def test_roundtrip(self, memzoo_device: torch.device) -> None:
        p = self.problem(memzoo_device)
        check_roundtrip(self.build(memzoo_device), "likelihood", lambda m: m.log_likelihood(p.reco, p.theta).logp)


class ProcessSuite(Suite):
    kind = "process"

    def test_conformance(self, memzoo_device: torch.device) -> None:
        check_process(self.build(memzoo_device))
