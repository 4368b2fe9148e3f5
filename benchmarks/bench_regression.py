"""Speed of the regression surrogate: weights per second vs the paper's 150 μs/weight and vs the integrator.

Usage: ``python benchmarks/bench_regression.py [--events 100] [--rows 200000] [--threads 1] [--json PATH | --no-json]``.

1. Weights: the same accepted Drell-Yan events (parametric detector) × the 13-point
   sin²θ_eff grid 0.10:0.40 of ``registry/drell-yan/regression.toml``, once with the exact
   integrator it replaces (``registry/drell-yan/gaussian.toml``, 1000 points per iteration,
   3 % target, single pass over θ; σ_fid computed once beforehand and not counted) and once with
   the card's surrogate network (6 × 200 MLP, SELU output; the cost does not depend on the
   trained values). The surrogate is also timed on ``--rows`` (event, θ) rows in one call.
   Bury & Delaere quote 110-150 μs per weight for their DNNs (arXiv:2008.10949, Table 2 and Sec. 5).
2. Loading: one shuffled epoch of ``--rows`` tabular rows in batches of 512 with torch's
   ``DataLoader`` (per-row fetch and collate), ``DataLoader`` over a ``BatchSampler`` (one fetch per
   batch, memzoo's ``Trainer``) and :class:`~memzoo_regression.loader.ChunkedTensorLoader`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

try:
    from benchmarks._common import Recorder, add_json_arguments, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_regression.py
    from _common import Recorder, add_json_arguments, sig

ROOT = Path(__file__).parents[1]
EXACT = ROOT / "registry" / "drell-yan" / "gaussian.toml"
CARD = ROOT / "registry" / "drell-yan" / "regression.toml"
GRID = [0.10 + 0.025 * i for i in range(13)]


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    add_json_arguments(parser, "regression")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recorder.from_args("regression", args, args.device)
    from memzoo_regression.loader import ChunkedTensorLoader

    from memzoo.cards import load_card
    from memzoo.data import read_dataset
    from memzoo.integrator import MEMIntegrator
    from memzoo.simulation.simulate import SimulationConfig, simulate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dy.h5"
        config = SimulationConfig("drell-yan", n_events=4 * args.events, chunk_size=4 * args.events, seed=21)
        simulate(config, path, progress=False)
        data = read_dataset(path, accepted_only=True)[: args.events]
    reco = data.charged_reco
    parts = load_card(EXACT).build()
    theta = parts["process"].theta(sin2theta_eff=GRID)
    options = {"n_points": 1000, "target_rel_error": 0.03, "min_iterations": 2, "max_iterations": 6}
    integrator = MEMIntegrator(parts["process"], parts["transfer"], parts["sampler"], parts["acceptance"], **options)
    sigma = integrator.sigma_fid(theta)
    integrator = MEMIntegrator(*(parts[k] for k in ("process", "transfer", "sampler", "acceptance")), **options,
                               sigma_fid=lambda th: sigma)  # fmt: skip
    start = time.perf_counter()
    integrator.log_likelihood(reco, theta)
    t_int = time.perf_counter() - start
    n_weights = len(reco) * len(theta)

    model = load_card(CARD).build()["likelihood"].to(args.device).eval()
    with torch.no_grad():
        t_reg = best_of(lambda: model.information(reco, theta))
        features = model.event_features(reco).to(args.device)
        rows = torch.randint(len(features), (args.rows,))
        big_f = features[rows]
        big_t = theta[torch.randint(len(theta), (args.rows,))].to(args.device)
        t_big = best_of(lambda: model(big_f, big_t))
    us = {
        "integrator": 1e6 * t_int / n_weights,
        "surrogate, same events": 1e6 * t_reg / n_weights,
        f"surrogate, {args.rows} rows": 1e6 * t_big / args.rows,
    }

    gen = torch.Generator().manual_seed(0)
    table = (torch.randn(args.rows, 8, generator=gen), torch.rand(args.rows, 1, generator=gen),
             torch.randn(args.rows, generator=gen), torch.ones(args.rows))  # fmt: skip
    dataset = TensorDataset(*table)

    def epoch(loader) -> None:
        for _ in loader:
            pass

    loaders = {
        "torch DataLoader (per-row collate)": DataLoader(dataset, batch_size=512, shuffle=True, generator=gen),
        "DataLoader + BatchSampler (memzoo Trainer)": DataLoader(
            dataset, sampler=BatchSampler(RandomSampler(dataset, generator=gen), 512, False), batch_size=None
        ),
        "ChunkedTensorLoader": ChunkedTensorLoader(*table, batch_size=512, chunk_batches=64),
    }
    t_load = {name: best_of(lambda loader=loader: epoch(loader), repeat=2) for name, loader in loaders.items()}

    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    print(f"Machine: {machine}; {len(reco)} events x {len(theta)} θ = {n_weights} weights")
    print("\n| method | μs per weight | weights/s | vs paper's 150 μs | vs integrator |")
    print("| --- | --- | --- | --- | --- |")
    labels = [f"integrator ({len(theta)} θ per pass)", f"surrogate, same {n_weights} weights",
              f"surrogate, {args.rows:.0e} rows in one call".replace("e+0", "e")]  # fmt: skip
    weights = rec.table("weights", ["method", "μs per weight", "weights/s", "vs paper's 150 μs", "vs integrator"])
    for label, (name, value) in zip(labels, us.items()):
        print(f"| {name} | {value:.3g} | {1e6 / value:.3g} | {150 / value:.3g}× | {us['integrator'] / value:.3g}× |")
        ratio = us["integrator"] / value
        weights.append([label, sig(value, 2), sig(1e6 / value, 2), f"{sig(150 / value, 2)}×", f"{ratio:.0f}×"])
    print(f"\n| loader ({args.rows} rows, batch 512, one shuffled epoch) | seconds | vs DataLoader |")
    print("| --- | --- | --- |")
    base = t_load["torch DataLoader (per-row collate)"]
    labels = ["torch `DataLoader` (per-row fetch and collate)", "`DataLoader` over a `BatchSampler` (memzoo `Trainer`)",
              "`ChunkedTensorLoader` (64 batches per gather)"]  # fmt: skip
    loading = rec.table("loading", ["loader", "seconds", "vs DataLoader"])
    for label, (name, value) in zip(labels, t_load.items()):
        print(f"| {name} | {value:.3g} | {base / value:.3g}× |")
        ratio = base / value
        shown = "1" if value == base else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"
        loading.append([label, sig(value), shown])
    rec.notes.update(events=len(reco), theta_points=len(theta), rows=args.rows)
    rec.write()


if __name__ == "__main__":
    main()
