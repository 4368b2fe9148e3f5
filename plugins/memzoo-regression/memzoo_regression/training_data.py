"""Training targets for the surrogate: memzoo integrator results or external (e.g. MoMEMta) weights.

A :class:`RegressionTable` holds E reco events, a θ grid ``(T, P)`` and the targets
I = −log10 p ``(E, T)`` with a ``valid (E, T)`` mask. Following Bury & Delaere (arXiv:2008.10949,
Sec. 3) *invalid* targets (failed or non-converged integrations: non-finite values, or an error
above a threshold) are left out of training but the events stay in the table, so the surrogate
can still be evaluated on them. ``source`` labels samples (processes) for :func:`balance_weights`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memzoo.events import Particles, RecoParticles

__all__ = [
    "RegressionRows",
    "RegressionTable",
    "balance_weights",
    "from_external",
    "from_results",
    "split_events",
]

LN10 = math.log(10.0)


def split_events(n: int, seed: int, fractions: Sequence[float]) -> list[torch.Tensor]:
    """Disjoint sorted index sets of ``range(n)`` (e.g. train, validation, test), deterministic in ``seed``."""
    fractions = [float(f) for f in fractions]
    if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    bounds = [round(sum(fractions[:i]) * n) for i in range(len(fractions))] + [n]
    return [perm[a:b].sort().values for a, b in itertools.pairwise(bounds)]


@dataclass
class RegressionRows:
    """Flattened (event, θ) training rows: what the loader and the loss take.

    Attributes:
        features: ``(N, F)`` event features; theta ``(N, P)``; target ``(N,)`` I; weight ``(N,)``.
        event: ``(N,)`` index of the row's event in its table; theta_index ``(N,)`` its θ column.
    """

    features: torch.Tensor
    theta: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor
    event: torch.Tensor
    theta_index: torch.Tensor

    def __len__(self) -> int:
        return len(self.target)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """``(features, theta, target, weight)`` in the order of the model's ``loss``."""
        return self.features, self.theta, self.target, self.weight

    @staticmethod
    def cat(parts: Sequence[RegressionRows]) -> RegressionRows:
        return RegressionRows(*(torch.cat([getattr(p, f) for p in parts]) for f in RegressionRows.__dataclass_fields__))


@dataclass
class RegressionTable:
    """E events × T θ points of regression targets.

    Attributes:
        reco: E reco events (with charges).
        theta: ``(T, P)`` float64 θ grid.
        target: ``(E, T)`` float64 I = −log10 p (may be non-finite where invalid).
        valid: ``(E, T)`` bool, targets used for training.
        source: ``(E,)`` int64 sample label (e.g. the process an event was simulated from).
        event: ``(E,)`` int64 row of each event in its input file.
    """

    reco: RecoParticles
    theta: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor
    source: torch.Tensor
    event: torch.Tensor

    def __post_init__(self) -> None:
        e, t = len(self.reco), len(self.theta)
        if self.theta.ndim != 2 or self.target.shape != (e, t) or self.valid.shape != (e, t):
            raise ValueError(
                f"RegressionTable: theta must be (T, P) and target/valid (E, T) = ({e}, {t}); got theta "
                f"{tuple(self.theta.shape)}, target {tuple(self.target.shape)}, valid {tuple(self.valid.shape)}."
            )

    def __len__(self) -> int:
        return len(self.reco)

    def __getitem__(self, rows: Any) -> RegressionTable:
        """The events ``rows`` (index tensor, slice or bool mask) with all θ columns."""
        return RegressionTable(
            self.reco[rows], self.theta, self.target[rows], self.valid[rows], self.source[rows], self.event[rows]
        )

    @staticmethod
    def cat(tables: Sequence[RegressionTable]) -> RegressionTable:
        """Events of several tables on the same θ grid, one after the other (reco slots padded)."""
        if any(t.theta.shape != tables[0].theta.shape or not torch.equal(t.theta, tables[0].theta) for t in tables):
            raise ValueError("RegressionTable.cat needs tables on the same θ grid; flatten each with rows() instead.")
        width = max(t.reco.n_objects for t in tables)
        reco = Particles.cat([t.reco for t in tables])
        charge = torch.cat([_pad_slots(t.reco, width) for t in tables])
        return RegressionTable(
            RecoParticles(reco.p, reco.kind, reco.mask, validate=False, charge=charge),
            tables[0].theta,
            *(torch.cat([getattr(t, f) for t in tables]) for f in ("target", "valid", "source", "event")),
        )

    def columns(self, index: Sequence[int] | torch.Tensor) -> RegressionTable:
        """The θ columns ``index`` of every event (e.g. the points kept for training)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return replace(self, theta=self.theta[index], target=self.target[:, index], valid=self.valid[:, index])

    def split(self, seed: int, fractions: Sequence[float]) -> tuple[RegressionTable, ...]:
        """Disjoint random event subsets (e.g. train, validation, test): :func:`split_events`."""
        return tuple(self[rows] for rows in split_events(len(self), seed, fractions))

    def rows(
        self, features: torch.Tensor, weight: torch.Tensor | None = None, valid_only: bool = True
    ) -> RegressionRows:
        """Flatten to (event, θ) rows.

        Args:
            features: ``(E, F)`` event features (``model.event_features(table.reco)``).
            weight: ``(E,)`` per-event weights (default 1), e.g. :func:`balance_weights`.
            valid_only: keep only valid targets (training); ``False`` keeps every pair.
        """
        keep = self.valid if valid_only else torch.ones_like(self.valid)
        event, column = keep.nonzero(as_tuple=True)
        w = torch.ones(len(self), dtype=torch.float64) if weight is None else weight.to(torch.float64)
        return RegressionRows(features[event], self.theta[column], self.target[event, column], w[event], event, column)


def _pad_slots(reco: Particles, width: int) -> torch.Tensor:
    """``(E, width)`` charges of ``reco``, zero-padded (zeros where the events carry none)."""
    charge = getattr(reco, "charge", None)
    if charge is None:
        return torch.zeros(len(reco), width, dtype=torch.int64, device=reco.p.device)
    return torch.nn.functional.pad(charge, (0, width - charge.shape[1]))


def balance_weights(source: torch.Tensor) -> torch.Tensor:
    """``(E,)`` weights giving every sample label the same total weight (mean weight 1).

    Bury & Delaere weight events "proportionally to the sample size between the three categories
    so that they all have the same importance in the training" (arXiv:2008.10949, Sec. 4).
    """
    labels, inverse, counts = torch.unique(source, return_inverse=True, return_counts=True)
    return (len(source) / (len(labels) * counts.double()))[inverse]


def _sha256_16(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def from_results(results: str | Path, dataset: str | Path, *, max_std: float = 0.1, source: int = 0) -> RegressionTable:
    """Targets from a ``memzoo integrate`` results file and the dataset it integrated.

    Args:
        results: results file (:func:`memzoo.results.read_results`); its ``event`` column names
            rows of ``dataset``.
        dataset: the paired dataset (:func:`memzoo.data.read_dataset`).
        max_std: targets whose standard error of ln p exceeds this (≈ relative error of p) are
            invalid, like failed ones (non-finite ln p or error).
        source: sample label of these events.
    """
    from memzoo.data import read_dataset
    from memzoo.results import read_results

    res, dataset = read_results(results), Path(dataset)
    recorded = res.settings.get("data_sha256")
    if recorded is not None and recorded != _sha256_16(dataset):
        raise ValueError(
            f"{results} was integrated from {res.settings.get('data')} (sha256 {recorded}), not from {dataset}; "
            f"name the dataset the results were computed from."
        )
    data = read_dataset(dataset)
    if len(res.event) and int(res.event.max()) >= len(data):
        raise ValueError(f"{results} refers to row {int(res.event.max())} but {dataset} has {len(data)} rows.")
    target = -res.logp / LN10
    valid = torch.isfinite(res.logp) & torch.isfinite(res.std) & (res.std <= max_std)
    n = len(res.event)
    return RegressionTable(
        data[res.event].charged_reco, res.theta, target, valid, torch.full((n,), int(source)), res.event.long()
    )


def _read_columns(path: Path, names: Sequence[str], tree: str | None) -> list[np.ndarray]:
    """Plain numeric columns (HDF5 dataset paths or ROOT branches), each ``(N,)``."""
    if tree is None:
        import h5py

        with h5py.File(path, "r") as f:
            missing = [n for n in names if n not in f]
            if missing:
                raise ValueError(f"file '{path}' has no dataset(s) {missing} named in the weights mapping.")
            return [np.asarray(f[n][...], dtype=np.float64).reshape(-1) for n in names]
    import uproot

    with uproot.open(path) as f:
        t = f[tree]
        missing = [n for n in names if n not in t.keys()]
        if missing:
            raise ValueError(f"file '{path}', tree '{tree}' has no branch(es) {missing} named in the weights mapping.")
        return [np.asarray(t[n].array(library="np"), dtype=np.float64).reshape(-1) for n in names]


def from_external(
    path: str | Path,
    mapping: Mapping[str, Any],
    weights: Mapping[str, Any],
    *,
    process: Any,
    tree: str | None = None,
    max_rel_error: float | None = None,
    source: int = 0,
) -> RegressionTable:
    """Targets from external MEM weights, e.g. MoMEMta output in HDF5 or ROOT.

    Args:
        path: HDF5 file, or ROOT file with ``tree``.
        mapping: reco column mapping of :mod:`memzoo.importers` (e.g. ``{"reco": {"Muon": 13}}``).
        weights: ``{"theta": {name: [T values]}, "columns": [T columns], "errors": [T columns]
            (optional), "kind": "weight" | "ln" | "neg_log10"}``: per θ point the column holding
            the weight p(x|θ) (``weight``, default), ln p, or I = −log10 p; ``errors`` are the
            standard errors of the weights (same kind of quantity as the column for ``weight``).
        process: the process (parameter names and ranges of ``theta``).
        max_rel_error: weights with error/weight above this are invalid (needs ``errors``).
        source: sample label.
    """
    from memzoo.importers import import_hdf5, import_root

    path = Path(path)
    unknown = sorted(set(weights) - {"theta", "columns", "errors", "kind"})
    if unknown or "columns" not in weights or "theta" not in weights:
        raise ValueError(
            f"weights mapping needs 'theta' and 'columns' (optional 'errors', 'kind'); got {sorted(weights)}."
        )
    kind = weights.get("kind", "weight")
    if kind not in ("weight", "ln", "neg_log10"):
        raise ValueError(f"weights kind must be 'weight', 'ln' or 'neg_log10', got {kind!r}.")
    theta = process.theta(dict(weights["theta"]))
    columns = list(weights["columns"])
    if len(columns) != len(theta):
        raise ValueError(f"weights name {len(columns)} columns for {len(theta)} θ points; give one column per θ.")
    chunk = import_hdf5(path, mapping) if tree is None else import_root(path, tree, mapping)
    values = torch.from_numpy(np.stack(_read_columns(path, columns, tree), 1))
    if len(values) != len(chunk):
        raise ValueError(f"file '{path}': weight columns have {len(values)} rows, reco columns {len(chunk)}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        target = {"weight": -torch.log10(values), "ln": -values / LN10, "neg_log10": values}[kind]
    valid = torch.isfinite(target)
    if kind == "weight":
        valid &= values > 0
    if max_rel_error is not None:
        if "errors" not in weights:
            raise ValueError("max_rel_error needs 'errors' columns in the weights mapping.")
        errors = torch.from_numpy(np.stack(_read_columns(path, list(weights["errors"]), tree), 1))
        rel = errors / values.abs() if kind == "weight" else errors * (LN10 if kind == "neg_log10" else 1.0)
        valid &= torch.isfinite(rel) & (rel <= max_rel_error)
    rows = torch.nonzero(chunk.accepted).squeeze(-1)
    reco = chunk[rows].charged_reco
    return RegressionTable(reco, theta, target[rows], valid[rows], torch.full((len(rows),), int(source)), rows)
