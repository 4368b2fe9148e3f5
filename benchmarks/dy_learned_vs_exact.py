"""Accuracy study: the learned Drell-Yan MEM against the exact-transfer MEM on the same events.

Usage: ``python benchmarks/dy_learned_vs_exact.py [--events 1000] [--model models:/memzoo-drell-yan-cinn@champion]``
(run after ``make demo`` or ``memzoo train registry/drell-yan/cinn.toml --alias champion``).

Simulates events at sin²θ_eff = 0.2315, integrates them with both models on a θ grid (single pass,
bootstrap replicas), fits a parabola to the summed -2 log L of each and prints the position of the
maximum likelihood and the curvature (1σ width), with bootstrap errors, and their differences.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import memzoo
from memzoo.cards import load_card
from memzoo.data import read_dataset
from memzoo.integrator import MEMIntegrator
from memzoo.simulation.simulate import SimulationConfig, simulate
from memzoo.tracking import ensure_tracking

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"


def parabola(theta: torch.Tensor, nll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum position and 1σ width (Δ(-2 log L) = 1) of least-squares parabolas, nll (T, M): M curves."""
    x = theta - theta.mean()
    design = torch.stack([torch.ones_like(x), x, x**2], -1)
    coef = torch.linalg.lstsq(design, nll).solution  # (3, M)
    _, c1, c2 = coef
    return theta.mean() - c1 / (2 * c2), 1 / c2.sqrt()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--model", default="models:/memzoo-drell-yan-cinn@champion")
    parser.add_argument("--points", type=int, default=4000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ensure_tracking()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dy.h5"
        simulate(SimulationConfig("drell-yan", n_events=3 * args.events, chunk_size=3 * args.events, seed=77), path)
        data = read_dataset(path, accepted_only=True)[: args.events]
    bundle = memzoo.load(args.model)
    exact = load_card(CARD).build()
    process = exact["process"]
    theta = process.theta(sin2theta_eff=torch.linspace(0.15, 0.31, 17, dtype=torch.float64).tolist())
    options = {"n_points": args.points, "min_iterations": 2, "max_iterations": 8, "bootstrap": 32}
    models = {
        "learned": (process, bundle.transfer, bundle.sampler, bundle.acceptance),
        "exact": (process, exact["transfer"], exact["sampler"], exact["acceptance"]),
    }
    fits = {}
    for name, parts in models.items():
        result = MEMIntegrator(*parts, **options).log_likelihood(data.charged_reco, theta)
        central = -2 * result.logp.sum(0)
        replicas = -2 * result.diagnostics["logp_replicas"].sum(0)  # (T, M)
        pos, width = parabola(theta[:, 0], torch.cat([central[:, None], replicas], 1))
        fits[name] = (pos, width)
        print(
            f"{name:8s}: max-likelihood sin²θ_eff = {pos[0]:.4f} ± {pos[1:].std():.4f} (integration), "
            f"1σ statistical width {width[0]:.4f} ± {width[1:].std():.4f}"
        )
    d_pos = fits["learned"][0] - fits["exact"][0]
    d_width = fits["learned"][1] - fits["exact"][1]
    print(
        f"learned − exact: Δposition = {d_pos[0]:+.4f} ± {d_pos[1:].std():.4f}, "
        f"Δwidth = {d_width[0]:+.4f} ± {d_width[1:].std():.4f} ({len(data)} events)"
    )


if __name__ == "__main__":
    main()
