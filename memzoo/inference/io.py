"""Reading likelihood results with what the statistics layer needs: names, truth, hard events.

A results file (:mod:`memzoo.results`) records the dataset its events came from
(``settings["data"]``) and each event's row in it (``event``). That dataset supplies the
parameter names and units, the process (hence which parameters are periodic), the true θ of
every event and its true hard coordinates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memzoo.inference.parameters import parameter_infos
from memzoo.inference.scan import EventLikelihoods

__all__ = ["DatasetInfo", "load_event_likelihoods", "read_dataset_info"]


@dataclass
class DatasetInfo:
    """The parts of a paired dataset the statistics layer reads (selected rows only).

    Attributes:
        path: the dataset file.
        process: registered process name.
        process_config: the process configuration it was simulated with.
        names, units: parameter names and units, the columns of θ.
        theta: ``(E, P)`` true θ of the selected rows.
        hard_coords: ``(E, D)`` true hard coordinates of the selected rows.
    """

    path: Path
    process: str
    process_config: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    theta: torch.Tensor | None = None
    hard_coords: torch.Tensor | None = None

    def build_process(self):
        """The process the dataset was simulated with."""
        import memzoo

        return memzoo.create("process", self.process, **self.process_config)


def read_dataset_info(path: str | Path, rows: np.ndarray) -> DatasetInfo:
    """Parameters, true θ and hard coordinates of ``rows`` of a paired dataset (no reco objects)."""
    import h5py

    from memzoo.data import SCHEMA

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"Dataset {path} is not a readable HDF5 file ({err}).") from err
    with f:
        if f.attrs.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a {SCHEMA} file (root attribute 'schema' = {f.attrs.get('schema')!r}).")
        n = int(f.attrs["n_events"])
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"The results refer to row {int(rows.max())} of {path}, which has only {n} events.")
        params = json.loads(f.attrs["parameters"])
        info = DatasetInfo(
            path=path,
            process=str(f.attrs.get("process", "")),
            process_config=json.loads(f.attrs.get("process_config", "{}")),
            names=[p["name"] for p in params],
            units=[p.get("unit", "") for p in params],
            theta=torch.from_numpy(f["theta"][:n][rows]).double(),
            hard_coords=torch.from_numpy(f["hard/coords"][:n][rows]).double(),
        )
    return info


def load_event_likelihoods(
    path: str | Path,
    *,
    names: list[str] | None = None,
    periods: dict[str, float | None] | None = None,
    n_events: int | None = None,
) -> tuple[EventLikelihoods, DatasetInfo | None]:
    """Per-event log-likelihoods of a ``memzoo integrate`` results file, with their dataset.

    Args:
        path: the results HDF5 file.
        names: parameter names to use when the dataset cannot be read (default ``theta0``, ...).
        periods: periods by parameter name overriding the process' (``None``: not periodic).
        n_events: use only the first N events.

    Returns:
        The events (``truth`` from the dataset when it is readable) and the dataset info (or
        ``None`` when ``settings["data"]`` no longer exists).

    Raises:
        ValueError: naming the file when it is missing, not HDF5 or not a results file.
    """
    from memzoo.results import SCHEMA, read_results

    path = Path(path)
    expected = f"a memzoo likelihood-results file (schema {SCHEMA!r}, written by `memzoo integrate`)"
    if not path.is_file():
        raise ValueError(f"Results file {path} does not exist; expected {expected}.")
    try:
        results = read_results(path)
    except OSError as err:
        raise ValueError(f"{path} is not an HDF5 file ({err}); expected {expected}.") from err
    except ValueError as err:
        raise ValueError(f"{err} Expected {expected}.") from err
    except KeyError as err:
        raise ValueError(f"{path} lacks the dataset {err}; expected {expected}.") from err
    if len(results.event) == 0:
        raise ValueError(f"{path} holds no complete events yet; run or resume `memzoo integrate`.")
    stop = len(results.event) if n_events is None else min(n_events, len(results.event))
    data = None
    data_path = results.settings.get("data")
    if data_path and Path(data_path).is_file():
        data = read_dataset_info(data_path, results.event[:stop].numpy())
    p = results.theta.shape[1]
    if data is not None:
        if len(data.names) != p:
            raise ValueError(f"{path} has {p} θ columns but its dataset {data_path} has parameters {data.names}.")
        infos = parameter_infos(data.names, data.units, data.process, periods)
    else:
        names = list(names) if names else [f"theta{i}" for i in range(p)]
        if len(names) != p:
            raise ValueError(f"{len(names)} parameter names given for the {p} θ columns of {path}.")
        infos = parameter_infos(names, None, None, periods)
    events = EventLikelihoods(
        logp=results.logp[:stop],
        theta=results.theta,
        parameters=infos,
        std=results.std[:stop],
        replicas=None if results.logp_replicas is None else results.logp_replicas[:stop],
        event=results.event[:stop],
        truth=None if data is None else data.theta,
        source=str(path),
    )
    return events, data
