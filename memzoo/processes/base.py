"""Shared machinery of built-in processes: θ handling, factorised dσ, VEGAS σ and unweighting.

A concrete process subclasses :class:`ProcessBase` and supplies the hard-coordinate bijection,
a phase-space map from the unit hypercube (``from_unit``) and either ``dsigma`` or, for a
factorised process (thesis eq. 6.33), ``coefficients`` and ``dsigma_terms``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from memzoo.protocols import Parameter, make_theta

__all__ = ["ProcessBase"]


def _integrator(dim: int, seed: int):
    """A VEGAS integrator on [0, 1]^dim drawing from its own seeded generator.

    ``vegas`` draws from gvar's module-level generator by default; a private one makes every
    result a function of ``seed`` alone and leaves global random state untouched.
    """
    import vegas

    rng = np.random.default_rng(seed)
    return vegas.Integrator([[0.0, 1.0]] * dim, ran_array_generator=rng.random)


class ProcessBase:
    """Base class of memzoo processes (see :class:`memzoo.protocols.Process`).

    Subclasses set the class attributes and implement :meth:`coords_from_momenta`,
    :meth:`momenta_from_coords`, :meth:`from_unit` and either :meth:`dsigma` or
    :meth:`coefficients` + :meth:`dsigma_terms`. ``cls(config)`` builds one from its
    ``Config`` dataclass.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    parameters: ClassVar[Sequence[Parameter]]
    hard_dim: ClassVar[int]
    hard_kinds: ClassVar[Sequence[int]]
    coordinate_names: ClassVar[Sequence[str]]

    def __init__(self, config: Any = None) -> None:
        self.config = self.Config() if config is None else config
        #: Diagnostics of the latest :meth:`sample` call (maximum weight, efficiency, overweights).
        self.last_sample_info: dict[str, float] = {}

    # -- θ ----------------------------------------------------------------------------

    @property
    def factorised(self) -> bool:
        """True when the process implements ``coefficients`` and ``dsigma_terms``."""
        return hasattr(self, "coefficients") and hasattr(self, "dsigma_terms")

    def theta(self, values: Mapping[str, float | Sequence[float]] | None = None, **kw: Any) -> torch.Tensor:
        """``(T, P)`` float64 θ from named values; defaults fill the rest (see ``make_theta``)."""
        return make_theta(self.parameters, {**(values or {}), **kw})

    def check_theta(self, theta: torch.Tensor) -> torch.Tensor:
        """Validate a ``(T, P)`` θ tensor (shape and ranges) and return it as float64."""
        if not isinstance(theta, torch.Tensor) or theta.ndim != 2 or theta.shape[1] != len(self.parameters):
            shape = tuple(theta.shape) if isinstance(theta, torch.Tensor) else type(theta).__name__
            raise ValueError(
                f"theta for process {self.name!r} must be (T, {len(self.parameters)}) with columns "
                f"{[p.name for p in self.parameters]}, got {shape}."
            )
        for i, par in enumerate(self.parameters):
            col = theta[:, i]
            low, high = par.range
            bad = (col < low) | (col > high) | ~torch.isfinite(col)
            if bad.any():
                raise ValueError(f"{par.name} = {float(col[bad][0])} {par.unit} is outside [{low}, {high}].")
        return theta.to(torch.float64)

    # -- dσ ---------------------------------------------------------------------------

    def dsigma(self, coords: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` float64 dσ/dx_hard in fb; one term evaluation for all θ when factorised."""
        if not self.factorised:
            raise TypeError(f"{type(self).__name__} must implement dsigma or coefficients + dsigma_terms.")
        theta = self.check_theta(theta).to(coords.device)
        terms = self.dsigma_terms(coords)  # (B, K)
        return terms @ self.coefficients(theta).to(terms).T

    def from_unit(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``u (B, D)`` in [0,1]^D to hard coords ``(B, D)`` and the Jacobian ``|dx/du| (B,)``.

        Points outside physical phase space may come back with Jacobian 0.
        """
        raise TypeError(f"{type(self).__name__} must implement from_unit for integration and sampling.")

    # -- integration and sampling -----------------------------------------------------

    def _vegas_integrand(self, theta: torch.Tensor):
        """A batch integrand for ``vegas`` returning dσ·J for every θ (or every term)."""
        terms_mode = self.factorised

        def f(u: np.ndarray) -> np.ndarray:
            ut = torch.as_tensor(u, dtype=torch.float64)
            coords, jac = self.from_unit(ut)
            vals = self.dsigma_terms(coords) if terms_mode else self.dsigma(coords, theta)
            out = vals * jac[:, None]
            return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).numpy()

        return f

    def cross_section(
        self, theta: torch.Tensor, n_points: int = 20_000, n_adapt: int = 8, n_iter: int = 8, seed: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Total cross section and MC error in fb, each ``(T,)``, by VEGAS (Lepage's ``vegas``).

        Factorised processes integrate the K terms once and combine them with their
        covariance, so any number of θ points costs the same.
        """
        import gvar
        import vegas

        theta = self.check_theta(theta)
        integ = _integrator(self.hard_dim, seed)
        f = vegas.lbatchintegrand(self._vegas_integrand(theta))
        integ(f, nitn=n_adapt, neval=n_points)
        result = integ(f, nitn=n_iter, neval=n_points)
        values = np.atleast_1d(result)
        if self.factorised:
            coeff = self.coefficients(theta).numpy()  # (T, K)
            mean = gvar.mean(values)
            cov = gvar.evalcov(values)
            sigma = coeff @ mean
            err = np.sqrt(np.maximum(np.einsum("tk,kl,tl->t", coeff, cov, coeff), 0.0))
        else:
            sigma, err = gvar.mean(values), gvar.sdev(values)
        return torch.as_tensor(sigma, dtype=torch.float64), torch.as_tensor(err, dtype=torch.float64)

    def sample(
        self,
        n: int,
        theta: torch.Tensor,
        generator: torch.Generator | None = None,
        n_adapt_points: int = 20_000,
        batch: int = 50_000,
        n_scan: int | None = None,
        headroom: float = 1.2,
    ) -> torch.Tensor:
        """``(n, D)`` unweighted hard events: all at one θ ``(1, P)``, or event i at θ_i for ``(n, P)``.

        A VEGAS map adapted to dσ·J (for many θ: to the mean of their coefficients) proposes
        points x; event i accepts x with probability w_i(x)/W, where w_i = p(x|θ_i)/q(x) is the
        normalised target over the proposal density. For a factorised process
        w_i = Σ_k f_k(θ_i) g_k(x) J(x) / σ(θ_i), so one evaluation of the K terms serves every
        θ, and with σ(θ_i) from the same scan all w_i are O(1) under one bound. The bound W is
        fixed *before* generation from a pre-scan of ``n_scan`` points (default
        ``max(10 n, 100 000)``) at up to 64 of the θ_i, times ``headroom``; updating it on the
        fly would accept early events against a too-small maximum and bias the sample.
        Overweight points (w > W) are accepted with probability 1, which under-represents them;
        their number and their share of the cross section are stored in
        :attr:`last_sample_info` and a ``RuntimeWarning`` is issued above a 10⁻³ share.
        A process that is not factorised samples each distinct θ row separately.
        """
        import vegas

        theta = self.check_theta(theta)
        per_event = theta.shape[0] != 1
        if per_event and theta.shape[0] != n:
            raise ValueError(f"theta must be (1, P) or (n, P) = ({n}, P), got {tuple(theta.shape)}.")
        if headroom < 1.0:
            raise ValueError(f"headroom must be >= 1 (a factor on the pre-scanned maximum weight), got {headroom}.")
        if per_event and not self.factorised:
            unique, inverse = torch.unique(theta, dim=0, return_inverse=True)
            out = torch.empty(n, self.hard_dim, dtype=torch.float64)
            for j in range(len(unique)):
                rows = (inverse == j).nonzero().squeeze(-1)
                out[rows] = self.sample(
                    len(rows), unique[j : j + 1], generator, n_adapt_points, batch, n_scan, headroom
                )
            return out
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        gen = torch.Generator().manual_seed(seed)
        if self.factorised:
            coeff = self.coefficients(theta)  # (T, K)

            def terms(coords: torch.Tensor) -> torch.Tensor:
                return self.dsigma_terms(coords)
        else:
            coeff = torch.ones(1, 1, dtype=torch.float64)

            def terms(coords: torch.Tensor) -> torch.Tensor:
                return self.dsigma(coords, theta)

        def weighted_terms(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            coords, jac = self.from_unit(u)
            return coords, torch.nan_to_num(terms(coords) * jac[:, None], nan=0.0, posinf=0.0, neginf=0.0)

        mean_coeff = coeff.mean(0)
        integ = _integrator(self.hard_dim, seed)
        integ(
            vegas.batchintegrand(lambda u: (weighted_terms(torch.as_tensor(u))[1] @ mean_coeff).clamp(min=0.0).numpy()),
            nitn=6,
            neval=n_adapt_points,
        )
        vmap = integ.map

        def proposals(size: int) -> tuple[torch.Tensor, torch.Tensor]:
            # vegas glue: the map works on numpy arrays
            y = torch.rand(size, self.hard_dim, generator=gen, dtype=torch.float64).numpy()
            u = np.empty_like(y)
            jac_map = np.empty(size)
            vmap.map(y, u, jac_map)
            coords, g = weighted_terms(torch.as_tensor(u))
            return coords, g * torch.as_tensor(jac_map)[:, None]

        n_scan = max(10 * n, 100_000) if n_scan is None else n_scan
        scan = torch.cat([proposals(min(batch, n_scan - start))[1] for start in range(0, n_scan, batch)])
        sigma = (scan.mean(0) @ coeff.T).clamp(min=1e-300)  # (T,) MC estimate of σ(θ)
        rep = torch.randperm(len(coeff), generator=gen)[:64]
        w_max = headroom * float(((scan @ coeff[rep].T) / sigma[rep]).clamp(min=0.0).max())
        if w_max <= 0.0 or not math.isfinite(w_max):
            raise RuntimeError(f"{self.name}: dσ vanishes everywhere at theta={theta[:3].tolist()}...")
        out = torch.empty(n, self.hard_dim, dtype=torch.float64)
        pending = torch.arange(n)
        trials = overweight = 0
        sum_w = sum_over = 0.0
        while pending.numel():
            size = max(pending.numel(), min(batch, 4096))
            coords, g = proposals(size)
            slot = pending[torch.arange(size) % pending.numel()]
            row = slot if per_event else torch.zeros_like(slot)
            w = ((g * coeff[row]).sum(-1) / sigma[row]).clamp(min=0.0)
            accept = torch.rand(size, generator=gen, dtype=torch.float64) * w_max < w
            over = w > w_max
            trials += size
            overweight += int(over.sum())
            sum_w += float(w.sum())
            sum_over += float((w[over] - w_max).sum())
            # the first accepted proposal of each slot (proposals of one slot are i.i.d.)
            hits = accept.nonzero().squeeze(-1)
            first = torch.full((n,), size, dtype=torch.long).scatter_reduce(0, slot[hits], hits, reduce="amin")
            filled = (first < size).nonzero().squeeze(-1)
            out[filled] = coords[first[filled]]
            pending = pending[first[pending] == size]
        share = sum_over / sum_w if sum_w > 0 else 0.0
        self.last_sample_info = {
            "w_max": w_max,
            "n_trials": trials,
            "n_accepted": n,
            "efficiency": n / trials,
            "n_overweight": overweight,
            "overweight_fraction": share,
            "sigma_fb": float(sigma.mean()),
        }
        if share > 1e-3:
            warnings.warn(
                f"{self.name}: {overweight} overweight events carry {share:.2%} of the cross section; "
                f"the unweighted sample under-represents them. Raise n_scan or headroom.",
                RuntimeWarning,
                stacklevel=2,
            )
        return out
