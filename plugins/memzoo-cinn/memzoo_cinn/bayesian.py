"""The conditional spline flow of the cINNs and its Bayesian (variational) version.

The flow is zuko's neural spline flow (monotonic rational-quadratic splines, Durkan et al.,
arXiv:1906.04032) with coupling blocks (``passes=2``, the cINN structure of Heimel's thesis,
Sec. 3.2 and Table A.7). The Bayesian version replaces every linear layer of the subnets by a
:class:`BayesianLinear`: a Gaussian weight posterior N(μ, σ²) with learnable μ and log σ², a
KL term to a Gaussian prior (thesis eqs. 3.64–3.66) and the local reparametrisation trick
(Kingma et al., arXiv:1506.02557) in training. The loss is NLL + KL / N (thesis eq. 3.67).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
import zuko
from torch import nn

__all__ = [
    "PRESETS",
    "BayesianConfig",
    "BayesianLinear",
    "BayesianMixin",
    "NetworkConfig",
    "build_flow",
    "make_bayesian",
    "resolve_sizes",
]

#: Network sizes: ``small`` trains on a laptop CPU in minutes; ``paper`` is the thesis' cINN
#: (20 coupling blocks of RQ splines with 30 bins, subnets of 5 layers × 256 units).
PRESETS: dict[str, dict[str, int]] = {
    "small": {"blocks": 4, "layers": 2, "hidden": 64, "bins": 8},
    "paper": {"blocks": 20, "layers": 5, "hidden": 256, "bins": 30},
}


@dataclass(frozen=True)
class NetworkConfig:
    """Network size: a ``size`` preset (:data:`PRESETS`) and optional overrides of its entries.

    Attributes:
        size: ``"small"`` or ``"paper"``.
        blocks: coupling blocks; layers: hidden layers per subnet; hidden: units per layer;
        bins: spline bins (``None``: the preset's value).
    """

    size: Literal["small", "paper"] = "small"
    blocks: int | None = None
    layers: int | None = None
    hidden: int | None = None
    bins: int | None = None


@dataclass(frozen=True)
class BayesianConfig:
    """Attributes of the Bayesian variants.

    Attributes:
        n_replicas: posterior draws offered to the integrator (``replica(0 .. n_replicas-1)``).
        prior_std: width σ_p of the Gaussian weight prior.
        init_logvar: initial log σ² of the weight posteriors.
        train_size: N, the training-set size in the loss NLL + KL / N (thesis eq. 3.67).
        replica_seed: replica i draws its weights with seed ``replica_seed + i``.
    """

    n_replicas: int = 10
    prior_std: float = 1.0
    init_logvar: float = -9.0
    train_size: int = 100_000
    replica_seed: int = 0


def resolve_sizes(config: Any) -> dict[str, int]:
    """The preset named ``config.size`` with any of ``blocks, layers, hidden, bins`` overridden."""
    if config.size not in PRESETS:
        raise ValueError(f"size must be one of {sorted(PRESETS)}, got {config.size!r}.")
    sizes = {k: getattr(config, k) if getattr(config, k) is not None else v for k, v in PRESETS[config.size].items()}
    bad = {k: v for k, v in sizes.items() if v < (2 if k == "bins" else 1)}
    if bad:
        raise ValueError(f"Network sizes must be >= 1 (bins >= 2), got {bad}.")
    return sizes


def build_flow(features: int, context: int, blocks: int, layers: int, hidden: int, bins: int) -> zuko.flows.NSF:
    """A conditional coupling neural spline flow x ↔ z ~ N(0, 1) on ``features`` dims."""
    return zuko.flows.NSF(features, context, transforms=blocks, bins=bins, passes=2, hidden_features=[hidden] * layers)


class BayesianLinear(nn.Module):
    """A (masked) linear layer with a factorised Gaussian posterior over weights and biases.

    Modes: the posterior mean (default), local reparametrisation (``local = True``: noise on
    the pre-activations, one draw per input row) and a fixed draw (``fixed`` holds sampled
    weight and bias, set by :meth:`BayesianMixin.replica`).

    Args:
        layer: the linear layer to replace (its weights become the posterior means; a zuko
            ``MaskedLinear``'s ``mask`` is kept).
        init_logvar: initial log σ² of every weight.
    """

    def __init__(self, layer: nn.Linear, init_logvar: float = -9.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(layer.weight.detach().clone())
        self.bias = nn.Parameter(layer.bias.detach().clone())
        self.weight_logvar = nn.Parameter(torch.full_like(self.weight, init_logvar))
        self.bias_logvar = nn.Parameter(torch.full_like(self.bias, init_logvar))
        self.register_buffer("mask", getattr(layer, "mask", torch.ones_like(self.weight, dtype=torch.bool)))
        self.local = False
        self.fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed is not None:
            return F.linear(x, self.mask * self.fixed[0], self.fixed[1])
        mean = F.linear(x, self.mask * self.weight, self.bias)
        if not self.local:
            return mean
        var = F.linear(x.square(), self.mask * self.weight_logvar.exp(), self.bias_logvar.exp())
        return mean + var.sqrt() * torch.randn_like(mean)

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One posterior draw (weight, bias) from a CPU generator."""
        out = []
        for mu, logvar in ((self.weight, self.weight_logvar), (self.bias, self.bias_logvar)):
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
            out.append((mu + (0.5 * logvar).exp() * eps).detach())
        return out[0], out[1]

    def kl(self, prior_std: float) -> torch.Tensor:
        """KL(N(μ, σ²) ‖ N(0, σ_p²)) summed over the unmasked weights and the biases."""

        def term(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
            return 0.5 * ((logvar.exp() + mu**2) / prior_std**2 - 1 - logvar) + math.log(prior_std)

        return (self.mask * term(self.weight, self.weight_logvar)).sum() + term(self.bias, self.bias_logvar).sum()


def make_bayesian(module: nn.Module, init_logvar: float = -9.0) -> nn.Module:
    """Replace every ``nn.Linear`` inside ``module`` (zuko's subnets) by a :class:`BayesianLinear`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, BayesianLinear(child, init_logvar))
        else:
            make_bayesian(child, init_logvar)
    return module


class BayesianMixin:
    """Replicas (:class:`memzoo.protocols.SupportsReplicas`), KL and training noise for a model
    whose config has ``n_replicas``, ``prior_std``, ``train_size`` and ``replica_seed``.

    Outside :meth:`replica` and :meth:`training_noise` the network uses the posterior means, so
    ``log_prob`` and ``from_unit`` are deterministic.
    """

    config: Any
    Config: Any
    flow: nn.Module

    def __init__(self, config: Any = None) -> None:
        """Build the deterministic model with ``config`` (default ``self.Config()``), then turn every
        linear layer of its ``flow`` into a :class:`BayesianLinear` (``config.init_logvar``)."""
        super().__init__(config or self.Config())  # type: ignore[call-arg]
        make_bayesian(self.flow, self.config.init_logvar)

    def loss(self, batch: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """NLL of one local-reparametrisation draw plus KL / N, N = ``config.train_size``
        (thesis eq. 3.67); further arguments go to the deterministic model's ``loss``."""
        with self.training_noise():
            nll = super().loss(batch, *args, **kwargs)  # type: ignore[misc]
        return nll + self.kl() / self.config.train_size

    def _bayesian_layers(self) -> list[BayesianLinear]:
        return [m for m in self.modules() if isinstance(m, BayesianLinear)]  # type: ignore[attr-defined]

    @property
    def n_replicas(self) -> int:
        """Number of posterior draws the integrator evaluates (thesis: 10)."""
        return self.config.n_replicas

    @contextmanager
    def replica(self, index: int | None) -> Iterator[None]:
        """Fix posterior draw ``index`` (seeded by ``replica_seed + index``; ``None``: the mean)."""
        if index is not None and not 0 <= index < self.n_replicas:
            raise ValueError(f"replica index must be None or in [0, {self.n_replicas}), got {index}.")
        layers = self._bayesian_layers()
        if index is not None:
            generator = torch.Generator().manual_seed(self.config.replica_seed + index)
            for layer in layers:
                layer.fixed = layer.draw(generator)
        try:
            yield
        finally:
            for layer in layers:
                layer.fixed = None

    @contextmanager
    def training_noise(self) -> Iterator[None]:
        """Local reparametrisation: a fresh posterior sample per input row, for the loss."""
        layers = self._bayesian_layers()
        for layer in layers:
            layer.local = True
        try:
            yield
        finally:
            for layer in layers:
                layer.local = False

    def kl(self) -> torch.Tensor:
        """KL divergence of the weight posterior to the prior N(0, prior_std²), summed."""
        return sum(layer.kl(self.config.prior_std) for layer in self._bayesian_layers())
