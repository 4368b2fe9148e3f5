"""Paired (θ, hard, reco) datasets in HDF5: the schema, the chunk type and the reader (DESIGN §7).

Schema ``memzoo-paired-dataset``, version 1 (N events, P parameters, ``n_hard`` hard final-state
particles, D hard coordinates, ``Nmax`` padded reco slots)::

    theta          (N, P)           float64   parameter point each event was generated at
    hard/momenta   (N, n_hard, 4)   float64   (E, px, py, pz) in GeV, in the process' hard_kinds order
    hard/coords    (N, D)           float64   the process' hard coordinates of hard/momenta
    reco/p         (N, Nmax, 4)     float32 or float64   reco objects (E, px, py, pz) in GeV
    reco/kind      (N, Nmax)        int8 or int16        object codes (memzoo.events.KINDS), 0 padding
    reco/mask      (N, Nmax)        bool      true where an object is present
    reco/charge    (N, Nmax)        int8      electric charge in units of e; 0 where not meaningful
    accepted       (N,)             bool      passed reconstruction and selection

Rejected events are kept (``accepted`` false, every ``reco/mask`` entry false) so that the
acceptance classifier sees both classes. Root attributes: ``schema`` (the name above),
``schema_version``, ``memzoo_version``, ``process`` (registered name), ``process_config``
(JSON), ``parameters`` (JSON list of ``{"name", "unit"}`` in the column order of ``theta``),
``settings`` (JSON: detector, decays, seeds, ...), ``chunk_size`` and ``n_events``, the number
of complete rows. Rows past ``n_events`` are the debris of an interrupted write and are never
read. :class:`~memzoo.data_writer.DatasetWriter` writes such files chunk by chunk.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from memzoo.events import KINDS, Particles, RecoParticles

if TYPE_CHECKING:
    from memzoo.data_writer import DatasetWriter

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Dataset",
    "DatasetChunk",
    "DatasetWriter",
    "check_rows",
    "read_dataset",
]

SCHEMA = "memzoo-paired-dataset"
SCHEMA_VERSION = 1
#: Every dataset of the schema, in writing order.
COLUMNS = ("theta", "hard/momenta", "hard/coords", "reco/p", "reco/kind", "reco/mask", "reco/charge", "accepted")


# ---------------------------------------------------------------------------------------
# row-level checks shared by the chunk type, the reader and the importers
# ---------------------------------------------------------------------------------------


def check_rows(
    values: Any, where: str, live: Any = None, kinds: bool = False, energy: bool = False, axis1: str | None = None
) -> None:
    """Raise ``ValueError`` naming ``where`` and the first bad row (and object or column).

    Args:
        values: numpy array or tensor, rows first: ``(N, ...)``.
        where: what the values are, e.g. ``"file 'a.h5', dataset 'reco/p'"``.
        live: optional bool ``(N,)`` or ``(N, M)``; only these entries are checked.
        kinds: check object codes against :data:`memzoo.events.KINDS` instead of finiteness.
        energy: also require a non-negative energy in ``values[..., 0]`` (four-momenta).
        axis1: name of the second axis in messages (default ``"object"`` for ``(N, M, 4)``
            momenta and object codes, ``"column"`` otherwise).
    """
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    alive = None if live is None else np.asarray(live.cpu() if isinstance(live, torch.Tensor) else live, bool)
    if axis1 is None:
        axis1 = "object" if arr.ndim >= 3 or kinds else "column"
    if kinds:
        checks = [(arr, ~np.isin(arr, sorted(KINDS)), "an unknown object kind {} (known kinds: " + str(KINDS) + ")")]
    else:
        checks = [(arr, ~np.isfinite(arr), "a non-finite value {}")]
    if energy:
        checks.append((arr[..., 0], np.nan_to_num(arr[..., 0], nan=0.0) < 0, "a negative energy {} GeV"))
    for checked, bad, problem in checks:
        if alive is not None:
            bad = bad & alive.reshape(alive.shape + (1,) * (bad.ndim - alive.ndim))
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            position = f"row {index[0]}" + (f", {axis1} {index[1]}" if len(index) > 1 else "")
            raise ValueError(f"{where} has {problem.replace('{}', str(checked[index]), 1)} at {position}.")


# ---------------------------------------------------------------------------------------
# chunk and dataset types
# ---------------------------------------------------------------------------------------


@dataclass
class DatasetChunk:
    """B paired events: what :class:`DatasetWriter.append` writes and importers return.

    Attributes:
        theta: ``(B, P)`` float64 parameter points.
        hard_momenta: ``(B, n_hard, 4)`` float64 (E, px, py, pz) in GeV, ``hard_kinds`` order.
        hard_coords: ``(B, D)`` float64 hard coordinates of ``hard_momenta``.
        reco: B reco events (:class:`~memzoo.events.Particles`, N slots).
        charge: ``(B, N)`` integer charges in units of e, 0 where not meaningful (default 0).
        accepted: ``(B,)`` bool (default: true where the event has a reco object). Rejected
            events must have no present reco objects.
        validate: check everything on construction (off only for already checked data).
    """

    theta: torch.Tensor
    hard_momenta: torch.Tensor
    hard_coords: torch.Tensor
    reco: Particles
    charge: torch.Tensor | None = None
    accepted: torch.Tensor | None = None
    validate: bool = True

    def __post_init__(self) -> None:
        if self.charge is None:
            self.charge = torch.zeros(self.reco.kind.shape, dtype=torch.int8, device=self.reco.device)
        if self.accepted is None:
            self.accepted = self.reco.mask.any(-1)
        if self.validate:
            self.check()

    def check(self) -> DatasetChunk:
        """Validate shapes, dtypes and values; errors name the field and the row."""
        name = type(self).__name__
        if not isinstance(self.reco, Particles):
            raise TypeError(f"{name}.reco must be memzoo.events.Particles, got {type(self.reco).__name__}.")
        b = len(self.reco)
        expected = {"theta": 2, "hard_momenta": 3, "hard_coords": 2, "charge": 2, "accepted": 1}
        for key, ndim in expected.items():
            value = getattr(self, key)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name}.{key} must be a torch.Tensor, got {type(value).__name__}.")
            if value.ndim != ndim or value.shape[0] != b:
                raise ValueError(
                    f"{name}.{key} must have {ndim} dimensions with {b} rows (one per reco event), "
                    f"got shape {tuple(value.shape)}."
                )
            if key in ("theta", "hard_momenta", "hard_coords"):
                if not value.is_floating_point():
                    raise TypeError(f"{name}.{key} must be a floating-point tensor, got {value.dtype}.")
                check_rows(value, f"{name}.{key}", axis1="particle" if key == "hard_momenta" else None)
        if self.hard_momenta.shape[-1] != 4:
            raise ValueError(f"{name}.hard_momenta must be (B, n_hard, 4), got {tuple(self.hard_momenta.shape)}.")
        if tuple(self.charge.shape) != tuple(self.reco.kind.shape):
            raise ValueError(f"{name}.charge must be (B, N) = {tuple(self.reco.kind.shape)} like reco.kind.")
        if self.charge.is_floating_point() or self.charge.dtype == torch.bool:
            raise TypeError(f"{name}.charge must be an integer tensor, got {self.charge.dtype}.")
        if self.accepted.dtype != torch.bool:
            raise TypeError(f"{name}.accepted must be a bool tensor, got {self.accepted.dtype}.")
        self.reco.check()
        stray = ~self.accepted & self.reco.mask.any(-1)
        if stray.any():
            row = int(stray.nonzero()[0, 0])
            raise ValueError(
                f"{name} row {row} is rejected (accepted = False) but has reco objects; rejected events "
                f"are stored without reco objects: use reco mask & accepted[:, None]."
            )
        return self

    @property
    def charged_reco(self) -> RecoParticles:
        """The reco events with their charges (what transfer models and selections take)."""
        r = self.reco
        return RecoParticles(r.p, r.kind, r.mask, validate=False, charge=self.charge.to(torch.int64))

    def __len__(self) -> int:
        return len(self.reco)

    def __getitem__(self, rows: Any) -> DatasetChunk:
        """Select events by index, slice, index tensor or bool mask (keeps the batch axis)."""
        if isinstance(rows, int):
            rows = slice(rows, rows + 1 if rows != -1 else None)
        tensors = {k: getattr(self, k)[rows] for k in ("theta", "hard_momenta", "hard_coords", "charge", "accepted")}
        return replace(self, reco=self.reco[rows], validate=False, **tensors)

    def to(self, device: str | torch.device) -> DatasetChunk:
        """Move every tensor to ``device``."""
        tensors = {
            k: getattr(self, k).to(device) for k in ("theta", "hard_momenta", "hard_coords", "charge", "accepted")
        }
        return replace(self, reco=self.reco.to(device), validate=False, **tensors)


@dataclass
class Dataset(DatasetChunk):
    """A paired dataset in memory (a :class:`DatasetChunk` plus the file's metadata).

    Attributes:
        info: root attributes of the file (``process``, ``process_config``, ``parameters``,
            ``settings``, ``schema_version``, ``memzoo_version``, ``path``).
    """

    info: dict[str, Any] = field(default_factory=dict)

    @property
    def parameter_names(self) -> list[str]:
        """Column names of ``theta``."""
        return [p["name"] for p in self.info.get("parameters", [])]

    def split(self, seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[Dataset, ...]:
        """Disjoint random subsets (e.g. train, val, test), deterministic given ``seed``.

        Each subset keeps the file order of its events. Sizes are rounded at the cumulative
        boundaries, so they add up to ``len(self)``.
        """
        fractions = [float(f) for f in fractions]
        if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}.")
        n = len(self)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        bounds = [0] + [round(sum(fractions[: i + 1]) * n) for i in range(len(fractions))]
        bounds[-1] = n
        device = self.theta.device
        return tuple(self[perm[a:b].sort().values.to(device)] for a, b in itertools.pairwise(bounds))

    def __repr__(self) -> str:
        return f"Dataset(events={len(self)}, process={self.info.get('process')!r}, reco={self.reco!r})"


# ---------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------


def _attr_json(f: Any, key: str, where: str) -> Any:
    raw = f.attrs.get(key)
    if raw is None:
        raise ValueError(f"{where} has no root attribute {key!r}; it was not written by memzoo's DatasetWriter.")
    try:
        return json.loads(raw)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: root attribute {key!r} is not valid JSON ({err}).") from err


def _read_columns(f: Any, where: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The schema's columns (first ``n_events`` rows, shape-checked) and the root attributes."""
    if f.attrs.get("schema") != SCHEMA:
        raise ValueError(f"{where} is not a {SCHEMA} file (root attribute 'schema' = {f.attrs.get('schema')!r}).")
    version = int(f.attrs.get("schema_version", -1))
    if version != SCHEMA_VERSION:
        raise ValueError(f"{where} has schema version {version}; this memzoo reads version {SCHEMA_VERSION}.")
    if "n_events" not in f.attrs:
        raise ValueError(f"{where} has no root attribute 'n_events' (number of complete rows).")
    n = int(f.attrs["n_events"])
    info = {k: _attr_json(f, k, where) for k in ("process_config", "parameters", "settings")}
    info.update(process=str(f.attrs.get("process", "")), schema_version=version, n_events=n)
    info.update(memzoo_version=str(f.attrs.get("memzoo_version", "")), chunk_size=int(f.attrs.get("chunk_size", 0)))
    cols = {}
    for name in COLUMNS:
        if name not in f:
            raise ValueError(f"{where} has no dataset {name!r}; a {SCHEMA} file needs {list(COLUMNS)}.")
        ds = f[name]
        if ds.shape[0] < n:
            raise ValueError(
                f"{where}, dataset {name!r} has only {ds.shape[0]} rows but n_events = {n}: rows "
                f"{ds.shape[0]} to {n - 1} are missing (the file is damaged)."
            )
        cols[name] = ds[:n]
    p, m = len(info["parameters"]), cols["reco/p"].shape[1] if cols["reco/p"].ndim == 3 else -1
    h, d = cols["hard/momenta"].shape[1:2] or (-1,), cols["hard/coords"].shape[1:2] or (-1,)
    shapes = {
        "theta": (n, p),
        "hard/momenta": (n, h[0], 4),
        "hard/coords": (n, d[0]),
        "reco/p": (n, m, 4),
        "reco/kind": (n, m),
        "reco/mask": (n, m),
        "reco/charge": (n, m),
        "accepted": (n,),
    }
    for name, shape in shapes.items():
        if cols[name].shape != shape:
            raise ValueError(f"{where}, dataset {name!r} has shape {cols[name].shape}, expected {shape}.")
    dtypes = {"reco/kind": "iu", "reco/charge": "iu", "reco/mask": "b", "accepted": "b", "reco/p": "f"}
    for name, codes in {**dict.fromkeys(("theta", "hard/momenta", "hard/coords"), "f"), **dtypes}.items():
        if cols[name].dtype.kind not in codes:
            raise ValueError(f"{where}, dataset {name!r} has dtype {cols[name].dtype}, expected kind {codes!r}.")
    return cols, info


def read_dataset(path: str | Path, *, device: str | torch.device | None = None, accepted_only: bool = False) -> Dataset:
    """Read and validate a paired dataset file (schema in the module docstring).

    Args:
        path: HDF5 file written by :class:`DatasetWriter`.
        device: torch device of the returned tensors (default CPU).
        accepted_only: keep only events that passed the selection (for transfer training).

    Returns:
        A :class:`Dataset` with theta, hard momenta/coords float64, reco momenta in the stored
        float dtype, and ``info`` holding the root attributes.

    Raises:
        ValueError: naming the file, the dataset and the row for missing datasets, wrong
            shapes or dtypes, non-finite or negative-energy momenta and unknown object kinds.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Dataset file {path} does not exist.")
    where = f"file '{path}'"
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{where} is not a readable HDF5 file ({err}).") from err
    with f:
        cols, info = _read_columns(f, where)
    mask = cols["reco/mask"]
    for name in ("theta", "hard/momenta", "hard/coords"):
        check_rows(cols[name], f"{where}, dataset {name!r}", axis1="particle" if name == "hard/momenta" else None)
    check_rows(cols["reco/p"], f"{where}, dataset 'reco/p'", live=mask, energy=True)
    check_rows(cols["reco/kind"], f"{where}, dataset 'reco/kind'", live=mask, kinds=True)
    stray = ~cols["accepted"] & mask.any(-1)
    if stray.any():
        raise ValueError(
            f"{where}, dataset 'reco/mask' has reco objects in rejected row {int(np.argmax(stray))} "
            f"(accepted = False); rejected events must be stored without reco objects."
        )
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in cols.items()}
    reco = Particles(t["reco/p"], t["reco/kind"].long(), t["reco/mask"], validate=False)
    data = Dataset(
        t["theta"], t["hard/momenta"], t["hard/coords"], reco, t["reco/charge"], t["accepted"], validate=False
    )
    data.info = {**info, "path": str(path)}
    if accepted_only:
        data = data[data.accepted]
    return data.to(device) if device is not None else data


def __getattr__(name: str) -> Any:
    # The writer lives in its own module (keeps both files small); re-exported lazily here.
    if name == "DatasetWriter":
        from memzoo.data_writer import DatasetWriter

        return DatasetWriter
    raise AttributeError(f"module 'memzoo.data' has no attribute {name!r}")
