"""Profile likelihoods of a multi-parameter θ grid.

For a parameter of interest μ and nuisance parameters ν on a Cartesian grid,

    −2 log L_prof(μ) = min_ν −2 log L(μ, ν).

The minimum over ν is not the lowest grid point alone (that would make the profile jump with
the grid spacing): a full quadratic in ν is fitted through the 3^d grid points around the
lowest point of each μ slice and its minimum is taken when it lies inside those points. This is
exact for Gaussian likelihoods (quadratic −2 log L) and reduces to the grid minimum where the
quadratic has no minimum there. Periodic nuisance parameters are unwrapped around the slice's
lowest point. Replica curves are profiled the same way, each for itself.
"""

from __future__ import annotations

import itertools

import numpy as np

from memzoo.inference.scan import Scan

__all__ = ["grid_axes", "profile"]


def grid_axes(theta: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
    """The sorted distinct values of every θ column; raises unless θ is their full Cartesian product."""
    theta = np.asarray(theta, dtype=np.float64)
    axes = [np.unique(theta[:, i]) for i in range(theta.shape[1])]
    size = int(np.prod([len(a) for a in axes]))
    distinct = len(np.unique(theta, axis=0))
    if size != len(theta) or distinct != len(theta):
        names = names or [f"column {i}" for i in range(theta.shape[1])]
        shape = " x ".join(f"{len(a)} {n}" for a, n in zip(axes, names))
        raise ValueError(
            f"Profiling needs θ on a full Cartesian grid; this one has {len(theta)} points "
            f"({distinct} distinct) but {shape} values make {size}. Integrate on a product grid "
            f"(one --theta NAME=START:STOP:N per parameter)."
        )
    return axes


def _quadratic_features(z: np.ndarray) -> np.ndarray:
    """``(n, F)``: 1, z_i, z_i z_j (i ≤ j) of points ``z (n, d)``."""
    n, d = z.shape
    cols = [np.ones(n)] + [z[:, i] for i in range(d)]
    cols += [z[:, i] * z[:, j] for i in range(d) for j in range(i, d)]
    return np.stack(cols, axis=1)


def _quadratic_minima(z: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Minimum of a least-squares quadratic through ``values (n, C)`` at ``z (n, d)``, per column.

    Columns whose quadratic is not positive definite, or whose minimum lies outside the box of
    the points, get the smallest of their values.
    """
    d = z.shape[1]
    centre, half = (z.max(0) + z.min(0)) / 2, (z.max(0) - z.min(0)) / 2
    z = (z - centre) / np.where(half > 0, half, 1.0)  # conditioning; minimum values are invariant
    lo, hi = z.min(0), z.max(0)
    coef = np.linalg.lstsq(_quadratic_features(z), values, rcond=None)[0]  # (F, C)
    out = values.min(0)
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    for c in range(values.shape[1]):
        g = coef[1 : d + 1, c]
        h = np.zeros((d, d))
        for k, (i, j) in enumerate(pairs):
            q = coef[d + 1 + k, c]
            h[i, j] += q
            h[j, i] += q  # h = Hessian: the z_i² coefficient counts twice on the diagonal
        try:
            np.linalg.cholesky(h)
        except np.linalg.LinAlgError:
            continue
        zmin = np.linalg.solve(h, -g)
        if np.all(zmin >= lo - 1e-9 * (hi - lo + 1)) and np.all(zmin <= hi + 1e-9 * (hi - lo + 1)):
            out[c] = min(out[c], coef[0, c] + g @ zmin + 0.5 * zmin @ h @ zmin)
    return out


def _neighbourhood(axis: np.ndarray, k: int, period: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Three grid indices around index k on one axis and their (unwrapped) coordinates."""
    n = len(axis)
    if n < 3:
        return np.arange(n), axis
    full_turn = period is not None and axis[0] + period - axis[-1] <= 1.01 * np.diff(axis).max()
    if full_turn:
        idx = np.array([(k - 1) % n, k, (k + 1) % n])
        rel = axis[idx] - axis[k]
        rel = np.mod(rel + period / 2, period) - period / 2
        return idx, axis[k] + rel
    start = min(max(k - 1, 0), n - 3)
    idx = np.arange(start, start + 3)
    return idx, axis[idx]


def profile(scan: Scan, name: str) -> Scan:
    """The profile scan of one parameter (the others minimised at every value of it).

    Args:
        scan: a scan on a Cartesian θ grid.
        name: the parameter of interest.

    Returns:
        A one-parameter :class:`Scan` (``theta (T_μ, 1)``) with profiled ``nll``, replicas
        and the MC error of the lowest grid point of each slice.
    """
    i = scan.index(name)
    if len(scan.parameters) == 1:
        return scan
    axes = grid_axes(scan.theta, scan.names)
    shape = tuple(len(a) for a in axes)
    # grid index of every row -> dense array in axis order
    pos = tuple(np.searchsorted(a, scan.theta[:, j]) for j, a in enumerate(axes))
    columns = [scan.nll] + ([] if scan.nll_replicas is None else list(scan.nll_replicas.T))
    dense = np.full((len(columns), *shape), np.inf)
    for c, col in enumerate(columns):
        dense[(c, *pos)] = np.where(np.isfinite(col), col, np.inf)
    std = None
    if scan.nll_std is not None:
        std = np.full(shape, np.nan)
        std[pos] = scan.nll_std
    others = [j for j in range(len(axes)) if j != i]
    nll, reps, errs = [], [], []
    for a in range(shape[i]):
        sl = np.take(dense, a, axis=i + 1)  # (C, *other shape)
        k = np.unravel_index(np.argmin(sl[0]), sl.shape[1:])
        hood = [_neighbourhood(axes[j], k[n], scan.parameters[j].period) for n, j in enumerate(others)]
        points, values = [], []
        for combo in itertools.product(*[range(len(h[0])) for h in hood]):
            points.append([hood[n][1][m] for n, m in enumerate(combo)])
            values.append(sl[(slice(None), *[hood[n][0][m] for n, m in enumerate(combo)])])
        values = np.array(values)  # (n, C)
        best = sl.reshape(len(columns), -1).min(1)
        if np.isfinite(values).all() and len(points) >= (len(others) + 1) * (len(others) + 2) // 2:
            best = np.minimum(best, _quadratic_minima(np.array(points, dtype=np.float64), values))
        nll.append(best[0])
        reps.append(best[1:])
        if std is not None:
            errs.append(np.take(std, a, axis=i)[k])
    return Scan(
        theta=axes[i][:, None],
        parameters=[scan.parameters[i]],
        nll=np.array(nll),
        nll_replicas=None if scan.nll_replicas is None else np.array(reps),
        nll_std=None if std is None else np.array(errs),
        n_events=scan.n_events,
    )
