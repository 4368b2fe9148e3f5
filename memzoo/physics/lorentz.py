"""Minkowski algebra in torch: metric, products, boosts, rotations and random Lorentz transforms.

Conventions: four-vectors ``(..., 4)`` are contravariant ``(E, px, py, pz)`` in GeV, the metric is
``diag(+1, -1, -1, -1)``, and every function broadcasts over leading batch dimensions and works
for real and complex (e.g. polarisation vectors) dtypes alike.
"""

from __future__ import annotations

import torch

__all__ = [
    "apply",
    "boost",
    "boost_from_rest_frame",
    "boost_matrix",
    "boost_to_rest_frame",
    "lower_index",
    "mass_squared",
    "metric",
    "minkowski_dot",
    "random_lorentz_transform",
    "rotation_matrix",
]


def metric(dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
    """The Minkowski metric ``g = diag(1, -1, -1, -1)``, ``(4, 4)``."""
    return torch.diag(torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=dtype, device=device))


def lower_index(a: torch.Tensor) -> torch.Tensor:
    """``a_μ = g_μν a^ν`` for four-vectors ``(..., 4)`` (flips the sign of the spatial part)."""
    return torch.cat([a[..., :1], -a[..., 1:]], dim=-1)


def minkowski_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a·b = a⁰b⁰ - a⃗·b⃗`` of broadcastable four-vectors ``(..., 4)``; no complex conjugation."""
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def mass_squared(p: torch.Tensor) -> torch.Tensor:
    """``p² = E² - |p⃗|²`` in GeV² of four-momenta ``(..., 4)``."""
    return minkowski_dot(p, p)


def apply(lam: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Transform four-vectors ``p (..., 4)`` with Lorentz matrices ``lam (..., 4, 4)``: ``Λ^μ_ν p^ν``."""
    return (lam.to(p.dtype) @ p.unsqueeze(-1)).squeeze(-1)


def boost_matrix(beta: torch.Tensor) -> torch.Tensor:
    """Pure boost matrices ``(..., 4, 4)`` with velocity ``beta (..., 3)`` (|β| < 1).

    A particle at rest ends up with four-velocity ``γ(1, β⃗)``.
    """
    b2 = (beta**2).sum(-1, keepdim=True)
    gamma = 1.0 / torch.sqrt(1.0 - b2)
    # (γ - 1)/β² written as γ²/(γ + 1) stays finite at β → 0
    coef = gamma**2 / (gamma + 1.0)
    spatial = (
        torch.eye(3, dtype=beta.dtype, device=beta.device) + coef[..., None] * beta[..., :, None] * beta[..., None, :]
    )
    top = torch.cat([gamma, gamma * beta], dim=-1)
    side = gamma[..., None] * beta[..., :, None]
    return torch.cat([top[..., None, :], torch.cat([side, spatial], dim=-1)], dim=-2)


def rotation_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations ``(..., 4, 4)`` by ``angle (...)`` radians about unit-normalised ``axis (..., 3)``.

    Right-handed (Rodrigues' formula); the time component is left alone.
    """
    n = axis / torch.linalg.norm(axis, dim=-1, keepdim=True)
    c, s = torch.cos(angle)[..., None, None], torch.sin(angle)[..., None, None]
    zero = torch.zeros_like(n[..., 0])
    cross = torch.stack(
        [
            torch.stack([zero, -n[..., 2], n[..., 1]], -1),
            torch.stack([n[..., 2], zero, -n[..., 0]], -1),
            torch.stack([-n[..., 1], n[..., 0], zero], -1),
        ],
        dim=-2,
    )
    eye3 = torch.eye(3, dtype=n.dtype, device=n.device)
    r3 = c * eye3 + s * cross + (1.0 - c) * n[..., :, None] * n[..., None, :]
    out = torch.zeros(*r3.shape[:-2], 4, 4, dtype=n.dtype, device=n.device)
    out[..., 0, 0] = 1.0
    out[..., 1:, 1:] = r3
    return out


def boost(p: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Boost four-momenta ``p (..., 4)`` by velocity ``beta (..., 3)``."""
    return apply(boost_matrix(beta), p)


def boost_from_rest_frame(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Take ``p (..., 4)`` given in the rest frame of ``q (..., 4)`` to the frame where q has momentum q."""
    return boost(p, q[..., 1:] / q[..., :1])


def boost_to_rest_frame(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Boost ``p (..., 4)`` into the rest frame of the time-like ``q (..., 4)``."""
    return boost(p, -q[..., 1:] / q[..., :1])


def random_lorentz_transform(
    n: int,
    max_rapidity: float = 2.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``(n, 4, 4)`` random proper orthochronous Lorentz transforms: a rotation then a boost.

    The rotation axis is isotropic and the angle uniform in [0, 2π); the boost has an isotropic
    direction and a rapidity uniform in [0, max_rapidity]. Meant for invariance tests.
    """
    axis = torch.randn(n, 3, generator=generator, dtype=dtype)
    angle = 2 * torch.pi * torch.rand(n, generator=generator, dtype=dtype)
    direction = torch.randn(n, 3, generator=generator, dtype=dtype)
    direction = direction / torch.linalg.norm(direction, dim=-1, keepdim=True)
    rapidity = max_rapidity * torch.rand(n, 1, generator=generator, dtype=dtype)
    return boost_matrix(torch.tanh(rapidity) * direction) @ rotation_matrix(axis, angle)
