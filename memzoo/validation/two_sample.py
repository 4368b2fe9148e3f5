"""Classifier two-sample test of generated against true reco events.

An MLP trained to tell generated from true events on a train split; by eq. 3.19 of Heimel,
PhD thesis 2024 (Secs. 3.1.3 and 4.4) it learns p_gen/(p_gen + p_true), so its ROC area on a
held-out split is 0.5 when the two distributions agree and grows with any difference in the
joint distribution, correlations included. The error is Hanley & McNeil's
(:func:`memzoo.inference.auc_error`), the spread over test events; retraining noise is not included.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from memzoo.inference.discriminant import auc, auc_error
from memzoo.validation.features import FeatureSet, _check_compatible

__all__ = ["ClassifierConfig", "TwoSampleResult", "classifier_two_sample_test"]


@dataclass(frozen=True)
class ClassifierConfig:
    """The MLP two-sample classifier and its training.

    Attributes:
        hidden, layers: width and number of hidden layers (SiLU).
        epochs, batch_size, lr, weight_decay: Adam training; the state with the lowest
            validation loss is kept, training stops after ``patience`` epochs without one.
        test_fraction: share of each sample held out for the AUC.
        val_fraction: share of the training part used for early stopping.
        seed: splits, initialisation and batches.
    """

    hidden: int = 64
    layers: int = 3
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 8
    test_fraction: float = 0.5
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"ClassifierConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"ClassifierConfig.{name} must lie in (0, 1), got {getattr(self, name)}.")


@dataclass
class TwoSampleResult:
    """Outcome of :func:`classifier_two_sample_test` (generated events are the positive class).

    Attributes:
        auc, auc_error: held-out ROC area and its Hanley–McNeil error.
        n_test, n_train: events per sample (true, generated) in the test and training parts.
        epochs, best_epoch, val_loss: training length, the kept epoch and its validation loss.
        features: the input feature names.
        test_rows: (true, generated) row indices of the test events in the inputs.
        scores: (true, generated) classifier logits of the test events.
    """

    auc: float
    auc_error: float
    n_test: tuple[int, int]
    n_train: tuple[int, int]
    epochs: int
    best_epoch: int
    val_loss: float
    features: tuple[str, ...]
    test_rows: tuple[torch.Tensor, torch.Tensor]
    scores: tuple[torch.Tensor, torch.Tensor]

    def as_dict(self) -> dict:
        """The numbers, JSON-ready (without per-event arrays)."""
        out = asdict(self)
        for key in ("test_rows", "scores"):
            out.pop(key)
        out["features"] = list(self.features)
        return out


def _inputs(sample, name: str) -> torch.Tensor:
    x = sample.network_inputs() if isinstance(sample, FeatureSet) else sample
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"The {name} sample must be a FeatureSet or a (B, F) tensor, got {getattr(x, 'shape', x)!r}.")
    bad = ~torch.isfinite(x).all(-1)
    if bad.any():
        raise ValueError(
            f"The {name} sample has {int(bad.sum())} events with non-finite features (first: row "
            f"{int(bad.nonzero()[0, 0])}); drop or fix them before the two-sample test."
        )
    return x.double()


def _split(n: int, config: ClassifierConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    n_test = max(1, round(config.test_fraction * n))
    n_val = max(1, round(config.val_fraction * (n - n_test)))
    return perm[n_val : n - n_test], perm[:n_val], perm[n - n_test :]


def classifier_two_sample_test(
    true, generated, config: ClassifierConfig | None = None, device: str | torch.device | None = None
) -> TwoSampleResult:
    """Train an MLP to tell ``generated`` from ``true`` events; its held-out AUC (0.5: no difference).

    Args:
        true, generated: :class:`FeatureSet` s of one layout, or ``(B, F)`` tensors of features.
        config: the classifier and its training (default :class:`ClassifierConfig`).
        device: where to train (default CPU).
    """
    config = config or ClassifierConfig()
    if isinstance(true, FeatureSet) or isinstance(generated, FeatureSet):
        _check_compatible(true, generated, "classifier_two_sample_test")
    xa, xb = _inputs(true, "true"), _inputs(generated, "generated")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"The samples have {xa.shape[1]} and {xb.shape[1]} features; they must agree.")
    for name, x in (("true", xa), ("generated", xb)):
        if len(x) < 10:
            raise ValueError(f"The {name} sample has {len(x)} events; the two-sample test needs at least 10 each.")
    g = torch.Generator().manual_seed(config.seed)
    (ta, va, sa), (tb, vb, sb) = _split(len(xa), config, g), _split(len(xb), config, g)
    dev = torch.device(device or "cpu")

    def stack(ia, ib):
        x = torch.cat([xa[ia], xb[ib]])
        y = torch.cat([torch.zeros(len(ia)), torch.ones(len(ib))])
        w = torch.cat([torch.full((len(ia),), 0.5 / len(ia)), torch.full((len(ib),), 0.5 / len(ib))])
        return x, y.to(dev), (w * len(w)).to(dev)  # each class weighs half

    x_train, y_train, w_train = stack(ta, tb)
    mean, std = x_train.mean(0), x_train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    norm = lambda x: ((x - mean) / std).float().to(dev)
    x_train = norm(x_train)
    x_val, y_val, w_val = stack(va, vb)
    x_val = norm(x_val)
    torch.manual_seed(config.seed)
    width, dims = config.hidden, [x_train.shape[1]] + [config.hidden] * config.layers
    net = nn.Sequential(*itertools.chain(*((nn.Linear(i, o), nn.SiLU()) for i, o in itertools.pairwise(dims))))
    net.append(nn.Linear(width, 1))
    net.to(dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    best, best_state, best_epoch, epoch = math.inf, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        for batch in torch.randperm(len(x_train), generator=g).split(config.batch_size):
            batch = batch.to(dev)
            loss = (loss_fn(net(x_train[batch])[:, 0], y_train[batch]) * w_train[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            val = float((loss_fn(net(x_val)[:, 0], y_val) * w_val).mean())
        if val < best - 1e-6:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    net.load_state_dict(best_state)
    with torch.no_grad():
        score_a, score_b = net(norm(xa[sa]))[:, 0].double().cpu(), net(norm(xb[sb]))[:, 0].double().cpu()
    area = auc(score_b, score_a)
    return TwoSampleResult(
        auc=area,
        auc_error=auc_error(area, len(sb), len(sa)),
        n_test=(len(sa), len(sb)),
        n_train=(len(ta) + len(va), len(tb) + len(vb)),
        epochs=epoch,
        best_epoch=best_epoch,
        val_loss=best,
        features=tuple(true.names) if isinstance(true, FeatureSet) else tuple(f"x{i}" for i in range(xa.shape[1])),
        test_rows=(sa, sb),
        scores=(score_a, score_b),
    )
