"""The shared MEM integrator (DESIGN §6; Heimel, PhD thesis 2024, Sec. 6.4.1).

For E reco events and a θ grid of T points it estimates (eq. 6.39)

    p(x_reco|θ_t) = 1/σ_fid(θ_t) ∫ dx dσ(x|θ_t) ε(x) p(x_reco|x),   σ_fid(θ) = ∫ dx dσ(x|θ) ε(x)

by importance sampling, following the thesis' improved integration:

* single pass over the θ grid (eq. 6.32): point j draws θ^(j) uniformly from the T rows and
  x_j = sampler.from_unit(vegas(y_j), reco, θ^(j)); the same x_j serve every θ_t with weight
  1/q_total(x_j), q_total = q(x_j|reco, θ^(j)) × VEGAS map density. Each term is unbiased on its
  own (E_j[f/q_j] = ∫f for every mixture component), so the estimate is too, and it is a smooth
  function of θ;
* factorised processes (eq. 6.33–6.35) evaluate the K terms g_k(x_j) once per point;
* iterations of ``n_points`` per event until every θ reaches ``target_rel_error`` (between
  ``min_iterations`` and ``max_iterations``); converged events stop drawing points;
* a VEGAS grid per event (:class:`memzoo.vegas.VegasGrid`) on the sampler's unit-hypercube
  input, trained on Σ_t (I_t/Î_t)²/T and adapted after every iteration;
* bootstrap replicas (resampling the integrand samples with replacement) and Bayesian network
  replicas on the same points, for correlated uncertainties of likelihood ratios.

Combination of iterations. Weighting iterations by their own estimated inverse variances is
biased for skewed integrands: an iteration that missed a rare large weight has both a low mean
and a low variance and so gets a high weight, pulling the result down (vegas' documentation
warns about this too). Here each iteration's points are split into halves A and B; the mean of
A is weighted with the variance of B and vice versa, so no weight is computed from the points
whose mean it multiplies. Half variances are floored at 10 % of the iteration's pooled variance
so that a half without any hit cannot grab all the weight. Errors treat the weights as fixed.

Isolation. Every event draws from its own seeded generator, each event's points are reduced
over its own rows only, and non-finite integrand values are zeroed and counted per event, so a
NaN in one event leaves the others bit-identical — provided the models compute each row
independently of the batch composition (true for element-wise code; some BLAS kernels and CUDA
atomics are not bit-reproducible across batch sizes, see ``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import torch

from memzoo.events import Particles
from memzoo.protocols import AcceptanceModel, Likelihood, Process, Sampler, SupportsReplicas, TransferModel
from memzoo.vegas import VegasGrid

__all__ = ["MEMIntegrator"]

_NO_SHIFT = -1e300  # log-scale of an accumulator that has not seen a valid point yet


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser): distinct streams per event."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x >> 1


class MEMIntegrator:
    """Importance-sampling MEM likelihood p(x_reco|θ) (a :class:`~memzoo.protocols.LikelihoodModel`).

    Args:
        process: the hard process (dσ; ``coefficients``/``dsigma_terms`` when factorised).
        transfer: p(x_reco|x_hard); a :class:`~memzoo.protocols.SupportsReplicas` model is
            evaluated at its posterior mean (``replica(None)``) for the central value.
        sampler: the proposal q(x_hard|x_reco, θ) with ``from_unit``.
        acceptance: ε(x_hard); ``None`` means ε = 1.
        n_points: points per event and iteration (rounded up to even: two halves).
        min_iterations, max_iterations: bounds on the iterations per event.
        target_rel_error: stop an event once every θ has this relative MC error.
        vegas: refine the sampler's unit hypercube with a VEGAS grid per event.
        n_bins: VEGAS bins per dimension.
        bootstrap: M bootstrap replicas (0: none).
        replicas: Bayesian network replicas of ``transfer`` (0: none; ignored without support).
        seed: master seed; event e of a call always uses the stream ``(seed, e)``.
        device: where to integrate; ``None``: the device of the reco events.
        max_batch_points: (event, point) rows per model call.
        sigma_fid_points: points per VEGAS iteration of the σ_fid integral.
        sigma_fid: known σ_fid instead of integrating: a number (fb), or a callable
            ``theta (T, P) -> sigma (T,)`` or ``-> (sigma (T,), error (T,))``.
    """

    name = "mem-integrator"

    def __init__(
        self,
        process: Process,
        transfer: TransferModel,
        sampler: Sampler,
        acceptance: AcceptanceModel | None = None,
        *,
        n_points: int = 10_000,
        min_iterations: int = 2,
        max_iterations: int = 15,
        target_rel_error: float = 0.02,
        vegas: bool = True,
        n_bins: int = 64,
        bootstrap: int = 0,
        replicas: int = 0,
        seed: int = 0,
        device: torch.device | str | None = None,
        max_batch_points: int = 2**20,
        sigma_fid_points: int = 50_000,
        sigma_fid: float | Callable | None = None,
    ) -> None:
        if n_points < 2 or not 1 <= min_iterations <= max_iterations:
            raise ValueError(
                f"need n_points >= 2 and 1 <= min_iterations <= max_iterations, got n_points={n_points}, "
                f"min_iterations={min_iterations}, max_iterations={max_iterations}."
            )
        if bootstrap < 0 or replicas < 0 or max_batch_points < 1:
            raise ValueError("bootstrap and replicas must be >= 0 and max_batch_points >= 1.")
        self.process, self.transfer, self.sampler, self.acceptance = process, transfer, sampler, acceptance
        self.n_points = n_points + n_points % 2
        self.min_iterations, self.max_iterations = min_iterations, max_iterations
        self.target_rel_error, self.vegas, self.n_bins = target_rel_error, vegas, n_bins
        self.bootstrap, self.seed, self.max_batch_points = bootstrap, seed, max_batch_points
        self.replicas = replicas if isinstance(transfer, SupportsReplicas) else 0
        self.device = None if device is None else torch.device(device)
        self.sigma_fid_points, self._sigma_fid = sigma_fid_points, sigma_fid
        self.factorised = hasattr(process, "coefficients") and hasattr(process, "dsigma_terms")
        self._fid_cache: dict[tuple[float, ...], tuple[float, float]] = {}
        self._fid_terms: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- σ_fid ----------------------------------------------------------------------------

    @torch.no_grad()
    def sigma_fid(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fiducial cross section σ_fid(θ) = ∫ dσ(x|θ) ε(x) dx and its MC error in fb, each ``(T,)``.

        VEGAS over ``process.from_unit`` with the integrator's acceptance; a factorised process
        integrates its K terms once (with their covariance) for every θ. Results are cached.
        """
        theta = theta.to(torch.float64)
        if self._sigma_fid is not None:
            out = self._sigma_fid(theta) if callable(self._sigma_fid) else float(self._sigma_fid)
            sigma, err = out if isinstance(out, tuple) else (out, 0.0)
            sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(theta.shape[0]).clone()
            return sigma, torch.as_tensor(err, dtype=torch.float64).expand(theta.shape[0]).clone()
        if self.factorised:
            if self._fid_terms is None:
                self._fid_terms = self._integrate_fid(lambda c: self.process.dsigma_terms(c), 0)
            mean, cov = self._fid_terms
            coeff = self.process.coefficients(theta).to(mean)
            err = torch.einsum("tk,kl,tl->t", coeff, cov, coeff).clamp(min=0).sqrt()
            return (coeff @ mean).cpu(), err.cpu()
        keys = [tuple(row) for row in theta.tolist()]
        missing = sorted({k for k in keys if k not in self._fid_cache})
        if missing:
            th = torch.tensor(missing, dtype=torch.float64)
            mean, cov = self._integrate_fid(lambda c: self.process.dsigma(c, th.to(c.device)), 1)
            for i, k in enumerate(missing):
                self._fid_cache[k] = (float(mean[i]), math.sqrt(max(float(cov[i, i]), 0.0)))
        vals = torch.tensor([self._fid_cache[k] for k in keys], dtype=torch.float64)
        return vals[:, 0], vals[:, 1]

    def _integrate_fid(self, values: Callable, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(K,)`` and covariance ``(K, K)`` of ∫ values(x) ε(x) dx by VEGAS.

        Five adapting iterations train the grid and are discarded; the grid is then frozen and
        five more iterations of i.i.d. points give an unbiased mean and covariance.
        """
        device = self.device or torch.device("cpu")
        dim, n = self.process.hard_dim, self.sigma_fid_points
        gen = torch.Generator(device).manual_seed(_mix(self.seed, 2**40 + stream))
        grid = VegasGrid(1, dim, self.n_bins, device=device)
        s1 = s2 = None
        for it in range(10):
            y = torch.rand(1, n, dim, generator=gen, device=device, dtype=torch.float64)
            u, log_jac = grid.map(y)
            coords, jac = self.process.from_unit(u[0])
            v = values(coords).to(torch.float64) * (jac * log_jac[0].exp())[:, None]
            if self.acceptance is not None:
                v = v * self.acceptance.prob(coords).to(v)[:, None]
            v = torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
            if it < 5:
                scale = v.abs().mean(0).clamp(min=1e-300)
                grid.accumulate(y, ((v / scale) ** 2).mean(-1)[None])
                grid.adapt()
            else:
                s1 = v.sum(0) if s1 is None else s1 + v.sum(0)
                s2 = v.T @ v if s2 is None else s2 + v.T @ v
        total = 5 * n
        mean = s1 / total
        cov = (s2 / total - torch.outer(mean, mean)) / (total - 1)
        return mean, cov

    # -- the likelihood -------------------------------------------------------------------

    @torch.no_grad()
    def log_likelihood(self, reco: Particles, theta: torch.Tensor) -> Likelihood:
        """Log-likelihoods of E reco events on a θ grid.

        Args:
            reco: E reco events.
            theta: ``(T, P)`` parameter points.

        Returns:
            :class:`~memzoo.protocols.Likelihood` with ``logp``/``std`` ``(E, T)`` and diagnostics
            ``n_points``, ``n_iterations``, ``n_nonfinite`` ``(E,)``, ``rel_error`` (MC relative
            error of the integral), ``sigma_fid``, ``sigma_fid_error`` ``(E, T)`` and, with
            bootstrap or network replicas, ``logp_replicas`` ``(E, T, M)``.
        """
        device = self.device or reco.device
        reco, theta = reco.to(device), theta.to(device=device, dtype=torch.float64)
        n_ev, n_th, n_it = len(reco), theta.shape[0], self.max_iterations
        n_rep = self.bootstrap or self.replicas
        st = {  # per iteration and event: log shift, half means/variances, replica half means
            "shift": torch.full((n_it, n_ev), _NO_SHIFT, dtype=torch.float64, device=device),
            "mean": torch.zeros(n_it, n_ev, 2, n_th, dtype=torch.float64, device=device),
            "var": torch.zeros(n_it, n_ev, 2, n_th, dtype=torch.float64, device=device),
            "rep": torch.zeros(n_it, n_ev, 2, n_th, n_rep, dtype=torch.float64, device=device),
        }
        n_iter = torch.zeros(n_ev, dtype=torch.long, device=device)
        n_bad = torch.zeros(n_ev, dtype=torch.long, device=device)
        gens = [torch.Generator(device).manual_seed(_mix(self.seed, e)) for e in range(n_ev)]
        grid = VegasGrid(n_ev, self.process.hard_dim, self.n_bins, device=device) if self.vegas else None
        coeff = self.process.coefficients(theta).to(theta) if self.factorised else None
        active = torch.arange(n_ev, device=device)
        for k in range(n_it):
            group = max(1, self.max_batch_points // self.n_points)
            for start in range(0, len(active), group):
                self._iteration(reco, theta, coeff, active[start : start + group], k, gens, grid, st, n_bad)
            if grid is not None:
                grid.adapt()
            n_iter[active] += 1
            mu, var, _ = self._combine(st, n_iter)
            rel = torch.where(mu > 0, var.sqrt() / mu, torch.full_like(mu, math.inf))
            done = (n_iter >= self.min_iterations) & (rel <= self.target_rel_error).all(-1)
            active = active[~done[active]]
            if len(active) == 0:
                break
        return self._result(theta, st, n_iter, n_bad)

    def _iteration(self, reco, theta, coeff, events, k, gens, grid, st, n_bad) -> None:
        """One iteration for a group of events: draw, evaluate, reduce per event, store."""
        n, dim, h = self.n_points, self.process.hard_dim, self.n_points // 2
        n_th, n_rep, device = theta.shape[0], st["rep"].shape[-1], theta.device
        draws = [self._draw(gens[int(e)], n, dim, n_th, device) for e in events]
        y_all = torch.stack([d[0] for d in draws])  # (g, n, D)
        t_all = torch.stack([d[1] for d in draws])  # (g, n)
        cnt_all = torch.stack([d[2] for d in draws]) if self.bootstrap else None  # (g, M, n)
        g = len(events)
        acc = {
            "c": torch.full((g,), _NO_SHIFT, dtype=torch.float64, device=device),
            "s1": torch.zeros(g, 2, n_th, dtype=torch.float64, device=device),
            "s2": torch.zeros(g, 2, n_th, dtype=torch.float64, device=device),
            "rep": torch.zeros(g, 2, n_th, n_rep, dtype=torch.float64, device=device),
        }
        step = max(1, self.max_batch_points // g)
        if grid is not None and step < n:
            # an event's points span several slices: its VEGAS data are binned per θ and normalised
            # once the iteration's means are known (_slice), so they do not depend on the slicing
            acc["grid"] = torch.zeros(g, dim, grid.n_bins, n_th, dtype=torch.float64, device=device)
            acc["count"] = torch.zeros(g, dim, grid.n_bins, dtype=torch.float64, device=device)
        for a in range(0, n, step):
            b = min(n, a + step)
            half = (torch.arange(a, b, device=device) >= h).to(torch.float64)  # (s,) 0: A, 1: B
            cnt = None if cnt_all is None else cnt_all[..., a:b]
            self._slice(reco, theta, coeff, events, y_all[:, a:b], t_all[:, a:b], cnt, half, grid, acc, n_bad)
        if "grid" in acc:
            norm = acc["s1"].sum(1) / n  # (g, T): the iteration's mean integrand
            inv = torch.where(norm > 0, 1.0 / norm.clamp(min=1e-300) ** 2, 0.0)
            grid.add((acc["grid"] * inv[:, None, None, :]).mean(-1), acc["count"], events)
        mean = acc["s1"] / h
        st["shift"][k, events] = acc["c"]
        st["mean"][k, events] = mean
        st["var"][k, events] = ((acc["s2"] / h - mean**2) / (h - 1)).clamp(min=0.0)
        st["rep"][k, events] = acc["rep"] / h

    def _draw(self, gen: torch.Generator, n: int, dim: int, n_th: int, device: torch.device):
        """One event's random numbers for one iteration, always in the same order."""
        y = torch.rand(n, dim, generator=gen, device=device, dtype=torch.float64)
        t = torch.randint(0, n_th, (n,), generator=gen, device=device)
        cnt = None
        if self.bootstrap:
            # resampling with replacement within each half (a stratified bootstrap)
            h = n // 2
            idx = torch.randint(0, h, (self.bootstrap, 2, h), generator=gen, device=device)
            idx = idx + torch.tensor([0, h], device=device)[None, :, None]
            cnt = torch.zeros(self.bootstrap, n, dtype=torch.float64, device=device)
            cnt.scatter_add_(1, idx.reshape(self.bootstrap, n), torch.ones(self.bootstrap, n, device=device).double())
        return y, t, cnt

    def _log_transfer(self, reco_rows: Particles, coords: torch.Tensor, index: int | None) -> torch.Tensor:
        """``(rows,)`` float64 log p(reco|x) of the posterior mean (``None``) or a replica."""
        ctx = self.transfer.replica(index) if isinstance(self.transfer, SupportsReplicas) else None
        with ctx if ctx is not None else contextlib.nullcontext():
            return self.transfer.log_prob(reco_rows, coords).to(torch.float64)

    def _slice(self, reco, theta, coeff, events, y, tidx, cnt, half, grid, acc, n_bad) -> None:
        """Evaluate a block of points ``y (g, s, D)`` and add it to the per-event accumulators."""
        g, s, dim = y.shape
        if grid is not None:
            u, log_jac = grid.map(y, events)
        else:
            u, log_jac = y, torch.zeros(g, s, dtype=torch.float64, device=y.device)
        reco_rows = reco[events.repeat_interleave(s)]
        coords, log_q = self.sampler.from_unit(u.reshape(g * s, dim), reco_rows, theta[tidx.reshape(-1)])
        log_p = [self._log_transfer(reco_rows, coords, None)]
        log_p += [self._log_transfer(reco_rows, coords, r) for r in range(self.replicas)]
        log_w = torch.stack(log_p) - log_q.to(torch.float64) + log_jac.reshape(-1)  # (1 + R, rows)
        if self.acceptance is not None:
            log_w = log_w + torch.log(self.acceptance.prob(coords).to(torch.float64))
        if self.factorised:
            terms = self.process.dsigma_terms(coords).to(torch.float64)  # (rows, K): once for all θ (6.35)
            dsig = sum(terms[:, i : i + 1] * coeff[:, i] for i in range(coeff.shape[1]))  # row-wise, no GEMM
        else:
            dsig = self.process.dsigma(coords, theta).to(torch.float64)  # (rows, T)
        bad = log_w.isnan().any(0) | (log_w == math.inf).any(0) | ~torch.isfinite(dsig).all(-1) | (dsig < 0).any(-1)
        bad = (bad | ~torch.isfinite(coords).all(-1)).view(g, s)
        n_bad.index_add_(0, events, bad.sum(1))
        log_w = torch.where(bad.reshape(-1), -math.inf, log_w).view(-1, g, s)
        dsig = torch.where(bad.reshape(-1, 1), 0.0, dsig).view(g, s, -1)
        # a common log shift per event keeps products like 1e-30 × 1e5 representable; it is the
        # largest log of the whole integrand w·dσ (a point with a huge weight but dσ = 0, e.g. of a
        # poorly trained sampler, must not set it, or every other point underflows to 0)
        dsig_max = dsig.amax(-1)  # (g, s): points with dσ = 0 at every θ contribute exactly 0
        log_w = torch.where(dsig_max[None] > 0, log_w, -math.inf)
        c_new = torch.maximum(acc["c"], (log_w[0] + torch.log(dsig_max)).max(1).values)
        rescale = torch.exp(acc["c"] - c_new)
        acc["s1"] *= rescale[:, None, None]
        acc["s2"] *= rescale[:, None, None] ** 2
        acc["rep"] *= rescale[:, None, None, None]
        if "grid" in acc:
            acc["grid"] *= rescale[:, None, None, None] ** 2
        acc["c"] = c_new
        vals = dsig[None] * torch.exp(log_w - c_new[None, :, None])[..., None]  # (1 + R, g, s, T)
        # per-event sums as batched products with per-event shapes, so that an event's result
        # does not depend on which other events share the batch
        sel = torch.stack([1.0 - half, half]).expand(g, 2, s)  # (g, 2, s): half A, half B
        integrand = vals[0]
        acc["s1"] += torch.bmm(sel, integrand)
        acc["s2"] += torch.bmm(sel, integrand**2)
        n_rep, n_net = acc["rep"].shape[-1], self.replicas
        for r in range(max(n_net, 1) if n_rep else 0):
            # replica m uses network replica m mod R (or the central network) and resample m
            ms = list(range(r, n_rep, n_net)) if n_net else list(range(n_rep))
            src = vals[1 + r] if n_net else integrand
            for hh in range(2):
                if cnt is None:
                    acc["rep"][:, hh, :, ms] += torch.bmm(sel[:, hh : hh + 1], src).transpose(1, 2)
                else:
                    w = cnt[:, ms] * sel[:, hh : hh + 1]  # (g, |ms|, s)
                    acc["rep"][:, hh, :, ms] += torch.bmm(w, src).transpose(1, 2)
        if "grid" in acc:
            sums, counts = grid.histogram(y, integrand**2)
            acc["grid"] += sums
            acc["count"] += counts
        elif grid is not None:  # all points of these events are in this slice
            norm = integrand.mean(1, keepdim=True)  # (g, 1, T)
            ratio = torch.where(norm > 0, integrand / norm.clamp(min=1e-300), 0.0)
            grid.accumulate(y, (ratio**2).mean(-1), events)

    # -- combination ----------------------------------------------------------------------

    def _combine(self, st, n_iter):
        """Combine the stored iterations per (event, θ); see the module docstring.

        Returns:
            ``mu (E, T)``, ``var (E, T)`` and replicas ``(E, T, M)``, all in units of
            ``exp(C)`` with ``C`` from :meth:`_common_shift`.
        """
        n_it = st["shift"].shape[0]
        valid = torch.arange(n_it, device=n_iter.device)[:, None] < n_iter[None, :]  # (K, E)
        shift = torch.where(valid, st["shift"], _NO_SHIFT)
        scale = torch.exp(shift - self._common_shift(st, n_iter)[None]) * valid  # (K, E)
        mean = st["mean"] * scale[..., None, None]
        var = st["var"] * scale[..., None, None] ** 2
        floor = 0.1 * var.mean(2, keepdim=True) + 1e-300
        inv = 1.0 / torch.maximum(var, floor) * valid[..., None, None]
        w = inv.flip(2)  # the weight of half A is 1/var(B) and vice versa
        w = w / w.amax(dim=(0, 2), keepdim=True).clamp(min=1e-300)  # relative weights ≤ 1
        total = w.sum((0, 2)).clamp(min=1e-300)
        mu = (w * mean).sum((0, 2)) / total
        var_mu = (w**2 * var).sum((0, 2)) / total**2
        reps = (w[..., None] * st["rep"] * scale[..., None, None, None]).sum((0, 2)) / total[..., None]
        return mu, var_mu, reps

    @staticmethod
    def _common_shift(st, n_iter) -> torch.Tensor:
        """``(E,)`` the largest log shift of each event's valid iterations."""
        valid = torch.arange(st["shift"].shape[0], device=n_iter.device)[:, None] < n_iter[None, :]
        return torch.where(valid, st["shift"], _NO_SHIFT).amax(0)

    def _result(self, theta, st, n_iter, n_bad) -> Likelihood:
        """Turn the stored iterations into a :class:`Likelihood`."""
        mu, var, reps = self._combine(st, n_iter)
        shift = self._common_shift(st, n_iter)[:, None]
        sigma, sigma_err = (t.to(mu) for t in self.sigma_fid(theta))
        log_fid = torch.log(sigma)[None]
        rel_fid2 = (sigma_err / sigma)[None] ** 2
        logp = torch.log(mu) + shift - log_fid
        rel = torch.where(mu > 0, var.sqrt() / mu, torch.full_like(mu, math.inf))
        diagnostics = {
            "n_points": n_iter * self.n_points,
            "n_iterations": n_iter,
            "n_nonfinite": n_bad,
            "rel_error": rel,
            "sigma_fid": sigma.expand_as(mu),
            "sigma_fid_error": sigma_err.expand_as(mu),
        }
        var_logp = rel**2 + rel_fid2
        if reps.shape[-1]:
            logp_rep = torch.log(reps) + shift[..., None] - log_fid[..., None]
            diagnostics["logp_replicas"] = logp_rep
            spread = logp_rep.var(-1) if logp_rep.shape[-1] > 1 else torch.zeros_like(logp)
            # bootstrap replicas already contain the MC error; network replicas alone do not
            var_logp = spread + rel_fid2 if self.bootstrap else var_logp + spread
        std = torch.nan_to_num(var_logp.sqrt(), nan=math.inf)
        return Likelihood(logp, std, theta, diagnostics)
