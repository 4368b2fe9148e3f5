"""ODE sampling and log-densities of continuous flows (Heimel, PhD thesis 2024, Sec. 3.2.4).

A velocity field ``v(x, t | c)`` defines the flow dx/dt = v (eq. 3.52). With the convention of
the CFM loss (eqs. 3.56, 3.58) the data sit at t = 0 and the standard-normal latent at t = 1, so

* sampling integrates dx/dt = v from a latent z at t = 1 back to t = 0;
* the density follows from the continuity equation (3.54): d log p(x(t), t)/dt = −∇·v, hence
  (eq. 3.55)

      log p(x₀) = log N(x(1); 0, 1) + ∫₀¹ dt ∇·v(x(t), t | c),   x(0) = x₀,

  one batched ODE solve of the augmented state (x, ∫∇·v) per density evaluation.

The divergence is exact (the trace of the batched Jacobian from ``torch.func``: one forward-mode
pass per dimension, vectorised) or Hutchinson's unbiased estimate E_ε[εᵀ (∂v/∂x) ε] with
Rademacher or Gaussian probes ε (Hutchinson 1990; Grathwohl et al., FFJORD, arXiv:1810.01367),
one Jacobian-vector product per probe, with the probes fixed along each trajectory. Every
solver is torchdiffeq's (Chen et al., arXiv:1806.07366): fixed-step ``rk4`` (the 3/8-rule
Runge-Kutta of order 4; the thesis' Tables A.9 and A.11 use RK4 with step 0.05), ``midpoint``,
``euler``, and the adaptive ``dopri5``, ``dopri8``, ``bosh3``, ``adaptive_heun``, ``fehlberg2``
with tolerances ``rtol``/``atol``. Batches are solved together: no Python loop over events.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import jacfwd, jvp, vmap

__all__ = [
    "ADAPTIVE",
    "FIXED_STEP",
    "ODESolver",
    "Velocity",
    "exact_divergence",
    "hutchinson_divergence",
    "hutchinson_probes",
    "log_density",
    "sample_flow",
    "standard_normal_log_prob",
]

#: v(x (B, d), t (B,), c (B, C)) -> (B, d); rows must not interact (true for MLPs).
Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

FIXED_STEP = ("rk4", "midpoint", "euler")
ADAPTIVE = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "fehlberg2")
DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``(B,)`` log N(z; 0, 1) of ``z (B, d)``."""
    return -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


@dataclass(frozen=True)
class ODESolver:
    """How the flow ODE is solved and the divergence evaluated.

    Attributes:
        method: one of :data:`FIXED_STEP` or :data:`ADAPTIVE` (torchdiffeq names).
        step: step size in t of the fixed-step methods (the unit interval is cut into
            ceil(1/step) equal steps; thesis: RK4 with 0.05, i.e. 20 steps, 80 evaluations of v).
        rtol, atol: tolerances of the adaptive methods (ignored by fixed-step ones).
        divergence: ``exact`` or ``hutchinson``.
        probes: Hutchinson probes per trajectory (their estimates are averaged).
        probe: ``rademacher`` (lower variance) or ``gaussian`` probes.
        probe_seed: seed of the probes when a call passes no generator (reproducible densities:
            the probe of a row then depends on its position in the batch); ``None``: global RNG.
    """

    method: str = "rk4"
    step: float = 0.05
    rtol: float = 1e-5
    atol: float = 1e-5
    divergence: str = "exact"
    probes: int = 1
    probe: str = "rademacher"
    probe_seed: int | None = 0

    def __post_init__(self) -> None:
        if self.method not in FIXED_STEP + ADAPTIVE:
            raise ValueError(f"solver must be one of {list(FIXED_STEP + ADAPTIVE)}, got {self.method!r}.")
        if not 0 < self.step <= 1:
            raise ValueError(f"step must lie in (0, 1] (the flow runs over t in [0, 1]), got {self.step}.")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got {self.rtol} and {self.atol}.")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {list(DIVERGENCES)}, got {self.divergence!r}.")
        if self.probes < 1 or self.probe not in PROBES:
            raise ValueError(f"probes must be >= 1 and probe one of {list(PROBES)}, got {self.probes}, {self.probe!r}.")

    @property
    def n_steps(self) -> int:
        """Steps of a fixed-step method over the unit interval."""
        return max(1, math.ceil(1.0 / self.step - 1e-9))

    def integrate(self, func: Callable, state: tuple[torch.Tensor, ...], t0: float, t1: float) -> tuple:
        """Solve ``d state/dt = func(t, state)`` from ``t0`` to ``t1``; returns the state at ``t1``."""
        from torchdiffeq import odeint

        ref = state[0]
        t = torch.tensor([t0, t1], dtype=ref.dtype, device=ref.device)
        if self.method in FIXED_STEP:
            n = self.n_steps

            def grid(_func: Callable, _y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return torch.linspace(float(t[0]), float(t[-1]), n + 1, dtype=t.dtype, device=t.device)

            out = odeint(func, state, t, method=self.method, options={"grid_constructor": grid})
        else:
            out = odeint(func, state, t, method=self.method, rtol=self.rtol, atol=self.atol)
        return tuple(o[-1] for o in out)


def exact_divergence(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor):
    """Velocity ``(B, d)`` and its exact divergence tr(∂v/∂x) ``(B,)`` at ``x (B, d)``.

    The per-row Jacobian comes from ``torch.func.jacfwd`` vectorised with ``vmap`` (d
    forward-mode passes, batched); it is differentiable with respect to the network weights.
    """

    def one(xi: torch.Tensor, ti: torch.Tensor, ci: torch.Tensor):
        v = velocity(xi[None], ti[None], ci[None])[0]
        return v, v

    jac, v = vmap(jacfwd(one, has_aux=True))(x, t, c)
    return v, jac.diagonal(dim1=-2, dim2=-1).sum(-1)


def hutchinson_probes(
    n_probes: int, shape: tuple[int, ...], kind: str = "rademacher", like: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """``(n_probes, *shape)`` probes with E[ε εᵀ] = 1: Rademacher ±1 or standard normal."""
    dtype = like.dtype if like is not None else torch.float32
    device = like.device if like is not None else None
    gen_dev = generator.device if generator is not None else device
    if kind == "rademacher":
        eps = torch.randint(0, 2, (n_probes, *shape), generator=generator, device=gen_dev).to(dtype) * 2 - 1
    elif kind == "gaussian":
        eps = torch.randn(n_probes, *shape, generator=generator, device=gen_dev, dtype=dtype)
    else:
        raise ValueError(f"probe must be one of {list(PROBES)}, got {kind!r}.")
    return eps.to(device)


def hutchinson_divergence(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, eps: torch.Tensor):
    """Velocity ``(B, d)`` and Hutchinson's estimate mean_k ε_kᵀ (∂v/∂x) ε_k ``(B,)``.

    Args:
        eps: ``(K, B, d)`` probes (:func:`hutchinson_probes`); one Jacobian-vector product each.

    Unbiased for E[ε εᵀ] = 1; for Rademacher probes the variance of one probe's estimate is
    Σ_{i<j} (J_ij + J_ji)², for Gaussian probes ‖J‖_F² + tr(J J) (J = ∂v/∂x of the row).
    """

    def along(e: torch.Tensor):
        v, jv = jvp(lambda y: velocity(y, t, c), (x,), (e,))
        return v, (e * jv).sum(-1)

    v, estimate = vmap(along)(eps)
    return v[0], estimate.mean(0)


def log_density(
    velocity: Velocity, x: torch.Tensor, c: torch.Tensor, solver: ODESolver, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x|c) of the flow (eq. 3.55) and the latent z = x(1).

    Args:
        x: ``(B, d)`` data points (t = 0); c: ``(B, C)`` conditions.
        solver: method, step or tolerances, and the divergence estimator.
        generator: for the Hutchinson probes (drawn once per call, fixed along each trajectory;
            default: seeded with ``solver.probe_seed``).

    Returns:
        ``log_p (B,)`` (dtype of x) and ``z (B, d)``.
    """
    b = len(x)
    if solver.divergence == "exact":

        def func(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
            return exact_divergence(velocity, state[0], t.expand(b), c)

    else:
        if generator is None and solver.probe_seed is not None:
            generator = torch.Generator(x.device).manual_seed(solver.probe_seed)
        eps = hutchinson_probes(solver.probes, tuple(x.shape), solver.probe, like=x, generator=generator)

        def func(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
            return hutchinson_divergence(velocity, state[0], t.expand(b), c, eps)

    z, integral = solver.integrate(func, (x, x.new_zeros(b)), 0.0, 1.0)
    return standard_normal_log_prob(z) + integral, z


def sample_flow(velocity: Velocity, z: torch.Tensor, c: torch.Tensor, solver: ODESolver) -> torch.Tensor:
    """Data points ``(B, d)``: the flow integrated from latents ``z (B, d)`` at t = 1 to t = 0."""
    b = len(z)

    def func(t: torch.Tensor, state: tuple[torch.Tensor]):
        return (velocity(state[0], t.expand(b), c),)

    return solver.integrate(func, (z,), 1.0, 0.0)[0]
