"""``memzoo integrate --engine ray``: the chunks of an integration job sharded over Ray workers.

DESIGN §6: datasets beyond one machine are sharded over an existing distributed engine, one
worker per GPU. Here a worker is a Ray actor that loads the model once (a card, a bundle folder
or ``models:/NAME@ALIAS`` from the MLflow registry) and integrates whole chunks with the same
:class:`~memzoo.integration_job.ChunkIntegrator` as the single-process engine, receiving the
driver's σ_fid(θ): a chunk's result depends only on the seed and the chunk, so the file is bit
for bit the one the single-process engine writes (same device type and thread count).

Only the driver writes the results file. Chunks finish in any order; the driver keeps the ones
that finish early in memory and commits chunks strictly in order (at most ``4 × workers`` chunks
are in flight or waiting), each flushed before the file's count of complete events advances.
Hence every chunk is written exactly once, and a driver that dies loses only uncommitted chunks,
which the next run (either engine) recomputes with the same seeds.

Failures: a worker process that dies (killed, out of memory, node lost) is restarted by Ray and
its chunk retried (``max_restarts``/``max_task_retries``); a Python exception inside a chunk is
deterministic and is raised at once, naming the chunk. Fault injection for tests: with
``MEMZOO_FAULT_INJECTION=CHUNK:MARKER`` in the driver's environment, the worker that starts chunk
CHUNK while the file MARKER does not exist creates MARKER and exits the process (``os._exit``),
i.e. it is killed on its first attempt only.

Ray is optional (``pip install memzoo[ray]``) and imported only here, inside functions.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import torch

from memzoo.integration_job import ChunkIntegrator, IntegrationJob, load_model_spec, write_chunk

__all__ = ["ChunkWorker", "integrate_on_ray", "require_ray"]

log = logging.getLogger("memzoo.integrate")

FAULT_ENV = "MEMZOO_FAULT_INJECTION"
MAX_RETRIES = 3  # restarts of a dead worker and retries of its chunk


def require_ray() -> Any:
    """Import Ray or say how to install it."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError(
            "The ray engine needs Ray, which is not installed: pip install 'memzoo[ray]' (or run with --engine local)."
        ) from err
    return ray


class ChunkWorker:
    """One Ray worker: loads the model once, then integrates chunks (used as a Ray actor).

    Args:
        model: card path, bundle folder or MLflow URI (as :func:`load_model_spec` takes).
        options: integrator options of the job (the driver's, card options included).
        theta: ``(T, P)`` the θ grid.
        sigma_fid: the driver's ``(sigma (T,), error (T,))``.
        device: torch device (``cuda``: the GPU Ray assigned to this worker).
        threads: torch intra-op threads of this worker.
        tracking_uri: the driver's MLflow tracking URI, for ``models:/`` and ``runs:/`` models.
        fault: ``CHUNK:MARKER`` fault injection (see the module docstring) or ``None``.
    """

    def __init__(
        self,
        model: str,
        options: dict[str, Any],
        theta: torch.Tensor,
        sigma_fid: tuple[torch.Tensor, torch.Tensor],
        device: str | None,
        threads: int,
        tracking_uri: str | None = None,
        fault: str | None = None,
    ) -> None:
        self.fault = _parse_fault(fault)
        if device is not None and torch.device(device).type == "cuda":
            device = "cuda"  # Ray shows each worker only its own GPU, as device 0
        torch.set_num_threads(threads)
        if tracking_uri:
            from memzoo.tracking import configure_tracking

            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
            configure_tracking()  # Ray reuses worker processes: one may point MLflow at another store
        parts = load_model_spec(model)[0]
        self.integrate_chunk = ChunkIntegrator(parts, options, theta, device, sigma_fid)

    def integrate(self, index: int, reco: Any) -> Any:
        """The :class:`~memzoo.protocols.Likelihood` of chunk ``index`` (tensors on CPU)."""
        if self.fault is not None and self.fault[0] == index and not os.path.exists(self.fault[1]):
            with open(self.fault[1], "w") as f:
                f.write(f"worker {os.getpid()} killed at chunk {index}\n")
            os._exit(17)  # a hard kill: no exception, no cleanup, the process is gone
        return self.integrate_chunk(index, reco)

    def ready(self) -> int:
        """The worker's process id, once the model is loaded."""
        return os.getpid()


def _parse_fault(fault: str | None) -> tuple[int, str] | None:
    if not fault:
        return None
    chunk, sep, marker = fault.partition(":")
    if not sep or not chunk.isdigit() or not marker:
        raise ValueError(f"{FAULT_ENV}={fault!r} must look like CHUNK:MARKER_FILE.")
    return int(chunk), marker


def _tracking_uri(model: str) -> str | None:
    """The driver's MLflow store when the model lives in it, so that workers read the same one."""
    if not model.startswith(("models:/", "runs:/")):
        return None
    import mlflow

    from memzoo.tracking import ensure_tracking

    ensure_tracking()  # the embedded default when this process has chosen no store yet
    return mlflow.get_tracking_uri()  # the store the driver really uses (it may have been switched since)


def _n_workers(ray: Any, workers: int | None, gpu: bool, threads: int) -> int:
    resources = ray.cluster_resources()
    if gpu:
        available = int(resources.get("GPU", 0))
        if available == 0:
            raise RuntimeError("--device cuda was asked for, but the Ray cluster has no GPU.")
    else:
        available = max(1, int(resources.get("CPU", 1)) // threads)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}.")
    return available if workers is None else min(workers, available)


def integrate_on_ray(
    job: IntegrationJob,
    writer: Any,
    todo: list[int],
    *,
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    on_write: Callable[[int], Any] | None = None,
) -> None:
    """Integrate the chunks ``todo`` of ``job`` on Ray workers and commit them in order to ``writer``.

    Args:
        job: the prepared job (:func:`memzoo.integration_job.prepare_job`).
        writer: the open :class:`~memzoo.results.ResultsWriter`.
        todo: chunk indices still to do, ascending (:meth:`IntegrationJob.pending`).
        address: a running cluster (``auto``, ``ray://host:10001``, ``host:6379``), or ``None``
            to start a local instance for the job; a process that already joined a Ray instance
            uses that one.
        workers: at most this many workers (default: one per GPU with ``device='cuda'``,
            else one per ``threads_per_worker`` CPUs of the cluster).
        threads_per_worker: CPUs reserved by, and torch threads of, each worker.
        on_write: called with the number of events of every committed chunk (progress bars).
    """
    ray = require_ray()
    if not todo:
        return
    _parse_fault(os.environ.get(FAULT_ENV))  # a malformed test hook fails here, not in every worker
    if threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be >= 1, got {threads_per_worker}.")
    started = not ray.is_initialized()  # else: the instance this process already joined
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        _run(ray, job, writer, todo, workers, threads_per_worker, on_write or (lambda n: None))
    finally:
        if started:
            ray.shutdown()


def _run(ray, job, writer, todo, workers, threads, on_write) -> None:
    gpu = job.device is not None and torch.device(job.device).type == "cuda"
    n_workers = min(_n_workers(ray, workers, gpu, threads), len(todo))
    actor_cls = ray.remote(ChunkWorker).options(
        num_cpus=threads,
        num_gpus=1 if gpu else 0,
        max_restarts=MAX_RETRIES,
        max_task_retries=MAX_RETRIES,
    )
    init = (
        job.model,
        job.options,
        job.theta.cpu(),
        job.sigma_fid,
        job.device,
        threads,
        _tracking_uri(job.model),
        os.environ.get(FAULT_ENV),
    )
    actors = [actor_cls.remote(*init) for _ in range(n_workers)]
    log.info("ray: %d workers for %d chunks", n_workers, len(todo))
    window = 4 * n_workers  # chunks in flight or finished but not yet committed
    queue = list(reversed(todo))
    load = [0] * n_workers
    in_flight: dict[Any, tuple[int, int]] = {}  # object ref -> (chunk, actor)
    finished: dict[int, Any] = {}
    next_index = todo[0]
    try:
        while queue or in_flight:
            while queue and len(in_flight) + len(finished) < window:
                actor = min(range(n_workers), key=load.__getitem__)
                index = queue.pop()
                ref = actors[actor].integrate.remote(index, job.chunk_reco(index))
                in_flight[ref] = (index, actor)
                load[actor] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                index, actor = in_flight.pop(ref)
                load[actor] -= 1
                try:
                    finished[index] = ray.get(ref)
                except Exception as err:  # Ray wraps worker errors; name the chunk
                    start, stop = job.bounds(index)
                    raise RuntimeError(
                        f"chunk {index} (events {start}-{stop - 1}) failed on a Ray worker: {err}. "
                        f"Complete chunks are in {writer.path}; rerun the command to resume."
                    ) from err
            while next_index in finished:
                on_write(write_chunk(writer, job, next_index, finished.pop(next_index)))
                next_index += 1
    finally:
        for actor in actors:
            ray.kill(actor)
