"""Maximum-likelihood estimate and 68 % interval of one parameter from a −2Δlog L scan.

Heimel, PhD thesis 2024, Sec. 6.3.1: a polynomial fit through the scan near its minimum gives a
smooth curve; the estimate is its minimum, and the 68 % interval is where the curve rises by one
unit on either side ("an approximately Gaussian likelihood on each side of the minimum"), which
gives asymmetric errors:

    −2Δlog L(θ̂ − σ₋) = −2Δlog L(θ̂ + σ₊) = 1.

Two smoothers are offered:

* ``"poly"`` (default, the thesis' choice): a least-squares polynomial (degree 4, lowered when
  the window holds few points) through the grid points with −2Δlog L ≤ ``window`` (default 9,
  i.e. ±3σ) around the grid minimum. It averages over integration noise of per-θ integrations.
* ``"spline"``: a cubic interpolating spline through every grid point (periodic boundary
  conditions for a periodic parameter whose grid covers the full turn). Exact for smooth
  single-pass scans (thesis Sec. 6.4.1), and follows non-parabolic curves over the whole range.

Both are exact for a quadratic −2Δlog L, i.e. a Gaussian likelihood. A periodic parameter (the
tHj CP phase α) is unwrapped around the best grid point before fitting, so a minimum near ±180°
sees its neighbours on both sides; the estimate is wrapped back into the parameter's range.
Where the curve does not rise by one unit before the end of the grid, the interval is open on
that side and the error is the distance to the grid edge (a lower limit, flagged).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.polynomial import Polynomial
from scipy.interpolate import CubicSpline

from memzoo.inference.parameters import ParameterInfo
from memzoo.inference.profile import profile
from memzoo.inference.scan import Scan

__all__ = ["METHODS", "Estimate", "fit_curve", "fit_scan"]

METHODS = ("poly", "spline")


@dataclass
class Estimate:
    """The fitted minimum of −2Δlog L and its 68 % interval.

    Attributes:
        name: the parameter.
        value: θ̂ (wrapped into ``[low, low + period)`` for a periodic parameter).
        err_low, err_high: σ₋, σ₊ ≥ 0, the distances from θ̂ to the Δ = 1 crossings.
        closed_low, closed_high: false where the curve never reaches Δ = 1 on that side
            within the grid (the error is then the distance to the grid edge, a lower limit).
        nll_min: the fitted −2Δlog L at θ̂ relative to the best grid point (≤ 0 for a good fit).
        method: ``"poly"`` or ``"spline"``.
        value_std: standard deviation of θ̂ over the integration replicas (``None`` without).
        n_replicas: number of replicas that entered ``value_std``.
        fit_residual: the largest |fit − grid value| of ``"poly"`` over the points it was fitted
            to (0 for ``"spline"``, which interpolates). Above ~1 the polynomial cannot follow
            the curve there — a grid coarse for the curve's width — and the interval, set by
            Δ = 1, is not to be trusted.
        curve: ``(x, −2Δlog L)`` samples of the smooth curve over the range it was trusted on
            (x unwrapped around θ̂ for a periodic parameter, −2Δlog L relative to the best grid
            point like the scan's), for plots; not part of :meth:`as_dict`.
    """

    name: str
    value: float
    err_low: float
    err_high: float
    closed_low: bool
    closed_high: bool
    nll_min: float
    method: str
    value_std: float | None = None
    n_replicas: int = 0
    fit_residual: float = 0.0
    curve: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def interval(self) -> tuple[float, float]:
        """``(θ̂ − σ₋, θ̂ + σ₊)``; for a periodic parameter the ends may lie outside its range."""
        return self.value - self.err_low, self.value + self.err_high

    @property
    def closed(self) -> bool:
        return self.closed_low and self.closed_high

    def error_towards(self, target: float, info: ParameterInfo | None = None) -> float:
        """σ₊ if ``target`` lies above θ̂ (the shortest way round for a periodic parameter), else σ₋."""
        d = info.delta(target, self.value) if info is not None else target - self.value
        return self.err_high if d > 0 else self.err_low

    def as_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "curve"}
        out["interval"] = list(self.interval)
        return out


def _unwrap(
    x: np.ndarray, y: np.ndarray, info: ParameterInfo | None, centre: float | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sorted, de-duplicated coordinates; periodic ones unwrapped around ``centre`` (default the best point).

    Returns ``(x, y, closed)`` where ``closed`` says the grid covers the full turn evenly
    enough to join its ends (then a periodic spline is used).
    """
    period = info.period if info is not None else None
    if period is not None:
        centre = x[np.argmin(y)] if centre is None else centre
        x = centre + info.delta(x, centre)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    scale = max(np.ptp(x), 1.0) * 1e-9
    keep = np.concatenate([[True], np.diff(x) > scale])
    if not keep.all():  # the same θ twice (e.g. −180° and 180°): average
        groups = np.cumsum(keep) - 1
        y = np.bincount(groups, weights=y) / np.bincount(groups)
        x = x[keep]
    closed = False
    if period is not None and len(x) >= 3:
        gaps = np.diff(x)
        closed = x[0] + period - x[-1] <= 1.01 * gaps.max() + scale
    return x, y, closed


def _poly_window(x: np.ndarray, y: np.ndarray, window: float, degree: int) -> tuple[slice, int]:
    """Contiguous points around the minimum with Δ ≤ window (at least degree + 2 where possible)."""
    k = int(np.argmin(y))
    lo = hi = k
    while lo > 0 and y[lo - 1] - y[k] <= window:
        lo -= 1
    while hi < len(x) - 1 and y[hi + 1] - y[k] <= window:
        hi += 1
    need = degree + 2
    while hi - lo + 1 < need and (lo > 0 or hi < len(x) - 1):
        left = y[lo - 1] if lo > 0 else np.inf
        right = y[hi + 1] if hi < len(x) - 1 else np.inf
        if left <= right:
            lo -= 1
        else:
            hi += 1
    n = hi - lo + 1
    return slice(lo, hi + 1), max(2, min(degree, n - 2)) if n > 3 else 2


def _smoother(x, y, closed, period, method, degree, window):
    """A callable curve, its derivative and the x range it is trusted on."""
    if method == "spline":
        if closed:
            xs, ys = np.append(x, x[0] + period), np.append(y, y[0])
            spline = CubicSpline(xs, ys, bc_type="periodic")
            return spline, (xs[0], xs[-1])
        return CubicSpline(x, y), (x[0], x[-1])
    sl, deg = _poly_window(x, y, window, degree)
    return Polynomial.fit(x[sl], y[sl], deg), (x[sl][0], x[sl][-1])


def _residual(curve, x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Largest |curve − y| over the grid points the curve was fitted to (0 for an interpolation)."""
    inside = (x >= lo) & (x <= hi)
    return float(np.abs(curve(x[inside]) - y[inside]).max()) if inside.any() else 0.0


def _roots(curve, level: float, lo: float, hi: float) -> np.ndarray:
    """Real solutions of curve(x) = level in [lo, hi]."""
    if isinstance(curve, CubicSpline):
        r = curve.solve(level, extrapolate=False)
    else:
        r = (curve - level).roots()
        r = r[np.abs(r.imag) <= 1e-9 * max(1.0, np.abs(r).max())].real
        slope = curve.deriv()
        for _ in range(3):  # Newton polish: companion-matrix roots carry ~1e-8 relative errors
            step = (curve(r) - level) / np.where(slope(r) != 0, slope(r), np.inf)
            r = r - step
    return np.sort(r[(r >= lo) & (r <= hi)])


def _minimum(curve, lo: float, hi: float) -> float:
    """Position of the lowest value of the curve on [lo, hi] (stationary points and ends)."""
    d = curve.derivative() if isinstance(curve, CubicSpline) else curve.deriv()
    stationary = _roots(d, 0.0, lo, hi)
    candidates = np.concatenate([stationary, [lo, hi]])
    return float(candidates[np.argmin(curve(candidates))])


def _linear_crossing(x, y, x0: float, y0: float, level: float, side: int) -> float | None:
    """Where the piecewise-linear interpolant of the points beyond ``(x0, y0)`` first reaches level.

    The fallback of ``"poly"`` when the curve leaves its fit window below the level.
    """
    idx = np.nonzero(x > x0)[0] if side > 0 else np.nonzero(x < x0)[0][::-1]
    prev_x, prev_y = x0, min(y0, level)
    for i in idx:
        if y[i] >= level:
            if y[i] <= prev_y:
                return float(x[i])
            return float(prev_x + (level - prev_y) * (x[i] - prev_x) / (y[i] - prev_y))
        prev_x, prev_y = x[i], y[i]
    return None


def fit_curve(
    x,
    delta,
    info: ParameterInfo | None = None,
    *,
    method: str = "poly",
    degree: int = 4,
    window: float = 9.0,
    level: float = 1.0,
) -> Estimate:
    """Fit one −2Δlog L curve.

    Args:
        x: ``(T,)`` parameter values of the grid.
        delta: ``(T,)`` −2Δlog L (or −2 log L: only differences matter); non-finite values
            are left out.
        info: the parameter (name, periodicity); default a non-periodic ``"theta"``.
        method: ``"poly"`` or ``"spline"`` (module docstring).
        degree: polynomial degree of ``"poly"`` (lowered to keep a degree of freedom).
        window: ``"poly"`` fits the points with −2Δlog L ≤ window around the grid minimum.
        level: the rise that defines the interval (1: 68 % CL for one parameter; 4: 95 %).

    Returns:
        An :class:`Estimate`.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(-3, 3, 13)
        >>> e = fit_curve(x, ((x - 0.3) / 0.5) ** 2)
        >>> round(e.value, 6), round(e.err_low, 6), round(e.err_high, 6)
        (0.3, 0.5, 0.5)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown fit method {method!r}. Must be one of {list(METHODS)}.")
    info = info or ParameterInfo("theta")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(delta, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and delta must have the same length, got {x.shape} and {y.shape}.")
    ok = np.isfinite(y) & np.isfinite(x)
    if ok.sum() < 3:
        raise ValueError(
            f"Fitting {info.name} needs at least 3 grid points with a finite likelihood, got {int(ok.sum())}."
        )
    x, y, closed = _unwrap(x[ok], y[ok] - y[ok].min(), info)
    curve, (lo, hi) = _smoother(x, y, closed, info.period, method, degree, window)
    residual = _residual(curve, x, y, lo, hi) if method == "poly" else 0.0
    best = _minimum(curve, lo, hi)
    if closed and method == "spline":
        # the periodic spline may find its minimum away from the best grid point (two nearly equal
        # minima, e.g. at ±α): the same spline, unwrapped around θ̂, sees half a turn on each side
        x, y, closed = _unwrap(x, y, info, centre=best)
        curve, (lo, hi) = _smoother(x, y, closed, info.period, method, degree, window)
        best = _minimum(curve, lo, hi) if closed else best
    y_min = float(curve(best))
    errors, closed_sides = [], []
    for side in (-1, 1):
        r = _roots(curve, y_min + level, lo, hi)
        r = r[r > best] if side > 0 else r[r < best]
        crossing = (r[0] if side > 0 else r[-1]) if len(r) else None
        if crossing is None and method == "poly":
            end = hi if side > 0 else lo
            crossing = _linear_crossing(x, y, end, float(curve(end)), y_min + level, side)
        found = crossing is not None
        if not found:
            # never rises by `level`: up to the grid edge, or half way round for a full turn
            crossing = best + side * info.period / 2 if closed else (x[-1] if side > 0 else x[0])
        errors.append(abs(crossing - best))
        closed_sides.append(found)
    return Estimate(
        name=info.name,
        value=float(info.wrap(best)),
        err_low=float(errors[0]),
        err_high=float(errors[1]),
        closed_low=closed_sides[0],
        closed_high=closed_sides[1],
        nll_min=y_min,
        method=method,
        fit_residual=residual,
        curve=_samples(curve, lo, hi, best, errors),
    )


def _samples(curve, lo: float, hi: float, best: float, errors: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The smooth curve on [lo, hi], densest within ±4σ of the minimum (where plots zoom in)."""
    near = np.linspace(max(lo, best - 4 * errors[0]), min(hi, best + 4 * errors[1]), 161)
    x = np.unique(np.concatenate([np.linspace(lo, hi, 161), near]))
    return x, np.asarray(curve(x), dtype=np.float64)


def fit_scan(scan: Scan, name: str | None = None, **options) -> Estimate:
    """Fit the (profiled, for several parameters) scan of one parameter, with replica spread.

    Args:
        scan: the combined scan.
        name: the parameter (default: the only one).
        **options: passed to :func:`fit_curve` (``method``, ``degree``, ``window``, ``level``).

    Returns:
        The :class:`Estimate` of the central curve; ``value_std`` is the standard deviation
        of θ̂ fitted on every replica curve (thesis Sec. 6.4.1), the integration uncertainty.
    """
    if name is None:
        if len(scan.parameters) != 1:
            raise ValueError(f"The scan has parameters {scan.names}; say which one to fit.")
        name = scan.names[0]
    one = profile(scan, name) if len(scan.parameters) > 1 else scan
    info = one.parameters[0]
    x = one.theta[:, 0]
    estimate = fit_curve(x, one.delta, info, **options)
    reps = one.delta_replicas
    if reps is not None and reps.shape[1] > 1:
        values = np.array([fit_curve(x, reps[:, m], info, **options).value for m in range(reps.shape[1])])
        spread = info.delta(values, estimate.value)
        estimate.value_std = float(spread.std(ddof=1))
        estimate.n_replicas = len(values)
    return estimate
