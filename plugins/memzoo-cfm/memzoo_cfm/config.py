"""Configuration of CFM backends: ODE solver settings (shared with Transfusion) and the Transfer-CFM."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from memzoo_cfm.ode import ODESolver

__all__ = ["PRESETS", "CFMConfig", "SolverConfig", "SolverMixin", "resolve_sizes"]

#: Velocity-network sizes. ``paper`` is the thesis' Table A.9 (8 layers of 512, SiLU; the table
#: quotes 3.2M parameters, this plain MLP has 1.6M for the tHj layout); ``small`` trains on a laptop CPU in minutes.
PRESETS: dict[str, dict[str, int]] = {"small": {"layers": 4, "hidden": 128}, "paper": {"layers": 8, "hidden": 512}}


@dataclass(frozen=True)
class SolverConfig:
    """ODE settings of a CFM backend (see :class:`memzoo_cfm.ode.ODESolver`).

    Attributes:
        solver: ``rk4`` (thesis Tables A.9, A.11), ``midpoint``, ``euler``, or adaptive ``dopri5``,
            ``dopri8``, ``bosh3``, ``adaptive_heun``, ``fehlberg2`` (torchdiffeq).
        step: fixed-step size in t (thesis: 0.05).
        rtol, atol: adaptive tolerances.
        divergence: ``exact`` (torch.func Jacobian trace) or ``hutchinson`` (unbiased, faster).
        probes: Hutchinson probes per trajectory; probe: ``rademacher`` or ``gaussian``.
        probe_seed: seed of the probes of a call that passes no generator, so ``log_prob`` is
            reproducible (the integrator's resumed runs, save/load); ``None``: the global RNG.
    """

    solver: str = "rk4"
    step: float = 0.05
    rtol: float = 1e-5
    atol: float = 1e-5
    divergence: Literal["exact", "hutchinson"] = "exact"
    probes: int = 1
    probe: Literal["rademacher", "gaussian"] = "rademacher"
    probe_seed: int | None = 0

    def ode_solver(self) -> ODESolver:
        return ODESolver(
            self.solver, self.step, self.rtol, self.atol, self.divergence, self.probes, self.probe, self.probe_seed
        )


class SolverMixin:
    """``self.ode``: the config's :class:`ODESolver`, changeable for a while with :meth:`solver_options`."""

    config: Any
    _ode_override: ODESolver | None = None

    @property
    def ode(self) -> ODESolver:
        return self._ode_override or self.config.ode_solver()

    @contextlib.contextmanager
    def solver_options(self, **changes: Any) -> Iterator[ODESolver]:
        """Evaluate with other ODE settings, e.g. ``with model.solver_options(solver="dopri5", rtol=1e-7):``.

        Keys are :class:`ODESolver` fields (``method`` may be given as ``solver``).
        """
        if "solver" in changes:
            changes["method"] = changes.pop("solver")
        before = self._ode_override
        self._ode_override = dataclasses.replace(self.ode, **changes)
        try:
            yield self._ode_override
        finally:
            self._ode_override = before


@dataclass(frozen=True)
class CFMConfig(SolverConfig):
    """Hyperparameters of :class:`~memzoo_cfm.transfer.CFMTransfer`.

    Attributes:
        objects: the fixed reco layout, e.g. ``("mu", "mu")`` (names of ``memzoo_cinn.features.KIND_NAMES``).
        charge_order: fill same-kind slots by ascending charge (needs ``RecoParticles.charge``).
        hard_dim: D, the number of hard coordinates.
        log_hard: hard columns given to the network as their log (positive ones, like pT).
        hard_phi: azimuthal hard columns; reco φ are measured from the first (``()``: from 0).
        size: preset of :data:`PRESETS`; ``layers``/``hidden`` override it.
        activation: of the velocity network (thesis Table A.9: SiLU).
        time_features: Fourier features of t given to the network besides t itself.
    """

    objects: tuple[str, ...] = ("mu",)
    charge_order: bool = False
    hard_dim: int = 3
    log_hard: tuple[int, ...] = (0,)
    hard_phi: tuple[int, ...] = (2,)
    size: Literal["small", "paper"] = "small"
    layers: int | None = None
    hidden: int | None = None
    activation: Literal["silu", "relu", "gelu", "tanh"] = "silu"
    time_features: int = 4


def resolve_sizes(config: Any, presets: dict[str, dict[str, int]] = PRESETS) -> dict[str, int]:
    """The preset named ``config.size`` with the config's non-``None`` entries overriding it."""
    if config.size not in presets:
        raise ValueError(f"size must be one of {sorted(presets)}, got {config.size!r}.")
    sizes = {k: v if getattr(config, k) is None else getattr(config, k) for k, v in presets[config.size].items()}
    bad = {k: v for k, v in sizes.items() if v < 1}
    if bad:
        raise ValueError(f"Network sizes must be >= 1, got {bad}.")
    return sizes
