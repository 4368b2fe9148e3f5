"""Accuracy study: the tHj regression surrogate against the learned-transfer integrator it was trained from.

Usage::

    cd /work/runs/cal   # where the calibration run wrote its files (memzoo-runs: its MLflow store)
    OMP_NUM_THREADS=1 python /work/main/benchmarks/thj_regression_study.py --json thj-regression.json \\
        [--sample 0 mem-alpha0.h5 thj-alpha0.h5 ...] [--max-std 0.7] [--epochs 12] \\
        [--time-integrator 20 --store memzoo-runs]

1. Reads the integrations ``mem-alpha{0,45,90}.h5`` of accepted hadronic tHj events at true α = 0°,
   45°, 90° (``memzoo integrate`` with the cINN bundle on the grid α = −180:170:36), copied first
   (the files may still be growing), into one :class:`RegressionTable` per sample
   (``from_results``). Every event carries I(x, α) = −log10 p(x|α) on all 36 grid points; the
   three samples together are the event population of α ∈ {0°, 45°, 90°}.
2. Writes a copy of ``registry/thj/regression.toml`` naming those files (``max_std``, held-out
   α = −40°, 40°, 130°, 70/10/20 event split with seed 0, every event of equal weight) and trains
   it with ``memzoo train``'s :func:`~memzoo.train_job.train_card` into a temporary MLflow store.
3. On the test events (the card's split of each sample): bias, resolution and MAPE of I at the
   trained and the held-out α, of the θ shape I(α) − ⟨I⟩_α, and of the *invalid* targets (error
   of ln p above ``max_std``: excluded from training, still evaluated); all per true α too.
4. ROC of D = P(x|0°) / (P(x|0°) + P(x|90°)) on the test events of the α = 0° and 90° samples
   from integrated and regressed weights (AUC ± Hanley-McNeil error, paired bootstrap of ΔAUC),
   and the summed −2Δln L on the grid per true α (its argmin) from both.
5. μs per weight of the surrogate (best of 3 calls on all test events, this CPU, 1 thread) and,
   with ``--time-integrator N``, of the integrator on N events of the first sample (a subprocess
   reading the cINN bundle from ``--store``; output to a temporary file).

Bury & Delaere, arXiv:2008.10949 (Table 3: bias/resolution; eq. 4.1: D); DeepMEM (CHEP 2023: MAPE).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib
import torch

ROOT = Path(__file__).parents[1]
CARD = ROOT / "registry" / "thj" / "regression.toml"
ENTRY = "memzoo-thj-regression"
HOLDOUT = (-40.0, 40.0, 130.0)
ROC_A, ROC_B = 0.0, 90.0
SPLIT = (0.7, 0.1, 0.2)
LN10 = math.log(10.0)
#: keys a study may add to the card where it lacks them, and the table they go to
ADDABLE = {"early_stopping_patience": "training.likelihood", "weight_decay": "training.likelihood"}
ADDABLE["theta_period"] = "likelihood.config"


def copy_stable(src: Path, dst: Path, tries: int = 10) -> int:
    """Copy a results file that another process may be appending to; returns its complete events."""
    from memzoo.results import read_results

    for attempt in range(tries):
        shutil.copyfile(src, dst)
        try:
            return len(read_results(dst).event)
        except (OSError, KeyError, ValueError):
            if attempt == tries - 1:
                raise
            time.sleep(3)
    raise AssertionError("unreachable")


def card_text(template: str, samples: list[dict], *, max_std: float, holdout: tuple[float, ...], **base) -> str:
    """``template`` (a regression card) with ``[data]`` naming ``samples`` and ``base`` overrides.

    ``base`` maps keys of the base card (``epochs``, ``hidden``, ``layers``, or those of
    :data:`ADDABLE`, added to their table if absent) to new values (``None``: keep); the
    ``[size.*]`` tables are left alone. Every edit is checked by reading the card back.
    """
    results = ", ".join(
        f'{{file = "{s["file"]}", dataset = "{s["dataset"]}", source = {s["source"]}}}' for s in samples
    )
    data = (
        f"[data]\nresults = [{results}]\nmax_std = {max_std!r}\nsplit = {list(SPLIT)}\n"
        f"holdout_theta = {{ alpha = {[float(h) for h in holdout]} }}\nbalance = false\n"
    )
    text, n = re.subn(r"(?ms)^\[data\]\n.*?(?=^\[)", data + "\n", template, count=1)
    if n != 1:
        raise ValueError("the regression card template has no [data] table followed by another table.")
    cut = text.index("[size.") if "[size." in text else len(text)
    head, tail = text[:cut], text[cut:]
    for key, value in base.items():
        if value is None:
            continue
        head, n = re.subn(rf"(?m)^{key} = [^\n#]*", f"{key} = {value}", head, count=1)
        if n == 0 and key in ADDABLE:  # absent from the card: add it to its table
            table = re.escape(f"[{ADDABLE[key]}]")
            head, n = re.subn(rf"(?m)^{table}\n", rf"\g<0>{key} = {value}\n", head, count=1)
        if n != 1:
            raise ValueError(f"the regression card template has no base key {key!r} to override.")
    text = head + tail
    parsed = tomllib.loads(text)
    assert parsed["data"]["max_std"] == max_std and len(parsed["data"]["results"]) == len(samples)
    return text


def load_samples(samples: list[dict], max_std: float) -> list:
    """One :class:`RegressionTable` per sample (``source`` = its index), targets invalid above ``max_std``."""
    from memzoo_regression.training_data import from_results

    return [from_results(s["file"], s["dataset"], max_std=max_std, source=s["source"]) for s in samples]


def test_events(tables: list, truths: list[float], seed: int = 0):
    """The card's test events of every table (same split as ``fit_from_card``) and their true α."""
    from memzoo_regression.training_data import RegressionTable

    tests = [t.split(seed, SPLIT)[2] for t in tables]
    truth = torch.cat([torch.full((len(t),), float(a), dtype=torch.float64) for t, a in zip(tests, truths)])
    return RegressionTable.cat(tests), truth


def _metrics(regressed: torch.Tensor, integrated: torch.Tensor) -> dict | None:
    """``regression_metrics`` plus the robust ``median`` and ``sigma68`` (half the central 68 %
    interval) of ΔI = regressed − integrated: the standard deviation alone is ruled by the tails."""
    from memzoo_regression.metrics import regression_metrics

    if regressed.numel() < 2:
        return None
    out = regression_metrics(regressed, integrated)
    q = torch.quantile((regressed - integrated).double(), torch.tensor([0.16, 0.5, 0.84], dtype=torch.float64))
    return {**out, "median": float(q[1]), "sigma68": float(q[2] - q[0]) / 2}


def accuracy(regressed, integrated, valid, alpha, holdout, std=None) -> dict:
    """Bias, resolution and MAPE of I (surrogate − integrator) on (E, T) arrays.

    Keys: ``trained θ`` / ``held-out θ`` (valid targets), ``invalid targets`` (excluded from
    training), ``I spread (integrator std)`` (the resolution of a constant), ``θ shape`` /
    ``θ shape, trained θ`` (I(α) − its mean over the grid, per event with every target valid),
    ``θ shape spread (integrator std)``, and with ``std`` (errors of ln p) ``integrator error
    of I (rms)``, the noise the integrated targets carry.
    """
    held = torch.tensor([any(abs(float(a) - h) < 1e-9 for h in holdout) for a in alpha], dtype=torch.bool)
    out: dict = {}
    for key, columns in (("trained θ", ~held), ("held-out θ", held)):
        ok = valid[:, columns]
        out[key] = _metrics(regressed[:, columns][ok], integrated[:, columns][ok])
    out["invalid targets"] = _metrics(regressed[~valid], integrated[~valid])
    out["I spread (integrator std)"] = float(integrated[valid].std()) if valid.sum() > 1 else None
    complete = valid.all(1)
    shape_int = integrated[complete] - integrated[complete].mean(1, keepdim=True)
    shape_reg = regressed[complete] - regressed[complete].mean(1, keepdim=True)
    out["events with every target valid"] = int(complete.sum())
    out["θ shape spread (integrator std)"] = float(shape_int.std()) if complete.sum() > 1 else None
    baseline = shape_int.mean(0, keepdim=True).expand_as(shape_int)  # every event: the mean shape
    shapes = {"θ shape": (shape_reg, held), "θ shape, trained θ": (shape_reg, ~held)}
    shapes["θ shape of the mean event"] = (baseline, held)
    for key, (shape, columns) in shapes.items():
        out[key] = _metrics(shape[:, columns], shape_int[:, columns])
        if out[key] is not None:
            del out[key]["mape"]  # the shape is ≈ 0 by construction: a percentage is meaningless
    out["θ shape noise (Fourier residual)"] = fourier_residual(integrated[complete], alpha)
    if std is not None:
        out["integrator error of I (rms)"] = float((std[valid] / LN10).pow(2).mean().sqrt())
    return out


def fourier_residual(information: torch.Tensor, alpha: torch.Tensor, order: int = 4) -> float | None:
    """RMS residual (per degree of freedom) of a per-event Fourier series of ``order`` in α (degrees).

    I(α) of an event is smooth and 2π-periodic; what a low-order series leaves is (an upper bound
    on) the integration noise of its α dependence, which can be far below the per-point error
    of ln p when the noise is correlated across α (same phase-space points for every α).
    """
    a = torch.deg2rad(alpha.double())
    terms = [torch.ones_like(a)] + [f(k * a) for k in range(1, order + 1) for f in (torch.cos, torch.sin)]
    design = torch.stack(terms, 1)
    dof = len(a) - design.shape[1]
    if dof < 1 or len(information) == 0:
        return None
    residual = information.T.double() - design @ torch.linalg.lstsq(design, information.T.double()).solution
    return float((residual.pow(2).sum(0) / dof).mean().sqrt())


def auc_with_errors(logp_int, logp_reg, is_a, n_boot: int = 200, seed: int = 0) -> dict:
    """AUC of D = P_a / (P_a + P_b) from integrated and regressed ``(E, 2)`` log-likelihoods (a, b).

    Errors: Hanley & McNeil per AUC (:func:`memzoo.inference.discriminant.auc_error`); the
    difference regressed − integrated, whose two AUCs share their events, by a paired bootstrap.
    """
    from memzoo_regression.metrics import discriminant

    from memzoo.inference.discriminant import auc, auc_error

    d = {n: discriminant(lp[:, 0], lp[:, 1]) for n, lp in (("integrator", logp_int), ("regression", logp_reg))}
    n_a, n_b = int(is_a.sum()), int((~is_a).sum())
    out: dict = {}
    for name, score in d.items():
        area = auc(score[is_a], score[~is_a])
        out[name] = {"auc": area, "error": auc_error(area, n_a, n_b)}
    gen = torch.Generator().manual_seed(seed)
    ia, ib = torch.nonzero(is_a).squeeze(-1), torch.nonzero(~is_a).squeeze(-1)
    deltas = []
    for _ in range(n_boot):
        ra = ia[torch.randint(len(ia), (len(ia),), generator=gen)]
        rb = ib[torch.randint(len(ib), (len(ib),), generator=gen)]
        deltas.append(auc(d["regression"][ra], d["regression"][rb]) - auc(d["integrator"][ra], d["integrator"][rb]))
    delta = out["regression"]["auc"] - out["integrator"]["auc"]
    out["regression − integrator"] = {"delta_auc": delta, "error": float(torch.tensor(deltas).std())}
    out["events"] = {"a": n_a, "b": n_b}
    return out


def scans(logp: torch.Tensor, truth: torch.Tensor, alpha: torch.Tensor) -> dict:
    """Per true α: the summed −2Δln L over the grid, its argmin, and its value at the true α."""
    out = {}
    for value in torch.unique(truth).tolist():
        nll = -2 * logp[truth == value].sum(0)
        nll = nll - nll.min()
        at_truth = (alpha - value).abs() < 1e-9
        out[f"{value:g}"] = {
            "events": int((truth == value).sum()),
            "argmin": float(alpha[int(nll.argmin())]),
            "at truth": float(nll[at_truth][0]) if at_truth.any() else None,
            "-2 delta ln L": [round(float(v), 2) for v in nll],
        }
    return out


def time_integrator(sample: dict, store: str, n_events: int, tmp: Path) -> dict:
    """Wall seconds of ``memzoo integrate`` (1 thread, the sample's settings) on ``n_events`` events."""
    from memzoo.integration_job import recorded_model
    from memzoo.results import read_results

    res = read_results(sample["file"])
    settings, grid = res.settings, [float(a) for a in res.theta[:, 0]]
    script = (
        "import json, sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from memzoo.tracking import configure_tracking\n"
        "from memzoo.integration_job import integrate_dataset\n"
        "a = json.loads(sys.argv[1]); configure_tracking(a['store'])\n"
        "t = time.perf_counter()\n"
        "integrate_dataset(a['model'], a['data'], {'alpha': a['grid']}, a['out'], n_events=a['n'],"
        " chunk_size=a['n'], options=a['options'], progress=False)\n"
        "print(json.dumps(time.perf_counter() - t))\n"
    )
    job = {
        "store": str(Path(store).resolve()), "model": recorded_model(settings["model"]),
        "data": str(sample["dataset"]), "grid": grid, "out": str(tmp / "timing.h5"), "n": n_events,
        "options": settings["options"],
    }  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script, json.dumps(job)], capture_output=True, text=True, check=True)
    seconds = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "events": n_events,
        "s_per_event": seconds / n_events,
        "us_per_weight": 1e6 * seconds / (n_events * len(grid)),
        "n_points_per_event": float(read_results(tmp / "timing.h5").n_points.double().mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sample", nargs=3, action="append", metavar=("ALPHA", "RESULTS", "DATASET"),
        help="true α, results file, dataset (repeat; default: mem-alpha{0,45,90}.h5 / thj-alpha*.h5 in the cwd)",
    )  # fmt: skip
    parser.add_argument("--max-std", type=float, default=0.7, help="targets with an error of ln p above are invalid")
    parser.add_argument("--holdout", type=float, nargs="*", default=list(HOLDOUT), help="α points never trained on")
    parser.add_argument("--size", default="small")
    parser.add_argument("--epochs", type=int, help="override the card's epochs")
    parser.add_argument("--hidden", type=int, help="override the card's hidden width")
    parser.add_argument("--layers", type=int, help="override the card's number of layers / blocks")
    parser.add_argument("--patience", type=int, help="early stopping (keeps the best validation weights)")
    parser.add_argument("--weight-decay", type=float, help="the optimiser's weight decay")
    parser.add_argument(
        "--periodic", action="store_true", help="feed α as (cos α, sin α): theta_period = [360.0] in the config"
    )
    parser.add_argument("--time-integrator", type=int, default=0, metavar="N", help="time the integrator on N events")
    parser.add_argument("--integrator-timing", help="JSON of an earlier --time-integrator measurement to include")
    parser.add_argument("--store", default="memzoo-runs", help="MLflow store holding the integrator's model")
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # train into the temporary store, never a shared server
    from memzoo_regression.training_data import split_events

    import memzoo
    from memzoo.results import read_results
    from memzoo.tracking import configure_tracking
    from memzoo.train_job import train_card

    given = args.sample or [[a, f"mem-alpha{a}.h5", f"thj-alpha{a}.h5"] for a in ("0", "45", "90")]
    wall = time.perf_counter()
    report: dict = {"holdout": list(args.holdout), "max_std": args.max_std}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        samples, truths = [], []
        for i, (alpha, results, dataset) in enumerate(given):
            copy = tmp / f"results-{i}.h5"
            copy_stable(Path(results), copy)
            samples.append({"file": str(copy), "dataset": str(Path(dataset).resolve()), "source": i})
            truths.append(float(alpha))
        tables = load_samples(samples, args.max_std)
        valid = torch.cat([t.valid for t in tables])
        report["events"] = {f"{a:g}": len(t) for a, t in zip(truths, tables)}
        report["grid"] = [float(a) for a in tables[0].theta[:, 0]]
        report["kept fraction"] = float(valid.double().mean())
        report["integrator n_points per event"] = float(
            torch.cat([read_results(s["file"]).n_points for s in samples]).double().mean()
        )
        if args.time_integrator:
            report["integrator timing"] = time_integrator(samples[0], args.store, args.time_integrator, tmp)
        elif args.integrator_timing:
            report["integrator timing"] = json.loads(Path(args.integrator_timing).read_text())
        card = tmp / "regression.toml"
        card.write_text(
            card_text(CARD.read_text(), samples, max_std=args.max_std, holdout=tuple(args.holdout),
                      epochs=args.epochs, hidden=args.hidden, layers=args.layers,
                      early_stopping_patience=args.patience, weight_decay=args.weight_decay,
                      theta_period=[360.0] if args.periodic else None)
        )  # fmt: skip
        configure_tracking(tmp / "memzoo-runs")
        tick, cpu = time.perf_counter(), time.process_time()
        out = train_card(card, size=args.size, root=tmp, alias="champion", progress=False)
        report["train"] = {"wall_s": time.perf_counter() - tick, "cpu_s": time.process_time() - cpu}
        report["train metrics"] = out["metrics"]
        model = memzoo.load(f"models:/{ENTRY}@champion").likelihood_model()
        report["model"] = {k: v for k, v in model.describe().items() if isinstance(v, int | float | str)}

        test, truth = test_events(tables, truths)
        alpha = test.theta[:, 0]
        with torch.no_grad():
            regressed = model.information(test.reco, test.theta)
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                model.information(test.reco, test.theta)
                best = min(best, time.perf_counter() - start)
        stds = [read_results(s["file"]).std for s in samples]  # rows in the order of each table
        test_std = torch.cat([sd[split_events(len(t), 0, SPLIT)[2]] for sd, t in zip(stds, tables)])
        integrated = test.target
        report["test events"] = {f"{a:g}": int((truth == a).sum()) for a in truths}
        report["all"] = accuracy(regressed, integrated, test.valid, alpha, args.holdout, test_std)
        report["per true α"] = {
            f"{a:g}": accuracy(
                regressed[truth == a],
                integrated[truth == a],
                test.valid[truth == a],
                alpha,
                args.holdout,
                test_std[truth == a],
            )
            for a in truths
        }
        logp_int, logp_reg = -LN10 * integrated, -LN10 * regressed
        if ROC_A in truths and ROC_B in truths:
            rows = (truth == ROC_A) | (truth == ROC_B)
            cols = [int(torch.nonzero((alpha - v).abs() < 1e-9)[0, 0]) for v in (ROC_A, ROC_B)]
            report["roc 0 vs 90"] = auc_with_errors(
                logp_int[rows][:, cols], logp_reg[rows][:, cols], truth[rows] == ROC_A
            )
        report["scan integrator"] = scans(logp_int, truth, alpha)
        report["scan regression"] = scans(logp_reg, truth, alpha)
        report["timing"] = {
            "regression_us_per_weight": 1e6 * best / regressed.numel(),
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0],
            "total_s": time.perf_counter() - wall,
        }
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
