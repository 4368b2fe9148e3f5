"""Throughput of dσ/dx_hard (matrix element + PDFs + Jacobian, all θ terms) of built-in processes.

Usage: ``python benchmarks/bench_processes.py [drell-yan ...] [--batch N] [--threads T] [--json PATH | --no-json]``.
Prints evaluations per second of the batched ``from_unit`` + ``dsigma_terms`` (or ``dsigma``)
path and, as a reference in the same run, of a naive point-by-point Python loop over the same
code, so the ratio is the gain from batching on this machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

try:
    from benchmarks._common import Recorder, add_json_arguments, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_processes.py
    from _common import Recorder, add_json_arguments, sig

__all__ = ["PROCESSES", "bench"]


def _factory(name: str) -> Callable[[], object]:
    def build() -> object:
        import memzoo

        return memzoo.create("process", name)

    return build


#: Process factories by registry name (the built-ins; any registered process works).
PROCESSES: dict[str, Callable[[], object]] = {name: _factory(name) for name in ("drell-yan", "thj")}


#: How the docs name each process in the table.
DESCRIPTIONS = {
    "drell-yan": "drell-yan (5 quark flavours, both orderings, γ/Z)",
    "thj": "thj (8 channels × 2 orderings, 2 diagrams, helicity sums)",
}


def _evaluate(process, u: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    coords, jac = process.from_unit(u)
    if getattr(process, "factorised", False):
        return process.dsigma_terms(coords) * jac[:, None]
    return process.dsigma(coords, theta) * jac[:, None]


def _rate(fn: Callable[[], object], n_points: int, min_time: float = 1.0) -> float:
    fn()  # warm-up (PDF tables, caches)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_time:
        fn()
        calls += 1
    return calls * n_points / elapsed


def bench(name: str, batch: int = 10_000, naive_points: int = 200, seed: int = 0) -> dict[str, float]:
    """Batched and naive evaluations per second of one process; returns both and their ratio."""
    process = PROCESSES[name]()
    gen = torch.Generator().manual_seed(seed)
    theta = process.theta()
    u = torch.rand(batch, process.hard_dim, generator=gen, dtype=torch.float64)
    batched = _rate(lambda: _evaluate(process, u, theta), batch)
    few = u[:naive_points]

    def loop() -> None:
        for row in few:
            _evaluate(process, row[None], theta)

    naive = _rate(loop, naive_points)
    return {"batched_per_s": batched, "naive_per_s": naive, "ratio": batched / naive}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("processes", nargs="*", default=list(PROCESSES), help=f"any of {list(PROCESSES)}")
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    add_json_arguments(parser, "processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recorder.from_args("processes", args)
    columns = ["process", "batched evals/s", "point-by-point evals/s", "ratio"]
    table = rec.table("throughput", columns)
    for name in args.processes:
        if name not in PROCESSES:
            raise SystemExit(f"Unknown process {name!r}. Must be one of {list(PROCESSES)}.")
        r = bench(name, args.batch)
        print(
            f"{name:12s} batch={args.batch:7d} threads={args.threads}: "
            f"{r['batched_per_s']:12.0f} evals/s batched, "
            f"{r['naive_per_s']:8.0f} evals/s point-by-point loop, ratio {r['ratio']:.0f}x"
        )
        label = DESCRIPTIONS.get(name, name)
        table.append([label, sig(r["batched_per_s"]), f"{r['naive_per_s']:.0f}", f"{r['ratio']:.0f}×"])
    rec.notes.update(batch=args.batch, threads=args.threads)
    rec.write()


if __name__ == "__main__":
    main()
