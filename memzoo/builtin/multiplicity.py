"""The multiplicity classifier p(n|x_hard) of the variable-multiplicity transfer (thesis eq. 6.45).

Heimel, PhD thesis 2024, Sec. 6.5.2 and Table A.8 (right): a fully connected classifier with
6 layers of 256 ReLU units reads hard-process features (pT, η, φ, m of the hard particles) and
predicts the number of reconstructed objects — in the thesis the number of additional ISR/FSR
jets, 0, 1 or 2 — trained with the categorical cross-entropy. Inside a transfer model it gives
the factor p(n|x_hard) of p(x_reco, n|x_hard) = p(n|x_hard) Π_i p(x_i|c_i) and, trained jointly
through the transfer loss −log p(x_reco, n|x_hard), it needs no training loop of its own.

Classes are the integers ``n_min .. n_min + n_classes − 1`` (e.g. the number of extra jets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memzoo.builtin.acceptance import mlp

__all__ = ["MultiplicityClassifier"]


class MultiplicityClassifier(nn.Module):
    """Categorical p(n|x) = softmax(MLP((x − shift) / scale))_n (thesis Table A.8, right).

    The standardisation buffers ``shift`` and ``scale`` are fitted with
    :meth:`fit_standardisation` and travel with the weights (safetensors).

    Example:
        >>> clf = MultiplicityClassifier(MultiplicityClassifier.Config(n_features=4, n_classes=3, layers=2, hidden=8))
        >>> log_p = clf.log_prob(torch.zeros(5, 4), torch.tensor([0, 1, 2, 0, 1]))
        >>> log_p.shape
        torch.Size([5])
    """

    @dataclass(frozen=True)
    class Config:
        """Attributes:
        n_features: F, the number of input features.
        n_classes: number of multiplicity classes (thesis: 3, for 0–2 extra jets).
        n_min: the multiplicity of class 0.
        layers: linear layers (thesis: 6); hidden: units per hidden layer (thesis: 256).
        activation: ``relu`` (thesis), ``silu``, ``gelu`` or ``tanh``.
        """

        n_features: int
        n_classes: int = 3
        n_min: int = 0
        layers: int = 6
        hidden: int = 256
        activation: str = "relu"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = c = config
        if c.n_features < 1 or c.n_classes < 2:
            raise ValueError(
                f"MultiplicityClassifier needs n_features >= 1 and n_classes >= 2, got {c.n_features} and "
                f"{c.n_classes}; with a single multiplicity no classifier is needed."
            )
        self.net = mlp(c.n_features, c.n_classes, c.layers, c.hidden, c.activation)
        self.register_buffer("shift", torch.zeros(c.n_features))
        self.register_buffer("scale", torch.ones(c.n_features))

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.n_features:
            raise ValueError(f"features must be (B, {self.config.n_features}), got {tuple(x.shape)}.")
        return x.to(self.shift.device, self.shift.dtype)

    @torch.no_grad()
    def fit_standardisation(self, x: torch.Tensor) -> None:
        """Set ``shift``/``scale`` to the mean and standard deviation of ``x (B, F)`` (constant columns: 1)."""
        x = self._check(x)
        if len(x) < 2:
            raise ValueError("fit_standardisation needs at least two rows of features.")
        std = x.std(0)
        self.shift.copy_(x.mean(0))
        self.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_classes)`` unnormalised log-probabilities of the classes."""
        return self.net((self._check(x) - self.shift) / self.scale)

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, n_classes)`` log p(n|x) of every class."""
        return torch.log_softmax(self.logits(x), -1)

    def log_prob(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log p(n|x); −inf for multiplicities outside ``n_min .. n_min + n_classes − 1``."""
        cls = n.to(self.shift.device).long() - self.config.n_min
        inside = (cls >= 0) & (cls < self.config.n_classes)
        picked = self.log_probs(x).gather(-1, cls.clamp(0, self.config.n_classes - 1)[:, None])[:, 0]
        return torch.where(inside, picked, -torch.inf)

    @torch.no_grad()
    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B,)`` int64 multiplicities drawn from p(n|x)."""
        probs = self.log_probs(x).exp()
        if generator is not None and generator.device != probs.device:
            u = torch.rand(len(probs), 1, generator=generator, dtype=probs.dtype).to(probs.device)
        else:
            u = torch.rand(len(probs), 1, generator=generator, dtype=probs.dtype, device=probs.device)
        cls = (probs.cumsum(-1) < u).sum(-1).clamp(max=self.config.n_classes - 1)
        return cls + self.config.n_min

    def loss(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Mean categorical cross-entropy of multiplicities ``n (B,)`` (classes outside the range raise)."""
        cls = n.to(self.shift.device).long() - self.config.n_min
        if bool(((cls < 0) | (cls >= self.config.n_classes)).any()):
            raise ValueError(
                f"multiplicities must lie in [{self.config.n_min}, {self.config.n_min + self.config.n_classes - 1}]."
            )
        return nn.functional.cross_entropy(self.logits(x), cls)
