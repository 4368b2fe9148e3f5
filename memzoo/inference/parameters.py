"""Theory-parameter metadata the statistics layer needs: names, units and periodicity.

A parameter is periodic when its :class:`~memzoo.protocols.Parameter` carries a ``period``
attribute, or when it is an angle whose range spans one full turn (360 deg or 2π rad), like the
CP phase α ∈ [-180°, 180°) of tHj (Heimel, PhD thesis 2024, eq. 6.2). Periodic values are
reported in ``[low, low + period)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ParameterInfo", "parameter_infos", "wrap"]

_FULL_TURN = {"deg": 360.0, "degree": 360.0, "rad": 2 * math.pi}


@dataclass(frozen=True)
class ParameterInfo:
    """What the fits need to know about one parameter.

    Attributes:
        name: the parameter's name (``alpha``, ``sin2theta_eff``).
        unit: its unit (``"deg"``, ``""``).
        period: the period for periodic parameters (360 for α in degrees), else ``None``.
        low: start of the reporting interval ``[low, low + period)`` of a periodic parameter.
    """

    name: str
    unit: str = ""
    period: float | None = None
    low: float = 0.0

    def wrap(self, value):
        """``value`` mapped into ``[low, low + period)`` (unchanged for a non-periodic parameter)."""
        return value if self.period is None else wrap(value, self.period, self.low)

    def delta(self, a, b):
        """``a - b``, the shortest signed way round for a periodic parameter (in ``[-P/2, P/2)``)."""
        d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
        return d if self.period is None else wrap(d, self.period, -self.period / 2)

    def label(self) -> str:
        return f"{self.name} [{self.unit}]" if self.unit else self.name


def wrap(value, period: float, low: float):
    """Map values into ``[low, low + period)`` (numpy arrays or floats)."""
    out = np.mod(np.asarray(value, dtype=np.float64) - low, period) + low
    # np.mod of a tiny negative number rounds up to the period itself (−1e-14 mod 360 = 360.0)
    out = np.where(out >= low + period, low, out)
    return float(out) if np.ndim(out) == 0 else out


def _period_of(parameter) -> float | None:
    period = getattr(parameter, "period", None)
    if period is not None:
        return float(period)
    low, high = parameter.range
    full = _FULL_TURN.get(parameter.unit)
    return full if full is not None and math.isclose(high - low, full, rel_tol=1e-9) else None


def parameter_infos(
    names: Sequence[str],
    units: Sequence[str] | None = None,
    process: str | None = None,
    periods: dict[str, float | None] | None = None,
) -> list[ParameterInfo]:
    """Parameter descriptions for the columns of a θ grid.

    Args:
        names: column names of θ.
        units: their units (default: from the process, else empty).
        process: a registered process name; its :class:`~memzoo.protocols.Parameter` ranges
            decide which parameters are periodic.
        periods: explicit periods by name (``None`` or 0 switches periodicity off); they win
            over what the process says.

    Returns:
        One :class:`ParameterInfo` per name.
    """
    by_name = {}
    if process:
        from memzoo.plugins import get_registry

        try:
            cls = get_registry().get("process", process).cls
            by_name = {p.name: p for p in cls.parameters}
        except KeyError:
            by_name = {}  # an unknown process only costs the periodicity guess
    periods = dict(periods or {})
    unknown = sorted(set(periods) - set(names))
    if unknown:
        raise ValueError(f"Period given for unknown parameter(s) {unknown}; the θ grid has {list(names)}.")
    infos = []
    for i, name in enumerate(names):
        par = by_name.get(name)
        unit = units[i] if units is not None else (par.unit if par else "")
        period = _period_of(par) if par is not None else None
        low = par.range[0] if par is not None else 0.0
        if name in periods:
            period = float(periods[name]) if periods[name] else None
            if period is not None and par is None:
                low = -period / 2
        infos.append(ParameterInfo(name, unit, period, low))
    return infos
