"""Hard-process event records: partonic channel choice, incoming partons and LHE colour flow.

A process that can turn its hard coordinates into full Les Houches records exposes a channel
table and ``channel_terms(coords) -> (B, C, K)``, the factorised dσ split by partonic channel
(incoming flavours and beam ordering), so that ``dσ(θ) = Σ_c channel_terms[:, c] @ f(θ)``.
:func:`choose_channels` draws one channel per event with probability ∝ its contribution at θ,
and :func:`hard_event_record` assembles the record (status -1 partons with x₁√S/2 along +z and
x₂√S/2 along -z, the status-1 hard final state with mothers (1, 2), colours, μ_F, weight 1).
Column meanings follow the Les Houches accord, Boos et al., hep-ph/0109068, and its v3
extension, Andersen et al., arXiv:1405.1067.
"""

from __future__ import annotations

from typing import Any

import torch

from memzoo.simulation.record import FINAL, INCOMING, RESONANCE, EventRecord

__all__ = ["FIRST_COLOUR", "choose_channels", "colour_flow_ok", "hard_event_record", "sample_channels"]

#: First colour tag; LHE convention (tags below 501 are reserved for showers).
FIRST_COLOUR = 501


def choose_channels(
    terms: torch.Tensor, coefficients: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one partonic channel per event with probability ∝ its dσ contribution.

    Args:
        terms: ``(B, C, K)`` per-channel factorised dσ terms.
        coefficients: ``(1, K)`` or ``(B, K)`` θ-basis functions f_k(θ).
        generator: torch random generator (CPU) for reproducibility.

    Returns:
        ``(B,)`` int64 channel indices.

    Raises:
        ValueError: an event has no positive channel weight (outside phase space).
    """
    weights = torch.einsum("bck,bk->bc", terms, coefficients.to(terms).expand(terms.shape[0], -1))
    # negative PDF replicas can make single channels negative; such channels are never chosen,
    # as Pythia clips negative PDFs to zero
    weights = weights.clamp(min=0.0)
    total = weights.sum(-1)
    bad = ~(total > 0) | ~torch.isfinite(total)
    if bad.any():
        row = int(bad.nonzero()[0])
        raise ValueError(
            f"Event {row} has no positive partonic channel weight (dσ = {float(total[row])}); "
            "hard records need points inside phase space with dσ > 0 at theta."
        )
    u = torch.rand(weights.shape[0], 1, generator=generator, dtype=torch.float64).to(weights.device)
    cdf = torch.cumsum(weights / total[:, None], -1)
    # inverse CDF; the clamp guards against cdf[-1] rounding slightly below u
    return torch.searchsorted(cdf, u).squeeze(-1).clamp(max=weights.shape[1] - 1)


def sample_channels(
    process: Any, coords: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel of every event of a process with ``channels`` and ``channel_terms``.

    Args:
        process: a factorised process exposing ``channels (C, ...)`` and ``channel_terms``.
        coords: ``(B, D)`` hard coordinates.
        theta: ``(1, P)`` (one parameter point for all events) or ``(B, P)`` (one per event).
        generator: torch random generator.

    Returns:
        ``(B,)`` channel indices and the ``(B, ...)`` rows of ``process.channels``.
    """
    theta = process.check_theta(theta)
    if theta.shape[0] not in (1, coords.shape[0]):
        raise ValueError(f"theta must be (1, P) or (B, P) with B = {coords.shape[0]} events, got {tuple(theta.shape)}.")
    terms = process.channel_terms(coords)
    idx = choose_channels(terms, process.coefficients(theta).to(coords.device), generator)
    return idx, process.channels.to(coords.device)[idx]


def hard_event_record(
    x1: torch.Tensor,
    x2: torch.Tensor,
    sqrt_s: float,
    incoming_pdg: torch.Tensor,
    final_p: torch.Tensor,
    final_pdg: torch.Tensor,
    colour: torch.Tensor,
    scale: torch.Tensor,
) -> EventRecord:
    """Assemble a 2 → n hard event record.

    Args:
        x1, x2: ``(B,)`` momentum fractions of the partons from beam 1 (+z) and beam 2 (-z).
        sqrt_s: hadronic centre-of-mass energy in GeV.
        incoming_pdg: ``(B, 2)`` PDG codes of the partons from beam 1 and beam 2.
        final_p: ``(B, n, 4)`` final-state four-momenta in GeV.
        final_pdg: ``(B, n)`` PDG codes of the final state.
        colour: ``(B, 2 + n, 2)`` LHE colour and anticolour tags of all rows.
        scale: ``(B,)`` factorisation scale μ_F in GeV.

    Returns:
        An :class:`EventRecord` with rows (parton 1, parton 2, final state...), all unmasked.
    """
    b, n = final_pdg.shape
    device = final_p.device
    half = 0.5 * sqrt_s
    zero = torch.zeros_like(x1)
    beams = torch.stack(
        [torch.stack([x1 * half, zero, zero, x1 * half], -1), torch.stack([x2 * half, zero, zero, -x2 * half], -1)], 1
    )
    long = dict(dtype=torch.int64, device=device)
    status = torch.tensor([INCOMING, INCOMING] + [FINAL] * n, **long).expand(b, -1)
    mothers = torch.tensor([[0, 0], [0, 0]] + [[1, 2]] * n, **long).expand(b, -1, -1)
    return EventRecord(
        p=torch.cat([beams, final_p.to(beams)], 1),
        pdg=torch.cat([incoming_pdg.to(**long), final_pdg.to(**long)], 1),
        status=status.clone(),
        mothers=mothers.clone(),
        colour=colour.to(**long),
        mask=torch.ones(b, n + 2, dtype=torch.bool, device=device),
        weight=torch.ones(b, dtype=torch.float64, device=device),
        scale=scale.to(torch.float64).expand(b).clone(),
    )


def colour_flow_ok(record: EventRecord) -> torch.Tensor:
    """``(B,)`` bool: the LHE colour flow of every event is consistent.

    Crossing the incoming partons to the final state (colour ↔ anticolour), every tag of the
    incoming and final (status 1) particles must appear exactly once as a colour and once as
    an anticolour; every decayed particle (status 2) must carry the net colour of its
    daughters (checked on the same crossed counting, restricted to its direct daughters).
    """
    col, acol = record.colour[..., 0], record.colour[..., 1]
    incoming = record.mask & (record.status == INCOMING)
    final = record.mask & (record.status == FINAL)
    size = int(record.colour.max()) + 1 if record.colour.numel() else 1

    def count(*parts: torch.Tensor) -> torch.Tensor:
        tags = torch.cat(parts, 1)
        out = torch.zeros(tags.shape[0], size, dtype=torch.int64, device=tags.device)
        return out.scatter_add_(1, tags, torch.ones_like(tags))[:, 1:]

    as_colour = count(torch.where(final, col, 0), torch.where(incoming, acol, 0))
    as_anti = count(torch.where(final, acol, 0), torch.where(incoming, col, 0))
    ok = (as_colour == as_anti).all(1) & (as_colour <= 1).all(1)
    rows = torch.arange(1, record.pdg.shape[1] + 1, device=record.pdg.device)
    for j in range(record.pdg.shape[1]):
        parent = record.mask[:, j] & (record.status[:, j] == RESONANCE)
        if not parent.any():
            continue
        daughter = record.mask & (record.mothers[..., 0] == rows[j])
        # parent crossed to the other side: daughters' colours minus the parent's must cancel
        dc = count(torch.where(daughter, col, 0), acol[:, j : j + 1])
        da = count(torch.where(daughter, acol, 0), col[:, j : j + 1])
        ok &= ~parent | (dc == da).all(1)
    return ok
