"""The shared trainer of every memzoo network: mini-batches, schedules, early stopping, checkpoints, MLflow.

Defaults follow Heimel, PhD thesis 2024 (arXiv:2310.07752 for the networks): Adam with a
one-cycle schedule rising from 1e-4 to 3e-4, batch size 1024 (Tables A.7 and A.8).
:data:`THESIS_CONFIGS` holds the settings of Tables A.7–A.11 (cosine annealing for the CFM
models, RAdam for the Transfermer).

Checkpoints never pickle (DESIGN §5): tensors (model, optimizer state, best weights, RNG state)
go to ``checkpoint.safetensors`` and everything else (epoch, scheduler state, history and the
structure of the optimizer state) to ``checkpoint.json``; :func:`flatten_state` and
:func:`unflatten_state` convert between nested state dicts and that pair.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

from memzoo.config import ConfigError, config_to_dict, make_config

__all__ = [
    "THESIS_CONFIGS",
    "Trainer",
    "TrainingConfig",
    "TrainingResult",
    "flatten_state",
    "loss_curve_figure",
    "make_scheduler",
    "thesis_config",
    "unflatten_state",
]

OPTIMIZERS = {"adam": torch.optim.Adam, "radam": torch.optim.RAdam}
SCHEDULES = ("one-cycle", "cosine", "constant")
CHECKPOINT = "checkpoint"  # file stem: checkpoint.safetensors + checkpoint.json


def _is_real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings shared by all networks (defaults: thesis Tables A.7/A.8).

    Attributes:
        optimizer: ``adam`` or ``radam``.
        lr: learning rate; for ``one-cycle`` the initial one.
        max_lr: peak learning rate of ``one-cycle`` (ignored otherwise).
        schedule: ``one-cycle`` (stepped per batch, ends at lr/1e4), ``cosine`` (annealed
            per epoch from lr towards 0) or ``constant``.
        epochs: maximal number of passes over the training data.
        batch_size: events per mini-batch.
        weight_decay: L2 penalty passed to the optimizer.
        early_stopping_patience: stop after this many epochs without a lower validation loss
            and restore the best weights; ``None`` trains all epochs.
        grad_clip: clip the global gradient norm to this value; ``None`` = no clipping.
        seed: seeds the shuffling and torch's global RNG (dropout, noise) at the start.
        device: ``cpu``, ``cuda``, ``cuda:1``, ... or ``auto`` (CUDA when available).
        checkpoint_every: write a checkpoint every this many epochs (with a checkpoint folder).
    """

    optimizer: Literal["adam", "radam"] = "adam"
    lr: float = 1e-4
    max_lr: float = 3e-4
    schedule: Literal["one-cycle", "cosine", "constant"] = "one-cycle"
    epochs: int = 10
    batch_size: int = 1024
    weight_decay: float = 0.0
    early_stopping_patience: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ConfigError(f"TrainingConfig: {message}")

        if self.optimizer not in OPTIMIZERS:
            fail(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}.")
        if self.schedule not in SCHEDULES:
            fail(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}.")
        for key in ("epochs", "batch_size", "checkpoint_every"):
            if not _is_int(getattr(self, key)) or getattr(self, key) < 1:
                fail(f"{key} must be an integer >= 1, got {getattr(self, key)!r}.")
        if not _is_int(self.seed) or self.seed < 0:
            fail(f"seed must be an integer >= 0, got {self.seed!r}.")
        for key in ("lr", "max_lr"):
            if not _is_real(getattr(self, key)) or getattr(self, key) <= 0:
                fail(f"{key} must be a positive finite number, got {getattr(self, key)!r}.")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            fail(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}.")
        patience = self.early_stopping_patience
        if patience is not None and (not _is_int(patience) or patience < 1):
            fail(f"early_stopping_patience must be None (off) or an integer >= 1, got {patience!r}.")
        if self.grad_clip is not None and (not _is_real(self.grad_clip) or self.grad_clip <= 0):
            fail(f"grad_clip must be None (off) or a positive number, got {self.grad_clip!r}.")
        if self.schedule == "one-cycle" and self.max_lr < self.lr:
            fail(f"one-cycle rises from lr to max_lr, so max_lr must be >= lr; got lr={self.lr}, max_lr={self.max_lr}.")
        if not isinstance(self.device, str):
            fail(f"device must be a string such as 'cpu', 'cuda' or 'auto', got {self.device!r}.")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError) as err:
                fail(f"device {self.device!r} is not a torch device ({err}); use 'cpu', 'cuda', 'cuda:0' or 'auto'.")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None) -> TrainingConfig:
        """Build from TOML/JSON values, rejecting unknown keys and wrong types."""
        return make_config(cls, values, owner="training")

    def resolved_device(self) -> torch.device:
        """The torch device, with ``auto`` resolved."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


#: Training settings of the thesis networks (Tables A.7–A.11); keys are network families.
THESIS_CONFIGS: dict[str, dict[str, Any]] = {
    # Table A.7 does not name the optimizer; Adam as for the other one-cycle networks.
    "cinn": {
        "optimizer": "adam",
        "lr": 1e-4,
        "max_lr": 3e-4,
        "schedule": "one-cycle",
        "batch_size": 1024,
        "epochs": 100,
    },
    "acceptance": {
        "optimizer": "adam",
        "lr": 1e-4,
        "max_lr": 3e-4,
        "schedule": "one-cycle",
        "batch_size": 1024,
        "epochs": 10,
    },
    "multiplicity": {
        "optimizer": "adam",
        "lr": 1e-4,
        "max_lr": 3e-4,
        "schedule": "one-cycle",
        "batch_size": 1024,
        "epochs": 10,
    },
    "cfm": {"optimizer": "adam", "lr": 1e-3, "max_lr": 1e-3, "schedule": "cosine", "batch_size": 16384, "epochs": 1000},
    "transfermer": {
        "optimizer": "radam",
        "lr": 1e-4,
        "max_lr": 3e-4,
        "schedule": "one-cycle",
        "batch_size": 1024,
        "epochs": 200,
    },
    "transfusion": {
        "optimizer": "adam",
        "lr": 1e-3,
        "max_lr": 1e-3,
        "schedule": "cosine",
        "batch_size": 8192,
        "epochs": 600,
    },
}


def thesis_config(network: str, **overrides: Any) -> TrainingConfig:
    """The thesis' training settings for ``network`` (a key of :data:`THESIS_CONFIGS`), with overrides."""
    if network not in THESIS_CONFIGS:
        raise ValueError(f"Unknown network {network!r}. Must be one of {sorted(THESIS_CONFIGS)}.")
    return TrainingConfig.from_dict({**THESIS_CONFIGS[network], **overrides})


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, steps_per_epoch: int) -> Any:
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
        mlflow: log to MLflow; starts a run named ``name``, nested below an active run if any.
        plot_fn: ``plot_fn(model) -> Figure | dict[str, Figure]`` logged as artifacts at the end.
        progress: tqdm progress bars; ``None`` shows them only when stderr is a terminal.
        callbacks: ``callback(epoch, metrics)`` after every epoch (1-based, after checkpointing).
        params: extra MLflow parameters (data settings, card name).

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> mse = lambda m, x, y: ((m(x) - y) ** 2).mean()
        >>> config = TrainingConfig(lr=1e-2, max_lr=1e-1, epochs=2, batch_size=8)
        >>> result = Trainer(net, mse, config, name="demo", mlflow=False).fit((torch.randn(32, 2), torch.randn(32, 1)))
        >>> result.epochs_run
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

    # -- the loop -----------------------------------------------------------------------

    def fit(self, train: Any, val: Any = None, *, resume: bool = False) -> TrainingResult:
        """Train on ``train`` and validate on ``val`` after every epoch.

        Args:
            train, val: a tensor, a tuple of tensors with equal rows, or a torch Dataset.
            resume: continue from the checkpoint in ``checkpoint_dir`` (if there is one); the
                final weights equal those of an uninterrupted run.
        """
        from tqdm import tqdm

        cfg, device = self.config, self.config.resolved_device()
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir to resume from.")
        train_set, val_set = _as_dataset(train, "train"), _as_dataset(val, "val") if val is not None else None
        model = self.model.to(device)
        steps = math.ceil(len(train_set) / cfg.batch_size)  # type: ignore[arg-type]
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = OPTIMIZERS[cfg.optimizer](trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler, per_batch = make_scheduler(optimizer, cfg, steps)
        st: dict[str, Any] = {"epoch": 0, "best_val_loss": None, "best_epoch": None, "bad_epochs": 0}
        st |= {"stopped_early": False, "run_id": None, "steps_per_epoch": steps}
        st["history"] = {"train_loss": [], "val_loss": [], "lr": []}
        best_weights: dict[str, torch.Tensor] | None = None
        if resume and (self.checkpoint_dir / f"{CHECKPOINT}.json").is_file():  # type: ignore[operator]
            st, best_weights = self._load(st, model, optimizer, scheduler, device)
        else:
            torch.manual_seed(cfg.seed)
        started = self._start_run(st, model, len(train_set), len(val_set) if val_set is not None else 0)  # type: ignore[arg-type]
        try:
            bar = tqdm(total=cfg.epochs, initial=st["epoch"], desc=self.name, disable=not self.progress)
            while st["epoch"] < cfg.epochs and not st["stopped_early"]:
                # a generator per epoch, seeded by (seed, epoch): a resumed run shuffles identically
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + st["epoch"])
                model.train()
                tick = time.perf_counter()
                total, count, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
                for batch in tqdm(
                    _loader(train_set, cfg.batch_size, g), total=steps, leave=False, disable=not self.progress
                ):
                    batch = tuple(
                        t.to(device, non_blocking=True)
                        for t in (batch if isinstance(batch, list | tuple) else (batch,))
                    )
                    loss = self.loss_fn(model, *batch)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"{self.name}: non-finite training loss {loss.item()} in epoch {st['epoch'] + 1}; lower "
                            f"the learning rate, set grad_clip or check the inputs for NaN/inf."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
                    lr = optimizer.param_groups[0]["lr"]
                    optimizer.step()
                    if per_batch:
                        scheduler.step()
                    total, count = total + loss.item() * len(batch[0]), count + len(batch[0])
                if scheduler is not None and not per_batch:
                    scheduler.step()
                val_loss = self.evaluate(val_set) if val_set is not None else math.nan
                st["epoch"] += 1
                metrics = {"train_loss": total / count, "val_loss": val_loss, "lr": lr}
                for key, value in metrics.items():
                    st["history"][key].append(value)
                if val_set is not None:
                    if st["best_val_loss"] is None or val_loss < st["best_val_loss"]:
                        st |= {"best_val_loss": val_loss, "best_epoch": st["epoch"], "bad_epochs": 0}
                        if cfg.early_stopping_patience is not None:
                            best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        st["bad_epochs"] += 1
                    patience = cfg.early_stopping_patience
                    st["stopped_early"] = patience is not None and st["bad_epochs"] >= patience
                if started:
                    import mlflow

                    logged = {k: v for k, v in metrics.items() if math.isfinite(v)}
                    mlflow.log_metrics({**logged, "epoch_time_s": time.perf_counter() - tick}, step=st["epoch"])
                done = st["stopped_early"] or st["epoch"] == cfg.epochs
                if self.checkpoint_dir is not None and (st["epoch"] % cfg.checkpoint_every == 0 or done):
                    self._save(st, model, optimizer, scheduler, best_weights)
                bar.update()
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})
                for callback in self.callbacks:
                    callback(st["epoch"], metrics)
            bar.close()
            if best_weights is not None:
                model.load_state_dict(best_weights)
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

    @torch.no_grad()
    def evaluate(self, data: Any) -> float:
        """Mean loss over ``data`` (same forms as :meth:`fit`), model in eval mode."""
        dataset = _as_dataset(data, "data")
        device = self.config.resolved_device()
        self.model.eval()
        total, count = 0.0, 0
        for batch in _loader(dataset, self.config.batch_size, None):
            batch = tuple(
                t.to(device, non_blocking=True) for t in (batch if isinstance(batch, list | tuple) else (batch,))
            )
            total += self.loss_fn(self.model, *batch).item() * len(batch[0])
            count += len(batch[0])
        self.model.train()
        return total / count

    # -- checkpoints ----------------------------------------------------------------------

    def _save(self, st: dict, model: Any, optimizer: Any, scheduler: Any, best: dict | None) -> None:
        folder = self.checkpoint_dir
        folder.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        tensors = {f"model/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        tensors |= {f"best/{k}": v.to("cpu", copy=True).contiguous() for k, v in (best or {}).items()}
        # RNG state too, so that dropout or noise after a resume continues the same stream
        tensors["rng/cpu"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.config.resolved_device().type == "cuda":
            tensors["rng/cuda"] = torch.cuda.get_rng_state(self.config.resolved_device())
        meta = {"format": "memzoo-training-checkpoint", "format_version": 1, "name": self.name, **st}
        meta["has_best"] = best is not None
        meta["config"] = config_to_dict(self.config)
        meta["optimizer"] = flatten_state(optimizer.state_dict(), tensors, "optimizer")
        meta["scheduler"] = flatten_state(scheduler.state_dict(), tensors, "scheduler") if scheduler else None
        # write to temporary names, then rename: a crash mid-write leaves the last checkpoint intact;
        # the epoch in the safetensors metadata catches a crash between the two renames
        weights, manifest = folder / f"{CHECKPOINT}.safetensors", folder / f"{CHECKPOINT}.json"  # type: ignore[operator]
        save_file(tensors, f"{weights}.tmp", metadata={"epoch": str(st["epoch"])})
        Path(f"{manifest}.tmp").write_text(json.dumps(meta, indent=1))
        os.replace(f"{weights}.tmp", weights)
        os.replace(f"{manifest}.tmp", manifest)

    def _load(self, st: dict, model: Any, optimizer: Any, scheduler: Any, device: torch.device) -> tuple[dict, Any]:
        from safetensors import safe_open

        folder = self.checkpoint_dir
        meta = json.loads((folder / f"{CHECKPOINT}.json").read_text())  # type: ignore[operator]
        weights = folder / f"{CHECKPOINT}.safetensors"  # type: ignore[operator]
        with safe_open(str(weights), "pt") as f:
            tagged = (f.metadata() or {}).get("epoch")
        if meta.get("format") != "memzoo-training-checkpoint" or tagged != str(meta["epoch"]):
            raise ValueError(f"{folder} holds an incomplete or foreign checkpoint; delete it to start afresh.")
        if meta["steps_per_epoch"] != st["steps_per_epoch"] or meta["config"] != config_to_dict(self.config):
            raise ValueError(
                f"The checkpoint in {folder} was written with other training settings or data size "
                f"({meta['config']}, {meta['steps_per_epoch']} batches per epoch); resume with the same ones."
            )
        tensors = load_file(str(weights))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
        optimizer.load_state_dict(unflatten_state(meta["optimizer"], tensors))
        if scheduler is not None:
            scheduler.load_state_dict(unflatten_state(meta["scheduler"], tensors))
        torch.set_rng_state(tensors["rng/cpu"])
        if "rng/cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng/cuda"], device)
        best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best/")} if meta["has_best"] else None
        return {key: meta[key] for key in st}, best

    # -- MLflow -----------------------------------------------------------------------------

    def _start_run(self, st: dict, model: Any, n_train: int, n_val: int) -> bool:
        if not self.use_mlflow:
            return False
        import mlflow

        from memzoo.tracking import configure_tracking

        if not os.environ.get("MLFLOW_TRACKING_URI") and not mlflow.is_tracking_uri_set():
            configure_tracking()
        nested = mlflow.active_run() is not None
        if st["run_id"]:
            try:  # a resumed training continues its run
                mlflow.start_run(run_id=st["run_id"], nested=nested)
                return True
            except mlflow.exceptions.MlflowException:
                pass
        st["run_id"] = mlflow.start_run(run_name=self.name, nested=nested).info.run_id
        params = {f"train.{k}": v for k, v in config_to_dict(self.config).items()}
        model_config = getattr(model, "config", None)
        if is_dataclass(model_config):
            params |= {f"model.{f.name}": getattr(model_config, f.name) for f in fields(model_config)}
        params |= {
            "model.class": type(model).__qualname__,
            "model.parameters": sum(p.numel() for p in model.parameters()),
        }
        params |= {"data.n_train": n_train, "data.n_val": n_val, **self.params}
        mlflow.log_params(params)
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
