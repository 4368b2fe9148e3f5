"""Training the acceptance classifier ε(x_hard) and checking that it reproduces the true acceptance.

Heimel, PhD thesis 2024, Sec. 6.4.2 and Table A.8: an MLP on the hard-scattering coordinates
of accepted *and* rejected events, trained with binary cross-entropy on its logits (Adam,
one-cycle 1e-4 → 3e-4, batch 1024, 10 epochs; the :class:`~memzoo.training.TrainingConfig`
defaults). The checks are the validation BCE and accuracy, a calibration table (mean predicted
vs observed acceptance in bins of the prediction) and, as the thesis shows in Fig. 6.15,
predicted vs observed acceptance as functions of each hard coordinate (pT, η, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from memzoo.builtin.acceptance import MLPAcceptance
from memzoo.training import Trainer, TrainingConfig, TrainingResult

__all__ = ["AcceptanceTraining", "acceptance_figure", "binned_acceptance", "calibration", "train_acceptance"]


@torch.no_grad()
def _predict(model: MLPAcceptance, coords: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """``(N,)`` float64 ε on the CPU, in batches so that large validation sets fit on a GPU."""
    was_training = model.training
    model.eval()
    out = torch.cat([model.prob(coords[i : i + batch]).double().cpu() for i in range(0, len(coords), batch)])
    model.train(was_training)
    return out


def binned_acceptance(
    values: torch.Tensor, prob: torch.Tensor, accepted: torch.Tensor, edges: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Observed and predicted acceptance in bins of one coordinate.

    Args:
        values: ``(N,)`` the coordinate of every event (accepted or not).
        prob: ``(N,)`` predicted (or true) ε of the events.
        accepted: ``(N,)`` bool labels.
        edges: ``(B + 1,)`` increasing bin edges; events outside are ignored.

    Returns:
        ``counts``, ``observed`` (accepted fraction), ``observed_err`` (binomial standard error)
        and ``predicted`` (mean ε), each ``(B,)`` float64; NaN in empty bins.
    """
    values, prob, edges = values.double().cpu(), prob.double().cpu(), edges.double().cpu()
    labels = accepted.cpu().double()
    inside = (values >= edges[0]) & (values <= edges[-1])
    which = (torch.bucketize(values[inside], edges, right=True) - 1).clamp(0, len(edges) - 2)
    n_bins = len(edges) - 1
    counts = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, torch.ones_like(which, dtype=torch.float64))
    k = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, labels[inside])
    p_sum = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, which, prob[inside])
    observed = k / counts
    return {
        "counts": counts,
        "observed": observed,
        "observed_err": (observed * (1 - observed) / counts).sqrt(),
        "predicted": p_sum / counts,
    }


def calibration(prob: torch.Tensor, accepted: torch.Tensor, n_bins: int = 10) -> dict[str, Any]:
    """Reliability table: mean predicted vs observed acceptance in ``n_bins`` bins of the prediction.

    Returns:
        ``predicted``, ``observed`` and ``counts`` per bin (lists, NaN for empty bins) and ``ece``,
        the count-weighted mean |predicted − observed| (expected calibration error).
    """
    table = binned_acceptance(prob, prob, accepted, torch.linspace(0.0, 1.0, n_bins + 1))
    filled = table["counts"] > 0
    gap = (table["predicted"] - table["observed"]).abs()[filled]
    ece = float((gap * table["counts"][filled]).sum() / table["counts"].sum())
    return {"ece": ece, **{key: table[key].tolist() for key in ("predicted", "observed", "counts")}}


def _edges(values: torch.Tensor, n_bins: int) -> torch.Tensor:
    # central 99 % of the events: a few far tails would otherwise leave most bins empty
    lo, hi = torch.quantile(values.double()[:1_000_000], torch.tensor([0.005, 0.995], dtype=torch.float64))
    return torch.linspace(float(lo), float(hi), n_bins + 1, dtype=torch.float64)


def acceptance_figure(
    model: MLPAcceptance,
    coords: torch.Tensor,
    accepted: torch.Tensor,
    *,
    names: Sequence[str] | None = None,
    true_prob: torch.Tensor | None = None,
    n_bins: int = 20,
    max_coords: int = 4,
) -> Any:
    """Predicted vs observed (and optionally true) acceptance per hard coordinate, plus calibration.

    Args:
        model: the trained classifier.
        coords: ``(N, D)`` hard coordinates of held-out events; accepted: ``(N,)`` bool labels.
        names: coordinate labels (default ``x0, x1, ...``).
        true_prob: ``(N,)`` exact ε of the events, when known (drawn dashed).
        n_bins: bins per coordinate; max_coords: how many leading coordinates to show.

    Returns:
        A matplotlib ``Figure`` (created without pyplot, so no global state is touched).
    """
    from matplotlib.figure import Figure

    prob = _predict(model, coords)
    shown = min(coords.shape[1], max_coords)
    names = list(names) if names is not None else [f"x{i}" for i in range(coords.shape[1])]
    fig = Figure(figsize=(3.2 * (shown + 1), 3.0), layout="constrained")
    axes = fig.subplots(1, shown + 1, squeeze=False)[0]
    for i, ax in enumerate(axes[:shown]):
        values = coords[:, i].double().cpu()
        edges = _edges(values, n_bins)
        centres = 0.5 * (edges[1:] + edges[:-1])
        table = binned_acceptance(values, prob, accepted, edges)
        ax.errorbar(centres, table["observed"], table["observed_err"], fmt="o", ms=3, color="k", label="observed")
        ax.stairs(table["predicted"].nan_to_num(0.0).numpy(), edges.numpy(), color="C0", label="classifier")
        if true_prob is not None:
            truth = binned_acceptance(values, true_prob, accepted, edges)["predicted"]
            ax.stairs(truth.nan_to_num(0.0).numpy(), edges.numpy(), color="C1", ls="--", label="true ε")
        ax.set(xlabel=names[i], ylabel="acceptance", ylim=(0, 1.05))
    table = calibration(prob, accepted)
    ax = axes[-1]
    ax.plot([0, 1], [0, 1], color="0.6", lw=1)
    ax.plot(table["predicted"], table["observed"], "o-", ms=3)
    ax.set(xlabel="predicted ε", ylabel="observed acceptance", title=f"ECE = {table['ece']:.3f}")
    axes[0].legend(fontsize="small")
    return fig


@dataclass
class AcceptanceTraining:
    """What :func:`train_acceptance` returns.

    Attributes:
        model: the trained classifier (weights of the best validation BCE with early stopping).
        training: the trainer's :class:`~memzoo.training.TrainingResult`.
        metrics: validation ``val_bce``, ``val_accuracy``, ``calibration_ece``,
            ``observed_acceptance``, ``predicted_acceptance`` and, with a known ε,
            ``val_mean_abs_error_true``.
        calibration: the reliability table of :func:`calibration` on the validation events.
    """

    model: MLPAcceptance
    training: TrainingResult
    metrics: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)


def train_acceptance(
    model: MLPAcceptance,
    coords: torch.Tensor,
    accepted: torch.Tensor,
    config: TrainingConfig | None = None,
    *,
    val_fraction: float = 0.1,
    names: Sequence[str] | None = None,
    true_acceptance: Callable[[torch.Tensor], torch.Tensor] | None = None,
    name: str = "acceptance",
    checkpoint_dir: str | Path | None = None,
    mlflow: bool = True,
    progress: bool | None = None,
) -> AcceptanceTraining:
    """Train ``model`` to predict ε(x_hard) = P(accepted | x_hard) with binary cross-entropy.

    The events are split at random (seeded by ``config.seed``) into training and validation
    parts; the input standardisation is fitted on the training part first.

    Args:
        model: an :class:`~memzoo.builtin.acceptance.MLPAcceptance` with ``hard_dim = D``.
        coords: ``(N, D)`` hard coordinates of all events, accepted and rejected.
        accepted: ``(N,)`` bool: whether each event passed the selection.
        config: training settings (default: thesis Table A.8).
        val_fraction: share of events held out for validation, in (0, 1).
        names: coordinate names for the plots (e.g. the process' ``coordinate_names``).
        true_acceptance: the exact ε, if known (a toy or the analytic detector): drawn in the
            plot and compared in the metrics.
        name, checkpoint_dir, mlflow, progress: passed to :class:`~memzoo.training.Trainer`;
            the metrics are added to its MLflow run.
    """
    if not isinstance(model, MLPAcceptance):
        raise TypeError(f"model must be an MLPAcceptance, got {type(model).__name__}.")
    if not isinstance(coords, torch.Tensor) or coords.ndim != 2 or coords.shape[1] != model.config.hard_dim:
        shape = tuple(coords.shape) if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise ValueError(f"coords must be an (N, {model.config.hard_dim}) tensor (hard_dim of the model), got {shape}.")
    if not isinstance(accepted, torch.Tensor) or accepted.dtype != torch.bool or accepted.shape != coords.shape[:1]:
        raise ValueError(f"accepted must be a ({len(coords)},) bool tensor with one label per event.")
    if not torch.isfinite(coords).all():
        raise ValueError("coords contain NaN or inf; remove or fix those events before training.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}.")
    config = config or TrainingConfig()
    n_val = max(1, round(val_fraction * len(coords)))
    if n_val >= len(coords):
        raise ValueError(f"{len(coords)} events leave none for training with val_fraction={val_fraction}.")
    order = torch.randperm(len(coords), generator=torch.Generator().manual_seed(config.seed))
    x = coords.detach().to("cpu", model.shift.dtype)
    y = accepted.detach().cpu()
    val, train = order[:n_val], order[n_val:]
    model.fit_standardisation(x[train].to(model.shift.device))
    true_val = true_acceptance(coords[val]).double().cpu() if true_acceptance is not None else None

    def loss(m: MLPAcceptance, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(m.logits(xb), yb.to(xb.dtype))

    def plot(m: MLPAcceptance) -> dict[str, Any]:
        return {"acceptance": acceptance_figure(m, x[val], y[val], names=names, true_prob=true_val)}

    trainer = Trainer(
        model, loss, config, name=name, checkpoint_dir=checkpoint_dir, mlflow=mlflow, plot_fn=plot, progress=progress
    )
    result = trainer.fit((x[train], y[train]), (x[val], y[val]))

    prob = _predict(model, x[val])
    labels = y[val].double()
    table = calibration(prob, y[val])
    metrics = {
        "val_bce": float(F.binary_cross_entropy(prob.clamp(1e-12, 1 - 1e-12), labels)),
        "val_accuracy": float(((prob > 0.5) == y[val]).double().mean()),
        "calibration_ece": table["ece"],
        "observed_acceptance": float(labels.mean()),
        "predicted_acceptance": float(prob.mean()),
    }
    if true_val is not None:
        metrics["val_mean_abs_error_true"] = float((prob - true_val).abs().mean())
    if result.run_id is not None:
        import mlflow as mlflow_module

        client = mlflow_module.MlflowClient()
        for key, value in metrics.items():
            client.log_metric(result.run_id, key, value)
    return AcceptanceTraining(model, result, metrics, table)
