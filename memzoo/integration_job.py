"""The ``memzoo integrate`` job: a dataset's events × a θ grid → a resumable results file.

The job is cut into chunks of ``chunk_size`` accepted events, aligned at multiples of
``chunk_size`` (chunk ``i`` holds events ``[i·chunk_size, (i+1)·chunk_size)``). Each chunk is
integrated by its own :class:`~memzoo.integrator.MEMIntegrator` whose seed is derived from the
job's seed and the chunk index only (:func:`chunk_seed`), and σ_fid(θ) is computed once per job
with the job's seed. Event ``e`` of chunk ``i`` therefore always draws the stream
``(chunk_seed(seed, i), e)``, whichever process integrates the chunk and whatever ran before: the
single-process loop here and the Ray engine (:mod:`memzoo.distributed`) give bit-identical files,
and a resumed job continues exactly where the interrupted one would have gone. A chunk that is
only partly in the file (``--events`` raised after a run) is integrated whole and only its
missing rows are written: the integrator isolates events, so the rows are the same as in one run.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from memzoo.protocols import Likelihood

__all__ = [
    "SEEDING",
    "ChunkIntegrator",
    "IntegrationJob",
    "chunk_seed",
    "integrate_dataset",
    "load_model_spec",
    "prepare_job",
]

log = logging.getLogger("memzoo.integrate")

#: How event streams are seeded; recorded in the results' settings so that a file written with
#: another scheme is not silently continued with this one.
SEEDING = "per-chunk"

_CHUNK_STREAM = 0x63_68_75_6E_6B  # domain tag of the chunk seeds ("chunk")


def load_model_spec(model: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Components and integrator options of a model card (``*.toml``) or an MLflow/bundle URI.

    Returns:
        (components with ``process`` and the roles present, integrator options, a description
        recorded in the results' settings).
    """
    if model.endswith(".toml"):
        from memzoo.cards import load_card

        card = load_card(model)
        return card.build(), dict(card.integrator), f"card:{Path(model).resolve()}"
    import memzoo

    bundle = memzoo.load(model)
    parts = {"process": bundle.build_process(), **bundle.components()}
    return parts, dict(bundle.metadata.get("integrator", {})), f"uri:{model}"


def chunk_seed(seed: int, index: int) -> int:
    """The integrator seed of chunk ``index`` of a job with master seed ``seed`` (63 bits)."""
    from memzoo.integrator import _mix

    return _mix(seed, _CHUNK_STREAM, index)


class _FixedSigmaFid:
    """σ_fid(θ) known for one θ grid: the ``sigma_fid`` callable of the per-chunk integrators."""

    def __init__(self, theta: torch.Tensor, sigma: torch.Tensor, error: torch.Tensor) -> None:
        self.theta, self.sigma, self.error = theta.cpu(), sigma.cpu(), error.cpu()

    def __call__(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if theta.shape != self.theta.shape or not torch.equal(theta.cpu().to(self.theta), self.theta):
            raise ValueError("this job's σ_fid was computed for another θ grid.")
        return self.sigma.clone(), self.error.clone()


def recorded_model(description: str) -> str:
    """The model a results file was integrated with, as :func:`load_model_spec` takes it.

    ``description`` is the ``model`` of the file's settings: ``card:PATH``, ``uri:URI`` or, for an
    alias pinned when the job started, ``uri:models:/NAME@ALIAS = models:/NAME/VERSION`` (the
    version is returned: the alias may have moved since).
    """
    kind, _, where = str(description).partition(":")
    if kind not in ("card", "uri") or not where:
        raise ValueError(f"{description!r} is not a recorded model (card:PATH or uri:URI).")
    if kind == "uri" and " = " in where:
        return where.partition(" = ")[2]
    return where


class ChunkIntegrator:
    """Integrates the chunks of one job: the result depends on (options, seed, chunk index, events) only.

    Args:
        parts: components from :func:`load_model_spec` (``process``, ``transfer``, ``sampler``,
            optional ``acceptance``).
        options: :class:`~memzoo.integrator.MEMIntegrator` keyword options (``seed`` is the
            job's master seed, default 0).
        theta: ``(T, P)`` the θ grid.
        device: torch device of the integration (``None``: CPU).
        sigma_fid: ``(sigma (T,), error (T,))`` in fb if already known (a worker receives the
            driver's); otherwise integrated here with the master seed.
    """

    def __init__(
        self,
        parts: dict[str, Any],
        options: dict[str, Any],
        theta: torch.Tensor,
        device: str | torch.device | None = None,
        sigma_fid: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        for role in ("transfer", "sampler"):
            if role not in parts:
                raise ValueError(f"The model has no {role}; the MEM integral needs transfer and sampler.")
        self.parts, self.options, self.theta, self.device = parts, dict(options), theta, device
        self.seed = int(self.options.pop("seed", 0))
        if sigma_fid is None:
            base = self._integrator(self.seed, self.options.get("sigma_fid"))
            sigma_fid = base.sigma_fid(theta)
        self.sigma_fid = (sigma_fid[0].cpu(), sigma_fid[1].cpu())
        self._fixed = _FixedSigmaFid(theta, *self.sigma_fid)

    def _integrator(self, seed: int, sigma_fid: Any):
        from memzoo.integrator import MEMIntegrator

        p = self.parts
        options = {**self.options, "seed": seed, "sigma_fid": sigma_fid}
        return MEMIntegrator(
            p["process"], p["transfer"], p["sampler"], p.get("acceptance"), device=self.device, **options
        )

    def __call__(self, index: int, reco: Any) -> Likelihood:
        """Log-likelihoods of the events of chunk ``index`` (``reco``: that chunk's E events), on CPU."""
        result = self._integrator(chunk_seed(self.seed, index), self._fixed).log_likelihood(reco, self.theta)
        return Likelihood(
            result.logp.cpu(),
            result.std.cpu(),
            result.theta.cpu(),
            {k: v.cpu() for k, v in result.diagnostics.items()},
        )


def tail(result: Likelihood, skip: int) -> Likelihood:
    """The rows ``skip:`` of a chunk's result (the part of a partly written chunk still missing)."""
    if skip == 0:
        return result
    diagnostics = {k: v[skip:] for k, v in result.diagnostics.items()}
    return Likelihood(result.logp[skip:], result.std[skip:], result.theta, diagnostics)


@dataclass
class IntegrationJob:
    """Everything the driver of ``memzoo integrate`` knows before integrating.

    Attributes:
        model: the model as given to workers (card paths and bundle folders made absolute).
        parts: the components built on the driver.
        reco: the accepted events to integrate (first ``total``).
        rows: ``(total,)`` their rows in the dataset file.
        theta: ``(T, P)`` the θ grid.
        options: integrator options (card's, overridden by the caller's).
        settings: what the results file records and checks on resume.
        chunk_size: events per chunk.
        device: torch device of the integration.
        fid_device: where the driver integrates σ_fid (its CPU if it has no GPU).
    """

    model: str
    parts: dict[str, Any]
    reco: Any
    rows: torch.Tensor
    theta: torch.Tensor
    options: dict[str, Any]
    settings: dict[str, Any]
    chunk_size: int
    device: str | None
    fid_device: str | None

    @cached_property
    def sigma_fid(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sigma (T,), error (T,))`` in fb, integrated once per job with the master seed."""
        return ChunkIntegrator(self.parts, self.options, self.theta, self.fid_device).sigma_fid

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def n_replicas(self) -> int:
        return int(self.options.get("bootstrap", 0)) + int(self.options.get("replicas", 0))

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.total / self.chunk_size)

    def bounds(self, index: int) -> tuple[int, int]:
        """Event range ``[start, stop)`` of chunk ``index``."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.total)

    def pending(self, n_done: int) -> list[int]:
        """Chunks not (or only partly) in a file holding the first ``n_done`` events."""
        return [i for i in range(n_done // self.chunk_size, self.n_chunks) if self.bounds(i)[1] > n_done]

    def chunk_reco(self, index: int) -> Any:
        """The events of chunk ``index`` as compact tensors (advanced indexing copies them)."""
        start, stop = self.bounds(index)
        return self.reco[torch.arange(start, stop)]

    def integrator(self) -> ChunkIntegrator:
        """The chunk integrator on the driver (single-process engine)."""
        return ChunkIntegrator(self.parts, self.options, self.theta, self.device, self.sigma_fid)


#: Integrator options that change memory use and speed but not the numbers (the random draws of
#: every event come from its own generator, in the same order however the points are batched):
#: left out of the results file's settings, so a run may resume with another value.
RESULT_NEUTRAL_OPTIONS = ("max_batch_points",)


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _portable_model(model: str) -> str:
    """Card paths and bundle folders made absolute, so that workers elsewhere find them."""
    path = Path(model)
    return str(path.resolve()) if "://" not in model and ":/" not in model and path.exists() else model


def prepare_job(
    model: str,
    data: str | Path,
    theta: dict[str, list[float]],
    *,
    n_events: int | None = None,
    chunk_size: int = 50,
    options: dict[str, Any] | None = None,
    device: str | None = None,
) -> IntegrationJob:
    """Read the model and the accepted events and build the θ grid (σ_fid(θ) follows when needed)."""
    from memzoo.data import read_dataset

    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of events, got {chunk_size}.")
    from memzoo.tracking import resolve_model_uri

    # an alias (models:/NAME@champion) moves when a new version is trained: the job records, and
    # its workers load, the version it points at now, so a resumed file never mixes two models
    pinned = model if model.endswith(".toml") else resolve_model_uri(model)
    parts, card_options, description = load_model_spec(pinned)
    if pinned != model:
        description = f"uri:{model} = {pinned}"
    process = parts["process"]
    for role in ("transfer", "sampler"):
        if role not in parts:
            raise ValueError(f"The model {model!r} has no {role}; the MEM integral needs transfer and sampler.")
    everything = read_dataset(data)
    rows_all = torch.nonzero(everything.accepted).squeeze(-1)  # file rows of the accepted events
    dataset = everything[rows_all]
    if dataset.info.get("process") not in (None, process.name):
        raise ValueError(f"{data} holds {dataset.info['process']!r} events but the model is for {process.name!r}.")
    total = len(dataset) if n_events is None else min(n_events, len(dataset))
    if total == 0:
        raise ValueError(f"{data} has no accepted events to integrate.")
    grid = process.theta(theta)
    opts = {**card_options, **(options or {})}
    settings = {
        "model": description,
        "data": str(Path(data).resolve()),
        "data_sha256": _file_digest(Path(data)),
        "options": {k: v for k, v in opts.items() if k not in RESULT_NEUTRAL_OPTIONS},
        "chunk_size": chunk_size,
        "seeding": SEEDING,
    }
    fid_device = device
    if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
        fid_device = "cpu"  # a CPU-only driver of a GPU cluster
    return IntegrationJob(
        model=_portable_model(pinned),
        parts=parts,
        reco=dataset[:total].charged_reco,
        rows=rows_all[:total],
        theta=grid,
        options=opts,
        settings=settings,
        chunk_size=chunk_size,
        device=device,
        fid_device=fid_device,
    )


def write_chunk(writer: Any, job: IntegrationJob, index: int, result: Likelihood) -> int:
    """Commit chunk ``index`` (or its rows still missing) to the results file; returns rows written.

    The writer flushes the rows before it advances its count of complete events, and refuses a
    chunk that does not continue the file, so a chunk is written exactly once.
    """
    start, stop = job.bounds(index)
    skip = writer.n_done - start
    if not 0 <= skip < stop - start or len(result.logp) != stop - start:
        raise RuntimeError(
            f"chunk {index} (events {start}-{stop - 1}) does not continue {writer.path} "
            f"({writer.n_done} events complete): it was already written or one before it is missing."
        )
    first = writer.n_done
    writer.append(job.rows[first:stop], tail(result, skip), start=first)
    log.info("chunk %d: events %d-%d written", index, first, stop - 1)
    return stop - first


def integrate_dataset(
    model: str,
    data: str | Path,
    theta: dict[str, list[float]],
    out: str | Path,
    *,
    n_events: int | None = None,
    chunk_size: int = 50,
    options: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
) -> Path:
    """Integrate the accepted events of ``data`` on a θ grid and write ``out`` chunk by chunk.

    Rerunning the same call (with either engine) resumes after the last complete event; other
    settings are refused.

    Args:
        engine: ``"local"`` (this process) or ``"ray"`` (:func:`memzoo.distributed.integrate_on_ray`:
            one worker per GPU or per ``threads_per_worker`` CPUs; ``address`` of a running Ray
            cluster, or a local instance; ``workers`` caps their number).
    """
    from tqdm import tqdm

    from memzoo.results import ResultsWriter

    if engine not in ("local", "ray"):
        raise ValueError(f"Unknown engine {engine!r}: must be one of ['local', 'ray'].")
    if engine == "ray":
        from memzoo.distributed import require_ray

        require_ray()  # fail before any work if Ray is missing
    job = prepare_job(model, data, theta, n_events=n_events, chunk_size=chunk_size, options=options, device=device)
    with ResultsWriter(out, job.theta, job.settings, n_replicas=job.n_replicas) as writer:
        todo = job.pending(writer.n_done)
        bar = tqdm(
            total=job.total, initial=min(writer.n_done, job.total), unit="ev", desc="integrate", disable=not progress
        )
        if engine == "ray":
            from memzoo.distributed import integrate_on_ray

            integrate_on_ray(
                job,
                writer,
                todo,
                address=address,
                workers=workers,
                threads_per_worker=threads_per_worker,
                on_write=bar.update,
            )
        else:
            integrator = job.integrator()
            for index in todo:
                bar.update(write_chunk(writer, job, index, integrator(index, job.chunk_reco(index))))
        bar.close()
    return Path(out)
