"""``memzoo simulate``: hard events → decays → (Pythia shower) → detector → paired HDF5 dataset.

The job is split into chunks of ``chunk_size`` events. Chunk ``c`` depends only on the
configuration and on ``(seed, c)``: its random numbers come from its own generator and it runs
with one torch thread, so a dataset is bit-identical whatever the number of workers, and an
interrupted run resumes at the first unfinished chunk (:class:`~memzoo.data.DatasetWriter`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = ["SimulationConfig", "simulate", "simulate_chunk"]

SELECTIONS = {"drell-yan": "drell-yan", "thj": "thj-{channel}"}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that determines a simulated dataset (recorded in the file's ``settings``).

    Attributes:
        process: registered process name (``drell-yan``, ``thj``).
        process_config: keyword config of the process (``{"tops": "top"}``).
        theta: per parameter either a fixed value or a ``[low, high]`` range drawn uniformly
            per event; missing parameters take their defaults.
        n_events: number of events (accepted and rejected) in the file.
        seed: master seed; chunk c uses a seed derived from (seed, c).
        chunk_size: events per chunk (the unit of parallelism, writing and resuming).
        channel: decay channel of tops (``hadronic`` | ``leptonic``); unused for Drell-Yan.
        detector: ``parametric`` (parton-level truth) or ``pythia`` (shower, hadronisation,
            anti-kT jets, then the parametric smearing).
        detector_config: keyword overrides of :class:`~memzoo.simulation.detector.DetectorConfig`.
        pythia_config: keyword overrides of :class:`~memzoo.simulation.pythia.PythiaConfig`.
        selection: selection name; default from the process and channel.
        n_reco_max: reco slots per event in the file.
    """

    process: str
    n_events: int
    process_config: Mapping[str, Any] = field(default_factory=dict)
    theta: Mapping[str, float | tuple[float, float]] = field(default_factory=dict)
    seed: int = 1
    chunk_size: int = 10_000
    channel: Literal["hadronic", "leptonic"] = "hadronic"
    detector: Literal["parametric", "pythia"] = "parametric"
    detector_config: Mapping[str, Any] = field(default_factory=dict)
    pythia_config: Mapping[str, Any] = field(default_factory=dict)
    selection: str | None = None
    n_reco_max: int = 16

    def __post_init__(self) -> None:
        if self.n_events < 1 or self.chunk_size < 1:
            raise ValueError(f"n_events and chunk_size must be >= 1, got {self.n_events} and {self.chunk_size}.")
        if self.detector not in ("parametric", "pythia"):
            raise ValueError(f"detector must be 'parametric' or 'pythia', got {self.detector!r}.")
        if self.channel not in ("hadronic", "leptonic"):
            raise ValueError(f"channel must be 'hadronic' or 'leptonic', got {self.channel!r}.")

    @property
    def n_chunks(self) -> int:
        return -(-self.n_events // self.chunk_size)

    @property
    def selection_name(self) -> str:
        if self.selection:
            return self.selection
        if self.process not in SELECTIONS:
            raise ValueError(f"No default selection for process {self.process!r}; pass selection=...")
        return SELECTIONS[self.process].format(channel=self.channel)

    def settings(self) -> dict[str, Any]:
        """JSON-able settings stored in (and checked against) the dataset file."""
        out = asdict(self)
        out["theta"] = {k: list(v) if isinstance(v, tuple | list) else v for k, v in self.theta.items()}
        out.pop("n_events")  # a resumed run may ask for more events
        out["selection"] = self.selection_name
        return out


def chunk_seed(seed: int, chunk: int) -> int:
    """A 63-bit seed for chunk ``chunk`` of a run with master seed ``seed`` (stable across runs)."""
    digest = hashlib.sha256(f"memzoo-simulate:{seed}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class _Pipeline:
    """The objects a worker builds once: process, detector."""

    def __init__(self, config: SimulationConfig) -> None:
        import memzoo
        from memzoo.config import make_config
        from memzoo.simulation.detector import DetectorConfig, ParametricDetector

        self.config = config
        self.process = memzoo.create("process", config.process, **dict(config.process_config))
        detector_kw = dict(config.detector_config)
        if config.detector == "pythia":
            # photons and leptons leave the Pythia chain already isolated
            detector_kw.setdefault("isolation_dr", 0.0)
        self.detector = ParametricDetector(make_config(DetectorConfig, detector_kw, owner="detector"))
        self.theta_fixed, self.theta_ranges = {}, {}
        names = [p.name for p in self.process.parameters]
        for name, value in config.theta.items():
            if name not in names:
                raise ValueError(f"Unknown parameter {name!r} for process {config.process!r}; it has {names}.")
            if isinstance(value, list | tuple):
                low, high = (float(v) for v in value)
                self.process.theta({name: [low, high]})  # range check
                self.theta_ranges[name] = (low, high)
            else:
                self.theta_fixed[name] = float(value)
        self.process.theta(self.theta_fixed)  # range check

    def theta(self, n: int, generator: torch.Generator) -> torch.Tensor:
        values: dict[str, Any] = dict(self.theta_fixed)
        for name, (low, high) in self.theta_ranges.items():
            values[name] = (low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)).tolist()
        theta = self.process.theta(values)
        return theta.expand(n, -1) if theta.shape[0] == 1 else theta

    def run(self, chunk: int) -> Any:
        from memzoo.data import DatasetChunk
        from memzoo.simulation.decays import decay
        from memzoo.simulation.detector import truth_from_partons

        cfg = self.config
        n = min(cfg.chunk_size, cfg.n_events - chunk * cfg.chunk_size)
        seed = chunk_seed(cfg.seed, chunk)
        gen = torch.Generator().manual_seed(seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # bit-identical results whatever the number of workers
        try:
            theta = self.theta(n, gen)
            one_theta = not self.theta_ranges
            coords = self.process.sample(n, theta[:1] if one_theta else theta, generator=gen)
            record = self.process.hard_record(coords, theta[:1] if one_theta else theta, generator=gen)
            record = decay(record, cfg.channel, generator=gen)
            if cfg.detector == "pythia":
                from memzoo.config import make_config
                from memzoo.simulation.pythia import PythiaConfig, shower

                truth = shower(record, make_config(PythiaConfig, dict(cfg.pythia_config), owner="pythia"), seed=seed)
            else:
                truth = truth_from_partons(record, self.detector.config)
            reco = self.detector.reconstruct(truth, generator=gen)
            accepted = self.detector.select(reco, cfg.selection_name, reco.charge)
        finally:
            torch.set_num_threads(threads)
        worst = int(reco.multiplicity.max()) if len(reco) else 0
        if worst > cfg.n_reco_max:
            raise ValueError(
                f"An event of chunk {chunk} has {worst} reco objects, more than n_reco_max = {cfg.n_reco_max}; "
                f"rerun with a larger --max-objects."
            )
        keep = slice(0, min(reco.n_objects, cfg.n_reco_max))
        live = reco.mask[:, keep] & accepted[:, None]
        from memzoo.events import Particles

        stored = Particles(
            torch.where(live[..., None], reco.p[:, keep], 0.0),
            torch.where(live, reco.kind[:, keep], 0),
            live,
            validate=False,
        )
        return DatasetChunk(
            theta=theta,
            hard_momenta=self.process.momenta_from_coords(coords),
            hard_coords=coords,
            reco=stored,
            charge=torch.where(live, reco.charge[:, keep], 0).to(torch.int8),
            accepted=accepted,
        )


_WORKER: dict[str, _Pipeline] = {}


def _init_worker(config: SimulationConfig) -> None:
    torch.set_num_threads(1)
    _WORKER["pipeline"] = _Pipeline(config)


def _run_in_worker(chunk: int) -> Any:
    return _WORKER["pipeline"].run(chunk)


def simulate_chunk(config: SimulationConfig, chunk: int) -> Any:
    """Simulate one chunk in this process (a :class:`~memzoo.data.DatasetChunk`)."""
    return _Pipeline(config).run(chunk)


def _chunks(pipeline: _Pipeline, todo: range, workers: int) -> Iterator[Any]:
    config = pipeline.config
    if workers <= 1:
        for chunk in todo:
            yield pipeline.run(chunk)
        return
    context = get_context("spawn")  # fork would share torch's thread pools and Pythia state
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config,)) as pool:
        yield from pool.map(_run_in_worker, todo)


def simulate(
    config: SimulationConfig, out: str | Path, workers: int = 1, progress: bool = True, overwrite: bool = False
) -> Path:
    """Write (or complete) the dataset of ``config`` at ``out``; returns the path.

    Rerunning the same call after an interruption continues at the first missing chunk; a file
    written with different settings is refused with the differing setting named.
    """
    from tqdm import tqdm

    from memzoo.data import DatasetWriter

    out = Path(out)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    workers = min(workers, os.cpu_count() or 1, config.n_chunks)
    pipeline = _Pipeline(config)  # validates θ and configs before any work
    with DatasetWriter(
        out,
        process=pipeline.process,
        n_reco_max=config.n_reco_max,
        settings=config.settings(),
        chunk_size=config.chunk_size,
        resume=not overwrite,
    ) as writer:
        if writer.n_done % config.chunk_size and writer.n_done < config.n_events:
            raise ValueError(f"{out} holds {writer.n_done} events, not a whole number of chunks; use a new file.")
        start = writer.n_done // config.chunk_size
        todo = range(start, config.n_chunks)
        bar = tqdm(
            total=config.n_events,
            initial=min(writer.n_done, config.n_events),
            unit="ev",
            desc=f"simulate {config.process}",
            disable=not progress,
        )
        for chunk in _chunks(pipeline, todo, workers):
            writer.append(chunk)
            bar.update(len(chunk))
        bar.close()
    return out
