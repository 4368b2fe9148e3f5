"""The MEM discriminant between two hypotheses and its ROC curve.

Bury & Delaere, arXiv:2007.09121, eq. 4.1:

    D(x) = P(x|a) / (P(x|a) + γ P(x|b)),

with a and b two θ points of one process or two processes. With normalised likelihoods
P(x|·) (what memzoo integrates), γ is the expected ratio of b to a events, so that D is the
posterior probability of a; D is a monotonic function of the likelihood ratio, so the ROC
curve — and by Neyman–Pearson the best separation any cut on x can reach — does not depend on
γ. It is computed as ``sigmoid(log P_a − log P_b − log γ)``, stable for log-likelihoods far
apart.

The ROC curve counts events of class a above a cut as true positives and of class b as false
positives; the area under it is the probability that an a event scores higher than a b event,
ties counted half (the Mann–Whitney statistic). Its error follows Hanley & McNeil,
Radiology 143 (1982) 29.
"""

from __future__ import annotations

import math

import torch

__all__ = ["auc", "auc_error", "discriminant", "roc_curve", "theta_column"]


def discriminant(logp_a: torch.Tensor, logp_b: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """D = P_a/(P_a + γ P_b) from log-likelihoods of the same events, any shape (broadcast)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be positive (the expected ratio of b to a events), got {gamma}.")
    return torch.sigmoid(logp_a - logp_b - math.log(gamma))


def _roc_counts(scores_a: torch.Tensor, scores_b: torch.Tensor):
    """Counts of a and b events with score ≥ t at every distinct score t (descending), and t."""
    a = torch.as_tensor(scores_a).reshape(-1).double()
    b = torch.as_tensor(scores_b).reshape(-1).double().to(a.device)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"Both classes need events for a ROC curve, got {len(a)} (a) and {len(b)} (b).")
    for name, s in (("a", a), ("b", b)):
        if not torch.isfinite(s).all():
            bad = torch.nonzero(~torch.isfinite(s))[:5, 0].tolist()
            raise ValueError(f"Scores of class {name} contain NaN/inf (events {bad}); drop or fix those events.")
    scores = torch.cat([a, b])
    is_a = torch.cat([torch.ones_like(a), torch.zeros_like(b)])
    order = torch.argsort(scores, descending=True, stable=True)
    scores, is_a = scores[order], is_a[order]
    tp, fp = is_a.cumsum(0), (1 - is_a).cumsum(0)
    # keep the last position of every group of equal scores: ties enter together
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    zero = torch.zeros(1, dtype=torch.float64, device=a.device)
    return torch.cat([zero, fp[last]]), torch.cat([zero, tp[last]]), torch.cat([zero + math.inf, scores[last]])


def roc_curve(scores_a: torch.Tensor, scores_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ROC curve of a cut ``score ≥ t`` selecting class a.

    Args:
        scores_a: ``(N_a,)`` scores of events of class a (positives).
        scores_b: ``(N_b,)`` scores of events of class b.

    Returns:
        ``fpr``, ``tpr`` (fractions of b and a events with score ≥ t) and the thresholds t, each
        ``(K + 1,)`` for K distinct scores, starting at (0, 0) with t = +inf and ending at (1, 1).
        float64, on the device of the scores.

    Example:
        >>> fpr, tpr, _ = roc_curve(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 2.0]))
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    fp, tp, thresholds = _roc_counts(scores_a, scores_b)
    return fp / fp[-1], tp / tp[-1], thresholds


def auc(scores_a: torch.Tensor, scores_b: torch.Tensor) -> float:
    """Area under the ROC curve: P(s_a > s_b) + ½ P(s_a = s_b).

    Summed in event counts (exact half-integers), then divided by N_a N_b.
    """
    fp, tp, _ = _roc_counts(scores_a, scores_b)
    return float(torch.trapezoid(tp, fp)) / float(fp[-1] * tp[-1])


def auc_error(area: float, n_a: int, n_b: int) -> float:
    """Standard error of an AUC from n_a and n_b events (Hanley & McNeil 1982, eq. 2)."""
    q1, q2 = area / (2 - area), 2 * area**2 / (1 + area)
    var = (area * (1 - area) + (n_a - 1) * (q1 - area**2) + (n_b - 1) * (q2 - area**2)) / (n_a * n_b)
    return math.sqrt(max(var, 0.0))


def theta_column(theta: torch.Tensor, names: list[str], values: dict[str, float], where: str = "") -> int:
    """Index of the grid point with the given parameter values (others: the only value they take).

    Raises ``ValueError`` naming the nearest grid points when there is no such point.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64).cpu()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {unknown}{where}; the θ grid has {names}.")
    match = torch.ones(len(theta), dtype=torch.bool)
    for j, name in enumerate(names):
        if name in values:
            tol = 1e-9 * max(1.0, abs(values[name]))
            match &= (theta[:, j] - values[name]).abs() <= tol
    hits = torch.nonzero(match)[:, 0]
    if len(hits) == 1:
        return int(hits[0])
    if len(hits) == 0:
        given = ", ".join(f"{k}={v:g}" for k, v in values.items())
        cols = [names.index(k) for k in values]
        dist = sum((theta[:, c] - values[k]).abs() for c, k in zip(cols, values))
        near = [", ".join(f"{names[c]}={theta[i, c].item():g}" for c in cols) for i in dist.argsort()[:3].tolist()]
        raise ValueError(f"No θ grid point{where} has {given}; nearest: {'; '.join(near)}.")
    raise ValueError(f"{len(hits)} θ grid points{where} match {values}; give a value for every parameter of {names}.")
