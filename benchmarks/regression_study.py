"""Accuracy study: the Drell-Yan regression surrogate against the exact integrator it was trained from.

Usage: ``python benchmarks/regression_study.py [--events 2000] [--roc-events 600] [--workers 2] [--json out.json]``
(about 6 minutes on a 2-core CPU with the defaults).

1. Simulates Drell-Yan with the parametric detector: two training files with sin²θ_eff drawn
   uniformly in [0.10, 0.40] per event, and two samples at sin²θ_eff = 0.15 and 0.35 for the ROC and θ scans.
2. Integrates their accepted events with the exact card ``registry/drell-yan/gaussian.toml``
   (``memzoo.integration_job.integrate_dataset``, the ``memzoo integrate`` job) on the grid
   0.10:0.40:13, one file per worker process.
3. Trains ``registry/drell-yan/regression.toml`` on the two training results (``memzoo train``:
   70/10/20 event split, θ = 0.175 and 0.275 held out) and loads the registered bundle back.
4. Evaluates on the test events at the trained θ and at the held-out θ: bias, resolution and
   MAPE of I = −log10 p, also of its θ dependence alone; on the two fixed-θ samples the ROC of
   D = P(x|0.15) / (P(x|0.15) + P(x|0.35)) and the summed −2 Δln L scan of each on the grid.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]
EXACT = ROOT / "registry" / "drell-yan" / "gaussian.toml"
CARD = ROOT / "registry" / "drell-yan" / "regression.toml"
GRID = [round(0.10 + 0.025 * i, 3) for i in range(13)]
HOLDOUT = (0.175, 0.275)
THETA_A, THETA_B = 0.15, 0.35
OPTIONS = {"n_points": 1000, "target_rel_error": 0.03, "min_iterations": 2, "max_iterations": 6}


def simulate_and_integrate(job: tuple[str, dict, int, int, int]) -> tuple[str, float, float]:
    """One worker: simulate a file, integrate its first ``n_accepted`` accepted events; returns seconds."""
    from memzoo.integration_job import integrate_dataset
    from memzoo.simulation.simulate import SimulationConfig, simulate

    torch.set_num_threads(1)
    stem, theta, n_sim, n_accepted, seed = job
    start = time.perf_counter()
    config = SimulationConfig("drell-yan", n_events=n_sim, chunk_size=n_sim, seed=seed, theta=theta)
    simulate(config, f"{stem}.h5", progress=False)
    tick = time.perf_counter()
    integrate_dataset(
        str(EXACT), f"{stem}.h5", {"sin2theta_eff": GRID}, f"{stem}-gaussian.h5",
        n_events=n_accepted, chunk_size=200, options=OPTIONS, progress=False,
    )  # fmt: skip
    return stem, time.perf_counter() - tick, tick - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="accepted events per training file (two files)")
    parser.add_argument("--roc-events", type=int, default=600, help="accepted events per fixed-θ sample")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", default="small")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wall = time.perf_counter()
    from memzoo_regression.metrics import discriminant, regression_metrics, roc
    from memzoo_regression.training_data import RegressionTable, from_results

    import memzoo
    from memzoo.tracking import configure_tracking
    from memzoo.train_job import train_card

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n_train, n_roc = math.ceil(args.events / 0.33), math.ceil(args.roc_events / 0.33)
        jobs = [
            (str(tmp / "train1"), {"sin2theta_eff": (0.10, 0.40)}, n_train, args.events, 11),
            (str(tmp / "train2"), {"sin2theta_eff": (0.10, 0.40)}, n_train, args.events, 12),
            (str(tmp / "roc_a"), {"sin2theta_eff": THETA_A}, n_roc, args.roc_events, 13),
            (str(tmp / "roc_b"), {"sin2theta_eff": THETA_B}, n_roc, args.roc_events, 14),
        ]
        with ProcessPoolExecutor(args.workers) as pool:
            timings = list(pool.map(simulate_and_integrate, jobs))
        integration_s = sum(t[1] for t in timings)
        n_integrated = 2 * args.events + 2 * args.roc_events
        print(f"simulated + integrated {n_integrated} events × {len(GRID)} θ in {time.perf_counter() - wall:.0f} s")

        text = CARD.read_text()
        results = [
            {"file": f"{tmp}/train{i}-gaussian.h5", "dataset": f"{tmp}/train{i}.h5", "source": 0} for i in (1, 2)
        ]
        inline = ["{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in r.items()) + "}" for r in results]
        toml_results = "[" + ", ".join(inline) + "]"
        text = text.replace('dataset = "memzoo-runs/drell-yan-regression/dy.h5"\n', "")
        text = text.replace(
            'results = ["memzoo-runs/drell-yan-regression/dy-gaussian.h5"]', f"results = {toml_results}"
        )
        card = tmp / "regression.toml"
        card.write_text(text)
        configure_tracking(tmp / "memzoo-runs")
        tick = time.perf_counter()
        out = train_card(card, size=args.size, root=tmp, alias="champion", progress=False)
        train_s = time.perf_counter() - tick
        model = memzoo.load("models:/memzoo-drell-yan-regression@champion").likelihood_model()
        print(f"trained in {train_s:.0f} s, registered {out['uri']}")

        # the test events of the card's split (same seed and fractions as fit_from_card)
        tables = [from_results(r["file"], r["dataset"]) for r in results]
        tests = [t.split(0, (0.7, 0.1, 0.2))[2] for t in tables]  # the card's split: seed 0, 70/10/20
        test = RegressionTable.cat(tests)
        reco, integrated, valid, theta = test.reco, test.target, test.valid, test.theta
        tick = time.perf_counter()
        with torch.no_grad():
            regressed = model.information(reco, theta)
        eval_s = time.perf_counter() - tick
        held = torch.tensor([any(abs(float(v) - h) < 1e-9 for h in HOLDOUT) for v in theta[:, 0]])
        report: dict = {
            "events_test": len(reco),
            "grid": GRID,
            "holdout": list(HOLDOUT),
            "invalid": int((~valid).sum()),
        }
        for key, columns in (("trained θ", ~held), ("held-out θ", held)):
            ok = valid[:, columns]
            report[key] = regression_metrics(regressed[:, columns][ok], integrated[:, columns][ok])
            per_theta = {}
            for j in torch.nonzero(columns).squeeze(-1).tolist():
                per_theta[f"{float(theta[j, 0]):.2f}"] = regression_metrics(
                    regressed[valid[:, j], j], integrated[valid[:, j], j]
                )
            report[f"{key} per point"] = per_theta
        # θ dependence alone: I(θ) − its mean over the grid, per event (what a θ fit sees)
        ok = valid.all(1)
        shape_int = integrated[ok] - integrated[ok].mean(1, keepdim=True)
        shape_reg = regressed[ok] - regressed[ok].mean(1, keepdim=True)
        report["θ shape spread (integrator std)"] = float(shape_int.std())
        report["θ shape"] = regression_metrics(shape_reg[:, held], shape_int[:, held])
        report["θ shape, trained θ"] = regression_metrics(shape_reg[:, ~held], shape_int[:, ~held])
        # ROC: fixed-θ samples, D from integrated and regressed weights
        roc_tables = [from_results(f"{tmp}/roc_{s}-gaussian.h5", f"{tmp}/roc_{s}.h5") for s in ("a", "b")]
        ia, ib = GRID.index(THETA_A), GRID.index(THETA_B)
        labels = torch.cat(
            [torch.ones(len(roc_tables[0]), dtype=torch.bool), torch.zeros(len(roc_tables[1]), dtype=torch.bool)]
        )
        logp_int = -math.log(10) * torch.cat([t.target for t in roc_tables])
        with torch.no_grad():
            logp_reg = model.log_likelihood(RegressionTable.cat(roc_tables).reco, theta).logp
        auc, scans = {}, {}
        for name, logp in (("integrator", logp_int), ("regression", logp_reg)):
            auc[name] = roc(discriminant(logp[:, ia], logp[:, ib]), labels)[2]
            for truth, rows in ((THETA_A, labels), (THETA_B, ~labels)):
                nll = -2 * logp[rows].sum(0)
                scans[f"{name} @ {truth}"] = {
                    "argmin": float(theta[int(nll.argmin()), 0]),
                    "-2 delta ln L": [round(float(v), 2) for v in nll - nll.min()],
                }
        report["auc"], report["scan on the grid"] = auc, scans
        report["regression_vs_integrator_D"] = regression_metrics(
            discriminant(logp_reg[:, ia], logp_reg[:, ib]), discriminant(logp_int[:, ia], logp_int[:, ib])
        )
        report["timing"] = {
            "integration_s_per_event": integration_s / n_integrated,
            "integration_us_per_weight": 1e6 * integration_s / (n_integrated * len(GRID)),
            "regression_us_per_weight": 1e6 * eval_s / regressed.numel(),
            "train_s": train_s,
            "total_s": time.perf_counter() - wall,
        }
        report["train_metrics"] = out["metrics"]
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
