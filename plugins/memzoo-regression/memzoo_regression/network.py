"""Fully connected regressors: the plain MLP of Bury & Delaere and the residual net of DeepMEM.

* ``mlp``: ``layers`` hidden layers of ``hidden`` units with ReLU, one output with SELU (Bury &
  Delaere, JHEP 04 (2021) 020, arXiv:2008.10949, Sec. 4.1 and Table 2: 6 × 200 for Drell-Yan).
* ``resnet``: an input layer, then ``layers`` residual blocks ``h + f(h)`` with
  ``f = Linear ∘ act ∘ Linear`` and the activation after the sum (He et al., arXiv:1512.03385),
  as in the DeepMEM ResNets (Katare, Neubauer, Feickert, Roy; CHEP 2023), then the output layer.
"""

from __future__ import annotations

from torch import nn

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "ResidualBlock", "build_network"]

ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "silu": nn.SiLU, "gelu": nn.GELU, "linear": nn.Identity}
ARCHITECTURES = ("mlp", "resnet")


class ResidualBlock(nn.Module):
    """``act(h + W2 act(W1 h))`` on ``(B, hidden)`` rows."""

    def __init__(self, hidden: int, activation: str) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(hidden, hidden), ACTIVATIONS[activation](), nn.Linear(hidden, hidden))
        self.act = ACTIVATIONS[activation]()

    def forward(self, h):
        return self.act(h + self.inner(h))


def build_network(
    n_in: int, *, architecture: str, layers: int, hidden: int, activation: str, output_activation: str
) -> nn.Sequential:
    """``(B, n_in) → (B, 1)`` regressor; see the module docstring for the two architectures."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {architecture!r}.")
    for what, name in (("activation", activation), ("output_activation", output_activation)):
        if name not in ACTIVATIONS:
            raise ValueError(f"{what} must be one of {sorted(ACTIVATIONS)}, got {name!r}.")
    if layers < 1 or hidden < 1:
        raise ValueError(f"layers and hidden must be >= 1, got layers={layers}, hidden={hidden}.")
    modules: list[nn.Module] = [nn.Linear(n_in, hidden), ACTIVATIONS[activation]()]
    if architecture == "mlp":
        for _ in range(layers - 1):
            modules += [nn.Linear(hidden, hidden), ACTIVATIONS[activation]()]
    else:
        modules += [ResidualBlock(hidden, activation) for _ in range(layers)]
    modules += [nn.Linear(hidden, 1), ACTIVATIONS[output_activation]()]
    return nn.Sequential(*modules)
