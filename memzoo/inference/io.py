"""Reading likelihood results with what the statistics layer needs: names, truth, hard events.

A results file (:mod:`memzoo.results`) records the dataset its events came from
(``settings["data"]``) and each event's row in it (``event``). That dataset supplies the
parameter names and units, the process (hence which parameters are periodic), the true θ of
every event and its true hard coordinates.

Several results files of the same likelihood (one model, one set of integrator options, one θ
grid) may be *joined* into one event set: a sample grown in independent batches — another
simulation seed, another cluster job — is analysed as one. ``memzoo scan`` and ``memzoo
calibrate`` take such a join as ``A.h5,B.h5``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memzoo.inference.parameters import parameter_infos
from memzoo.inference.scan import EventLikelihoods

__all__ = ["DatasetInfo", "load_event_likelihoods", "read_dataset_info", "results_parts", "same_likelihood"]


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


def results_parts(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """The files of a results argument: one path, a sequence, or ``A.h5,B.h5`` (a join).

    A string naming an existing file is that file even if its name holds a comma.
    """
    if isinstance(spec, (str, Path)):
        if Path(spec).is_file() or "," not in str(spec):
            return [Path(spec)]
        spec = [part for part in str(spec).split(",") if part.strip()]
    parts = [Path(str(part).strip()) for part in spec]
    if not parts:
        raise ValueError("No results file given.")
    return parts


def _requested_model(description: str) -> tuple[str, str | None]:
    """(the model as requested, the version an alias was pinned to or ``None``) of a recorded model."""
    requested, _, pinned = str(description).partition(" = ")
    return requested, (pinned or None)


def same_likelihood(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """How the settings of two results files differ in what defines their likelihood (empty: the same).

    Compared: the model as requested (``card:PATH`` or ``uri:URI``) and, where both files pinned
    a registry alias to a version, that version; and the integrator options. The dataset may
    differ: that is the point of joining.
    """
    differ = []
    (model_a, pin_a), (model_b, pin_b) = (
        _requested_model(first.get("model", "")),
        _requested_model(other.get("model", "")),
    )
    if model_a != model_b or (pin_a and pin_b and pin_a != pin_b):
        differ.append(f"model {first.get('model')!r} vs {other.get('model')!r}")
    options_a, options_b = first.get("options", {}), other.get("options", {})
    for key in sorted(set(options_a) | set(options_b)):
        if options_a.get(key) != options_b.get(key):
            differ.append(f"option {key}: {options_a.get(key)!r} vs {options_b.get(key)!r}")
    return differ


def load_event_likelihoods(
    path: str | Path | Sequence[str | Path],
    *,
    names: list[str] | None = None,
    periods: dict[str, float | None] | None = None,
    n_events: int | None = None,
) -> tuple[EventLikelihoods, DatasetInfo | None]:
    """Per-event log-likelihoods of a ``memzoo integrate`` results file, with their dataset.

    Args:
        path: the results HDF5 file, or several (a sequence or ``"A.h5,B.h5"``) of one
            likelihood joined in order into one event set.
        names: parameter names to use when the dataset cannot be read (default ``theta0``, ...).
        periods: periods by parameter name overriding the process' (``None``: not periodic).
        n_events: use only the first N events (of the join).

    Returns:
        The events (``truth`` from the dataset when it is readable) and the dataset info (or
        ``None`` when ``settings["data"]`` no longer exists).

    Raises:
        ValueError: naming the file when it is missing, not HDF5 or not a results file, and, for
            a join, when the files differ in model, integrator options, θ grid or parameters,
            or hold the same events twice.
    """
    parts = results_parts(path)
    if len(parts) == 1:
        events, data, _ = _load_one(parts[0], names, periods, n_events)
        return events, data
    loaded, total = [], 0
    for part in parts:
        if n_events is not None and total >= n_events:
            break
        one = _load_one(part, names, periods, None if n_events is None else n_events - total)
        loaded.append((part, *one))
        total += len(one[0])
    return _join(loaded, parts)


def _join(loaded: list, parts: list[Path]) -> tuple[EventLikelihoods, DatasetInfo | None]:
    """One event set of the results files ``loaded`` ((path, events, data, settings) each)."""
    first_path, first, first_data, first_settings = loaded[0]
    seen: dict[tuple[str, str, int], Path] = {}
    for path, events, data, settings in loaded:
        differ = same_likelihood(first_settings, settings)
        if differ:
            raise ValueError(
                f"{path} and {first_path} come from different likelihoods ({'; '.join(differ)}); "
                f"only results of one model and one set of integrator options can be joined."
            )
        if not torch.equal(events.theta, first.theta) or events.names != first.names:
            raise ValueError(f"{path} and {first_path} have different θ grids; integrate both on one --theta.")
        if (data is None) != (first_data is None):
            missing = path if data is None else first_path
            raise ValueError(f"The dataset of {missing} is not readable but those of the other joined files are.")
        # the same dataset by content or by file (one grown in place keeps its first rows)
        names = [("sha256", str(settings.get("data_sha256")))] if settings.get("data_sha256") else []
        names += [("file", str(Path(settings["data"]).resolve()))] if settings.get("data") else []
        for row in events.event.tolist():
            for kind, name in names:
                if (kind, name, int(row)) in seen:
                    raise ValueError(
                        f"{path} and {seen[kind, name, int(row)]} both hold row {int(row)} of "
                        f"{settings.get('data')}; a join must not count an event twice."
                    )
            for kind, name in names:
                seen[kind, name, int(row)] = path
    cat = lambda xs: None if any(x is None for x in xs) else torch.cat(xs)
    replicas = [ev.replicas for _, ev, _, _ in loaded]
    if any(r is not None for r in replicas) and len({None if r is None else r.shape[-1] for r in replicas}) > 1:
        raise ValueError(f"The joined files {', '.join(map(str, parts))} hold different numbers of replicas.")
    source = " + ".join(str(p) for p in parts)
    events = EventLikelihoods(
        logp=torch.cat([ev.logp for _, ev, _, _ in loaded]),
        theta=first.theta,
        parameters=first.parameters,
        std=cat([ev.std for _, ev, _, _ in loaded]),
        replicas=cat(replicas),
        event=torch.cat([ev.event for _, ev, _, _ in loaded]),
        truth=cat([ev.truth for _, ev, _, _ in loaded]),
        source=source,
    )
    data = None
    if first_data is not None:
        for path, _, info, _ in loaded:
            if (info.process, info.process_config, info.names) != (
                first_data.process,
                first_data.process_config,
                first_data.names,
            ):
                raise ValueError(
                    f"The datasets of {path} and {first_path} were simulated with different processes or "
                    f"process settings; their hard-level likelihoods cannot be joined."
                )
        data = DatasetInfo(
            path=first_data.path,
            process=first_data.process,
            process_config=first_data.process_config,
            names=first_data.names,
            units=first_data.units,
            theta=torch.cat([info.theta for _, _, info, _ in loaded]),
            hard_coords=torch.cat([info.hard_coords for _, _, info, _ in loaded]),
        )
    return events, data


def _load_one(
    path: Path, names: list[str] | None, periods: dict[str, float | None] | None, n_events: int | None
) -> tuple[EventLikelihoods, DatasetInfo | None, dict[str, Any]]:
    """One results file: its events, dataset info and settings."""
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
    return events, data, results.settings
