"""Likelihood results on disk: per-event log-likelihoods on a θ grid, written in chunks, resumable.

Schema ``memzoo-likelihood-results`` version 1 (E events, T θ points, P parameters, M replicas)::

    theta          (T, P)    float64   the θ grid
    event          (E,)      int64     row of each event in the input dataset
    logp           (E, T)    float64   log p(x_reco|θ) (natural log)
    std            (E, T)    float64   its standard error
    n_points       (E,)      int64     integrand evaluations spent on the event
    n_nonfinite    (E,)      int64     excluded non-finite integrand values
    logp_replicas  (E, T, M) float64   bootstrap / Bayesian replicas (only when M > 0)

Root attributes: ``schema``, ``schema_version``, ``memzoo_version``, ``settings`` (JSON: model,
data file, integrator options — checked on resume) and ``n_events``, the number of complete rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SCHEMA", "LikelihoodResults", "ResultsWriter", "read_results"]

SCHEMA = "memzoo-likelihood-results"
SCHEMA_VERSION = 1


def _short(value: Any, limit: int = 100) -> str:
    """A setting as a short readable string for an error message."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class LikelihoodResults:
    """Results read back from a file (torch tensors, float64)."""

    theta: torch.Tensor
    event: torch.Tensor
    logp: torch.Tensor
    std: torch.Tensor
    n_points: torch.Tensor
    n_nonfinite: torch.Tensor
    logp_replicas: torch.Tensor | None
    settings: dict[str, Any]

    def total(self) -> torch.Tensor:
        """``(T,)`` summed log-likelihood of all events."""
        return self.logp.sum(0)


class ResultsWriter:
    """Append per-event results chunk by chunk; reopening with the same settings resumes.

    Args:
        path: the HDF5 file.
        theta: ``(T, P)`` θ grid.
        settings: JSON-able settings; a resumed file must carry the same ones.
        n_replicas: M, the number of replicas stored per event (0: none).
    """

    def __init__(self, path: str | Path, theta: torch.Tensor, settings: dict[str, Any], n_replicas: int = 0) -> None:
        import h5py

        from memzoo import __version__

        self.path = Path(path)
        settings_json = json.dumps(settings, sort_keys=True)
        t, p = theta.shape
        if self.path.exists():
            self._file = h5py.File(self.path, "r+")
            f = self._file
            if f.attrs.get("schema") != SCHEMA:
                f.close()
                raise ValueError(f"{self.path} is not a memzoo likelihood-results file; choose another --out.")
            old = json.loads(f.attrs["settings"])
            if old != settings:
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                f.close()
                if diff == ["seeding"]:
                    raise ValueError(
                        f"{self.path} was integrated with another seeding scheme ({old.get('seeding', 'per-call')!r}, "
                        f"now {settings.get('seeding')!r}, from another memzoo version): it can be read but not "
                        f"continued; use another --out."
                    )
                shown = "; ".join(f"{k}: {_short(old.get(k))} in the file, now {_short(settings.get(k))}" for k in diff)
                raise ValueError(
                    f"{self.path} was written with other settings (differing: {diff}; {shown}); "
                    f"use another --out or the original settings to resume."
                )
            if not np.array_equal(f["theta"][()], theta.cpu().numpy()):
                f.close()
                raise ValueError(f"{self.path} holds another θ grid; use another --out.")
            n = int(f.attrs["n_events"])
            for name in f:
                if name != "theta" and f[name].shape[0] > n:
                    f[name].resize(n, axis=0)  # debris of an interrupted chunk
        else:
            self._file = h5py.File(self.path, "w")
            f = self._file
            f.attrs.update({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "memzoo_version": __version__})
            f.attrs["settings"] = settings_json
            f.attrs["n_events"] = 0
            f.create_dataset("theta", data=theta.cpu().numpy().astype(np.float64))
            shapes = {
                "event": ((), np.int64),
                "logp": ((t,), np.float64),
                "std": ((t,), np.float64),
                "n_points": ((), np.int64),
                "n_nonfinite": ((), np.int64),
            }
            if n_replicas:
                shapes["logp_replicas"] = ((t, n_replicas), np.float64)
            for name, (shape, dtype) in shapes.items():
                f.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype, chunks=(256, *shape))
        del p

    @property
    def n_done(self) -> int:
        """Events whose results are complete in the file."""
        return int(self._file.attrs["n_events"])

    def append(self, event: torch.Tensor, result: Any, start: int | None = None) -> None:
        """Write the results of one chunk of events (a :class:`memzoo.protocols.Likelihood`).

        The rows are flushed before the count of complete events advances, so a process killed
        in between leaves the chunk out (it is truncated on reopening) rather than half in.

        Args:
            event: ``(E,)`` dataset rows of the chunk's events.
            result: their likelihoods (``logp`` ``(E, T)``).
            start: the index the chunk's first event must get; a chunk that would not continue
                the file there (written twice, or one before it missing) is refused.
        """
        diag = result.diagnostics
        e = len(event)
        if start is not None and start != self.n_done:
            raise ValueError(
                f"{self.path}: a chunk starting at event {start} does not continue the file, which holds "
                f"{self.n_done} complete events; refusing to write it twice or to leave a gap."
            )
        if tuple(result.logp.shape) != (e, self._file["theta"].shape[0]):
            raise ValueError(
                f"{self.path}: the chunk has logp of shape {tuple(result.logp.shape)} for {e} events "
                f"and {self._file['theta'].shape[0]} θ points."
            )
        columns = {
            "event": event.cpu().numpy(),
            "logp": result.logp.detach().double().cpu().numpy(),
            "std": result.std.detach().double().cpu().numpy(),
            "n_points": diag.get("n_points", torch.zeros(e)).cpu().numpy().astype(np.int64),
            "n_nonfinite": diag.get("n_nonfinite", torch.zeros(e)).cpu().numpy().astype(np.int64),
        }
        if "logp_replicas" in self._file:
            columns["logp_replicas"] = diag["logp_replicas"].detach().double().cpu().numpy()
        start = self.n_done
        for name, values in columns.items():
            ds = self._file[name]
            ds.resize(start + e, axis=0)
            ds[start:] = values
        self._file.flush()
        self._file.attrs["n_events"] = start + e  # only now is the chunk part of the file
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | Path) -> LikelihoodResults:
    """Read a results file (complete rows only)."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a memzoo likelihood-results file (schema {f.attrs.get('schema')!r}).")
        n = int(f.attrs["n_events"])

        def col(name: str) -> torch.Tensor:
            return torch.as_tensor(f[name][:n])

        return LikelihoodResults(
            theta=torch.as_tensor(f["theta"][()]),
            event=col("event"),
            logp=col("logp"),
            std=col("std"),
            n_points=col("n_points"),
            n_nonfinite=col("n_nonfinite"),
            logp_replicas=col("logp_replicas") if "logp_replicas" in f else None,
            settings=json.loads(f.attrs["settings"]),
        )
