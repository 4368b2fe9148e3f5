"""Conditional flow matching: a velocity network, its training loss, sampling and density.

Lipman et al., arXiv:2210.02747; Liu et al., arXiv:2209.03003; Heimel, PhD thesis 2024,
Sec. 3.2.4, eqs. 3.56–3.58: with the linear path x_t = (1 − t) x₀ + t ε between a data point
x₀ (t = 0) and ε ~ N(0, 1) (t = 1), the network v_θ(x, t | c) is regressed on ε − x₀,

    L_CFM = ⟨ ‖v_θ((1 − t) x₀ + t ε, t | c) − (ε − x₀)‖² ⟩_{t ~ U(0,1), x₀ ~ p_data, ε ~ N},

with no ODE solve in training. Sampling and densities solve the ODE (:mod:`memzoo_cfm.ode`).
:class:`ConditionalFlowMatching` is the reusable piece: ``memzoo-cfm``'s transfer model wraps
one, the Transfusion's per-particle CFMs are several.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from memzoo.builtin.acceptance import mlp
from memzoo_cfm.ode import ODESolver, log_density, sample_flow

__all__ = ["ConditionalFlowMatching", "VelocityMLP"]


class VelocityMLP(nn.Module):
    """v_θ(x, t | c): a fully connected network of [x, time features, c].

    Args:
        dim: d, the data dimension; context: C, the condition size.
        layers, hidden: linear layers and width (thesis Table A.9: 8 × 512 SiLU; A.11: 6 × 400 ReLU).
        activation: ``silu``, ``relu``, ``gelu`` or ``tanh``.
        time_features: n; t enters as (t, cos kπt, sin kπt for k = 1..n).
    """

    def __init__(
        self, dim: int, context: int, layers: int = 8, hidden: int = 512, activation: str = "silu",
        time_features: int = 4,
    ) -> None:  # fmt: skip
        super().__init__()
        if dim < 1 or context < 0 or time_features < 0:
            raise ValueError(
                f"dim >= 1, context >= 0 and time_features >= 0 needed, got {dim}, {context}, {time_features}."
            )
        self.dim, self.context = dim, context
        self.register_buffer("frequencies", math.pi * torch.arange(1, time_features + 1, dtype=torch.float32))
        self.net = mlp(dim + 1 + 2 * time_features + context, dim, layers, hidden, activation)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` velocity at ``x (B, d)``, times ``t (B,)`` and conditions ``c (B, C)``."""
        t = t.to(x.dtype)[:, None]
        angle = t * self.frequencies.to(x.dtype)
        return self.net(torch.cat([x, t, torch.cos(angle), torch.sin(angle), c.to(x.dtype)], -1))


class ConditionalFlowMatching(nn.Module):
    """A conditional continuous flow p(x|c) on ℝ^d trained by flow matching.

    Args:
        velocity: a module ``v(x (B, d), t (B,), c (B, C)) -> (B, d)`` whose rows do not interact
            (:class:`VelocityMLP`, or an analytic field in tests).
        dim: d.

    Example:
        >>> cfm = ConditionalFlowMatching(VelocityMLP(2, 1, layers=2, hidden=16), 2)
        >>> x, c = torch.randn(5, 2), torch.zeros(5, 1)
        >>> cfm.log_prob(x, c, ODESolver()).shape
        torch.Size([5])
    """

    def __init__(self, velocity: nn.Module, dim: int) -> None:
        super().__init__()
        self.velocity, self.dim = velocity, dim

    def _check(self, x: torch.Tensor, c: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim or c.ndim != 2 or len(c) != len(x):
            raise ValueError(f"need x (B, {self.dim}) and c (B, C), got {tuple(x.shape)} and {tuple(c.shape)}.")

    def loss(self, x: torch.Tensor, c: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B,)`` per-row ‖v_θ(x_t, t|c) − (ε − x)‖² of eq. 3.58, one (t, ε) draw per row."""
        self._check(x, c)
        gen_dev = generator.device if generator is not None else x.device
        t = torch.rand(len(x), generator=generator, device=gen_dev, dtype=x.dtype).to(x.device)
        eps = torch.randn(x.shape, generator=generator, device=gen_dev, dtype=x.dtype).to(x.device)
        x_t = (1 - t[:, None]) * x + t[:, None] * eps
        return ((self.velocity(x_t, t, c) - (eps - x)) ** 2).sum(-1)

    def log_prob(
        self, x: torch.Tensor, c: torch.Tensor, solver: ODESolver, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``(B,)`` log p(x|c) per dx (eq. 3.55); ``generator`` draws Hutchinson probes."""
        self._check(x, c)
        return log_density(self.velocity, x, c, solver, generator)[0]

    def sample(self, c: torch.Tensor, solver: ODESolver, z: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` samples from latents ``z (B, d)`` ~ N(0, 1) and conditions ``c (B, C)``."""
        self._check(z, c)
        return sample_flow(self.velocity, z, c, solver)
