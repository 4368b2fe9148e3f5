"""Column mappings: users' HDF5/ROOT columns → a :class:`~memzoo.data.DatasetChunk`.

The mapping format is documented in :mod:`memzoo.importers`; this module holds the machinery
shared by the file-format readers there: column access with errors that name the file and the
column, padding of jagged per-object columns, collections of objects, θ and hard momenta.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from memzoo.data import DatasetChunk, check_rows
from memzoo.events import KINDS, Particles, from_ptetaphim

__all__ = ["ColumnSource", "chunk_from_mapping"]

_SCALAR_KEYS = ("pt", "eta", "phi", "mass")


class ColumnSource:
    """Column access with errors that name the file (and tree) and the column."""

    def __init__(self, label: str, names: Sequence[str], read: Callable[[str], Any], sep: str) -> None:
        self.label, self.names, self._read, self.sep = label, set(names), read, sep
        self.n_rows: int | None = None

    def has(self, name: str) -> bool:
        return name in self.names

    def where(self, column: str) -> str:
        return f"{self.label}, column '{column}'"

    def column(self, name: Any, key: str) -> Any:
        """The values of column ``name`` (mapping key ``key``), rows checked against other columns."""
        if not isinstance(name, str):
            raise TypeError(f"{self.label}: mapping entry {key!r} must name a column, got {name!r}.")
        if name not in self.names:
            known = ", ".join(sorted(self.names)[:30])
            raise ValueError(f"{self.label} has no column '{name}' (mapping entry {key!r}). Columns: {known}.")
        values = self._read(name)
        if self.n_rows is None:
            self.n_rows = len(values)
        elif len(values) != self.n_rows:
            raise ValueError(f"{self.where(name)} has {len(values)} rows, other columns have {self.n_rows}.")
        return values


def _objects(values: Any, where: str, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad a per-object column to ``(N, K[, width])`` plus its ``(N, K)`` presence mask."""
    try:
        import awkward as ak
    except ImportError:  # pragma: no cover - awkward comes with the data extra
        ak = None
    if ak is not None and isinstance(values, ak.Array):
        try:
            values = ak.to_numpy(values)
        except ValueError:  # jagged: Jet_pt[nJet]
            counts = ak.to_numpy(ak.num(values, axis=1))
            k = int(counts.max(initial=0))
            padded = ak.fill_none(ak.pad_none(values, k, axis=1, clip=True), 0.0)
            arr = np.asarray(ak.to_numpy(padded))
            return arr, np.arange(k)[None, :] < counts[:, None]
    arr = np.asarray(values)
    obj_ndim = 1 if width is None else 2
    if arr.ndim == obj_ndim:
        arr = arr[:, None]
    expected = "(N,) or (N, k)" if width is None else f"(N, {width}) or (N, k, {width})"
    if arr.ndim != obj_ndim + 1 or (width is not None and arr.shape[-1] != width):
        raise ValueError(f"{where} must have shape {expected}, got {tuple(np.shape(values))}.")
    return arr, np.ones(arr.shape[:2], dtype=bool)


def _collection(src: ColumnSource, name: str, spec: Any) -> tuple[np.ndarray, ...]:
    """``(p (N, K, 4), kind (N, K), mask (N, K), charge (N, K))`` of one collection spec."""
    spec = {"kind": spec} if isinstance(spec, int) else dict(spec)
    key = f"reco.{name}"
    if "kind" not in spec:
        raise ValueError(f"{src.label}: mapping entry {key!r} needs a 'kind' (one of {KINDS}).")
    default = {k: f"{name}{src.sep}{k}" for k in _SCALAR_KEYS}
    if spec["kind"] == 12:  # missing pT has no η and no mass
        default.update(eta=0.0, mass=0.0)
    pieces: dict[str, np.ndarray] = {}
    masks = []

    def read(field: str, value: Any, width: int | None = None) -> np.ndarray:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return np.asarray(float(value))
        arr, mask = _objects(src.column(value, f"{key}.{field}"), src.where(value), width)
        masks.append(mask)
        return arr

    if "p4" in spec:
        p = read("p4", spec["p4"], width=4).astype(np.float64)
        momentum_columns = [spec["p4"]]
    else:
        cartesian = all(k in spec for k in ("E", "px", "py", "pz"))
        keys = ("E", "px", "py", "pz") if cartesian else _SCALAR_KEYS
        for k in keys:
            pieces[k] = read(k, spec.get(k, default.get(k)))
        momentum_columns = [spec.get(k, default.get(k)) for k in keys]
    mask = np.logical_and.reduce(np.broadcast_arrays(*masks)) if masks else None
    if mask is None:
        raise ValueError(f"{src.label}: mapping entry {key!r} names no column, so the number of objects is unknown.")
    if "p4" not in spec:
        stacked = np.stack(np.broadcast_arrays(*(pieces[k] for k in keys)), -1).astype(np.float64)
        for i in range(len(keys)):  # check each column on its own, so the message names it
            check_rows(stacked[..., i], src.where(momentum_columns[i]), live=mask, axis1="object")
        p = stacked if cartesian else from_ptetaphim(torch.from_numpy(stacked)).numpy()
    where = src.where("/".join(str(c) for c in momentum_columns))
    check_rows(p, where, live=mask, energy=True)
    for extra in ("mask", "count"):
        if extra in spec:
            flag = src.column(spec[extra], f"{key}.{extra}")
            if extra == "count":
                flag = np.arange(mask.shape[1])[None, :] < np.asarray(flag).reshape(-1, 1)
            mask = mask & _objects(flag, src.where(spec[extra]))[0].astype(bool)[:, : mask.shape[1]]
    kind_spec = spec["kind"]
    if isinstance(kind_spec, str):
        kind = _objects(src.column(kind_spec, f"{key}.kind"), src.where(kind_spec))[0].astype(np.int64)
        check_rows(kind, src.where(kind_spec), live=mask, kinds=True)
    elif kind_spec in KINDS and kind_spec != 0:
        kind = np.full(mask.shape, int(kind_spec), dtype=np.int64)
    else:
        raise ValueError(f"{src.label}: mapping entry {key!r} has unknown object kind {kind_spec!r}; known: {KINDS}.")
    charge_spec = spec.get("charge", f"{name}{src.sep}charge")
    if isinstance(charge_spec, str) and ("charge" in spec or src.has(charge_spec)):
        charge = _objects(src.column(charge_spec, f"{key}.charge"), src.where(charge_spec))[0]
        check_rows(charge, src.where(charge_spec), live=mask)
    else:
        charge = np.full(mask.shape, 0 if isinstance(charge_spec, str) else int(charge_spec))
    keep = slice(None, spec.get("max"))
    return p[:, keep], kind[:, keep], mask[:, keep], np.asarray(charge, dtype=np.int64)[:, keep]


def _hard(src: ColumnSource, spec: Any) -> np.ndarray:
    """``(N, n_hard, 4)`` hard momenta from one column or a list of per-particle specs."""
    if isinstance(spec, str):
        p = np.asarray(src.column(spec, "hard/momenta"), dtype=np.float64)
        if p.ndim != 3 or p.shape[-1] != 4:
            raise ValueError(f"{src.where(spec)} must have shape (N, n_hard, 4), got {p.shape}.")
        check_rows(p, src.where(spec), axis1="particle")
        return p
    particles = []
    for i, item in enumerate(spec):
        p, _, mask, _ = _collection(src, item if isinstance(item, str) else f"hard[{i}]", {"kind": 1, **_as_spec(item)})
        if p.shape[1] != 1 or not mask.all():
            raise ValueError(f"{src.label}: hard particle {i} ({item!r}) must be exactly one object per event.")
        particles.append(p[:, 0])
    return np.stack(particles, 1)


def _as_spec(item: Any) -> dict[str, Any]:
    return {} if isinstance(item, str) else dict(item)


def _theta(src: ColumnSource, spec: Any, n: int) -> np.ndarray:
    if spec is None:
        return np.zeros((n, 0))
    items = spec if isinstance(spec, list | tuple) else [spec]
    cols = []
    for item in items:
        if isinstance(item, int | float) and not isinstance(item, bool):
            cols.append(np.full((n, 1), float(item)))
            continue
        values = np.asarray(src.column(item, "theta"), dtype=np.float64)
        if values.ndim not in (1, 2):
            raise ValueError(f"{src.where(item)} must have shape (N,) or (N, P), got {values.shape}.")
        check_rows(values, src.where(item))
        cols.append(values.reshape(n, -1))
    return np.concatenate(cols, 1)


def chunk_from_mapping(src: ColumnSource, mapping: Mapping[str, Any], process: Any, n_max: int | None) -> DatasetChunk:
    """Assemble a DatasetChunk from a mapping (see the module docstring)."""
    mapping = dict(mapping)
    known = {
        "theta",
        "hard/momenta",
        "hard/coords",
        "accepted",
        "reco",
        "reco/p",
        "reco/kind",
        "reco/mask",
        "reco/charge",
    }
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ValueError(f"{src.label}: unknown mapping key(s) {unknown}; known: {sorted(known)}.")
    if "reco/p" in mapping and "reco/kind" not in mapping:
        raise ValueError(f"{src.label}: mapping entry 'reco/p' needs 'reco/kind' (a column or one of {KINDS}).")
    collections = dict(mapping.get("reco") or {})
    if "reco/p" in mapping:
        flat = {"p4": mapping["reco/p"], "kind": mapping.get("reco/kind")}
        flat.update({k: mapping[f"reco/{k}"] for k in ("mask", "charge") if f"reco/{k}" in mapping})
        collections["reco"] = flat
    if not collections:
        raise ValueError(f"{src.label}: the mapping has no reco objects; give 'reco' collections or 'reco/p'.")
    parts = [_collection(src, name, spec) for name, spec in collections.items()]
    p, kind, mask, charge = (np.concatenate([part[i] for part in parts], 1) for i in range(4))
    n = p.shape[0]
    if "accepted" in mapping:
        accepted = np.asarray(src.column(mapping["accepted"], "accepted")).astype(bool).reshape(n)
    else:
        accepted = mask.any(1)
    mask &= accepted[:, None]  # rejected events are stored without reco objects
    order = np.argsort(~mask, axis=1, kind="stable")  # present objects first
    p, kind, mask, charge = (
        np.take_along_axis(a, order if a.ndim == 2 else order[..., None], 1) for a in (p, kind, mask, charge)
    )
    counts = mask.sum(1)
    width = int(counts.max(initial=0))
    if n_max is not None:
        if width > n_max:
            row = int(np.argmax(counts > n_max))
            raise ValueError(
                f"{src.label}: row {row} has {counts[row]} reco objects, more than n_max = {n_max}. "
                f"Raise n_max or keep fewer objects per collection with 'max'."
            )
        width = n_max
    pad = max(0, width - p.shape[1])
    p, kind, mask, charge = (
        np.pad(a[:, :width], [(0, 0), (0, pad)] + [(0, 0)] * (a.ndim - 2)) for a in (p, kind, mask, charge)
    )
    kind = np.where(mask, kind, 0)
    reco = Particles(
        torch.from_numpy(np.where(mask[..., None], p, 0.0)), torch.from_numpy(kind), torch.from_numpy(mask)
    )
    theta = torch.from_numpy(_theta(src, mapping.get("theta"), n))
    if "hard/momenta" in mapping:
        hard = torch.from_numpy(_hard(src, mapping["hard/momenta"]))
        if process is not None and hard.shape[1] != len(process.hard_kinds):
            raise ValueError(
                f"{src.label}: 'hard/momenta' holds {hard.shape[1]} particles per event, process "
                f"{process.name!r} has {len(process.hard_kinds)} (hard_kinds {list(process.hard_kinds)})."
            )
    else:
        hard = torch.zeros(n, 0, 4, dtype=torch.float64)
    if "hard/coords" in mapping:
        coords = np.asarray(src.column(mapping["hard/coords"], "hard/coords"), dtype=np.float64).reshape(n, -1)
        check_rows(coords, src.where(mapping["hard/coords"]))
        coords = torch.from_numpy(coords)
    elif hard.shape[1] and process is not None:
        coords = process.coords_from_momenta(hard)
        check_rows(coords, f"{src.label}, hard coordinates computed from 'hard/momenta'")
    else:
        coords = torch.zeros(n, 0, dtype=torch.float64)
    charge_t = torch.from_numpy(np.where(mask, charge, 0).astype(np.int8))
    return DatasetChunk(theta, hard, coords, reco, charge_t, torch.from_numpy(accepted))
