"""Accuracy study: the learned Drell-Yan MEM against the exact-transfer MEM on the same events.

Usage::

    python benchmarks/dy_learned_vs_exact.py --data DY.h5 --out study/ [--events 1000]
        [--model models:/memzoo-drell-yan-cinn@champion]

(train the learned bundle first with ``make demo`` or
``memzoo train registry/drell-yan/cinn.toml --alias champion``; simulate the events with
``memzoo simulate drell-yan --theta sin2theta_eff=0.2315 ...``).

Both models integrate the same accepted events on one sin²θ_eff grid through the resumable
``memzoo integrate`` job (results files in ``--out``; rerunning resumes), with bootstrap replicas
of the integration. A parabola is fitted to each summed −2 log L near its minimum: its vertex is
the maximum-likelihood estimate, its curvature the 1σ statistical width. The learned − exact
differences are quoted with their integration (bootstrap) errors and against the statistical
width; the hard-level likelihood of the true hard events is fitted the same way. Writes
``summary.json`` and ``scan.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from memzoo.data import read_dataset
from memzoo.inference import hard_level_likelihood
from memzoo.integration_job import integrate_dataset
from memzoo.results import read_results

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"


def parabola(theta: torch.Tensor, nll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertex and 1σ width (Δ(−2 log L) = 1) of least-squares parabolas; ``nll (T, M)``: M curves."""
    x = theta - theta.mean()
    design = torch.stack([torch.ones_like(x), x, x**2], -1)
    coef = torch.linalg.lstsq(design, nll).solution  # (3, M)
    _, c1, c2 = coef
    return theta.mean() - c1 / (2 * c2), 1 / c2.sqrt()


def hard_level_nll(data_path: Path, rows: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """−2 Σ log p(x_hard|θ) of the true hard events of the accepted sample: dσ(θ)·ε / σ_fid(θ).

    ε is the detector's exact acceptance (``parametric-exact``), so this is the likelihood an
    ideal detector would give.
    """
    from memzoo.cards import load_card

    exact = load_card(CARD).build()
    hard = read_dataset(data_path)[rows].hard_coords.double()
    result = hard_level_likelihood(exact["process"], hard, theta[:, None], acceptance=exact["acceptance"])
    return -2 * result.logp.sum(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="DY dataset simulated at one sin²θ_eff")
    parser.add_argument("--out", type=Path, required=True, help="folder for results files and the summary")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--model", default="models:/memzoo-drell-yan-cinn@champion")
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--bootstrap", type=int, default=16)
    parser.add_argument("--grid", default="0.17:0.29:13", help="sin²θ_eff START:STOP:N")
    parser.add_argument("--engine", default="local", choices=["local", "ray"], help="ray: one worker per core")
    parser.add_argument("--workers", type=int, default=None, help="Ray workers (default: one per core)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    start, stop, n = args.grid.split(":")
    grid = {"sin2theta_eff": torch.linspace(float(start), float(stop), int(n), dtype=torch.float64).tolist()}
    options = {"n_points": args.points, "min_iterations": 2, "max_iterations": 8, "bootstrap": args.bootstrap}
    models = {"learned": args.model, "exact": str(CARD)}
    fits, curves = {}, {}
    for name, model in models.items():
        path = args.out / f"{name}.h5"
        integrate_dataset(
            model,
            args.data,
            grid,
            path,
            n_events=args.events,
            chunk_size=50,
            options=options,
            engine=args.engine,
            workers=args.workers,
        )
        res = read_results(path)
        central = -2 * res.logp.sum(0)
        replicas = -2 * res.logp_replicas.sum(0)  # (T, M)
        theta = res.theta[:, 0]
        pos, width = parabola(theta, torch.cat([central[:, None], replicas], 1))
        fits[name] = (pos, width)
        curves[name] = central - central.min()
        print(
            f"{name:8s}: max-likelihood sin²θ_eff = {pos[0]:.4f} ± {pos[1:].std():.4f} (integration), "
            f"1σ statistical width {width[0]:.4f} ± {width[1:].std():.4f}"
        )
    hard = hard_level_nll(args.data, read_results(args.out / "exact.h5").event, theta.double())
    hard_pos, hard_width = parabola(theta, hard[:, None])
    curves["hard level"] = hard - hard.min()
    d_pos = fits["learned"][0] - fits["exact"][0]
    d_width = fits["learned"][1] - fits["exact"][1]
    n_events = len(res.event)
    print(
        f"learned − exact: Δposition = {d_pos[0]:+.4f} ± {d_pos[1:].std():.4f} (integration), "
        f"Δwidth = {d_width[0]:+.4f} ± {d_width[1:].std():.4f} ({n_events} events); "
        f"hard level: {hard_pos[0]:.4f}, width {hard_width[0]:.4f}"
    )
    summary = {
        "events": n_events,
        "model": args.model,
        "options": options,
        **{
            name: {
                "position": float(pos[0]),
                "position_integration_error": float(pos[1:].std()),
                "width": float(width[0]),
                "width_integration_error": float(width[1:].std()),
            }
            for name, (pos, width) in fits.items()
        },
        "hard_level": {"position": float(hard_pos[0]), "width": float(hard_width[0])},
        "difference": {
            "position": float(d_pos[0]),
            "position_integration_error": float(d_pos[1:].std()),
            "width": float(d_width[0]),
            "width_integration_error": float(d_width[1:].std()),
            "position_in_statistical_widths": float(d_pos[0] / fits["exact"][1][0]),
        },
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    from memzoo.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, curve in curves.items():
        ax.plot(theta, curve, "o-" if name != "hard level" else "--", ms=3, label=name)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel(r"$\sin^2\theta_\mathrm{eff}$")
    ax.set_ylabel(r"$-2\,\Delta\log L$")
    ax.set_title(f"Drell-Yan, {n_events} events at 0.2315")
    ax.legend()
    save_figure(fig, args.out / "scan.png")
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'scan.png'}")


if __name__ == "__main__":
    main()
