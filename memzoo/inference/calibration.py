"""Calibration: θ̂ and 68 % intervals over many disjoint event sets, and their pulls.

Heimel, PhD thesis 2024, Secs. 6.3.1 and 6.4.1 (Figs. 6.8, 6.14): the events of one true θ are
split into disjoint sets of (there) 100 events; every set gives θ̂ and an asymmetric interval;
the pull of a set is

    g = (θ̂ − θ_true) / σ,   σ = σ₊ if θ_true > θ̂ else σ₋

(the error on the side of the truth; the shortest signed way round for a periodic parameter).
A calibrated measurement has pulls of mean 0 and width 1. For n sets with pull mean m and
sample standard deviation s, the statistical errors are s/√n and s/√(2(n−1)) (Gaussian pulls).
Sets whose interval is open at the grid edge have no error estimate on that side (only a lower
limit); their pulls are kept in the per-set output but left out of the summaries.

Where θ and −θ are nearly degenerate (the sign of the CP phase α of tHj, which only CP-odd
correlations resolve: Heimel, PhD thesis 2024, Sec. 6.3.2), a set may fit the mirror image −θ_true
and give a pull of about 2θ_true/σ. ``mirror=True`` then also reports how many sets lie nearer
−θ_true than θ_true and the pull summary of the others, so that a sign ambiguity and a
miscalibration of the magnitude can be told apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from memzoo.inference.fit import Estimate, fit_scan
from memzoo.inference.parameters import ParameterInfo
from memzoo.inference.scan import EventLikelihoods

__all__ = ["Calibration", "PullSummary", "calibrate", "fit_sets", "pull", "summarise_pulls"]


def pull(estimate: Estimate, truth: float, info: ParameterInfo | None = None) -> float:
    """(θ̂ − θ_true)/σ with σ the error on the side of the truth (module docstring)."""
    d = float(info.delta(estimate.value, truth)) if info is not None else estimate.value - truth
    sigma = estimate.error_towards(truth, info)
    return d / sigma if sigma > 0 else math.copysign(math.inf, d) if d else 0.0


@dataclass
class PullSummary:
    """Mean and width of a pull distribution with their statistical errors.

    Attributes:
        n: pulls used (finite ones).
        mean, mean_err: the mean and s/√n.
        width, width_err: the sample standard deviation s and s/√(2(n−1)).
    """

    n: int
    mean: float
    mean_err: float
    width: float
    width_err: float


def summarise_pulls(pulls) -> PullSummary:
    """Summary of the finite pulls (needs at least two)."""
    g = np.asarray(pulls, dtype=np.float64)
    g = g[np.isfinite(g)]
    n = len(g)
    if n < 2:
        nan = float("nan")
        return PullSummary(n, float(g.mean()) if n else nan, nan, nan, nan)
    s = float(g.std(ddof=1))
    return PullSummary(n, float(g.mean()), s / math.sqrt(n), s, s / math.sqrt(2 * (n - 1)))


def fit_sets(
    events: EventLikelihoods, set_size: int, name: str | None = None, **options
) -> tuple[list[Estimate], list[np.ndarray]]:
    """Fit disjoint consecutive sets of ``set_size`` events (a remainder is left out).

    Returns:
        The estimates and, per set, the event rows (indices into ``events``) it used.
    """
    if set_size < 1:
        raise ValueError(f"The set size must be at least 1 event, got {set_size}.")
    n_sets = len(events) // set_size
    if n_sets == 0:
        raise ValueError(
            f"{events.source or 'The results'} hold {len(events)} events, fewer than one set of {set_size}; "
            f"lower --set-size or integrate more events."
        )
    rows = [np.arange(k * set_size, (k + 1) * set_size) for k in range(n_sets)]
    return [fit_scan(events[r].combine(), name, **options) for r in rows], rows


@dataclass
class Calibration:
    """Fits of disjoint sets at one or more true values of one parameter.

    Attributes:
        parameter: the calibrated parameter.
        set_size: events per set.
        truths: one true value per group (file).
        estimates: per group, the estimates of its sets.
        pulls: per group, the pulls of its sets.
        summaries: per group, the :class:`PullSummary` of the sets with closed intervals.
        overall: the :class:`PullSummary` of all closed sets together.
        sources: per group, where its events came from.
        left_out: per group, events that did not fill a last set.
    """

    parameter: ParameterInfo
    set_size: int
    truths: list[float] = field(default_factory=list)
    estimates: list[list[Estimate]] = field(default_factory=list)
    pulls: list[np.ndarray] = field(default_factory=list)
    summaries: list[PullSummary] = field(default_factory=list)
    overall: PullSummary | None = None
    sources: list[str] = field(default_factory=list)
    left_out: list[int] = field(default_factory=list)
    mirror: bool = False

    def mirrored(self, k: int) -> np.ndarray:
        """``(sets,)`` bool: the sets of group ``k`` whose θ̂ lies nearer −θ_true than θ_true."""
        values = np.array([e.value for e in self.estimates[k]])
        truth = self.truths[k]
        near_mirror = np.abs(self.parameter.delta(values, -truth)) < np.abs(self.parameter.delta(values, truth))
        return near_mirror & (np.abs(self.parameter.delta(-truth, truth)) > 0)

    def _mirror_summary(self, k: int) -> dict:
        flipped = self.mirrored(k)
        closed = np.array([e.closed for e in self.estimates[k]], dtype=bool)
        return {
            "mirror_sets": int(flipped.sum()),
            "mirror_fraction": float(flipped.mean()) if len(flipped) else None,
            "pulls_without_mirror": asdict(summarise_pulls(self.pulls[k][closed & ~flipped])),
        }

    def as_dict(self) -> dict:
        """Everything, JSON-ready (NaN and inf become ``None``)."""
        groups = []
        for k, truth in enumerate(self.truths):
            values = np.array([e.value for e in self.estimates[k]])
            offsets = self.parameter.delta(values, truth)
            groups.append(
                {
                    "source": self.sources[k],
                    "truth": truth,
                    "n_sets": len(self.estimates[k]),
                    "events_left_out": self.left_out[k],
                    "bias": float(offsets.mean()),
                    "bias_err": float(offsets.std(ddof=1) / math.sqrt(len(offsets))) if len(offsets) > 1 else None,
                    "spread": float(offsets.std(ddof=1)) if len(offsets) > 1 else None,
                    "median_err_low": float(np.median([e.err_low for e in self.estimates[k]])),
                    "median_err_high": float(np.median([e.err_high for e in self.estimates[k]])),
                    "open_intervals": sum(not e.closed for e in self.estimates[k]),
                    "pulls": asdict(self.summaries[k]),
                    **(self._mirror_summary(k) if self.mirror else {}),
                    "sets": [{**e.as_dict(), "pull": float(g)} for e, g in zip(self.estimates[k], self.pulls[k])],
                }
            )
        out = {
            "parameter": self.parameter.name,
            "unit": self.parameter.unit,
            "period": self.parameter.period,
            "set_size": self.set_size,
            "overall_pulls": asdict(self.overall) if self.overall else None,
            "groups": groups,
        }
        return _json_safe(out)


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float | np.floating) and not math.isfinite(x):
        return None
    if isinstance(x, np.floating | np.integer | np.bool_):
        return x.item()
    return x


def _group_truth(events: EventLikelihoods, column: int, truth: float | None) -> float:
    if truth is not None:
        return float(truth)
    if events.truth is None:
        raise ValueError(
            f"The true {events.names[column]} of {events.source or 'the events'} is unknown (its dataset "
            f"is not readable); give it with --truth {events.names[column]}=VALUE."
        )
    values = events.truth[:, column].double().cpu().numpy()
    if np.ptp(values) > 1e-9 * max(1.0, np.abs(values).max()):
        raise ValueError(
            f"The events of {events.source or 'the results'} were generated at different true "
            f"{events.names[column]} ({values.min():g} to {values.max():g}); calibration needs one true value "
            f"per results file. Simulate a dataset at a fixed value, or give --truth to override."
        )
    return float(values[0])


def calibrate(
    groups: list[EventLikelihoods],
    set_size: int = 100,
    name: str | None = None,
    truths: list[float | None] | None = None,
    mirror: bool = False,
    **options,
) -> Calibration:
    """Calibrate one parameter over one or more event collections, each at one true value.

    Args:
        groups: per true value, the events (their ``truth`` or ``truths`` gives the value).
        set_size: events per disjoint set.
        name: the parameter (default: the only one); others are profiled.
        truths: per group, a true value overriding the events' own (``None`` entries: from
            the events).
        mirror: also count the sets nearer −θ_true and summarise the pulls of the others
            (module docstring).
        **options: fit options (:func:`memzoo.inference.fit.fit_curve`).
    """
    if not groups:
        raise ValueError("Give at least one results file to calibrate.")
    names = groups[0].names
    if name is None:
        if len(names) != 1:
            raise ValueError(f"The θ grid has parameters {names}; choose one with --parameter.")
        name = names[0]
    for g in groups:
        if g.names != names:
            raise ValueError(f"{g.source} has parameters {g.names} but {groups[0].source} has {names}.")
        if name not in g.names:
            raise ValueError(f"Unknown parameter {name!r}; the θ grid has {g.names}.")
    column = names.index(name)
    info = groups[0].parameters[column]
    truths = list(truths) if truths is not None else [None] * len(groups)
    cal = Calibration(info, set_size, mirror=mirror)
    for g, t in zip(groups, truths):
        truth = _group_truth(g, column, t)
        estimates, _ = fit_sets(g, set_size, name, **options)
        pulls = np.array([pull(e, truth, info) for e in estimates])
        cal.truths.append(truth)
        cal.estimates.append(estimates)
        cal.pulls.append(pulls)
        cal.summaries.append(summarise_pulls(pulls[[e.closed for e in estimates]]))
        cal.sources.append(g.source)
        cal.left_out.append(len(g) % set_size)
    closed = np.concatenate([[e.closed for e in est] for est in cal.estimates]).astype(bool)
    cal.overall = summarise_pulls(np.concatenate(cal.pulls)[closed])
    return cal
