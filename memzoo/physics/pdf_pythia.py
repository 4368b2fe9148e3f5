"""Pythia 8's ``LHAGrid1`` interpolation of lhagrid1 grids, batched in torch (``interpolation="pythia"``).

Pythia 8 reads the same lhagrid1 files as LHAPDF 6 but interpolates the knots its own way (its source:
"results are not identical with LHAPDF6, owing to different interpolation"). The scheme, written here
from its description and checked against ``pythia8mc`` 8.317 point by point:

* x (inside the open range xmin < x < xmax): four-point Lagrange cubic in ln x through the knots
  ``m .. m+3``, ``m = clamp(i - 1, 0, nx - 4)`` where ``x_i <= x < x_{i+1}``, so the first and last x
  intervals use the off-centre stencils ``0..3`` and ``nx-4..nx-1``.
* Q: the subgrids are concatenated; a point belongs to the highest subgrid whose lower threshold Q lies
  strictly below it (so a Q exactly on a threshold belongs to the subgrid *below*, unlike LHAPDF). In
  that subgrid, a four-point Lagrange cubic in ln Q (identical to ln Q² up to rounding) on the stencil
  clamped to the subgrid, or — if the subgrid has fewer than four knots — linear in ln Q. Threshold Q
  knots that differ between the two subgrids (by < 1e-5) are averaged for the bracketing search.
* The (x, Q) interpolation is the tensor product: Σ_k w_Q,k Σ_i w_x,i xf[Q knot k, x knot i].
* Outside the grid Pythia freezes (``PDF:extrapolate = off``, its default): Q ≤ Qmin or Q ≥ Qmax uses the
  edge Q row, x ≤ xmin the first x column (still interpolated in Q). At x ≥ xmax Pythia keeps the values
  of its previous call (internal state); here x = xmax gives the last x column instead (the knot value).
  Pythia's optional small-x power-law extrapolation (``PDF:extrapolate = on``) is not reproduced.

Pythia maps only d, u, s, c, b (and antiquarks), the gluon and the photon; its ``xfRaw(±6)`` is 0 even
where the file has a top column. Here every column of the file is interpolated with the same scheme.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["build_tables", "interpolate"]


def _lagrange_inv_den(knots: np.ndarray) -> np.ndarray:
    """1 / Π_{j≠i} (l_{m+i} − l_{m+j}) for every four-knot stencil start m; (max(n − 3, 1), 4).

    Stencils that straddle a repeated threshold knot get inf; they are never selected.
    """
    pad = np.concatenate([knots, knots[-1] + np.arange(1.0, 4.0)])  # keeps tiny grids indexable
    win = np.lib.stride_tricks.sliding_window_view(pad, 4)[: max(knots.size - 3, 1)]
    diff = win[:, :, None] - win[:, None, :]
    diff[:, np.arange(4), np.arange(4)] = 1.0
    with np.errstate(divide="ignore"):
        return 1.0 / diff.prod(axis=2)


def build_tables(xs: np.ndarray, q_subgrids: list[np.ndarray], xf: np.ndarray) -> dict[str, Tensor]:
    """Precompute Pythia-mode tables.

    Args:
        xs: x knots (nx,), shared by all subgrids. q_subgrids: Q knots (GeV, not squared) per subgrid.
        xf: Values (nx, nQ_total, nflav) with the subgrids concatenated along Q.

    Returns:
        Host tensors: ln x / ln Q knots, averaged Q knots for the search, subgrid bounds and thresholds,
        Lagrange denominators, and the values as a flat (nQ_total · nx, nflav + 1) table (Q-major) whose
        last column is zero (flavours absent from the file).
    """
    nx = xs.size
    if nx < 4:
        raise ValueError("Pythia's LHAGrid1 interpolation needs at least 4 x knots")
    q_raw = np.concatenate(q_subgrids)
    q_search = q_raw.copy()
    sizes = np.array([q.size for q in q_subgrids])
    end = np.cumsum(sizes) - 1  # inclusive last index of each subgrid
    start = end - sizes + 1
    for e in end[:-1]:  # Pythia's border treatment: both copies of a threshold become their mean
        q_search[e] = q_search[e + 1] = 0.5 * (q_search[e] + q_search[e + 1])
    nq = q_raw.size
    lnx, lnq = np.log(xs), np.log(q_raw)
    vals = np.concatenate([xf, np.zeros_like(xf[:, :, :1])], axis=2).transpose(1, 0, 2)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a))
    return {
        "lnx": t(lnx), "x": t(xs), "lnq": t(lnq), "q": t(q_search), "qdiv": t(q_raw[end[:-1]]),
        "start": t(start), "end": t(end), "inv_den_x": t(_lagrange_inv_den(lnx)),
        "inv_den_q": t(_lagrange_inv_den(lnq)), "vals": t(vals.reshape(nq * nx, -1)),
    }  # fmt: skip


def _lagrange(u: Tensor, knots: Tensor, inv_den: Tensor, m: Tensor) -> Tensor:
    """Four-point Lagrange weights at u (N,) on knots m .. m+3; (N, 4)."""
    d = u[:, None] - knots[(m[:, None] + torch.arange(4, device=u.device)).clamp_(max=knots.numel() - 1)]
    p01, p23 = d[:, 0] * d[:, 1], d[:, 2] * d[:, 3]
    w = torch.stack([d[:, 1] * p23, d[:, 0] * p23, p01 * d[:, 3], p01 * d[:, 2]], dim=1)
    return w * inv_den[m.clamp(max=inv_den.shape[0] - 1)]


def interpolate(tab: dict[str, Tensor], x: Tensor, q2: Tensor, cols: Tensor) -> Tensor:
    """Pythia-scheme x·f for points x, q2 (N,) with x in (0, xmax] and Q² ≥ 0; cols (F,). Returns (N, F)."""
    xk, qk = tab["x"], tab["q"]
    nx, nq = xk.numel(), qk.numel()
    dev, ar4 = x.device, torch.arange(4, device=x.device)
    one_hot = lambda i: torch.zeros(x.shape[0], 4, dtype=x.dtype, device=dev).index_fill_(1, i, 1.0)
    # x: Lagrange cubic inside, first knot column at or below xmin, last column at xmax.
    lowx, highx = x <= xk[0], x >= xk[-1]
    ix = (torch.searchsorted(xk, x, right=True) - 1).clamp_(0, nx - 2)
    mx = (ix - 1).clamp_(0, nx - 4)
    wx = _lagrange(torch.log(x), tab["lnx"], tab["inv_den_x"], mx)
    wx = torch.where(lowx[:, None], one_hot(ar4[:1]), torch.where(highx[:, None], one_hot(ar4[3:]), wx))
    # Q: subgrid = number of thresholds strictly below q; bracket inside it; cubic or linear in ln Q.
    q = torch.sqrt(q2)
    sub = torch.searchsorted(tab["qdiv"], q, right=False)
    lo, hi = tab["start"][sub], tab["end"][sub]
    iq = torch.minimum(torch.maximum(torch.searchsorted(qk, q, right=True) - 1, lo), hi - 1)
    lnq = torch.log(q)
    mq = torch.minimum(torch.maximum(iq - 1, lo), hi - 3)
    wq = _lagrange(lnq, tab["lnq"], tab["inv_den_q"], mq.clamp(min=0))
    lnk = tab["lnq"]
    tq = (lnq - lnk[iq]) / (lnk[(iq + 1).clamp_(max=nq - 1)] - lnk[iq])
    z = torch.zeros_like(tq)
    linear = (hi - lo < 3)[:, None]
    wq = torch.where(linear, torch.stack([1.0 - tq, tq, z, z], dim=1), wq)
    mq = torch.where(linear[:, 0], iq, mq)
    lowq, highq = (q <= qk[0])[:, None], (q >= qk[-1])[:, None]
    wq = torch.where(lowq | highq, one_hot(ar4[:1]), wq)  # freeze on the edge Q row
    mq = torch.where(lowq[:, 0], 0, torch.where(highq[:, 0], nq - 1, mq))
    rows = (mq[:, None] + ar4).clamp_(max=nq - 1)
    idx = rows[:, :, None] * nx + (mx[:, None] + ar4)[:, None, :]  # (N, 4 Q, 4 x)
    g = tab["vals"][:, cols][idx.reshape(-1)].reshape(x.shape[0], 16, -1)
    w = (wq[:, :, None] * wx[:, None, :]).reshape(-1, 1, 16)
    return torch.bmm(w, g).squeeze(1)
