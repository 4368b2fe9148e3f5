"""Small, reproducible training loops and reference densities for backend tests.

Plugin test suites check that a model *learns* (the NLL gap to an exact density closes, a loss
falls) with a fixed number of Adam steps, never a time budget, so the result does not depend on
the machine's load. These helpers are that loop and its inputs, shared by the plugins' tests::

    from memzoo.testing import fit_steps, random_batches, smeared_muons

    reco, hard, _ = smeared_muons(4096, seed=0)
    fit_steps(model, random_batches({"reco": reco, "hard": hard}, 256, seed=2), 200)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from memzoo.events import Particles, to_ptetaphim, wrap_phi

__all__ = ["drell_yan_pairs", "fit_steps", "random_batches", "smeared_muons"]


def random_batches(data: Mapping[str, Any], size: int, seed: int) -> Callable[[], dict[str, Any]]:
    """A function drawing ``size`` rows (with replacement) of every entry of ``data`` per call.

    Args:
        data: tensors or :class:`~memzoo.events.Particles` of equal length, e.g.
            ``{"reco": reco, "hard": hard}`` for ``model.loss``.
        size: rows per batch.
        seed: seed of the batches' own generator (the global RNG is left to the model).

    Returns:
        A callable returning ``{key: value[rows]}`` with fresh uniform ``rows`` each time.
    """
    lengths = {key: len(value) for key, value in data.items()}
    if not lengths or len(set(lengths.values())) != 1:
        raise ValueError(f"random_batches needs entries of one common length, got {lengths}.")
    n = next(iter(lengths.values()))
    gen = torch.Generator().manual_seed(seed)

    def draw() -> dict[str, Any]:
        rows = torch.randint(0, n, (size,), generator=gen)
        return {key: value[rows] for key, value in data.items()}

    return draw


def fit_steps(
    model: torch.nn.Module,
    batches: Callable[[], Any],
    steps: int,
    *,
    lr: float = 3e-3,
    loss: Callable[[Any], torch.Tensor] | None = None,
    cosine: bool = False,
) -> None:
    """``steps`` Adam steps on ``loss(batches())`` (default loss: ``model.loss``).

    Args:
        model: the module whose parameters are trained (in place).
        batches: called once per step for that step's batch (a fixed batch: ``lambda: batch``).
        steps: number of optimizer steps.
        lr: Adam learning rate.
        loss: scalar loss of a batch; ``None``: ``model.loss(batch)``.
        cosine: anneal the learning rate to 0 over ``steps`` (``CosineAnnealingLR``).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}.")
    loss_fn = model.loss if loss is None else loss
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if cosine else None
    for _ in range(steps):
        value = loss_fn(batches())
        opt.zero_grad()
        value.backward()
        opt.step()
        if sched is not None:
            sched.step()


def smeared_muons(n: int, seed: int) -> tuple[Particles, torch.Tensor, torch.Tensor]:
    """The muons of :meth:`ToyProblem.one_muon <memzoo.testing.ToyProblem.one_muon>` and the exact
    log p(x_reco|x_hard) per dpT dη dφ of its smearing, N(0, 2 GeV) × N(0, 0.02) × N(0, 0.02).

    Returns:
        ``(reco, hard, exact)``: reco muons, hard (pT, η, φ) ``(n, 3)`` and ``exact`` ``(n,)``.
        φ wrapping is negligible at σ_φ = 0.02; the residuals are taken from the reco momenta.
    """
    from memzoo.testing import ToyProblem

    problem = ToyProblem.one_muon(n=n, seed=seed)
    x = to_ptetaphim(problem.reco.p[:, 0])
    sigma = torch.tensor([2.0, 0.02, 0.02], dtype=torch.float64)
    z = torch.stack(
        [x[:, 0] - problem.hard[:, 0], x[:, 1] - problem.hard[:, 1], wrap_phi(x[:, 2] - problem.hard[:, 2])], -1
    )
    exact = (-0.5 * (z / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    return problem.reco, problem.hard, exact


def drell_yan_pairs(n: int, generator: torch.Generator) -> tuple[Particles, torch.Tensor]:
    """Drell-Yan-like hard points and their reco events for layout/charge tests.

    Hard coordinates (pT, η₁, η₂, φ) with pT ∈ [30, 60] GeV, |η| < 2 and φ ∈ [−π, π]; reco: the
    two charged muons and MET of :class:`memzoo.builtin.gaussian.GaussianTransfer` (default
    resolutions). Everything is drawn from ``generator``, which callers may keep using.

    Returns:
        ``(reco, hard)`` with ``hard`` of shape ``(n, 4)``, float64.
    """
    from memzoo.builtin.gaussian import GaussianTransfer

    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    hard = torch.stack([30 + 30 * u[:, 0], 4 * u[:, 1] - 2, 4 * u[:, 2] - 2, math.pi * (2 * u[:, 3] - 1)], -1)
    return GaussianTransfer().sample(hard, generator=generator), hard
