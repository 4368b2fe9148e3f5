"""Figures of merit of a likelihood surrogate against the integration it replaces.

* bias and resolution of the event information I = −log10 p: mean and standard deviation of
  I_regressed − I_integrated (Bury & Delaere, arXiv:2008.10949, Table 3);
* mean absolute percentage error, MAPE = 100/n Σ |I_int − I_reg| / |I_int| (DeepMEM, CHEP 2023;
  ill-conditioned where I ≈ 0, i.e. p ≈ 1 in the units of the density);
* the two-hypothesis discriminant D = P_a / (P_a + P_b) (Bury & Delaere eq. 4.1 with γ = 1;
  the Neyman-Pearson likelihood ratio, monotonic in P_a / P_b) and its ROC curve and AUC from
  :mod:`memzoo.inference.discriminant`.
"""

from __future__ import annotations

import torch

__all__ = ["discriminant", "regression_metrics", "roc"]


def regression_metrics(
    regressed: torch.Tensor, integrated: torch.Tensor, weight: torch.Tensor | None = None
) -> dict[str, float]:
    """Bias, resolution and MAPE of I (any equal shapes; non-finite integrated values are skipped).

    Args:
        regressed: I from the surrogate.
        integrated: I from the integrator (the reference).
        weight: optional per-entry weights (same shape), e.g. to balance processes.

    Returns:
        ``{"bias", "resolution", "mape", "n"}``; ``mape`` in percent.
    """
    if regressed.shape != integrated.shape:
        raise ValueError(f"regressed {tuple(regressed.shape)} and integrated {tuple(integrated.shape)} must match.")
    ok = torch.isfinite(integrated) & torch.isfinite(regressed)
    if int(ok.sum()) < 2:
        raise ValueError("regression_metrics needs at least two finite (regressed, integrated) pairs.")
    r, i = regressed[ok].double(), integrated[ok].double()
    w = torch.ones_like(r) if weight is None else weight.expand_as(regressed)[ok].double()
    w = w / w.sum()
    diff = r - i
    bias = (w * diff).sum()
    resolution = torch.sqrt((w * (diff - bias) ** 2).sum())
    mape = 100 * (w * (diff.abs() / i.abs().clamp(min=1e-12))).sum()
    return {"bias": float(bias), "resolution": float(resolution), "mape": float(mape), "n": int(ok.sum())}


def discriminant(logp_a: torch.Tensor, logp_b: torch.Tensor) -> torch.Tensor:
    """D = P_a / (P_a + P_b) from natural-log likelihoods (:func:`memzoo.inference.discriminant`)."""
    from memzoo.inference.discriminant import discriminant as d

    return d(logp_a.double(), logp_b.double())


def roc(score: torch.Tensor, is_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """ROC of a score that is large for class a: ``(false-positive rate, true-positive rate, AUC)``.

    Uses memzoo's own ROC and AUC (:mod:`memzoo.inference.discriminant`).
    """
    from memzoo.inference.discriminant import auc, roc_curve

    is_a = is_a.bool().cpu()
    s = score.detach().double().cpu()
    if bool(is_a.all()) or not bool(is_a.any()):
        raise ValueError("roc needs events of both classes (is_a true and false).")
    fpr, tpr, _ = roc_curve(s[is_a], s[~is_a])
    return fpr, tpr, auc(s[is_a], s[~is_a])
