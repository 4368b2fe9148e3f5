"""The hard-level reference likelihood of simulated events.

For simulated data the true hard events are known; their likelihood is what a perfect detector
would give (Heimel, PhD thesis 2024, Sec. 6.3.1, Figs. 6.7–6.8: "directly evaluating the
differential cross sections for the hard-scattering momenta"):

    log p(x_hard|θ) = log dσ(x_hard|θ)/dx_hard − log σ(θ).

For events that passed a selection, ``σ`` is the fiducial cross section
σ_fid(θ) = ∫ dσ(x|θ) ε(x) dx and the acceptance ε(x_hard) joins the density (eq. 6.39); ε does
not depend on θ, so it only shifts log L by a constant, but σ_fid(θ) and σ(θ) differ in shape.
Comparing a reco-level scan with this one separates the information lost in the detector from
errors of the learned networks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from memzoo.protocols import AcceptanceModel, Likelihood, Process

__all__ = ["hard_level_likelihood", "normalisation"]


def normalisation(
    process: Process, theta: torch.Tensor, acceptance: AcceptanceModel | None = None, **options
) -> tuple[torch.Tensor, torch.Tensor]:
    """σ(θ) (no acceptance) or σ_fid(θ) (with one) and its MC error in fb, each ``(T,)``.

    σ comes from ``process.cross_section``; σ_fid from the MEM integrator's own VEGAS
    integral (:meth:`memzoo.integrator.MEMIntegrator.sigma_fid`), the normalisation the
    reco-level likelihood used.

    Args:
        options: ``cross_section`` keyword arguments (σ) or ``MEMIntegrator`` options such as
            ``sigma_fid_points`` and ``seed`` (σ_fid).
    """
    theta = theta.to(torch.float64)
    if acceptance is None:
        return process.cross_section(theta, **options)
    from memzoo.integrator import MEMIntegrator

    # σ_fid needs only the process and the acceptance; no transfer or sampler is evaluated.
    return MEMIntegrator(process, None, None, acceptance, **options).sigma_fid(theta)


def hard_level_likelihood(
    process: Process,
    hard_coords: torch.Tensor,
    theta: torch.Tensor,
    *,
    acceptance: AcceptanceModel | None = None,
    sigma: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | Callable | None = None,
    **options,
) -> Likelihood:
    """Hard-level log-likelihoods of true hard events on a θ grid.

    Args:
        process: the process the events were generated with.
        hard_coords: ``(E, D)`` hard coordinates (the dataset's ``hard/coords``).
        theta: ``(T, P)`` θ grid.
        acceptance: ε(x_hard) for selected events (``None``: all events, normalised by σ).
        sigma: the normalisation in fb instead of integrating it: ``(T,)``, ``(sigma, error)``
            or a callable ``theta -> (sigma, error)``.
        options: passed to :func:`normalisation`.

    Returns:
        A :class:`~memzoo.protocols.Likelihood` with ``logp (E, T)`` and ``std`` zero: the only
        uncertainty is that of the normalisation, the same for every event (fully correlated,
        it moves −2 log L by 2E·δσ/σ), given in ``diagnostics["sigma"]`` and
        ``["sigma_error"]`` ``(E, T)`` in fb. Events outside the phase space of a θ get
        ``-inf`` there.
    """
    theta = theta.to(torch.float64)
    coords = hard_coords.to(torch.float64)
    if coords.ndim != 2 or coords.shape[1] != process.hard_dim:
        raise ValueError(f"hard_coords must be (E, {process.hard_dim}) for {process.name}, got {tuple(coords.shape)}.")
    if sigma is None:
        sig, err = normalisation(process, theta, acceptance, **options)
    else:
        out = sigma(theta) if callable(sigma) else sigma
        sig, err = out if isinstance(out, tuple) else (out, torch.zeros_like(torch.as_tensor(out)))
    sig = torch.as_tensor(sig, dtype=torch.float64).reshape(-1).cpu()
    err = torch.as_tensor(err, dtype=torch.float64).reshape(-1).cpu()
    if sig.shape != (theta.shape[0],) or (sig <= 0).any() or not torch.isfinite(sig).all():
        raise ValueError(f"The normalisation must be {theta.shape[0]} positive cross sections, got {sig.tolist()}.")
    with torch.no_grad():
        logp = process.dsigma(coords, theta).to(torch.float64).cpu().log()
        if acceptance is not None:
            logp = logp + acceptance.prob(coords).to(torch.float64).cpu().log()[:, None]
    logp = logp - sig.log()
    e = logp.shape[0]
    return Likelihood(
        logp=logp,
        std=torch.zeros_like(logp),
        theta=theta.cpu(),
        diagnostics={"sigma": sig.expand(e, -1).clone(), "sigma_error": err.expand(e, -1).clone()},
    )
