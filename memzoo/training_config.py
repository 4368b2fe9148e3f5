"""Training settings shared by every memzoo network, with the thesis' values as presets.

Defaults follow Heimel, PhD thesis 2024 (arXiv:2310.07752 for the networks): Adam with a
one-cycle schedule rising from 1e-4 to 3e-4 and batch size 1024 (Tables A.7 and A.8);
:data:`THESIS_CONFIGS` holds the settings of Tables A.7–A.11 (cosine annealing for the CFM
models, RAdam for the Transfermer). The trainer itself is :mod:`memzoo.training`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from memzoo.config import ConfigError, make_config

__all__ = ["OPTIMIZERS", "SCHEDULES", "THESIS_CONFIGS", "TrainingConfig", "thesis_config"]

OPTIMIZERS = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}
SCHEDULES = ("one-cycle", "cosine", "constant")


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings shared by all networks (defaults: thesis Tables A.7/A.8).

    Attributes:
        optimizer: ``adam`` or ``radam``.
        lr: learning rate; for ``one-cycle`` the initial one.
        max_lr: peak learning rate of ``one-cycle`` (ignored otherwise).
        schedule: ``one-cycle`` (stepped per batch, ends at lr/1e4), ``cosine`` (annealed
            per epoch from lr towards 0) or ``constant``.
        epochs: maximal number of passes over the training data.
        batch_size: events per mini-batch.
        weight_decay: L2 penalty passed to the optimizer.
        early_stopping_patience: stop after this many epochs without a lower validation loss
            and restore the best weights; ``None`` trains all epochs.
        grad_clip: clip the global gradient norm to this value; ``None`` = no clipping.
        seed: seeds the shuffling and torch's global RNG (dropout, noise) at the start.
        device: ``cpu``, ``cuda``, ``cuda:1``, ... or ``auto`` (CUDA when available).
        checkpoint_every: write a checkpoint every this many epochs (with a checkpoint folder).
    """

    optimizer: Literal["adam", "radam"] = "adam"
    lr: float = 1e-4
    max_lr: float = 3e-4
    schedule: Literal["one-cycle", "cosine", "constant"] = "one-cycle"
    epochs: int = 10
    batch_size: int = 1024
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"TrainingConfig: {message}")

        if self.optimizer not in OPTIMIZERS:
            fail(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.schedule not in SCHEDULES:
            fail(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}.")
        for key in ("epochs", "batch_size", "checkpoint_every"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 1:
                fail(f"{key} must be an integer >= 1, got {getattr(self, key)!r}.")
        if not _is_int(self.seed) or self.seed < 0:
            fail(f"seed must be an integer >= 0, got {self.seed!r}.")
        for key in ("lr", "max_lr"):
            if not _is_real(getattr(self, key)) or getattr(self, key) <= 0:
                fail(f"{key} must be a positive finite number, got {getattr(self, key)!r}.")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            fail(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}.")
        patience = self.early_stopping_patience
        if patience is not None and (not _is_int(patience) or patience < 1):
            fail(f"early_stopping_patience must be None (off) or an integer >= 1, got {patience!r}.")
        if self.grad_clip is not None and (not _is_real(self.grad_clip) or self.grad_clip <= 0):
            fail(f"grad_clip must be None (off) or a positive number, got {self.grad_clip!r}.")
        if self.schedule == "one-cycle" and self.max_lr < self.lr:
            fail(f"one-cycle rises from lr to max_lr, so max_lr must be >= lr; got lr={self.lr}, max_lr={self.max_lr}.")
        if not isinstance(self.device, str):
            fail(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {self.device!r}.")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError) as err:
                fail(f"device {self.device!r} is not a torch device ({err}); use 'cpu', 'cuda', 'cuda:0' or 'auto'.")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None) -> TrainingConfig:
        """Build from TOML/JSON values, rejecting unknown keys and wrong types."""
        return make_config(cls, values, owner="training")

    def resolved_device(self) -> torch.device:
        """The torch device, with ``auto`` resolved."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


_KEYS = ("optimizer", "lr", "max_lr", "schedule", "batch_size", "epochs")
#: Training settings of the thesis networks (Tables A.7–A.11); keys are network families.
THESIS_CONFIGS: dict[str, dict[str, Any]] = {
    name: dict(zip(_KEYS, values))
    for name, values in {
        # Table A.7 (cINN, 200 epochs when Bayesian) names no optimizer; Adam as for the others
        "cinn": ("adam", 1e-4, 3e-4, "one-cycle", 1024, 100),
        "acceptance": ("adam", 1e-4, 3e-4, "one-cycle", 1024, 10),  # Table A.8
        "multiplicity": ("adam", 1e-4, 3e-4, "one-cycle", 1024, 10),  # Table A.8
        "cfm": ("adam", 1e-3, 1e-3, "cosine", 16384, 1000),  # Table A.9
        "transfermer": ("radam", 1e-4, 3e-4, "one-cycle", 1024, 200),  # Table A.10
        "transfusion": ("adam", 1e-3, 1e-3, "cosine", 8192, 600),  # Table A.11
    }.items()
}


def thesis_config(network: str, **overrides: Any) -> TrainingConfig:
    """The thesis' training settings for ``network`` (a key of :data:`THESIS_CONFIGS`), with overrides."""
    if network not in THESIS_CONFIGS:
        raise ValueError(f"Unknown network {network!r}. Must be one of {sorted(THESIS_CONFIGS)}.")
    return TrainingConfig.from_dict({**THESIS_CONFIGS[network], **overrides})
