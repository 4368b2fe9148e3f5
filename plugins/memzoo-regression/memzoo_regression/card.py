"""Training a regression surrogate from a model card (``memzoo train registry/<process>/regression.toml``).

The card's ``[data]`` table names the training data instead of simulating it::

    [data]
    dataset = "runs/dy.h5"                      # the events the results refer to
    results = ["runs/dy-gaussian.h5"]           # memzoo integrate output(s); or tables
                                                # {file = ..., dataset = ..., source = 1}
    max_std = 0.1                               # invalid above this error of ln p
    split = [0.7, 0.1, 0.2]                     # train / validation / test events (paper: 70/10/20)
    holdout_theta = { sin2theta_eff = [0.23] }  # θ points kept out of training (interpolation test)
    balance = true                              # equal total weight per source (process)
    chunk_batches = 64                          # batches per chunk of the loader

or ``[data.external]`` with ``path``, ``tree`` (ROOT only), ``mapping`` (the reco mapping of
:mod:`memzoo.importers`), ``weights`` (:func:`~memzoo_regression.training_data.from_external`)
and ``max_rel_error``. ``[training.likelihood]`` holds the
:class:`~memzoo.training_config.TrainingConfig` and ``[training] seed`` the split seed.
"""

from __future__ import annotations

from typing import Any

import torch

from memzoo.training_config import TrainingConfig
from memzoo_regression.fit import fit_regression
from memzoo_regression.metrics import regression_metrics
from memzoo_regression.training_data import (
    RegressionRows,
    RegressionTable,
    balance_weights,
    from_external,
    from_results,
    split_events,
)

__all__ = ["DATA_KEYS", "fit_from_card", "load_tables"]

DATA_KEYS = {"dataset", "results", "external", "max_std", "split", "holdout_theta", "balance", "chunk_batches"}


def load_tables(data: dict[str, Any], process: Any, where: str) -> list[RegressionTable]:
    """The card's training tables (one per results file or external file)."""
    unknown = sorted(set(data) - DATA_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown [data] key(s) {unknown} for a regression card; known: {sorted(DATA_KEYS)}.")
    if ("results" in data) == ("external" in data):
        raise ValueError(f"{where}: a regression card's [data] needs either results (+ dataset) or [data.external].")
    if "external" in data:
        ext = dict(data["external"])
        missing = sorted({"path", "mapping", "weights"} - set(ext))
        if missing:
            raise ValueError(f"{where}: [data.external] lacks {missing}.")
        return [
            from_external(
                ext["path"], ext["mapping"], ext["weights"], process=process, tree=ext.get("tree"),
                max_rel_error=ext.get("max_rel_error"), source=int(ext.get("source", 0)),
            )
        ]  # fmt: skip
    tables = []
    for i, item in enumerate(data["results"] if isinstance(data["results"], list) else [data["results"]]):
        spec = {"file": item} if isinstance(item, str) else dict(item)
        dataset = spec.get("dataset", data.get("dataset"))
        if dataset is None:
            raise ValueError(f"{where}: results {spec.get('file')!r} need a dataset (in [data] or next to the file).")
        tables.append(
            from_results(
                spec["file"], dataset, max_std=float(data.get("max_std", 0.1)), source=int(spec.get("source", i))
            )
        )
    return tables


def _holdout_columns(table: RegressionTable, holdout: dict[str, list[float]], process: Any) -> torch.Tensor:
    """Bool ``(T,)``: θ columns equal (to 1e-9) to a held-out point."""
    names = [p.name for p in process.parameters]
    out = torch.zeros(len(table.theta), dtype=torch.bool)
    for name, values in holdout.items():
        if name not in names:
            raise ValueError(f"holdout_theta names {name!r}; the process has parameters {names}.")
        column = table.theta[:, names.index(name)]
        for v in values:
            out |= (column - float(v)).abs() < 1e-9
    return out


def fit_from_card(model: Any, card: Any, *, progress: bool = False) -> dict[str, float]:
    """Train ``model`` on the card's data; returns validation, test and held-out-θ metrics of I."""
    import memzoo

    process = memzoo.create("process", card.process, **card.process_config)
    data = dict(card.tables.get("data", {}))
    where = str(card.path)
    tables = load_tables(data, process, where)
    if tables[0].theta.shape[1] != model.config.n_parameters:
        raise ValueError(
            f"{where}: the training data have {tables[0].theta.shape[1]} parameter(s) but the likelihood "
            f"config has n_parameters = {model.config.n_parameters}."
        )
    seed = int(card.tables.get("training", {}).get("seed", 0))
    split = [float(f) for f in data.get("split", [0.7, 0.1, 0.2])]
    if len(split) != 3:
        raise ValueError(f"{where}: [data] split must be [train, validation, test] fractions, got {split}.")
    holdout = {k: list(v) if isinstance(v, list) else [v] for k, v in dict(data.get("holdout_theta", {})).items()}
    parts: dict[str, list[RegressionRows]] = {"train": [], "val": [], "test": [], "holdout": []}
    sources = torch.cat([t.source for t in tables])
    weights = balance_weights(sources) if data.get("balance", True) else torch.ones(len(sources), dtype=torch.float64)
    offset = 0
    for table in tables:
        w = weights[offset : offset + len(table)]
        offset += len(table)
        out = _holdout_columns(table, holdout, process)
        seen, unseen = torch.nonzero(~out).squeeze(-1), torch.nonzero(out).squeeze(-1)
        for key, rows in zip(("train", "val", "test"), split_events(len(table), seed, split)):
            sub = table[rows].columns(seen)
            parts[key].append(sub.rows(model.event_features(sub.reco), w[rows]))
            if key == "test" and len(unseen):
                held = table[rows].columns(unseen)
                parts["holdout"].append(held.rows(model.event_features(held.reco), w[rows]))
    rows = {k: RegressionRows.cat(v) if v else None for k, v in parts.items()}
    train = rows["train"]
    if train is None or len(train) < 2:
        raise ValueError(f"{where}: fewer than two valid training targets; check max_std and the results files.")
    model.fit_preprocessing(train.features, train.theta, train.target)
    config = TrainingConfig.from_dict(card.tables.get("training", {}).get("likelihood", {}))
    entry = card.entry.get("name", "regression")
    fit = fit_regression(
        model, train, rows["val"], config, name=f"{entry}/likelihood",
        chunk_batches=int(data.get("chunk_batches", 64)), progress=progress,
    )  # fmt: skip
    metrics = {"likelihood_val_loss": float(fit.best_val_loss if fit.best_val_loss is not None else "nan")}
    model.eval()
    with torch.no_grad():
        for key in ("val", "test", "holdout"):
            part = rows[key]
            if part is None or len(part) < 2:
                continue
            m = regression_metrics(model(part.features, part.theta), part.target, part.weight)
            metrics.update({f"{key}_{k}": float(v) for k, v in m.items()})
    if "val_bias" in metrics:
        model.set_resolution(metrics["val_bias"], metrics["val_resolution"])
    return metrics
