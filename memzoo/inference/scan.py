"""Combined likelihood scans: −2Δlog L(θ) of a set of events, with replica error bands.

For independent events the log-likelihoods add (Heimel, PhD thesis 2024, Sec. 6.3.1):

    −2 log L(θ) = −2 Σ_e log p(x_e|θ),     −2Δlog L(θ) = −2 log L(θ) − min_θ' (−2 log L(θ')).

Uncertainties of the integration enter through replicas (thesis Sec. 6.4.1): every bootstrap or
Bayesian-network replica m gives its own curve −2Δlog L_m(θ), each normalised to its own
minimum; the band is their standard deviation at every θ. Without replicas the per-event MC
errors are propagated as if uncorrelated, which overestimates the error of differences of a
single-pass integration (the θ points share their phase-space points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from memzoo.inference.parameters import ParameterInfo

__all__ = ["EventLikelihoods", "Scan"]


@dataclass
class EventLikelihoods:
    """Per-event log-likelihoods on a θ grid, with what the statistics layer needs to know.

    Attributes:
        logp: ``(E, T)`` float64 log p(x_e|θ_t) (natural log); any device.
        theta: ``(T, P)`` float64 θ grid.
        parameters: P :class:`ParameterInfo`, the columns of ``theta``.
        std: ``(E, T)`` MC standard errors of ``logp`` (or ``None``).
        replicas: ``(E, T, M)`` bootstrap / Bayesian replicas of ``logp`` (or ``None``).
        event: ``(E,)`` row of each event in its dataset (default ``0..E-1``).
        truth: ``(E, P)`` θ each event was generated at (or ``None`` if unknown).
        source: where the numbers come from (file name), for messages and summaries.
    """

    logp: torch.Tensor
    theta: torch.Tensor
    parameters: Sequence[ParameterInfo]
    std: torch.Tensor | None = None
    replicas: torch.Tensor | None = None
    event: torch.Tensor | None = None
    truth: torch.Tensor | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        if self.logp.ndim != 2:
            raise ValueError(f"logp must be (E, T), got shape {tuple(self.logp.shape)}{where}.")
        e, t = self.logp.shape
        if self.theta.ndim != 2 or self.theta.shape[0] != t:
            raise ValueError(f"theta must be (T, P) with T = {t}, got {tuple(self.theta.shape)}{where}.")
        if len(self.parameters) != self.theta.shape[1]:
            raise ValueError(f"{len(self.parameters)} parameter names for {self.theta.shape[1]} θ columns{where}.")
        if self.std is not None and self.std.shape != self.logp.shape:
            raise ValueError(f"std must be (E, T) = {(e, t)}, got {tuple(self.std.shape)}{where}.")
        if self.replicas is not None and (self.replicas.ndim != 3 or self.replicas.shape[:2] != (e, t)):
            raise ValueError(f"replicas must be (E, T, M) with (E, T) = {(e, t)}, got {tuple(self.replicas.shape)}.")
        if self.event is None:
            self.event = torch.arange(e)
        if self.truth is not None and tuple(self.truth.shape) != (e, self.theta.shape[1]):
            raise ValueError(f"truth must be (E, P) = {(e, self.theta.shape[1])}, got {tuple(self.truth.shape)}.")

    @classmethod
    def from_likelihood(cls, likelihood, parameters: Sequence[ParameterInfo], **kw) -> EventLikelihoods:
        """From a :class:`memzoo.protocols.Likelihood` (what any LikelihoodModel returns)."""
        return cls(
            logp=likelihood.logp.double(),
            theta=likelihood.theta.double(),
            parameters=parameters,
            std=likelihood.std.double(),
            replicas=likelihood.diagnostics.get("logp_replicas"),
            **kw,
        )

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def __len__(self) -> int:
        return self.logp.shape[0]

    def __getitem__(self, rows) -> EventLikelihoods:
        """The events ``rows`` (slice, index tensor or bool mask)."""
        pick = lambda x: None if x is None else x[rows]
        return replace(
            self,
            logp=self.logp[rows],
            std=pick(self.std),
            replicas=pick(self.replicas),
            event=self.event[rows],
            truth=pick(self.truth),
        )

    def combine(self) -> Scan:
        """The combined scan of all events (non-finite per-event values make the sum non-finite)."""
        if len(self) == 0:
            raise ValueError(f"No events to combine{f' in {self.source}' if self.source else ''}.")
        nll = (-2.0 * self.logp.sum(0)).double().cpu().numpy()
        reps = None
        if self.replicas is not None and self.replicas.shape[-1] > 0:
            reps = (-2.0 * self.replicas.sum(0)).double().cpu().numpy()  # (T, M)
        err = None
        if self.std is not None:
            err = (2.0 * self.std.double().pow(2).sum(0).sqrt()).cpu().numpy()
        return Scan(self.theta.double().cpu().numpy(), list(self.parameters), nll, reps, err, len(self))


@dataclass
class Scan:
    """A combined −2 log L(θ) on a θ grid.

    Attributes:
        theta: ``(T, P)`` float64 grid.
        parameters: the P columns.
        nll: ``(T,)`` −2 log L(θ) (not yet shifted; see :attr:`delta`).
        nll_replicas: ``(T, M)`` −2 log L of every replica, or ``None``.
        nll_std: ``(T,)`` uncorrelated MC error of ``nll``, or ``None``.
        n_events: number of events combined.
    """

    theta: np.ndarray
    parameters: list[ParameterInfo]
    nll: np.ndarray
    nll_replicas: np.ndarray | None = None
    nll_std: np.ndarray | None = None
    n_events: int = 0

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def delta(self) -> np.ndarray:
        """``(T,)`` −2Δlog L, zero at the best grid point."""
        finite = np.isfinite(self.nll)
        if not finite.any():
            raise ValueError("The likelihood scan has no finite value; check the per-event results for NaN/inf.")
        return self.nll - self.nll[finite].min()

    @property
    def delta_replicas(self) -> np.ndarray | None:
        """``(T, M)`` −2Δlog L of every replica, each shifted to its own minimum."""
        if self.nll_replicas is None:
            return None
        return self.nll_replicas - np.nanmin(self.nll_replicas, axis=0, keepdims=True)

    def band(self) -> tuple[np.ndarray | None, str]:
        """``(T,)`` error of −2Δlog L and its origin: ``"replicas"``, ``"mc-uncorrelated"`` or ``"none"``."""
        reps = self.delta_replicas
        if reps is not None and reps.shape[1] > 1:
            return reps.std(axis=1, ddof=1), "replicas"
        if self.nll_std is not None:
            return self.nll_std, "mc-uncorrelated"
        return None, "none"

    def index(self, name: str) -> int:
        """Column of a parameter; unknown names raise naming the known ones."""
        if name not in self.names:
            raise ValueError(f"Unknown parameter {name!r}; the θ grid has {self.names}.")
        return self.names.index(name)
