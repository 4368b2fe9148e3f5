"""``memzoo integrate`` on Ray: speed-up with 1 and 2 workers against the single-process engine.

Usage: ``python benchmarks/bench_ray.py [--events 48] [--chunk-size 6] [--theta-points 13] [--points 2000]
[--target 0.02] [--repeat 2] [--json PATH | --no-json]``.

Drell-Yan events from the parametric detector, the exact-transfer card
(``registry/drell-yan/gaussian.toml``, target 2 %), one θ grid. The same job runs three times
into fresh files: the single-process engine (torch 1 thread), then ``--engine ray`` with 1 and
with 2 workers on one local Ray instance (1 CPU and 1 torch thread per worker). Wall times include
starting the workers (each imports torch and loads the model) but not ``ray.init``, which is timed
separately; each configuration runs ``--repeat`` times, interleaved, and the fastest run counts
(the 2-core machine is shared); the files are checked to be bit-identical. To tell Ray's overhead
from a busy machine, the speed-up of two plain processes over one on a fixed torch workload is
printed too: the ceiling any 2-worker engine can reach at that moment. Also prints the integrand throughput of
one worker (evaluations/s, each evaluation serving all θ points), the input of the scaling
estimate in ``docs/distributed.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from memzoo.integration_job import integrate_dataset, prepare_job
from memzoo.results import read_results
from memzoo.simulation.simulate import SimulationConfig, simulate

try:
    from benchmarks._common import Recorder, add_json_arguments, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_ray.py
    from _common import Recorder, add_json_arguments, sig

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"


def _burn(n: int) -> float:
    """A fixed single-thread torch workload; returns its wall time."""
    torch.set_num_threads(1)
    x = torch.rand(256, 256, dtype=torch.float64)
    start = time.perf_counter()
    for _ in range(n):
        x = torch.tanh(x @ x * 1e-2)
    return time.perf_counter() - start


def cpu_ceiling(n: int = 1500) -> float:
    """The speed-up two plain processes get over one right now: the ceiling on a shared machine."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(_burn, 10).result()  # start-up outside the timing
        one = pool.submit(_burn, n).result()
        two = max(pool.map(_burn, [n, n]))
    return 2 * one / two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=48, help="accepted events to integrate")
    parser.add_argument("--chunk-size", type=int, default=6)
    parser.add_argument("--theta-points", type=int, default=13)
    parser.add_argument("--points", type=int, default=2000, help="points per event and iteration")
    parser.add_argument("--target", type=float, default=0.02, help="target relative error per event and θ")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each engine; the fastest is reported")
    parser.add_argument("--data", help="an existing Drell-Yan dataset (default: simulate one)")
    add_json_arguments(parser, "ray")
    args = parser.parse_args()
    rec = Recorder.from_args("ray", args)
    import ray

    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the Ray workers started below
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            data = tmp / "dy.h5"
            n = int(args.events / 0.3) + 50  # ~36 % of Drell-Yan events pass the selection
            simulate(SimulationConfig("drell-yan", n_events=n, chunk_size=n, seed=7), data, progress=False)
        step = 0.06 / max(args.theta_points - 1, 1)
        theta = {"sin2theta_eff": [0.20 + i * step for i in range(args.theta_points)]}
        options = {"n_points": args.points, "seed": 3, "sigma_fid_points": 10_000, "target_rel_error": args.target}
        common = dict(n_events=args.events, chunk_size=args.chunk_size, options=options)

        def timed(name: str, **kwargs) -> tuple[float, Path]:
            out = tmp / f"{name}.h5"
            out.unlink(missing_ok=True)
            start = time.perf_counter()
            integrate_dataset(str(CARD), data, theta, out, progress=False, **common, **kwargs)
            return time.perf_counter() - start, out

        start = time.perf_counter()
        prepare_job(str(CARD), data, theta, **common).sigma_fid  # noqa: B018 (the driver's share)
        t_fid = time.perf_counter() - start
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        t_init = time.perf_counter() - start
        runs = {"local": [], "ray1": [], "ray2": []}
        try:
            for _ in range(args.repeat):  # interleaved, so that a change of the machine's load hits all three
                runs["local"].append(timed("local"))
                runs["ray1"].append(timed("ray1", engine="ray", workers=1))
                runs["ray2"].append(timed("ray2", engine="ray", workers=2))
        finally:
            ray.shutdown()
        ceiling = cpu_ceiling()
        t_local, t_one, t_two = (min(t for t, _ in runs[k]) for k in ("local", "ray1", "ray2"))
        ref = read_results(runs["local"][0][1])
        identical = all(
            torch.equal(getattr(read_results(runs[k][-1][1]), name), getattr(ref, name))
            for k in ("ray1", "ray2")
            for name in ("event", "logp", "std", "n_points")
        )
        evaluations = int(ref.n_points.sum())
    print(
        f"{args.events} events x {args.theta_points} θ, chunks of {args.chunk_size}, {args.points} points/iteration, "
        f"target {args.target:g}; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"integrand evaluations: {evaluations} ({evaluations / args.events:.0f} per event, all θ at once)")
    print(f"ray.init (local, 2 CPUs): {t_init:.1f} s; files bit-identical: {identical}")
    print(f"best of {args.repeat} runs each")
    columns = ["engine", "workers", "wall time", "events/s", "vs 1 Ray worker", "vs single process"]
    table = rec.table("engines", columns)
    print("| engine | workers | wall time [s] | events/s | speed-up vs 1 Ray worker | vs single process |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, workers, t in (("local", 1, t_local), ("ray", 1, t_one), ("ray", 2, t_two)):
        rate = args.events / t
        print(f"| {name} | {workers} | {t:.1f} | {rate:.2f} | {t_one / t:.2f}x | {t_local / t:.2f}x |")
        table.append([name, str(workers), f"{t:.1f} s", f"{rate:.2f}", f"{t_one / t:.2f}×", f"{t_local / t:.2f}×"])
    print(f"two plain processes vs one on this machine right now (the ceiling): {ceiling:.2f}x")
    print(f"driver: reading the model and data + σ_fid (10 x 10^4 points): {t_fid:.1f} s of each run")
    rate = evaluations / max(t_local - t_fid, 1e-9)
    print(f"single-process integrand throughput: {rate:.3g} evaluations/s (1 thread, σ_fid excluded)")
    rec.notes.update(
        events=args.events, theta_points=args.theta_points, chunk_size=args.chunk_size, points=args.points,
        target=args.target, repeat=args.repeat, evaluations=evaluations, ray_init_s=round(t_init, 1),
        bit_identical=identical, two_process_ceiling=round(ceiling, 2), ray_version=ray.__version__,
        driver_setup_s=round(t_fid, 1), single_process_evaluations_per_s=sig(rate, 2),
        load_before_runs=round(load_before, 1),
    )  # fmt: skip
    rec.write()


if __name__ == "__main__":
    main()
