"""The shared trainer of every memzoo network: mini-batches, schedules, early stopping, checkpoints, MLflow.

Settings live in :class:`~memzoo.training_config.TrainingConfig`, whose defaults follow Heimel,
PhD thesis 2024 (arXiv:2310.07752 for the networks): Adam, one-cycle from 1e-4 to 3e-4, batch
size 1024 (Tables A.7 and A.8); :data:`THESIS_CONFIGS` has Tables A.7–A.11. One-cycle is stepped
per batch, cosine annealing per epoch (both from ``torch.optim.lr_scheduler``).

Checkpoints never pickle (DESIGN §5): :mod:`memzoo.checkpoints` writes tensors to safetensors
and the rest to JSON. A resumed training reproduces the weights of an uninterrupted one
bit for bit: shuffling is seeded per epoch and the RNG state travels with the checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from memzoo.checkpoints import has_checkpoint, load_checkpoint, save_checkpoint
from memzoo.config import config_to_dict
from memzoo.training_config import OPTIMIZERS, THESIS_CONFIGS, TrainingConfig, thesis_config

__all__ = [
    "THESIS_CONFIGS",
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "loss_curve_figure",
    "make_scheduler",
    "thesis_config",
]


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, steps_per_epoch: int) -> tuple[Any, bool]:
    """The learning-rate scheduler of ``config``: ``(scheduler, per_batch)`` or ``(None, False)``.

    One-cycle is stepped after every batch (its cycle spans all batches of all epochs), cosine
    annealing after every epoch.
    """
    sched = torch.optim.lr_scheduler
    if config.schedule == "one-cycle":
        total = config.epochs * steps_per_epoch
        return sched.OneCycleLR(optimizer, config.max_lr, total_steps=total, div_factor=config.max_lr / config.lr), True
    if config.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=config.epochs), False
    return None, False


# ---------------------------------------------------------------------------------------
# results and the trainer
# ---------------------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        best_val_loss: lowest validation loss (``None`` without validation data).
        best_epoch: 1-based epoch of ``best_val_loss``.
        epochs_run: epochs completed in total (including those before a resume).
        stopped_early: whether early stopping ended the training.
        history: per-epoch ``train_loss``, ``val_loss`` (NaN without validation data) and ``lr``
            (the rate of the epoch's last batch).
        run_id: the MLflow run, if one was used.
    """

    best_val_loss: float | None
    best_epoch: int | None
    epochs_run: int
    stopped_early: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    run_id: str | None = None


def loss_curve_figure(history: Mapping[str, Sequence[float]], title: str = "") -> Any:
    """A matplotlib ``Figure`` of training and validation loss per epoch (no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="train")
    if any(math.isfinite(v) for v in history.get("val_loss", [])):
        ax.plot(epochs, history["val_loss"], label="validation")
    values = [v for key in ("train_loss", "val_loss") for v in history.get(key, []) if math.isfinite(v)]
    if values and min(values) > 0:  # negative log-likelihoods can be negative: log scale only when possible
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    return fig


def _as_dataset(data: Any, what: str) -> torch.utils.data.Dataset:
    if isinstance(data, torch.Tensor):
        data = (data,)
    if isinstance(data, tuple | list):
        if not data or not all(isinstance(t, torch.Tensor) for t in data):
            raise TypeError(f"{what} must be a tensor, a tuple of tensors or a torch Dataset.")
        if len({len(t) for t in data}) != 1:
            raise ValueError(f"{what} tensors must have the same number of rows, got {[len(t) for t in data]}.")
        data = TensorDataset(*data)
    if not isinstance(data, torch.utils.data.Dataset):
        raise TypeError(f"{what} must be a tensor, a tuple of tensors or a torch Dataset, got {type(data).__name__}.")
    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError(f"{what} is empty.")
    return data


def _loader(data: torch.utils.data.Dataset, batch_size: int, generator: torch.Generator | None) -> DataLoader:
    """Shuffled with ``generator``, sequential without; TensorDatasets are sliced a batch at a time."""
    rows = RandomSampler(data, generator=generator) if generator is not None else SequentialSampler(data)
    if isinstance(data, TensorDataset):
        # fetching a whole index list at once avoids a per-event collate (orders of magnitude faster)
        return DataLoader(
            data, sampler=BatchSampler(rows, batch_size, drop_last=False), batch_size=None, generator=generator
        )
    return DataLoader(data, sampler=rows, batch_size=batch_size, generator=generator)


def _to(batch: Any, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(t.to(device, non_blocking=True) for t in (batch if isinstance(batch, list | tuple) else (batch,)))


class Trainer:
    """Mini-batch training of ``model`` by minimising ``loss_fn`` (shared by every network).

    Args:
        model: the network; moved to ``config.device``.
        loss_fn: ``loss_fn(model, *batch) -> scalar`` mean loss of a batch of tensors (the
            columns of the training data, on the device).
        config: :class:`TrainingConfig` (defaults: thesis Table A.8).
        name: run name in MLflow and label of the progress bar.
        checkpoint_dir: folder for ``checkpoint.safetensors`` + ``checkpoint.json``; ``None``
            writes none.
        mlflow: log to MLflow: a run named ``name``, nested below the active run if there is one.
        plot_fn: ``plot_fn(model) -> Figure | dict[str, Figure]``, logged as artifacts at the end.
        progress: tqdm progress bars; ``None`` shows them only when stderr is a terminal.
        callbacks: ``callback(epoch, metrics)`` after every epoch (1-based, after checkpointing).
        params: extra MLflow parameters (data settings, card name).

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> mse = lambda m, x, y: ((m(x) - y) ** 2).mean()
        >>> config = TrainingConfig(lr=1e-2, max_lr=1e-1, epochs=2, batch_size=8)
        >>> data = (torch.randn(32, 2), torch.randn(32, 1))
        >>> Trainer(net, mse, config, name="demo", mlflow=False).fit(data).epochs_run
        2
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        config: TrainingConfig | None = None,
        *,
        name: str,
        checkpoint_dir: str | Path | None = None,
        mlflow: bool = True,
        plot_fn: Callable[[torch.nn.Module], Any] | None = None,
        progress: bool | None = None,
        callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if config is not None and not isinstance(config, TrainingConfig):
            raise TypeError(f"config must be a TrainingConfig (or None for the defaults), got {type(config).__name__}.")
        self.model, self.loss_fn, self.config, self.name = model, loss_fn, config or TrainingConfig(), name
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.use_mlflow, self.plot_fn, self.callbacks = mlflow, plot_fn, list(callbacks)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.params = dict(params or {})
        self.device = self.config.resolved_device()

    def fit(self, train: Any, val: Any = None, *, resume: bool = False) -> TrainingResult:
        """Train on ``train``, validating on ``val`` after every epoch.

        Args:
            train, val: a tensor, a tuple of tensors with equal rows, or a torch Dataset.
            resume: continue from the checkpoint in ``checkpoint_dir`` if there is one; the final
                weights equal those of an uninterrupted run.
        """
        from tqdm import tqdm

        cfg = self.config
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir to resume from.")
        train_set = _as_dataset(train, "train")
        val_set = _as_dataset(val, "val") if val is not None else None
        model = self.model.to(self.device)
        steps = math.ceil(len(train_set) / cfg.batch_size)  # type: ignore[arg-type]
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = OPTIMIZERS[cfg.optimizer](trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler, per_batch = make_scheduler(optimizer, cfg, steps)
        st: dict[str, Any] = {"epoch": 0, "best_val_loss": None, "best_epoch": None, "bad_epochs": 0}
        st |= {"stopped_early": False, "run_id": None, "steps_per_epoch": steps, "config": config_to_dict(cfg)}
        st["history"] = {"train_loss": [], "val_loss": [], "lr": []}
        best: dict[str, torch.Tensor] | None = None
        if resume and has_checkpoint(self.checkpoint_dir):  # type: ignore[arg-type]
            meta, extra = load_checkpoint(
                self.checkpoint_dir, model=model, optimizer=optimizer, scheduler=scheduler, device=self.device
            )  # type: ignore[arg-type]
            if (meta["steps_per_epoch"], meta["config"]) != (steps, st["config"]):
                raise ValueError(
                    f"The checkpoint in {self.checkpoint_dir} was written with other settings or data "
                    f"({meta['config']}, {meta['steps_per_epoch']} batches per epoch); resume with the same ones."
                )
            st, best = {k: meta[k] for k in st}, (extra or None)
        else:
            torch.manual_seed(cfg.seed)
        started = self._start_run(st, model, len(train_set), len(val_set) if val_set is not None else 0)  # type: ignore[arg-type]
        try:
            bar = tqdm(total=cfg.epochs, initial=st["epoch"], desc=self.name, disable=not self.progress)
            while st["epoch"] < cfg.epochs and not st["stopped_early"]:
                tick = time.perf_counter()
                train_loss, lr = self._epoch(train_set, st["epoch"], optimizer, scheduler if per_batch else None)
                if scheduler is not None and not per_batch:
                    scheduler.step()
                metrics = {"train_loss": train_loss, "val_loss": math.nan, "lr": lr}
                if val_set is not None:
                    metrics["val_loss"] = self.evaluate(val_set)
                st["epoch"] += 1
                for key, value in metrics.items():
                    st["history"][key].append(value)
                if val_set is not None and (st["best_val_loss"] is None or metrics["val_loss"] < st["best_val_loss"]):
                    st |= {"best_val_loss": metrics["val_loss"], "best_epoch": st["epoch"], "bad_epochs": 0}
                    if cfg.early_stopping_patience is not None:
                        best = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif val_set is not None:
                    st["bad_epochs"] += 1
                    st["stopped_early"] = st["bad_epochs"] >= (cfg.early_stopping_patience or math.inf)
                if started:
                    import mlflow

                    logged = {k: v for k, v in metrics.items() if math.isfinite(v)}
                    mlflow.log_metrics({**logged, "epoch_time_s": time.perf_counter() - tick}, step=st["epoch"])
                done = st["stopped_early"] or st["epoch"] == cfg.epochs
                if self.checkpoint_dir is not None and (st["epoch"] % cfg.checkpoint_every == 0 or done):
                    save_checkpoint(
                        self.checkpoint_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                        meta={**st, "name": self.name}, extra=best, device=self.device,
                    )  # fmt: skip
                bar.update()
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
                for callback in self.callbacks:
                    callback(st["epoch"], metrics)
            bar.close()
            if best is not None:  # early stopping: hand back the weights of the best validation loss
                model.load_state_dict(best)
            result = TrainingResult(
                st["best_val_loss"], st["best_epoch"], st["epoch"], st["stopped_early"], st["history"], st["run_id"]
            )
            if started:
                self._log_final(result, model)
        except BaseException as err:
            if started:
                import mlflow

                mlflow.end_run(status="KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        if started:
            import mlflow

            mlflow.end_run()
        return result

    def _epoch(self, data: Any, epoch: int, optimizer: Any, batch_scheduler: Any) -> tuple[float, float]:
        """One pass over ``data``; returns the mean training loss and the last batch's learning rate."""
        from tqdm import tqdm

        cfg, model = self.config, self.model
        # a generator per epoch, seeded by (seed, epoch): a resumed run shuffles identically
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        loader = _loader(data, cfg.batch_size, g)
        model.train()
        total, count, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
        for batch in tqdm(loader, total=len(loader), leave=False, disable=not self.progress):
            batch = _to(batch, self.device)
            loss = self.loss_fn(model, *batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{self.name}: non-finite training loss {loss.item()} in epoch {epoch + 1}; lower the "
                    f"learning rate, set grad_clip or check the inputs for NaN/inf."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if batch_scheduler is not None:
                batch_scheduler.step()
            total, count = total + loss.item() * len(batch[0]), count + len(batch[0])
        return total / count, lr

    @torch.no_grad()
    def evaluate(self, data: Any) -> float:
        """Mean loss over ``data`` (same forms as :meth:`fit`) with the model in eval mode."""
        dataset = _as_dataset(data, "data")
        self.model.eval()
        total, count = 0.0, 0
        for batch in _loader(dataset, self.config.batch_size, None):
            batch = _to(batch, self.device)
            total += self.loss_fn(self.model, *batch).item() * len(batch[0])
            count += len(batch[0])
        self.model.train()
        return total / count

    # -- MLflow ---------------------------------------------------------------------------

    def _start_run(self, st: dict, model: Any, n_train: int, n_val: int) -> bool:
        if not self.use_mlflow:
            return False
        import mlflow
        from mlflow.exceptions import MlflowException

        from memzoo.tracking import configure_tracking

        if not os.environ.get("MLFLOW_TRACKING_URI") and not mlflow.is_tracking_uri_set():
            configure_tracking()
        nested = mlflow.active_run() is not None
        if st["run_id"]:
            try:  # a resumed training continues its run
                mlflow.start_run(run_id=st["run_id"], nested=nested)
                return True
            except MlflowException:
                pass
        st["run_id"] = mlflow.start_run(run_name=self.name, nested=nested).info.run_id
        params = {f"train.{k}": v for k, v in config_to_dict(self.config).items()}
        model_config = getattr(model, "config", None)
        if is_dataclass(model_config):
            params |= {f"model.{f.name}": getattr(model_config, f.name) for f in fields(model_config)}
        n_weights = sum(p.numel() for p in model.parameters())
        params |= {"model.class": type(model).__qualname__, "model.parameters": n_weights}
        mlflow.log_params({**params, "data.n_train": n_train, "data.n_val": n_val, **self.params})
        return True

    def _log_final(self, result: TrainingResult, model: Any) -> None:
        import mlflow

        if result.best_val_loss is not None:
            mlflow.log_metrics({"best_val_loss": result.best_val_loss, "best_epoch": result.best_epoch})
        mlflow.log_metric("epochs_run", result.epochs_run)
        mlflow.log_figure(loss_curve_figure(result.history, self.name), "plots/loss_curve.png")
        if self.plot_fn is not None:
            model.eval()
            figures = self.plot_fn(model)
            model.train()
            for key, fig in (figures if isinstance(figures, Mapping) else {self.name: figures}).items():
                mlflow.log_figure(fig, f"plots/{key}.png")
