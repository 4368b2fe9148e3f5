"""Events per second per core of the simulation chains (``memzoo simulate``), one core each.

Usage: ``python benchmarks/bench_simulation.py [--events N] [--json PATH | --no-json]``.

For each chain (Drell-Yan and tHj hadronic; parametric detector and Pythia shower + FastJet)
it times one chunk of the real pipeline (hard-event sampling with its VEGAS set-up, hard
record, decays, truth objects or shower, detector, selection) and, as the reference in the
same run, the hard-event sampling alone, printing both rates and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from memzoo.simulation.simulate import SimulationConfig, _Pipeline

try:
    from benchmarks._common import Recorder, add_json_arguments
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_simulation.py
    from _common import Recorder, add_json_arguments

LABELS = {
    ("drell-yan", "parametric"): "Drell-Yan, parametric",
    ("thj", "parametric"): "tHj hadronic, parametric",
    ("drell-yan", "pythia"): "Drell-Yan, Pythia 8 + FastJet",
    ("thj", "pythia"): "tHj hadronic, Pythia 8 + FastJet",
}
CHAINS = [
    ("drell-yan", "parametric"),
    ("thj", "parametric"),
    ("drell-yan", "pythia"),
    ("thj", "pythia"),
]


def bench(process: str, detector: str, n: int) -> dict[str, float]:
    pipeline = _Pipeline(SimulationConfig(process, n_events=n, chunk_size=n, detector=detector))
    start = time.perf_counter()
    chunk = pipeline.run(0)
    full = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    pipeline.process.sample(n, pipeline.process.theta(), generator=gen)
    hard = time.perf_counter() - start
    return {
        "events_per_s": len(chunk) / full,
        "hard_only_per_s": n / hard,
        "accepted": float(chunk.accepted.float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    add_json_arguments(parser, "simulation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = Recorder.from_args("simulation", args)
    columns = ["chain", "events/s/core (full chain)", "hard sampling alone", "ratio", "acceptance"]
    table = rec.table("chains", columns)
    print(f"torch {torch.__version__}, 1 thread, {args.events} events per chain")
    for process, detector in CHAINS:
        r = bench(process, detector, args.events)
        ratio = r["events_per_s"] / r["hard_only_per_s"]
        print(
            f"{process:10s} {detector:10s}: {r['events_per_s']:8.1f} events/s/core full chain, "
            f"{r['hard_only_per_s']:8.1f} events/s hard sampling alone (ratio {ratio:.2f}), "
            f"acceptance {r['accepted']:.3f}"
        )
        table.append([LABELS[process, detector], f"{r['events_per_s']:.0f}", f"{r['hard_only_per_s']:.0f}",
                      f"{ratio:.2f}", f"{r['accepted']:.3f}"])  # fmt: skip
    rec.notes["events"] = args.events
    rec.write()


if __name__ == "__main__":
    main()
