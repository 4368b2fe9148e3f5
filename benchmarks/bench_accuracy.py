"""Accuracy per backend: max-likelihood θ̂, 1σ width and bias against an exact and a hard-level likelihood.

Usage::

    python benchmarks/bench_accuracy.py --reference exact=EXACT.h5 --learned cinn=CINN.h5 [--learned NAME=PATH ...]
        [--hard-level fiducial|total|off] [--data DATA.h5] [--calibration cinn=calibration.json ...]
        [--name accuracy_dy] [--method poly --degree 4 --window 9] [--json PATH | --no-json]
    python benchmarks/bench_accuracy.py --name accuracy_calibration \\
        --calibration "cinn, tHj=thj_cinn/calibration.json" --calibration "transfermer, tHj=..."

Inputs are ``memzoo integrate`` results files of the same events (matched by dataset row): one
per learned backend and one reference, normally the exact-transfer MEM. Everything statistical is
:mod:`memzoo.inference` (Heimel, PhD thesis 2024, Secs. 6.3.1 and 6.4.1):

* θ̂ and its asymmetric 68 % interval from :func:`~memzoo.inference.fit_scan` with the fit options
  of ``memzoo scan`` (table ``fit``), and again with the least-squares parabola through the whole
  grid that ``benchmarks/dy_learned_vs_exact.py`` and ``docs/studies.md`` use (table
  ``parabola``: degree 2, no window). The integration error of θ̂ is the spread over the bootstrap
  replicas; the error of a difference is the spread of the replica-by-replica differences.
* σ_stat is the reference's 1σ width (σ₋ + σ₊)/2; biases are quoted in units of it.
* The hard level is :func:`~memzoo.inference.hard_level_likelihood` of the events' true hard
  coordinates, normalised by σ_fid(θ) with the acceptance of the reference model (``fiducial``,
  as the study) or by σ(θ) (``total``).
* ``--calibration NAME=PATH``: summaries written by ``memzoo calibrate`` (``calibration.json``);
  each true θ of each gives a row of table ``calibration`` (pull mean and width, bias). A tHj
  calibration of a backend adds its rows beside the Drell-Yan ones.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from memzoo.cli_inference import model_acceptance
from memzoo.inference import EventLikelihoods, fit_curve, fit_scan, hard_level_likelihood, load_event_likelihoods
from memzoo.inference.io import read_dataset_info
from memzoo.results import read_results

try:
    from benchmarks._common import RESULTS, Recorder
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_accuracy.py
    from _common import RESULTS, Recorder

__all__ = ["FitRow", "calibration_rows", "fit_backends", "main"]

PARABOLA = {"method": "poly", "degree": 2, "window": math.inf}


def _pair(text: str, what: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise SystemExit(f"{what} {text!r} must look like NAME=PATH (e.g. cinn=results/cinn.h5).")
    return name, path


def _common_events(events: dict[str, EventLikelihoods]) -> dict[str, EventLikelihoods]:
    """The events every file holds (by dataset row), in the reference's order."""
    first = next(iter(events.values()))
    shared = set(first.event.tolist())
    for ev in events.values():
        shared &= set(ev.event.tolist())
    if not shared:
        raise SystemExit("The results files share no events (dataset rows); integrate the same events.")
    order = [int(e) for e in first.event.tolist() if int(e) in shared]
    out = {}
    for label, ev in events.items():
        index = {int(e): i for i, e in enumerate(ev.event.tolist())}
        out[label] = ev[torch.tensor([index[e] for e in order])]
    return out


class FitRow:
    """One likelihood's fit: the estimate and the θ̂ of each replica (for paired differences)."""

    def __init__(self, label: str, events: EventLikelihoods, options: dict, name: str | None) -> None:
        scan = events.combine()
        self.label, self.n_events = label, len(events)
        self.estimate = fit_scan(scan, name, **options)
        self.width = 0.5 * (self.estimate.err_low + self.estimate.err_high)
        reps = scan.delta_replicas
        self.replicas = None
        if reps is not None and reps.shape[1] > 1 and len(scan.parameters) == 1:
            info = scan.parameters[0]
            self.replicas = np.array([fit_curve(scan.theta[:, 0], reps[:, m], info, **options).value
                                      for m in range(reps.shape[1])])  # fmt: skip

    def difference(self, other: FitRow) -> tuple[float, float | None]:
        """θ̂ − θ̂_other and its integration error (paired replicas where both have the same number)."""
        d = self.estimate.value - other.estimate.value
        a, b = self.replicas, other.replicas
        if a is not None and b is not None and len(a) == len(b):
            return d, float(np.std(a - b, ddof=1))
        errs = [x.estimate.value_std for x in (self, other) if x.estimate.value_std is not None]
        return d, (math.sqrt(sum(e * e for e in errs)) if errs else None)


def fit_backends(
    events: dict[str, EventLikelihoods], reference: str, hard: EventLikelihoods | None, options: dict, name=None
) -> tuple[list[str], list[list[str]], dict]:
    """Columns, rows and raw numbers of one fit table (reference first, hard level last)."""
    fits = {label: FitRow(label, ev, options, name) for label, ev in events.items()}
    if hard is not None:
        fits["hard level"] = FitRow("hard level", hard, options, name)
    ref = fits[reference]
    sigma = ref.width
    digits = max(0, 2 - math.floor(math.log10(sigma))) if sigma > 0 else 4
    f = lambda v: f"{v:.{digits}f}"
    g = lambda v, e: f"{v:+.2f}".replace("-", "−") + ("" if e is None else f" ± {e:.2f}")
    param = ref.estimate.name
    columns = ["likelihood", "events", f"max-likelihood {param}", "68 % interval (−σ₋ / +σ₊)", "1σ width",
               "Δ vs reference / σ_stat", "Δ vs hard level / σ_stat"]  # fmt: skip
    rows, raw = [], {"sigma_stat": sigma, "parameter": param, "options": {k: str(v) for k, v in options.items()}}
    for label, fit in fits.items():
        est = fit.estimate
        value = f(est.value) + ("" if est.value_std is None else f" ± {f(est.value_std)}")
        interval = f"−{f(est.err_low)} / +{f(est.err_high)}" + ("" if est.closed else " (open)")
        vs_ref = "—" if label == reference else g(*(x / sigma if x is not None else None for x in fit.difference(ref)))
        vs_hard = "—"
        if "hard level" in fits and label != "hard level":
            vs_hard = g(*(x / sigma if x is not None else None for x in fit.difference(fits["hard level"])))
        rows.append([label, str(fit.n_events), value, interval, f(fit.width), vs_ref, vs_hard])
        raw[label] = {**est.as_dict(), "width": fit.width}
    return columns, rows, raw


def calibration_rows(label: str, path: str | Path) -> list[list[str]]:
    """Rows of a calibrate summary: ``backend, parameter, true θ, sets × events, bias, pull mean, pull
    width, sets at −θ, pull mean and width of the others`` (the last three "—" without ``--mirror``);
    a summary with a hard-level calibration (``memzoo calibrate --hard-level``) adds its rows as
    ``hard level (<backend>)``."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"--calibration {label}={path}: not a readable `memzoo calibrate` summary ({err}).") from err
    if "groups" not in summary or "set_size" not in summary:
        raise SystemExit(f"{path} is not a `memzoo calibrate` summary (calibration.json): no 'groups'/'set_size'.")
    pm = lambda v, e: "n/a" if v is None else f"{v:.2f}".replace("-", "−") + ("" if e is None else f" ± {e:.2f}")
    rows = []
    parts = [(label, summary["groups"])]
    if summary.get("hard_level_calibration"):
        parts.append((f"hard level ({label})", summary["hard_level_calibration"]["groups"]))
    for name, groups in parts:
        for group in groups:
            p = group["pulls"]
            bias = "n/a" if group["bias"] is None else f"{group['bias']:+.3g}".replace("-", "−")
            if group.get("bias_err") is not None:
                bias += f" ± {group['bias_err']:.2g}"
            mirror = ["—", "—", "—"]
            if "mirror_sets" in group:
                q = group["pulls_without_mirror"]
                mirror = [str(group["mirror_sets"]), pm(q["mean"], q["mean_err"]), pm(q["width"], q["width_err"])]
            sets = f"{group['n_sets']} × {summary['set_size']}"
            rows.append([name, summary["parameter"], f"{group['truth']:g}", sets, bias,
                         pm(p["mean"], p["mean_err"]), pm(p["width"], p["width_err"]), *mirror])  # fmt: skip
    return rows


def _hard_level(reference_path: str, ref: EventLikelihoods, mode: str, data: str | None) -> EventLikelihoods:
    settings = read_results(reference_path).settings
    data_path = data or settings.get("data")
    if not data_path or not Path(data_path).is_file():
        raise SystemExit(f"The dataset of {reference_path} ({data_path}) is not readable; give it with --data.")
    info = read_dataset_info(data_path, ref.event.numpy())
    acceptance = model_acceptance(settings, reference_path) if mode == "fiducial" else None
    hard = hard_level_likelihood(info.build_process(), info.hard_coords, ref.theta, acceptance=acceptance)
    return EventLikelihoods.from_likelihood(hard, ref.parameters, source=f"hard level of {data_path}")


def _fit_tables(rec: Recorder, args: argparse.Namespace) -> None:
    """Tables ``fit`` and ``parabola`` of the reference, the learned backends and the hard level."""
    ref_label, ref_path = _pair(args.reference, "--reference")
    files = {ref_label: ref_path, **dict(_pair(x, "--learned") for x in args.learned)}
    try:
        events = {label: load_event_likelihoods(p, n_events=args.events)[0] for label, p in files.items()}
    except ValueError as err:
        raise SystemExit(str(err)) from err
    events = _common_events(events)
    hard = None if args.hard_level == "off" else _hard_level(ref_path, events[ref_label], args.hard_level, args.data)
    options = {"method": args.method, "degree": args.degree, "window": args.window}
    for table_id, opts in (("fit", options), ("parabola", PARABOLA)):
        columns, rows, raw = fit_backends(events, ref_label, hard, opts, args.parameter)
        rec.table(table_id, columns).extend(rows)
        rec.notes[table_id] = raw
        print(f"\n{table_id}: {opts}")
        print("| " + " | ".join(columns) + " |")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    rec.notes["files"] = files
    rec.notes["hard_level"] = args.hard_level


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", metavar="NAME=PATH", help="the exact (reference) results file")
    parser.add_argument("--learned", action="append", default=[], metavar="NAME=PATH", help="a backend's results")
    parser.add_argument("--hard-level", choices=["fiducial", "total", "off"], default="fiducial")
    parser.add_argument("--data", help="the events' dataset (default: the one the results files record)")
    parser.add_argument("--calibration", action="append", default=[], metavar="NAME=PATH",
                        help="a `memzoo calibrate` summary (calibration.json) of a backend")  # fmt: skip
    parser.add_argument("--parameter", help="parameter to fit (default: the only one; others profiled)")
    parser.add_argument("--events", type=int, help="use only the first N events of each file")
    parser.add_argument("--method", choices=["poly", "spline"], default="poly")
    parser.add_argument("--degree", type=int, default=4)
    parser.add_argument("--window", type=float, default=9.0)
    parser.add_argument("--name", default="accuracy", help="results name: benchmarks/results/<name>.json")
    parser.add_argument("--json", default=None, help="results file (default: benchmarks/results/<name>.json)")
    parser.add_argument("--no-json", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    args.json = args.json or str(RESULTS / f"{args.name}.json")
    torch.set_num_threads(1)
    rec = Recorder.from_args(args.name, args)
    if args.reference is None:
        if args.learned:
            raise SystemExit("--learned needs --reference NAME=PATH (the exact likelihood the biases refer to).")
        if not args.calibration:
            raise SystemExit("Give --reference NAME=PATH (and --learned ...) and/or --calibration NAME=PATH.")
    else:
        _fit_tables(rec, args)
    if args.calibration:
        columns = ["backend", "parameter", "true θ", "sets × events", "bias of θ̂", "pull mean", "pull width"]
        columns += ["sets at −θ", "pull mean, others", "pull width, others"]
        table = rec.table("calibration", columns)
        for item in args.calibration:
            table.extend(calibration_rows(*_pair(item, "--calibration")))
        print("\n| " + " | ".join(columns) + " |")
        for row in table:
            print("| " + " | ".join(row) + " |")
    rec.write()


if __name__ == "__main__":
    main()
