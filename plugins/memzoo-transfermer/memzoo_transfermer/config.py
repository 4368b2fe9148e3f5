"""Configuration of the Transfermer: layout, hard-process tokens and network sizes (thesis Table A.10)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["PRESETS", "TransfermerConfig", "resolve_sizes"]

#: Network sizes. ``paper`` is the thesis' Table A.10 (8 heads, 6 encoder and 8 decoder layers,
#: embedding 64, feed-forward 256, subnets of 5 × 256 ReLU, 16 spline bins) with the Table A.8
#: multiplicity classifier (6 × 256); ``small`` trains on a laptop CPU in minutes.
PRESETS: dict[str, dict[str, int]] = {
    "small": {
        "dim": 32, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "feedforward": 64,
        "subnet_layers": 3, "subnet_hidden": 64, "bins": 8, "classifier_layers": 3, "classifier_hidden": 64,
    },
    "paper": {
        "dim": 64, "heads": 8, "encoder_layers": 6, "decoder_layers": 8, "feedforward": 256,
        "subnet_layers": 5, "subnet_hidden": 256, "bins": 16, "classifier_layers": 6, "classifier_hidden": 256,
    },
}  # fmt: skip


@dataclass(frozen=True)
class TransfermerConfig:
    """Hyperparameters of :class:`~memzoo_transfermer.transfer.Transfermer`.

    Attributes:
        objects: the base reco layout, e.g. ``("photon", "photon", "bjet", "jet", "jet", "jet")``.
        extra: kind name of additional objects (``"jet"`` for ISR/FSR jets); ``None``: fixed layout.
        max_extra: most additional objects modelled (thesis: 2); p(n|x_hard) covers 0 .. max_extra.
        charge_order: fill same-kind base slots by ascending charge (needs ``RecoParticles.charge``).
        process: registered process whose ``momenta_from_coords`` turns hard coordinates into
            the hard-particle tokens; ``None``: the coordinates are (pT, η, φ) triples of massless
            particles with PDG codes ``hard_kinds``.
        process_config: keyword config of that process.
        hard_kinds: PDG codes of the (pT, η, φ) triples when ``process`` is ``None``.
        eta_max: |η| bound of the reco η latent space (detector coverage; outside: zero density).
        m_offset: jet masses are modelled as log(m + m_offset) (GeV), so m = 0 is allowed.
        size: preset of :data:`PRESETS`; any of its entries can be overridden one by one.
    """

    objects: tuple[str, ...] = ("mu",)
    extra: str | None = None
    max_extra: int = 0
    charge_order: bool = False
    process: str | None = None
    process_config: dict[str, Any] = field(default_factory=dict)
    hard_kinds: tuple[int, ...] = (13,)
    eta_max: float = 5.0
    m_offset: float = 1.0
    size: Literal["small", "paper"] = "small"
    dim: int | None = None
    heads: int | None = None
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    feedforward: int | None = None
    subnet_layers: int | None = None
    subnet_hidden: int | None = None
    bins: int | None = None
    classifier_layers: int | None = None
    classifier_hidden: int | None = None


def resolve_sizes(config: Any) -> dict[str, int]:
    """The preset named ``config.size`` with the config's non-``None`` size entries overriding it."""
    if config.size not in PRESETS:
        raise ValueError(f"size must be one of {sorted(PRESETS)}, got {config.size!r}.")
    sizes = {k: v if getattr(config, k) is None else getattr(config, k) for k, v in PRESETS[config.size].items()}
    bad = {k: v for k, v in sizes.items() if v < (2 if k == "bins" else 1)}
    if bad:
        raise ValueError(f"Network sizes must be >= 1 (bins >= 2), got {bad}.")
    if sizes["dim"] % sizes["heads"]:
        raise ValueError(f"dim = {sizes['dim']} must be a multiple of heads = {sizes['heads']}.")
    if config.eta_max <= 0 or config.m_offset <= 0:
        raise ValueError(f"eta_max and m_offset must be > 0, got {config.eta_max} and {config.m_offset}.")
    return sizes
