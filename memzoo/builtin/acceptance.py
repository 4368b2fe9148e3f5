"""Built-in acceptance models ε(x_hard): a constant and the MLP classifier of the thesis.

The MLP follows Heimel, PhD thesis 2024, Table A.8 (6 layers of 256 ReLU units, trained with
binary cross-entropy on accepted and rejected hard events, Sec. 6.4.2).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ConstantAcceptance", "MLPAcceptance", "mlp"]

_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def mlp(n_in: int, n_out: int, layers: int, hidden: int, activation: str = "relu") -> nn.Sequential:
    """A plain fully connected network with ``layers`` linear layers (``layers - 1`` hidden)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}.")
    sizes = [n_in] + [hidden] * (layers - 1) + [n_out]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        modules.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            modules.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*modules)


class ConstantAcceptance(nn.Module):
    """ε(x_hard) = value everywhere: for samples without selection cuts."""

    name = "constant"

    @dataclass(frozen=True)
    class Config:
        """Attributes: value: the acceptance probability in [0, 1]."""

        value: float = 1.0

    def __init__(self, config: Config | None = None) -> None:
        super().__init__()
        self.config = config or self.Config()
        if not 0.0 <= self.config.value <= 1.0:
            raise ValueError(f"constant acceptance value must lie in [0, 1], got {self.config.value}.")

    def prob(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B,)`` constant acceptance for ``coords (B, D)``."""
        return torch.full(coords.shape[:1], self.config.value, dtype=coords.dtype, device=coords.device)


class MLPAcceptance(nn.Module):
    """Classifier ε(x_hard) = sigmoid(MLP(standardised x_hard)) (thesis Table A.8).

    The standardisation (``shift``, ``scale`` buffers) is set from training data with
    :meth:`fit_standardisation` and saved with the weights.

    Example:
        >>> model = MLPAcceptance(MLPAcceptance.Config(hard_dim=7, layers=2, hidden=16))
        >>> model.prob(torch.zeros(3, 7)).shape
        torch.Size([3])
    """

    name = "mlp"

    @dataclass(frozen=True)
    class Config:
        """Attributes:
        hard_dim: D, the number of hard coordinates.
        layers: number of linear layers (thesis: 6).
        hidden: units per hidden layer (thesis: 256).
        activation: ``relu`` (thesis), ``silu``, ``gelu`` or ``tanh``.
        """

        hard_dim: int
        layers: int = 6
        hidden: int = 256
        activation: str = "relu"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.net = mlp(config.hard_dim, 1, config.layers, config.hidden, config.activation)
        self.register_buffer("shift", torch.zeros(config.hard_dim))
        self.register_buffer("scale", torch.ones(config.hard_dim))

    @torch.no_grad()
    def fit_standardisation(self, coords: torch.Tensor) -> None:
        """Set the input standardisation from a ``(B, D)`` batch of training coordinates."""
        self.shift.copy_(coords.mean(0))
        self.scale.copy_(coords.std(0).clamp(min=1e-8))

    def logits(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B,)`` classifier logits; train with ``binary_cross_entropy_with_logits``."""
        x = (coords.to(self.shift) - self.shift) / self.scale
        return self.net(x).squeeze(-1)

    def prob(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B,)`` acceptance probability of hard coordinates ``coords (B, D)``."""
        return torch.sigmoid(self.logits(coords)).to(coords.dtype)
