"""A batched VEGAS importance-sampling grid: one independent adaptive map per event.

The MEM integrator (thesis Sec. 6.4.1, "Vegas latent space refinement") refines the unit
hypercube input of the sampler with a VEGAS grid per reco event. Lepage's ``vegas`` package
adapts one map at a time; here ``E`` maps of ``D`` dimensions live in one tensor and every
operation (map, inverse, training data, adaptation) is vectorised over events and dimensions.

Algorithm (G. P. Lepage, J. Comput. Phys. 27 (1978) 192; damping as in arXiv:2009.05112):

* Each dimension of each event has ``n_bins`` bins ``[a_i, a_{i+1}]`` of [0, 1]. A point
  ``y`` uniform in [0, 1] falls in bin ``i = floor(y n)`` and is mapped linearly inside it:
  ``u = a_i + (y n - i) Δ_i``, so ``du/dy = n Δ_i`` and the map density is ``1/(n Δ_i)``.
* Training data: ``d_i`` is the average of ``(J f)²`` over the points that fell in bin ``i``
  (per event and dimension, the other dimensions integrated out by the sampling).
* ``adapt()`` smooths ``d_i`` with its neighbours (weights 1, 6, 1 over 8; 7, 1 at the ends),
  normalises to Σ d_i = 1, damps ``d_i ← ((1 - d_i) / ln(1/d_i))^α`` so the grid does not
  over-react to fluctuations, and then moves the edges so that every new bin holds the same
  share of Σ d_i, treating ``d_i`` as spread uniformly over old bin ``i``.

An (event, dimension) without training data keeps its grid bit for bit.
"""

from __future__ import annotations

import torch

__all__ = ["VegasGrid"]


class VegasGrid:
    """``n_events`` independent VEGAS maps of the unit hypercube [0, 1]^dim.

    Args:
        n_events: E, the number of independent integrals (one grid each).
        dim: D, the dimension of the hypercube.
        n_bins: bins per dimension (64 as in the thesis' setup is plenty for smooth maps).
        alpha: damping exponent; 0 freezes the grid, larger values adapt faster (vegas: 0.5–2).
        device: where the grid lives.
        dtype: floating type of the grid (float64: the edges are summed many times).

    Attributes:
        edges: ``(E, D, n_bins + 1)`` bin edges, ``edges[..., 0] = 0`` and ``edges[..., -1] = 1``.
    """

    def __init__(
        self,
        n_events: int,
        dim: int,
        n_bins: int = 64,
        alpha: float = 1.5,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if n_events < 1 or dim < 1 or n_bins < 1:
            raise ValueError(f"VegasGrid needs n_events, dim, n_bins >= 1, got {n_events}, {dim}, {n_bins}.")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}.")
        self.n_events, self.dim, self.n_bins, self.alpha = n_events, dim, n_bins, float(alpha)
        grid = torch.linspace(0.0, 1.0, n_bins + 1, dtype=dtype, device=device)
        self.edges = grid.expand(n_events, dim, n_bins + 1).contiguous()
        self._sum_f2 = torch.zeros(n_events, dim, n_bins, dtype=dtype, device=device)
        self._count = torch.zeros_like(self._sum_f2)

    # -- helpers ------------------------------------------------------------------------

    def _rows(self, events: torch.Tensor | None) -> torch.Tensor:
        """Edges of the selected events, ``(E', D, n_bins + 1)``."""
        return self.edges if events is None else self.edges[events]

    def _bin(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bin index (long) and position inside the bin in [0, 1) of ``y (E', D, N)``."""
        pos = y.to(self.edges.dtype) * self.n_bins
        index = pos.floor().clamp(0, self.n_bins - 1).long()  # y = 1 belongs to the last bin
        return index, pos - index

    # -- the map --------------------------------------------------------------------------

    def map(self, y: torch.Tensor, events: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Map uniform points to the adapted density.

        Args:
            y: ``(E', N, D)`` points in [0, 1]^D.
            events: ``(E',)`` long indices of the grids to use; ``None`` for all E in order.

        Returns:
            ``u (E', N, D)`` in [0, 1]^D and ``log_jac (E', N)`` = log |du/dy|, i.e. minus the
            log density of ``u``. Differentiable in ``y`` (piecewise linear map).
        """
        edges = self._rows(events)
        widths = edges.diff(dim=-1)
        index, frac = self._bin(y.transpose(1, 2))
        width = widths.gather(-1, index)
        u = edges.gather(-1, index) + frac * width
        log_jac = torch.log(width * self.n_bins).sum(1)
        return u.transpose(1, 2), log_jac

    def inverse(self, u: torch.Tensor, events: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`map`: ``y (E', N, D)`` and ``log_jac (E', N)`` = log |du/dy| at ``y``."""
        edges = self._rows(events)
        widths = edges.diff(dim=-1)
        ut = u.transpose(1, 2).to(edges.dtype).contiguous()
        index = (torch.searchsorted(edges.contiguous(), ut, right=True) - 1).clamp(0, self.n_bins - 1)
        width = widths.gather(-1, index)
        y = (index + (ut - edges.gather(-1, index)) / width) / self.n_bins
        return y.transpose(1, 2), torch.log(width * self.n_bins).sum(1)

    # -- adaptation -----------------------------------------------------------------------

    def accumulate(self, y: torch.Tensor, f2: torch.Tensor, events: torch.Tensor | None = None) -> None:
        """Add training data: squared integrand values at the points.

        Args:
            y: ``(E', N, D)`` the uniform points that were passed to :meth:`map`.
            f2: ``(E', N)`` the squared integrand in y space, ``(J(y) f(u(y)))²``; non-finite
                values are ignored (treated as 0).
            events: ``(E',)`` grids the rows belong to; ``None`` for all E in order.
        """
        sums, counts = self.histogram(y, f2[..., None])
        self.add(sums[..., 0], counts, events)

    def histogram(self, y: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per event, dimension and bin of this grid: the sums of ``values`` and the point counts.

        Args:
            y: ``(E', N, D)`` uniform points; ``values``: ``(E', N, K)`` non-negative data per
                point (non-finite values count as 0).

        Returns:
            ``sums (E', D, n_bins, K)`` and ``counts (E', D, n_bins)``, for :meth:`add` once
            combined (e.g. over the slices of one iteration).
        """
        index, _ = self._bin(y.transpose(1, 2))  # (E', D, N)
        values = torch.nan_to_num(values.to(self.edges.dtype), nan=0.0, posinf=0.0, neginf=0.0).clamp(min=0.0)
        e, _, k = values.shape
        sums = torch.zeros(e, self.dim, self.n_bins, k, dtype=self.edges.dtype, device=self.edges.device)
        sums.scatter_add_(2, index[..., None].expand(-1, -1, -1, k), values[:, None].expand(-1, self.dim, -1, -1))
        counts = torch.zeros(e, self.dim, self.n_bins, dtype=self.edges.dtype, device=self.edges.device)
        counts.scatter_add_(-1, index, torch.ones_like(index, dtype=counts.dtype))
        return sums, counts

    def add(self, sums: torch.Tensor, counts: torch.Tensor, events: torch.Tensor | None = None) -> None:
        """Add binned training data ``sums``, ``counts`` ``(E', D, n_bins)`` to the grids ``events``."""
        if events is None:
            self._sum_f2 += sums
            self._count += counts
        else:
            self._sum_f2.index_add_(0, events, sums)
            self._count.index_add_(0, events, counts)

    def adapt(self) -> None:
        """Move the bin edges according to the accumulated data, then clear the data."""
        d = self._sum_f2 / self._count.clamp(min=1.0)
        # smoothing with the neighbours: one noisy bin must not drag an edge far away
        if self.n_bins > 1:
            left = torch.cat([d[..., :1], d[..., :-1]], -1)
            right = torch.cat([d[..., 1:], d[..., -1:]], -1)
            d = (left + 6.0 * d + right) / 8.0
        total = d.sum(-1, keepdim=True)
        has_data = total > 0
        d = d / torch.where(has_data, total, torch.ones_like(total))
        # damping (Lepage 1978): compress the dynamic range; limits d→0: 0, d→1: 1
        inside = (d > 0) & (d < 1)
        safe = torch.where(inside, d, torch.full_like(d, 0.5))
        damped = ((1.0 - safe) / torch.log(1.0 / safe)) ** self.alpha
        d = torch.where(inside, damped, (d >= 1).to(d.dtype))
        self.edges = torch.where(has_data, self._refine(d), self.edges)
        self._sum_f2.zero_()
        self._count.zero_()

    def _refine(self, d: torch.Tensor) -> torch.Tensor:
        """New edges with an equal share of Σ d per bin; ``d (E, D, n_bins)`` per old bin."""
        n = self.n_bins
        if n == 1:  # one bin always spans [0, 1]
            return self.edges
        cum = d.cumsum(-1)
        total = cum[..., -1:].clamp(min=torch.finfo(d.dtype).tiny)
        steps = torch.arange(1, n, dtype=d.dtype, device=d.device)
        targets = steps * total / n  # (E, D, n - 1)
        j = torch.searchsorted(cum.contiguous(), targets.contiguous()).clamp(max=n - 1)
        before = torch.where(j > 0, cum.gather(-1, (j - 1).clamp(min=0)), torch.zeros_like(targets))
        dj = d.gather(-1, j)
        frac = ((targets - before) / torch.where(dj > 0, dj, torch.ones_like(dj))).clamp(0.0, 1.0)
        widths = self.edges.diff(dim=-1)
        inner = self.edges.gather(-1, j) + frac * widths.gather(-1, j)
        zero, one = torch.zeros_like(inner[..., :1]), torch.ones_like(inner[..., :1])
        return torch.cat([zero, inner, one], -1)
