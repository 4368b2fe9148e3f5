"""Configuration of the Transfusion: layout, hard tokens, transformer and CFM sizes, ODE settings (Table A.11)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from memzoo_cfm import SolverConfig
from memzoo_transfermer.config import PRESETS as TRANSFORMER_PRESETS

__all__ = ["CFM_PRESETS", "TransfusionConfig", "resolve_cfm_sizes"]

#: Per-particle CFM sizes: ``paper`` is Table A.11 (6 layers of 400); ``small`` trains on a
#: laptop CPU in minutes. The transformer sizes are the Transfermer's presets (Table A.11 has the
#: same transformer as Table A.10: 8 heads, 6 + 8 layers, embedding 64, feed-forward 256).
CFM_PRESETS: dict[str, dict[str, int]] = {
    "small": {"cfm_layers": 3, "cfm_hidden": 64},
    "paper": {"cfm_layers": 6, "cfm_hidden": 400},
}

#: Fields handed to the Transfermer (sequence, tokens, transformer, multiplicity classifier).
TRANSFERMER_FIELDS = (
    "objects", "extra", "max_extra", "charge_order", "process", "process_config", "hard_kinds", "m_offset",
    "size", "dim", "heads", "encoder_layers", "decoder_layers", "feedforward", "classifier_layers",
    "classifier_hidden",
)  # fmt: skip


@dataclass(frozen=True)
class TransfusionConfig(SolverConfig):
    """Hyperparameters of :class:`~memzoo_transfusion.transfer.Transfusion`.

    Layout and tokens as :class:`memzoo_transfermer.TransfermerConfig` (``objects``, ``extra``,
    ``max_extra``, ``charge_order``, ``process``, ``process_config``, ``hard_kinds``,
    ``m_offset``); transformer sizes from its ``size`` presets (``dim``, ``heads``,
    ``encoder_layers``, ``decoder_layers``, ``feedforward``, ``classifier_layers``,
    ``classifier_hidden`` override them); the ODE settings of :class:`memzoo_cfm.SolverConfig`
    (thesis: RK4, step 0.05).

    Attributes:
        cfm_layers, cfm_hidden: linear layers and width of each per-particle velocity network.
        activation: of the velocity networks. Table A.11 uses ReLU; the default is SiLU because a
            ReLU field is piecewise linear, its divergence jumps, and RK4 (step 0.05) then misses
            log p by ~10⁻² instead of ~10⁻⁵ at equal training loss (docs/benchmarks.md).
        time_features: Fourier features of t besides t itself.
    """

    objects: tuple[str, ...] = ("mu",)
    extra: str | None = None
    max_extra: int = 0
    charge_order: bool = False
    process: str | None = None
    process_config: dict[str, Any] = field(default_factory=dict)
    hard_kinds: tuple[int, ...] = (13,)
    m_offset: float = 1.0
    size: Literal["small", "paper"] = "small"
    dim: int | None = None
    heads: int | None = None
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    feedforward: int | None = None
    classifier_layers: int | None = None
    classifier_hidden: int | None = None
    cfm_layers: int | None = None
    cfm_hidden: int | None = None
    activation: Literal["silu", "relu", "gelu", "tanh"] = "silu"
    time_features: int = 4


def resolve_cfm_sizes(config: TransfusionConfig) -> dict[str, int]:
    """The CFM preset of ``config.size`` with non-``None`` ``cfm_layers``/``cfm_hidden`` overriding it."""
    if config.size not in CFM_PRESETS or config.size not in TRANSFORMER_PRESETS:
        raise ValueError(f"size must be one of {sorted(CFM_PRESETS)}, got {config.size!r}.")
    sizes = {k: v if getattr(config, k) is None else getattr(config, k) for k, v in CFM_PRESETS[config.size].items()}
    if min(sizes.values()) < 1 or config.time_features < 0:
        raise ValueError(f"cfm_layers and cfm_hidden must be >= 1 and time_features >= 0, got {sizes}.")
    return sizes
