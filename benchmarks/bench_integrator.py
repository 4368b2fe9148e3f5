"""MEM integration cost to 1 %: memzoo's single-pass integrator vs the ``vegas`` package per event and θ.

Usage: ``python benchmarks/bench_integrator.py [--events 100] [--theta-points 41] [--vegas-events 10]
[--json PATH | --no-json]``.

Drell-Yan events from the parametric detector; the exact-transfer model card
(``registry/drell-yan/gaussian.toml``): the same integrand dσ(x|θ) ε(x) p(x_reco|x) / q(x) on the
sampler's unit hypercube for both. memzoo integrates every θ of an event in one pass (VEGAS grid
per event, factorised dσ) until all reach the target; the reference runs Lepage's ``vegas``
separately for each event and θ (3 adaptation iterations, then iterations of the same size until
the target), on the first ``--vegas-events`` events. Prints integrand evaluations and wall time per
(event, θ) integral for both, and their ratios; σ_fid is computed once and shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from memzoo.cards import load_card
from memzoo.data import read_dataset
from memzoo.integrator import MEMIntegrator
from memzoo.simulation.simulate import SimulationConfig, simulate

try:
    from benchmarks._common import Recorder, add_json_arguments, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_integrator.py
    from _common import Recorder, add_json_arguments, sig

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"


def vegas_reference(parts, reco, theta, sigma, target, neval):
    """Evaluations and seconds for one event and one θ with the ``vegas`` package."""
    import vegas

    process, transfer, sampler, acceptance = (parts[k] for k in ("process", "transfer", "sampler", "acceptance"))
    calls = [0]

    @vegas.lbatchintegrand
    def f(u):
        n = len(u)
        calls[0] += n
        rows = reco[torch.zeros(n, dtype=torch.long)]
        coords, log_q = sampler.from_unit(torch.as_tensor(u), rows, theta.expand(n, -1))
        log_p = transfer.log_prob(rows, coords)
        value = process.dsigma(coords, theta)[:, 0] * acceptance.prob(coords) * torch.exp(log_p - log_q) / sigma
        return torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0).numpy()

    start = time.perf_counter()
    integ = vegas.Integrator([[0.0, 1.0]] * process.hard_dim, ran_array_generator=np.random.default_rng(0).random)
    integ(f, nitn=3, neval=neval)
    means, variances = [], []
    while True:
        r = integ(f, nitn=1, neval=neval)
        means.append(r.mean)
        variances.append(max(r.sdev**2, 1e-300))
        w = 1 / np.array(variances)
        mean, err = float((w * np.array(means)).sum() / w.sum()), float(w.sum() ** -0.5)
        if (mean > 0 and err / mean < target) or len(means) >= 50:
            return calls[0], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--theta-points", type=int, default=41)
    parser.add_argument("--vegas-events", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument("--device", default="cpu")
    add_json_arguments(parser, "integrator")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = Recorder.from_args("integrator", args, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dy.h5"
        simulate(
            SimulationConfig("drell-yan", n_events=4 * args.events, chunk_size=4 * args.events), path, progress=False
        )
        data = read_dataset(path, accepted_only=True)[: args.events]
    reco = data.charged_reco
    parts = load_card(CARD).build()
    theta = parts["process"].theta(
        sin2theta_eff=torch.linspace(0.20, 0.26, args.theta_points, dtype=torch.float64).tolist()
    )
    integrator = MEMIntegrator(
        parts["process"], parts["transfer"], parts["sampler"], parts["acceptance"],
        n_points=10_000, target_rel_error=args.target, max_iterations=30, device=args.device,
    )  # fmt: skip
    sigma, _ = integrator.sigma_fid(theta)
    start = time.perf_counter()
    result = integrator.log_likelihood(reco.to(args.device), theta.to(args.device))
    wall = time.perf_counter() - start
    n_int = len(reco) * len(theta)
    evals = float(result.diagnostics["n_points"].sum())
    reached = float((result.diagnostics["rel_error"] < args.target).double().mean())
    print(f"memzoo: {len(reco)} events x {len(theta)} θ, target {args.target:.0%} ({reached:.0%} of integrals reached)")
    print(f"  {evals / n_int:10.0f} evaluations and {1e3 * wall / n_int:8.2f} ms per (event, θ); total {wall:.1f} s")
    v_evals = v_wall = 0.0
    for e in range(min(args.vegas_events, len(reco))):
        for t in range(len(theta)):
            n, s = vegas_reference(parts, reco[e], theta[t : t + 1], float(sigma[t]), args.target, 2000)
            v_evals, v_wall = v_evals + n, v_wall + s
    n_ref = min(args.vegas_events, len(reco)) * len(theta)
    print(f"vegas package: {n_ref} separate integrals (first {min(args.vegas_events, len(reco))} events)")
    print(f"  {v_evals / n_ref:10.0f} evaluations and {1e3 * v_wall / n_ref:8.2f} ms per (event, θ)")
    print(
        f"ratio vegas/memzoo: {v_evals / n_ref / (evals / n_int):.1f}x evaluations, "
        f"{v_wall / n_ref / (wall / n_int):.1f}x wall time; "
        f"memzoo throughput {evals / wall:.0f} points/s ({len(theta)} θ each)"
    )
    table = rec.table("cost", ["", "integrand evaluations per (event, θ)", "wall time per (event, θ)"])
    table.append(["memzoo `MEMIntegrator`", f"{evals / n_int:.0f}", f"{1e3 * wall / n_int:.3g} ms"])
    table.append(["`vegas` per event and θ", f"{v_evals / n_ref:.0f}", f"{1e3 * v_wall / n_ref:.3g} ms"])
    table.append(["ratio", f"{v_evals / n_ref / (evals / n_int):.1f}×", f"{v_wall / n_ref / (wall / n_int):.1f}×"])
    rec.notes.update(
        events=len(reco), theta_points=len(theta), vegas_integrals=n_ref, target=args.target,
        reached_fraction=reached, memzoo_points_per_s=sig(evals / wall, 2), memzoo_wall_s=round(wall, 1),
    )  # fmt: skip
    rec.write()


if __name__ == "__main__":
    main()
