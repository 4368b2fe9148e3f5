"""The protocols every memzoo backend implements (DESIGN §3).

The ML-MEM likelihood (Heimel, PhD thesis 2024, eqs. 6.17 and 6.39) is

    p(x_reco|θ) = 1/σ_fid(θ) ∫ dx_hard dσ(θ)/dx_hard · ε(x_hard) · p(x_reco|x_hard),

with the hard-process cross section from a :class:`Process`, the acceptance ε from an
:class:`AcceptanceModel`, the transfer probability from a :class:`TransferModel`, and the
integral estimated by importance sampling with a :class:`Sampler`. Anything that returns
``log p(x_reco|θ)`` is a :class:`LikelihoodModel`.

Tensor conventions: torch, batch first; float32 inside networks, float64 wherever a cross
section or a sum of many terms is formed. ``B`` counts events or phase-space points, ``T``
θ points, ``P`` parameters, ``D`` hard coordinates, ``K`` factorised terms, ``E`` events.

Densities of reco objects (``TransferModel.log_prob``) are with respect to the product over
present objects of ``dpT dη dφ`` (GeV⁻¹ rad⁻¹), times ``dm`` (GeV⁻¹) for jets (kinds 1, 5), and
``dpT dφ`` alone for missing pT (kind 12); see :func:`reco_measure_dims`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from memzoo.events import Particles

__all__ = [
    "AcceptanceModel",
    "FactorisedProcess",
    "Likelihood",
    "LikelihoodModel",
    "Parameter",
    "Process",
    "Sampler",
    "SupportsReplicas",
    "TransferModel",
    "make_theta",
    "reco_measure_dims",
]


# ---------------------------------------------------------------------------------------
# theory parameters
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One theory parameter θ_i of a process.

    Attributes:
        name: identifier used on the command line and in files (``alpha``, ``sin2theta_eff``).
        unit: unit of the values (``"deg"``, ``""`` for dimensionless).
        default: the Standard-Model (or reference) value.
        range: ``(low, high)`` of physically meaningful values, inclusive.
        description: one line for help texts.
        period: the period of a periodic parameter (360 for the CP phase α in degrees), whose
            ``range`` is then one full period; ``None`` otherwise. Fits unwrap the grid around
            the minimum (``memzoo.inference``).
    """

    name: str
    unit: str
    default: float
    range: tuple[float, float]
    description: str = ""
    period: float | None = None

    def __post_init__(self) -> None:
        low, high = self.range
        if not low <= self.default <= high:
            raise ValueError(f"Parameter {self.name!r}: default {self.default} is outside {self.range}.")
        if self.period is not None and not (self.period > 0 and abs((high - low) - self.period) < 1e-9 * self.period):
            raise ValueError(
                f"Parameter {self.name!r}: period {self.period} must be positive and equal to the range's "
                f"width {high - low}."
            )


def make_theta(
    parameters: Sequence[Parameter],
    values: Mapping[str, float | Sequence[float]] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Build a ``(T, P)`` θ tensor from named values, defaults filling the gaps.

    Each value may be a number or a sequence of T numbers (all sequences of equal length).
    Unknown names and values outside a parameter's range raise ``ValueError``.

    Example:
        >>> make_theta([Parameter("alpha", "deg", 0.0, (-180.0, 180.0))], {"alpha": [0, 90]})
        tensor([[ 0.],
                [90.]], dtype=torch.float64)
    """
    values = dict(values or {})
    names = [p.name for p in parameters]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown}. This process has parameters {names}.")
    columns = []
    lengths = {len(v) for v in values.values() if isinstance(v, Sequence | torch.Tensor)}
    if len(lengths) > 1:
        raise ValueError(f"Parameter value lists must all have the same length, got lengths {sorted(lengths)}.")
    n = lengths.pop() if lengths else 1
    for par in parameters:
        col = torch.as_tensor(values.get(par.name, par.default), dtype=dtype, device=device).reshape(-1)
        if col.numel() == 1:
            col = col.expand(n)
        low, high = par.range
        bad = (col < low) | (col > high) | ~torch.isfinite(col)
        if bad.any():
            raise ValueError(f"{par.name} = {float(col[bad][0])} {par.unit} is outside its range [{low}, {high}].")
        columns.append(col)
    return torch.stack(columns, dim=-1)


# ---------------------------------------------------------------------------------------
# the hard process
# ---------------------------------------------------------------------------------------


@runtime_checkable
class Process(Protocol):
    """A hard scattering process: differential cross section in the hard coordinates.

    Attributes:
        name: registry name (``"drell-yan"``, ``"thj"``).
        parameters: the theory parameters θ, in the column order of every θ tensor.
        hard_dim: D, the number of hard coordinates (the measure all densities refer to).
        hard_kinds: PDG codes of the hard final-state particles, ``(n_hard,)``.
    """

    name: str
    parameters: Sequence[Parameter]
    hard_dim: int
    hard_kinds: Sequence[int]

    def coords_from_momenta(self, p: torch.Tensor) -> torch.Tensor:
        """Hard coordinates ``(B, D)`` of final-state momenta ``(B, n_hard, 4)`` (GeV)."""

    def momenta_from_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """Final-state momenta ``(B, n_hard, 4)`` in GeV of hard coordinates ``(B, D)``."""

    def dsigma(self, coords: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """dσ/dx_hard in fb per unit of the hard coordinates.

        Args:
            coords: ``(B, D)`` hard coordinates.
            theta: ``(T, P)`` parameter points.

        Returns:
            ``(B, T)`` float64, zero outside physical phase space.
        """

    def sample(self, n: int, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, D)`` unweighted hard events at one parameter point ``theta (1, P)``."""

    def cross_section(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Total cross section and its MC error in fb, each ``(T,)``, for ``theta (T, P)``."""


@runtime_checkable
class FactorisedProcess(Process, Protocol):
    """A process with ``dσ(θ)/dx = Σ_k f_k(θ) g_k(x)`` (thesis eq. 6.33).

    ``dsigma`` then costs one evaluation of the K terms for any number of θ points (6.35).
    """

    def coefficients(self, theta: torch.Tensor) -> torch.Tensor:
        """``(T, K)`` coefficients f_k(θ) for ``theta (T, P)``."""

    def dsigma_terms(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B, K)`` float64 terms g_k(x) in fb per unit of the hard coordinates."""


# ---------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------


@runtime_checkable
class TransferModel(Protocol):
    """The normalised transfer probability p(x_reco|x_hard).

    Covers decays, shower, hadronisation, detector response, reconstruction and jet
    combinatorics; includes the multiplicity term where the model has one.
    """

    name: str

    def log_prob(self, reco: Particles, hard: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log p(x_reco_i | x_hard_i) for row-wise pairs.

        Args:
            reco: B reco events (the measure is stated in the module docstring).
            hard: ``(B, D)`` hard coordinates.
        """

    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        """One reco event per hard point ``hard (B, D)``."""


@runtime_checkable
class Sampler(Protocol):
    """Importance-sampling proposal q(x_hard | x_reco, θ) for the MEM integral."""

    name: str

    def from_unit(self, u: torch.Tensor, reco: Particles, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map unit-hypercube points to hard coordinates.

        Args:
            u: ``(B, D)`` points in [0, 1]^D (where VEGAS acts).
            reco: B reco events, one per row of ``u``.
            theta: ``(B, P)`` parameter points, one per row (or ``(1, P)`` for all rows).

        Returns:
            ``coords (B, D)`` and ``log_q (B,)``: the log density of the coords under q
            (the change of variables from the uniform u included).
        """

    def log_prob(self, coords: torch.Tensor, reco: Particles, theta: torch.Tensor) -> torch.Tensor:
        """``(B,)`` log q(coords | reco, θ) for row-wise triples."""


@runtime_checkable
class AcceptanceModel(Protocol):
    """Probability ε(x_hard) that a hard event is reconstructed and passes the selection."""

    name: str

    def prob(self, coords: torch.Tensor) -> torch.Tensor:
        """``(B,)`` acceptance in [0, 1] of hard coordinates ``coords (B, D)``."""


@runtime_checkable
class SupportsReplicas(Protocol):
    """A Bayesian network whose posterior draws ("replicas") can be fixed (thesis 6.4.1).

    The integrator evaluates every replica on the same phase-space points, so that replica
    spread measures the network uncertainty alone.
    """

    n_replicas: int

    def replica(self, index: int | None) -> AbstractContextManager[None]:
        """Context manager fixing posterior draw ``index`` (``None``: the posterior mean)."""


# ---------------------------------------------------------------------------------------
# likelihoods
# ---------------------------------------------------------------------------------------


@dataclass
class Likelihood:
    """Per-event log-likelihoods on a θ grid.

    Attributes:
        logp: ``(E, T)`` float64 log p(x_reco_e | θ_t) (natural log).
        std: ``(E, T)`` float64 standard error of ``logp`` (MC and, where present, network).
        theta: ``(T, P)`` the parameter points.
        diagnostics: per-event extra information, each ``(E, ...)`` (e.g. ``n_points``,
            ``n_nonfinite``, ``rel_error``).
    """

    logp: torch.Tensor
    std: torch.Tensor
    theta: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.logp.ndim != 2 or self.std.shape != self.logp.shape:
            raise ValueError(
                f"Likelihood.logp and .std must both be (E, T); got {tuple(self.logp.shape)} "
                f"and {tuple(self.std.shape)}."
            )
        if self.theta.ndim != 2 or self.theta.shape[0] != self.logp.shape[1]:
            raise ValueError(
                f"Likelihood.theta must be (T, P) with T = {self.logp.shape[1]}, got {tuple(self.theta.shape)}."
            )

    @property
    def neg_log10(self) -> torch.Tensor:
        """``(E, T)`` −log10 p, the regression target of Bury & Delaere (arXiv:2007.09121)."""
        return -self.logp / math.log(10.0)

    def total(self) -> torch.Tensor:
        """``(T,)`` summed log-likelihood of all events."""
        return self.logp.sum(0)


@runtime_checkable
class LikelihoodModel(Protocol):
    """Anything that turns reco events into log p(x_reco | θ): the MEM integrator, a surrogate."""

    name: str

    def log_likelihood(self, reco: Particles, theta: torch.Tensor) -> Likelihood:
        """Log-likelihoods of ``E`` reco events at ``theta (T, P)``."""


def reco_measure_dims(kind: torch.Tensor) -> torch.Tensor:
    """Number of density dimensions each object contributes (see the module docstring).

    Args:
        kind: integer object codes, any shape.

    Returns:
        Same shape: 4 for jets (pT, η, φ, m), 2 for missing pT (pT, φ), 3 otherwise, 0 for padding.
    """
    dims = torch.full_like(kind, 3)
    dims[(kind == 1) | (kind == 5)] = 4
    dims[kind == 12] = 2
    dims[kind == 0] = 0
    return dims
