"""Resumable, chunked writing of paired datasets (the schema is in :mod:`memzoo.data`).

A long simulation writes one :class:`~memzoo.data.DatasetChunk` at a time. The root attribute
``n_events`` moves only after every dataset of a chunk is written and flushed, so an
interrupted run leaves at most some rows past ``n_events``; reopening with ``resume=True``
truncates them and reports how far the file got (``n_done``, ``chunks_done``). This protects
against an interrupted or killed Python process; like any HDF5 file without journaling, it
does not protect against a power loss in the middle of a metadata write.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memzoo.config import config_to_dict
from memzoo.data import COLUMNS, SCHEMA, SCHEMA_VERSION, DatasetChunk

__all__ = ["DatasetWriter"]

#: Target size of one HDF5 storage chunk (compression unit); about 1 MiB reads well everywhere.
_STORAGE_CHUNK_BYTES = 1 << 20


def _plain_json(value: Any, what: str) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), or a TypeError saying what to fix."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): {err}.") from err


def _first_difference(old: Any, new: Any, key: str) -> str | None:
    """Dotted name of the first entry where two JSON values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if k not in old or k not in new:
                return f"{key}.{k}"
            found = _first_difference(old[k], new[k], f"{key}.{k}")
            if found:
                return found
        return None
    return None if old == new else key


def _lookup(value: Any, dotted: str) -> Any:
    for part in dotted.split(".")[1:]:
        value = value.get(part, "<absent>") if isinstance(value, dict) else "<absent>"
    return value


class DatasetWriter:
    """Append :class:`~memzoo.data.DatasetChunk` s to a paired-dataset file, resumably.

    Args:
        path: the HDF5 file.
        process: a process object (its ``name``, ``config``, ``parameters``, ``hard_kinds`` and
            ``hard_dim`` fill the defaults below) or a registered process name.
        parameters: θ columns, :class:`~memzoo.protocols.Parameter` s or ``(name, unit)`` pairs.
        n_hard: number of hard final-state particles.
        hard_dim: D, number of hard coordinates.
        n_reco_max: Nmax, reco slots per event; chunks with fewer slots are padded.
        settings: JSON-able generator settings (detector, decays, seeds, ...); must match on resume.
        chunk_size: events per :meth:`append` call the caller intends (recorded; used by
            :attr:`chunks_done` and for the HDF5 storage chunks).
        resume: continue an existing file (checking that it matches); ``False`` overwrites it.
        process_config: JSON-able process config (default: from ``process.config``).
        reco_dtype: storage dtype of ``reco/p``, ``torch.float32`` (default) or ``torch.float64``.

    Example:
        >>> with DatasetWriter("dy.h5", process=dy, n_reco_max=4, settings={"seed": 7}, chunk_size=1000) as w:
        ...     for i in range(w.chunks_done, 10):
        ...         w.append(simulate(i))  # a DatasetChunk of 1000 events
    """

    def __init__(
        self,
        path: str | Path,
        *,
        process: Any,
        parameters: Sequence[Any] | None = None,
        n_hard: int | None = None,
        hard_dim: int | None = None,
        n_reco_max: int,
        settings: Mapping[str, Any] | None = None,
        chunk_size: int = 10_000,
        resume: bool = True,
        process_config: Mapping[str, Any] | None = None,
        reco_dtype: torch.dtype = torch.float32,
    ) -> None:
        import h5py

        self.path = Path(path)
        name = process if isinstance(process, str) else getattr(process, "name", None)
        if not isinstance(name, str):
            raise TypeError(f"process must be a process object or a registered name, got {type(process).__name__}.")
        if process_config is None:
            config = getattr(process, "config", None)
            process_config = config_to_dict(config) if is_dataclass(config) else {}
        parameters = getattr(process, "parameters", None) if parameters is None else parameters
        n_hard = len(process.hard_kinds) if n_hard is None and hasattr(process, "hard_kinds") else n_hard
        hard_dim = getattr(process, "hard_dim", None) if hard_dim is None else hard_dim
        if parameters is None or n_hard is None or hard_dim is None:
            raise ValueError("With a process given by name, pass parameters, n_hard and hard_dim explicitly.")
        if reco_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"reco_dtype must be torch.float32 or torch.float64, got {reco_dtype}.")
        if chunk_size < 1 or n_reco_max < 0:
            raise ValueError(f"chunk_size must be >= 1 and n_reco_max >= 0, got {chunk_size} and {n_reco_max}.")
        pars = [
            {"name": p.name, "unit": p.unit} if hasattr(p, "name") else {"name": str(p[0]), "unit": str(p[1])}
            for p in parameters
        ]
        self.header = {
            "process": name,
            "process_config": _plain_json(dict(process_config), "process_config"),
            "parameters": pars,
            "settings": _plain_json(dict(settings or {}), "settings"),
            "chunk_size": int(chunk_size),
        }
        self.chunk_size = int(chunk_size)
        self.n_reco_max = int(n_reco_max)
        p_np = np.float32 if reco_dtype == torch.float32 else np.float64
        self.layout: dict[str, tuple[tuple[int, ...], Any]] = {
            "theta": ((len(pars),), np.float64),
            "hard/momenta": ((int(n_hard), 4), np.float64),
            "hard/coords": ((int(hard_dim),), np.float64),
            "reco/p": ((self.n_reco_max, 4), p_np),
            "reco/kind": ((self.n_reco_max,), np.int16),
            "reco/mask": ((self.n_reco_max,), np.bool_),
            "reco/charge": ((self.n_reco_max,), np.int8),
            "accepted": ((), np.bool_),
        }
        if resume and self.path.exists():
            self._file = h5py.File(self.path, "r+")
            try:
                self._reopen()
            except Exception:
                self._file.close()
                raise
        else:
            self._file = h5py.File(self.path, "w")
            self._create()

    # -- file set-up ------------------------------------------------------------------

    def _create(self) -> None:
        from memzoo import __version__

        attrs = self._file.attrs
        attrs.update(schema=SCHEMA, schema_version=SCHEMA_VERSION, memzoo_version=__version__)
        attrs.update(process=self.header["process"], chunk_size=self.chunk_size, n_events=0)
        for key in ("process_config", "parameters", "settings"):
            attrs[key] = json.dumps(self.header[key], sort_keys=True)
        for name, (tail, dtype) in self.layout.items():
            row_bytes = max(1, math.prod(tail) * np.dtype(dtype).itemsize)
            rows = max(1, min(self.chunk_size, _STORAGE_CHUNK_BYTES // row_bytes))
            # HDF5 storage chunks need positive extents, so empty axes (Nmax = 0, P = 0) get an
            # unlimited maximum that a chunk extent of 1 fits into
            self._file.create_dataset(
                name,
                shape=(0, *tail),
                maxshape=(None, *(t or None for t in tail)),
                dtype=dtype,
                chunks=(rows, *(max(1, t) for t in tail)),
                compression="gzip",
                compression_opts=4,
                shuffle=True,
            )
        self._file.flush()
        self.n_done = 0

    def _reopen(self) -> None:
        f, where = self._file, f"Cannot resume '{self.path}'"
        if f.attrs.get("schema") != SCHEMA or int(f.attrs.get("schema_version", -1)) != SCHEMA_VERSION:
            raise ValueError(f"{where}: it is not a {SCHEMA} v{SCHEMA_VERSION} file. Use another path.")
        stored = {"process": str(f.attrs.get("process")), "chunk_size": int(f.attrs.get("chunk_size", -1))}
        stored.update({k: json.loads(f.attrs.get(k, "null")) for k in ("process_config", "parameters", "settings")})
        hint = "Write to a new file, or pass resume=False to overwrite this one."
        for key in ("process", "process_config", "parameters", "settings", "chunk_size"):
            diff = _first_difference(stored[key], self.header[key], key)
            if diff:
                old, new = _lookup(stored[key], diff), _lookup(self.header[key], diff)
                raise ValueError(f"{where}: setting {diff!r} is {old!r} in the file but {new!r} now. {hint}")
        for name, (tail, dtype) in self.layout.items():
            if name not in f:
                raise ValueError(f"{where}: dataset {name!r} is missing. {hint}")
            ds = f[name]
            if ds.shape[1:] != tail or ds.dtype != np.dtype(dtype):
                raise ValueError(
                    f"{where}: dataset {name!r} stores rows of shape {ds.shape[1:]} and dtype {ds.dtype}, "
                    f"this writer would write {tail} {np.dtype(dtype)} (check n_hard, hard_dim, n_reco_max, "
                    f"reco_dtype). {hint}"
                )
        self.n_done = int(f.attrs.get("n_events", 0))
        for name in self.layout:
            rows = f[name].shape[0]
            if rows < self.n_done:
                raise ValueError(f"{where}: dataset {name!r} has {rows} rows, fewer than n_events = {self.n_done}.")
            if rows > self.n_done:  # debris of an interrupted append
                f[name].resize(self.n_done, axis=0)
        f.flush()

    # -- writing ----------------------------------------------------------------------

    @property
    def chunks_done(self) -> int:
        """Number of complete ``chunk_size`` chunks in the file: the next chunk index to produce."""
        return self.n_done // self.chunk_size

    def _columns(self, chunk: DatasetChunk) -> dict[str, np.ndarray]:
        """Numpy arrays of one chunk in the file's layout (reco padded to Nmax)."""
        chunk.check()
        for attr, name in (("theta", "theta"), ("hard_momenta", "hard/momenta"), ("hard_coords", "hard/coords")):
            got, tail = tuple(getattr(chunk, attr).shape[1:]), self.layout[name][0]
            if got != tail:
                raise ValueError(f"chunk.{attr} rows have shape {got}, but '{self.path}' stores {name!r} as {tail}.")
        reco, nmax = chunk.reco, self.n_reco_max
        if reco.mask[:, nmax:].any():
            row = int(reco.mask[:, nmax:].any(-1).nonzero()[0, 0])
            raise ValueError(
                f"chunk row {row} has {int(reco.mask[row].sum())} reco objects (slots up to "
                f"{reco.n_objects}), but '{self.path}' holds at most n_reco_max = {nmax}. Create the file "
                f"with a larger n_reco_max, or drop objects before appending."
            )
        extra = max(0, nmax - reco.n_objects)

        def pad(t: torch.Tensor, dtype: Any) -> np.ndarray:
            t = torch.nn.functional.pad(t[:, :nmax].cpu(), (0, 0) * (t.ndim - 2) + (0, extra))
            return t.numpy().astype(dtype, copy=False)

        return {
            "theta": chunk.theta.cpu().numpy().astype(np.float64, copy=False),
            "hard/momenta": chunk.hard_momenta.cpu().numpy().astype(np.float64, copy=False),
            "hard/coords": chunk.hard_coords.cpu().numpy().astype(np.float64, copy=False),
            "reco/p": pad(reco.p.detach(), self.layout["reco/p"][1]),
            "reco/kind": pad(reco.kind, np.int16),
            "reco/mask": pad(reco.mask, np.bool_),
            "reco/charge": pad(chunk.charge, np.int8),
            "accepted": chunk.accepted.cpu().numpy().astype(np.bool_, copy=False),
        }

    def _write(self, name: str, values: np.ndarray, start: int, stop: int) -> None:
        ds = self._file[name]
        ds.resize(stop, axis=0)
        ds[start:stop] = values

    def append(self, chunk: DatasetChunk) -> None:
        """Write one chunk after the complete rows; ``n_events`` moves only once all is flushed."""
        if self._file is None:
            raise ValueError(f"DatasetWriter for '{self.path}' is closed.")
        columns = self._columns(chunk)
        start, stop = self.n_done, self.n_done + len(chunk)
        if stop == start:
            return
        for name in COLUMNS:
            self._write(name, columns[name], start, stop)
        self._file.flush()
        self._file.attrs["n_events"] = stop
        self._file.flush()
        self.n_done = stop

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DatasetWriter('{self.path}', n_done={self.n_done}, chunk_size={self.chunk_size})"
