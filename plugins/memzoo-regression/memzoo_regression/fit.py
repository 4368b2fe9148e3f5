"""Training loop of the surrogate on (event, θ) rows with the chunked loader.

Settings are memzoo's :class:`~memzoo.training_config.TrainingConfig` (optimizer, one-cycle or
cosine schedule via :func:`memzoo.training.make_scheduler`, early stopping with the best weights
restored, gradient clipping, device); Bury & Delaere used Adam, batch size 512, initial learning
rate 10⁻³, a scheduler and early stopping at the validation plateau before 100 epochs
(arXiv:2008.10949, Table 2). Per-epoch losses go to MLflow (a run nested below the active one).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import torch

from memzoo.training import loss_curve_figure, make_scheduler
from memzoo.training_config import OPTIMIZERS, TrainingConfig
from memzoo_regression.loader import ChunkedTensorLoader
from memzoo_regression.training_data import RegressionRows

__all__ = ["FitResult", "evaluate_loss", "fit_regression"]


@dataclass
class FitResult:
    """Outcome of :func:`fit_regression` (losses on the standardised target)."""

    best_val_loss: float | None
    best_epoch: int | None
    epochs_run: int
    stopped_early: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    run_id: str | None = None


@torch.no_grad()
def evaluate_loss(model: torch.nn.Module, rows: RegressionRows, batch_size: int = 65536) -> float:
    """Weighted mean loss of ``model`` over ``rows`` (eval mode)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    total, norm = 0.0, 0.0
    for features, theta, target, weight in ChunkedTensorLoader(
        *rows.tensors(), batch_size=batch_size, shuffle=False, device=dev
    ):
        w = float(weight.sum())
        total += float(model.loss(features, theta, target, weight)) * w
        norm += w
    model.train(was_training)
    return total / max(norm, 1e-30)


def fit_regression(
    model: torch.nn.Module,
    train: RegressionRows,
    val: RegressionRows | None = None,
    config: TrainingConfig | None = None,
    *,
    name: str = "regression",
    chunk_batches: int = 64,
    mlflow: bool = True,
    progress: bool = False,
) -> FitResult:
    """Minimise ``model.loss(features, theta, target, weight)`` over ``train``.

    The model's preprocessing must already be fitted (``model.fit_preprocessing``).
    """
    from tqdm import tqdm

    cfg = config or TrainingConfig()
    if len(train) == 0:
        raise ValueError("No valid training rows: every target is invalid or the split left none.")
    device = cfg.resolved_device()
    model.to(device)
    loader = ChunkedTensorLoader(
        *train.tensors(), batch_size=cfg.batch_size, chunk_batches=chunk_batches, seed=cfg.seed, device=device
    )
    torch.manual_seed(cfg.seed)
    optimizer = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler, per_batch = make_scheduler(optimizer, cfg, len(loader))
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "lr": []}
    best, best_loss, best_epoch, bad, stopped = None, None, None, 0, False
    run_id = _start_run(name, model, cfg, len(train), len(val) if val is not None else 0) if mlflow else None
    start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=name, disable=not progress)
    for epoch in bar:
        model.train()
        total, norm = 0.0, 0.0
        for features, theta, target, weight in loader:
            loss = model.loss(features, theta, target, weight)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{name}: non-finite training loss in epoch {epoch + 1}; lower the learning rate or set grad_clip."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if per_batch:
                scheduler.step()
            w = float(weight.sum())
            total, norm = total + float(loss.detach()) * w, norm + w
        if scheduler is not None and not per_batch:
            scheduler.step()
        val_loss = evaluate_loss(model, val) if val is not None and len(val) else math.nan
        history["train_loss"].append(total / norm)
        history["val_loss"].append(val_loss)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        bar.set_postfix(train=f"{total / norm:.4g}", val=f"{val_loss:.4g}")
        if run_id is not None:
            import mlflow as mlf

            logged = {k: v[-1] for k, v in history.items() if math.isfinite(v[-1])}
            mlf.log_metrics(logged, step=epoch + 1)
        if math.isfinite(val_loss) and (best_loss is None or val_loss < best_loss):
            best_loss, best_epoch, bad = val_loss, epoch + 1, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif math.isfinite(val_loss):
            bad += 1
            if cfg.early_stopping_patience is not None and bad >= cfg.early_stopping_patience:
                stopped = True
                break
    if best is not None and cfg.early_stopping_patience is not None:
        model.load_state_dict(best)
    result = FitResult(best_loss, best_epoch, len(history["train_loss"]), stopped, history)
    result.seconds, result.run_id = time.perf_counter() - start, run_id
    if run_id is not None:
        import mlflow as mlf

        if best_loss is not None:
            mlf.log_metrics({"best_val_loss": best_loss, "best_epoch": best_epoch})
        mlf.log_metric("epochs_run", result.epochs_run)
        mlf.log_figure(loss_curve_figure(history, name), "plots/loss_curve.png")
        mlf.end_run()
    return result


def _start_run(name: str, model: torch.nn.Module, cfg: TrainingConfig, n_train: int, n_val: int) -> str:
    import mlflow as mlf

    from memzoo.config import config_to_dict
    from memzoo.tracking import configure_tracking

    if not os.environ.get("MLFLOW_TRACKING_URI") and not mlf.is_tracking_uri_set():
        configure_tracking()
    run = mlf.start_run(run_name=name, nested=mlf.active_run() is not None)
    params = {f"train.{k}": v for k, v in config_to_dict(cfg).items()}
    params |= {f"model.{k}": v for k, v in config_to_dict(model.config).items()}
    params |= {"model.parameters": sum(p.numel() for p in model.parameters()), "data.n_train": n_train}
    mlf.log_params({**params, "data.n_val": n_val})
    return run.info.run_id
