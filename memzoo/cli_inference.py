"""Commands of the ``memzoo`` CLI for the statistics layer: scan, calibrate, discriminant.

Each reads results files of ``memzoo integrate``, writes PNG plots and a JSON summary into
``--out`` and prints a short table (or, with ``--json``, the summary).

Examples::

    memzoo scan thj_mem.h5 --hard-level fiducial
    memzoo calibrate thj_a0.h5 thj_a45.h5 thj_a90.h5 --set-size 100
    memzoo calibrate thj_a0.h5,thj_a0_more.h5 thj_a45.h5,thj_a45_more.h5 --set-size 100

A results argument ``A.h5,B.h5`` joins files of one likelihood (model, integrator options, θ
grid) into one event set, e.g. a sample grown from a second simulation seed
(:func:`memzoo.inference.io.load_event_likelihoods`).
    memzoo discriminant sig_mem.h5 bkg_mem.h5 --a alpha=0 --b alpha=90
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memzoo.cli_util import table

__all__ = ["add_inference_commands", "cmd_calibrate", "cmd_discriminant", "cmd_scan", "model_acceptance"]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


COARSE_GRID_MISS = 1.0
"""A polynomial fit that misses its grid points by more than this (in −2Δlog L) is warned about."""


def _values(items: Sequence[str] | None, what: str) -> list[tuple[str, float]]:
    """``NAME=VALUE`` strings (numbers) in order."""
    out = []
    for item in items or []:
        key, sep, raw = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out.append((key, float(raw)))
        except ValueError:
            raise ValueError(f"{what} {item!r} must look like NAME=VALUE with a number.") from None
    return out


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"method": args.method, "degree": args.degree, "window": args.window}


def _load(path: str, args: argparse.Namespace, n_events: int | None = None):
    from memzoo.inference.io import load_event_likelihoods

    periods = {k: (v or None) for k, v in _values(args.period, "--period")}
    names = args.names.split(",") if args.names else None
    return load_event_likelihoods(path, names=names, periods=periods, n_events=n_events)


def _stem(spec: str) -> str:
    """A short name of a results argument (``a+b`` for the join ``a.h5,b.h5``)."""
    from memzoo.inference.io import results_parts

    return "+".join(p.stem for p in results_parts(spec))


def _out_dir(args: argparse.Namespace, first: str, suffix: str) -> Path:
    from memzoo.inference.io import results_parts

    first_file = results_parts(first)[0]
    out = Path(args.out) if args.out else first_file.with_name(_stem(first) + suffix)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_summary(out: Path, name: str, summary: dict) -> Path:
    from memzoo.inference.calibration import _json_safe

    path = out / name
    path.write_text(json.dumps(_json_safe(summary), indent=2, sort_keys=True))
    return path


def _finish(args: argparse.Namespace, summary: dict, text: str) -> int:
    from memzoo.inference.calibration import _json_safe

    print(json.dumps(_json_safe(summary), indent=2, sort_keys=True) if args.json else text)
    return 0


def model_acceptance(settings: dict, path: str):
    """The acceptance network of the model a results file was integrated with."""
    from memzoo.integration_job import load_model_spec, recorded_model

    try:
        where = recorded_model(settings.get("model", ""))
    except ValueError:
        message = f"{path} does not record its model; --hard-level fiducial needs the model's acceptance."
        raise ValueError(message) from None
    parts, _, _ = load_model_spec(where)
    if "acceptance" not in parts:
        raise ValueError(f"The model {where} of {path} has no acceptance network; use --hard-level total.")
    return parts["acceptance"]


def hard_level_events(path: str, events, data, args: argparse.Namespace):
    """The hard-level likelihoods (:mod:`memzoo.inference.hard_level`) of the events of a results file.

    ``args.hard_level`` is ``total`` (normalised by σ(θ)) or ``fiducial`` (by σ_fid(θ) with the
    acceptance network of the model that ``path`` was integrated with); ``args.sigma_points``
    sets the VEGAS points of that normalisation. ``path`` may be a join ``A.h5,B.h5`` (of one
    model, which loading checked).
    """
    import torch

    from memzoo.inference.hard_level import hard_level_likelihood
    from memzoo.inference.io import results_parts
    from memzoo.inference.scan import EventLikelihoods
    from memzoo.results import read_results

    if data is None:
        raise ValueError(f"The dataset of {path} is not readable; the hard level needs its hard events.")
    process = data.build_process()
    acceptance = None
    if args.hard_level == "fiducial":
        first = results_parts(path)[0]
        acceptance = model_acceptance(read_results(first).settings, str(first))
    options = {}
    if args.sigma_points:
        options = {"sigma_fid_points" if acceptance is not None else "n_points": args.sigma_points}
    theta = torch.as_tensor(events.theta)
    hard = hard_level_likelihood(process, data.hard_coords, theta, acceptance=acceptance, **options)
    return EventLikelihoods.from_likelihood(
        hard, events.parameters, truth=events.truth, source=f"{events.source} (hard level)"
    )


# ---------------------------------------------------------------------------------------
# memzoo scan
# ---------------------------------------------------------------------------------------


def cmd_scan(args: argparse.Namespace) -> int:
    from memzoo.inference.fit import fit_scan
    from memzoo.inference.plots import plot_scan
    from memzoo.inference.profile import profile

    labels = args.label or []
    if labels and len(labels) != len(args.results):
        raise ValueError(f"Give one --label per results file ({len(args.results)}), got {len(labels)}.")
    scans, first_events, data = {}, None, None
    for k, path in enumerate(args.results):
        events, info = _load(path, args, args.events)
        if first_events is None:
            first_events, data = events, info
        elif events.names != first_events.names:
            raise ValueError(f"{path} has parameters {events.names} but {args.results[0]} has {first_events.names}.")
        scans[labels[k] if labels else _stem(path)] = events.combine()
    if args.hard_level != "off":
        scans["hard level"] = hard_level_events(args.results[0], first_events, data, args).combine()
    names = args.parameter or first_events.names
    truth = dict(_values(args.truth, "--truth"))
    if not truth and first_events.truth is not None:
        t = first_events.truth.double().numpy()
        truth = {n: float(t[0, j]) for j, n in enumerate(first_events.names) if np.ptp(t[:, j]) == 0}
    out = _out_dir(args, args.results[0], "_scan")
    summary: dict[str, Any] = {"results": args.results, "n_events": len(first_events), "truth": truth}
    summary.update(parameters={}, curves={}, plots=[], hard_level=args.hard_level, warnings=[])
    rows = []
    for name in names:
        info = first_events.parameters[first_events.names.index(name)] if name in first_events.names else None
        if info is None:
            raise ValueError(f"Unknown --parameter {name!r}; the θ grid has {first_events.names}.")
        estimates, curves = {}, {}
        for label, scan in scans.items():
            one = profile(scan, name)
            est = fit_scan(one, name, **_fit_options(args))
            band, kind = one.band()
            estimates[label] = est
            curves[label] = (one.theta[:, 0], one.delta, band)
            summary["curves"].setdefault(name, {})[label] = {
                "theta": one.theta[:, 0].tolist(),
                "delta_nll": one.delta.tolist(),
                "band": None if band is None else band.tolist(),
                "band_from": kind,
                "profiled": len(scan.parameters) > 1,
                # the smooth curve of the fit (θ unwrapped around θ̂ for a periodic parameter)
                "fit": {"theta": est.curve[0].tolist(), "delta_nll": est.curve[1].tolist()},
            }
            if est.fit_residual > COARSE_GRID_MISS:
                summary["warnings"].append(
                    f"{label}, {name}: the polynomial misses grid points it was fitted to by up to "
                    f"{est.fit_residual:.3g} units of -2ΔlogL; the grid is coarse for this curve (the fit "
                    f"spans points far up its walls). A single-pass scan is smooth: --method spline "
                    f"interpolates every grid point; or integrate on a finer grid."
                )
            spread = "" if est.value_std is None else f"{est.value_std:.3g}"
            closed = "" if est.closed else "open"
            rows.append([label, name, f"{est.value:.5g}", f"{est.err_low:.3g}", f"{est.err_high:.3g}", spread, closed])
        summary["parameters"][name] = {label: e.as_dict() for label, e in estimates.items()}
        title = f"{len(first_events)} events" + (", profiled" if len(first_events.names) > 1 else "")
        plot = plot_scan(curves, estimates, info, out / f"scan_{name}.png", truth=truth.get(name), title=title)
        summary["plots"].append(str(plot))
    summary["summary_file"] = str(_write_summary(out, "scan.json", summary))
    text = table(rows, ["curve", "parameter", "best", "-err", "+err", "replica std", ""])
    text += "".join(f"\n\nwarning: {w}" for w in summary["warnings"])
    text += f"\n\nplots and summary in {out}"
    return _finish(args, summary, text)


# ---------------------------------------------------------------------------------------
# memzoo calibrate
# ---------------------------------------------------------------------------------------


def cmd_calibrate(args: argparse.Namespace) -> int:
    from memzoo.inference.calibration import calibrate
    from memzoo.inference.plots import plot_calibration

    truths = _values(args.truth, "--truth")
    if truths and len(truths) != len(args.results):
        raise ValueError(
            f"Give either no --truth (read from the datasets) or one per results file, in order "
            f"({len(args.results)}); got {len(truths)}."
        )
    loaded = [_load(path, args, args.events) for path in args.results]
    groups = [events for events, _ in loaded]
    name = args.parameter
    if truths:
        names = {n for n, _ in truths}
        if len(names) != 1 or (name is not None and names != {name}):
            raise ValueError(f"Every --truth must name the calibrated parameter{f' {name}' if name else ''}.")
        name = name or names.pop()
    truth_values = [v for _, v in truths] or None
    cal = calibrate(groups, args.set_size, name, truth_values, mirror=args.mirror, **_fit_options(args))
    out = _out_dir(args, args.results[0], "_calibration")
    plot = plot_calibration(cal, out / "calibration.png")
    summary = {**cal.as_dict(), "results": args.results, "plots": [str(plot)], "hard_level": args.hard_level}
    text = _calibration_text(summary, cal.parameter.name, args.set_size, "")
    if args.hard_level != "off":  # the same sets of the same events, at the hard level
        hard = [hard_level_events(path, ev, data, args) for path, (ev, data) in zip(args.results, loaded)]
        hard_cal = calibrate(hard, args.set_size, name, truth_values, mirror=args.mirror, **_fit_options(args))
        hard_plot = plot_calibration(hard_cal, out / "calibration_hard_level.png")
        summary["hard_level_calibration"] = hard_cal.as_dict()
        summary["plots"].append(str(hard_plot))
        text += "\n\n" + _calibration_text(
            summary["hard_level_calibration"], cal.parameter.name, args.set_size, "hard level: "
        )
    summary["summary_file"] = str(_write_summary(out, "calibration.json", summary))
    text += f"\n\nplots and summary in {out}"
    return _finish(args, summary, text)


def _calibration_text(summary: dict, name: str, set_size: int, prefix: str) -> str:
    rows = []
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
    for group in summary["groups"]:
        p = group["pulls"]
        rows.append(
            [
                f"{group['truth']:g}",
                str(group["n_sets"]),
                f"{fmt(group['bias'])} ± {fmt(group['bias_err'])}",
                f"{fmt(p['mean'])} ± {fmt(p['mean_err'])}",
                f"{fmt(p['width'])} ± {fmt(p['width_err'])}",
                str(group["open_intervals"]),
            ]
        )
        if "mirror_sets" in group:
            q = group["pulls_without_mirror"]
            rows[-1] += [str(group["mirror_sets"]), f"{fmt(q['mean'])} ± {fmt(q['mean_err'])}"]
            rows[-1] += [f"{fmt(q['width'])} ± {fmt(q['width_err'])}"]
    o = summary["overall_pulls"]
    text = f"{prefix}calibration of {name}, sets of {set_size} events\n"
    columns = ["truth", "sets", "bias", "pull mean", "pull width", "open"]
    if rows and len(rows[0]) > len(columns):
        columns += ["at −truth", "mean (others)", "width (others)"]
    text += table(rows, columns)
    text += f"\npulls of the {o['n']} sets with closed intervals: mean {fmt(o['mean'])} ± {fmt(o['mean_err'])}, "
    return text + f"width {fmt(o['width'])} ± {fmt(o['width_err'])}"


# ---------------------------------------------------------------------------------------
# memzoo discriminant
# ---------------------------------------------------------------------------------------


def _column_logp(events, values: dict[str, float], where: str):
    """``(E,)`` log p at the grid point ``values`` (the only point when none given), and its replicas."""
    from memzoo.inference.discriminant import theta_column

    if not values and events.theta.shape[0] != 1:
        raise ValueError(f"{where} has {events.theta.shape[0]} θ points; choose one with --a/--b NAME=VALUE.")
    t = theta_column(events.theta, events.names, values, f" of {where}") if values else 0
    reps = None if events.replicas is None else events.replicas[:, t, :]
    return events.logp[:, t], reps


def _class_scores(path_a: str, path_b: str | None, hyp_a: dict, hyp_b: dict, args):
    """log P_a − log P_b ``(E,)`` and its replicas ``(E, M)`` for the events of one class.

    log P_a comes from ``path_a``, log P_b from ``path_b`` (the same file when ``None``).
    """
    ev_a, _ = _load(path_a, args)
    ev_b = ev_a if path_b is None else _load(path_b, args)[0]
    if path_b is not None:  # the same events under another model: match by dataset row
        ids_b = {int(e): i for i, e in enumerate(ev_b.event.tolist())}
        keep = [i for i, e in enumerate(ev_a.event.tolist()) if int(e) in ids_b]
        if not keep:
            raise ValueError(f"{path_a} and {path_b} share no events (dataset rows); integrate the same events.")
        ev_a, ev_b = ev_a[keep], ev_b[[ids_b[int(ev_a.event[i])] for i in keep]]
    la, ra = _column_logp(ev_a, hyp_a, path_a)
    lb, rb = _column_logp(ev_b, hyp_b, path_b or path_a)
    reps = None
    if ra is not None and rb is not None and ra.shape[-1] == rb.shape[-1]:
        reps = ra - rb  # (E, M)
    return la - lb, reps


def cmd_discriminant(args: argparse.Namespace) -> int:
    import torch

    from memzoo.inference.discriminant import auc, auc_error, discriminant, roc_curve
    from memzoo.inference.plots import plot_discriminant

    hyp_a, hyp_b = dict(_values(args.a, "--a")), dict(_values(args.b, "--b"))
    if args.b_results is None and hyp_a == hyp_b:
        raise ValueError("Hypotheses a and b are the same; give --a and --b (θ points) or --b-results (a model b).")
    b_files = args.b_results or [None, None]
    llr_a, r_a = _class_scores(args.events_a, b_files[0], hyp_a, hyp_b, args)
    llr_b, r_b = _class_scores(args.events_b, b_files[1], hyp_a, hyp_b, args)
    # the ROC is cut on log P_a − log P_b, monotonic in D, which saturates at 0 and 1 in float64
    fpr, tpr, _ = roc_curve(llr_a, llr_b)
    area = auc(llr_a, llr_b)
    area_err = auc_error(area, len(llr_a), len(llr_b))
    replica_aucs = None
    if r_a is not None and r_b is not None and r_a.shape[-1] == r_b.shape[-1] and r_a.shape[-1] > 1:
        replica_aucs = [auc(r_a[:, m], r_b[:, m]) for m in range(r_a.shape[-1])]
    d_a = discriminant(llr_a, torch.zeros_like(llr_a), args.gamma)
    d_b = discriminant(llr_b, torch.zeros_like(llr_b), args.gamma)
    labels = (args.label_a, args.label_b)
    out = _out_dir(args, args.events_a, "_discriminant")
    plot = plot_discriminant(
        d_a.numpy(), d_b.numpy(), fpr.numpy(), tpr.numpy(), area, area_err, labels, out / "discriminant.png"
    )
    keep = sorted(set(range(0, len(fpr), max(1, len(fpr) // 400))) | {len(fpr) - 1})
    working = {f"tpr_at_fpr_{x:g}": float(np.interp(x, fpr.numpy(), tpr.numpy())) for x in (0.01, 0.1, 0.5)}
    summary = {
        "events_a": args.events_a,
        "events_b": args.events_b,
        "b_results": args.b_results,
        "hypothesis_a": hyp_a,
        "hypothesis_b": hyp_b,
        "gamma": args.gamma,
        "n_a": len(d_a),
        "n_b": len(d_b),
        "auc": area,
        "auc_err": area_err,
        "auc_replica_std": None if replica_aucs is None else float(np.std(replica_aucs, ddof=1)),
        "auc_replicas": replica_aucs,
        **working,
        "roc": {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()},
        "plots": [str(plot)],
    }
    summary["summary_file"] = str(_write_summary(out, "discriminant.json", summary))
    extra = "" if replica_aucs is None else f" (replicas: ± {summary['auc_replica_std']:.4f})"
    text = f"{labels[0]} ({len(d_a)} events) vs {labels[1]} ({len(d_b)} events): "
    text += f"AUC = {area:.4f} ± {area_err:.4f}{extra}\n"
    text += ", ".join(f"{k} = {v:.3f}" for k, v in working.items())
    text += f"\n\nplots and summary in {out}"
    return _finish(args, summary, text)


# ---------------------------------------------------------------------------------------
# parsers
# ---------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=["poly", "spline"], default="poly", help="smoother near the minimum")
    p.add_argument("--degree", type=int, default=4, help="polynomial degree of --method poly")
    p.add_argument("--window", type=float, default=9.0, help="poly fit: points with -2ΔlogL below this")
    p.add_argument("--period", action="append", metavar="NAME=P", help="period of a parameter (0: not periodic)")
    p.add_argument("--names", help="comma-separated parameter names when the dataset is not readable")
    p.add_argument("--out", help="folder for plots and the JSON summary (default: beside the first file)")
    p.add_argument("--json", action="store_true", help="print the JSON summary")


def _hard_level_options(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--hard-level",
        choices=["off", "total", "fiducial"],
        default="off",
        help=f"{what}, normalised by σ (total) or by σ_fid with the model's acceptance (fiducial)",
    )
    p.add_argument("--sigma-points", type=int, help="VEGAS points per iteration of the hard level's σ or σ_fid")


def add_inference_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``scan``, ``calibrate`` and ``discriminant`` on the ``memzoo`` subparsers."""
    p = sub.add_parser("scan", help="combined -2ΔlogL(θ) of results files: best fit, 68%% interval, plots")
    p.add_argument(
        "results",
        nargs="+",
        help="results HDF5 file(s) of memzoo integrate (one curve each; A.h5,B.h5 joins files into one event set)",
    )
    p.add_argument("--label", action="append", help="curve label per results file (default: file name)")
    p.add_argument("--parameter", action="append", help="parameter(s) to fit (default: all; others profiled)")
    p.add_argument("--events", type=int, help="use only the first N events")
    p.add_argument("--truth", action="append", metavar="NAME=VALUE", help="true value drawn in the plot")
    _hard_level_options(p, "add the hard-level reference of the true hard events")
    _common(p)
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("calibrate", help="fits of disjoint event sets: θ̂ vs truth and pulls")
    p.add_argument(
        "results",
        nargs="+",
        help="results file(s), each with events of one true θ (A.h5,B.h5 joins files into one event set)",
    )
    p.add_argument("--set-size", type=int, default=100, help="events per set")
    p.add_argument("--parameter", help="parameter to calibrate (default: the only one; others profiled)")
    p.add_argument("--truth", action="append", metavar="NAME=VALUE", help="true value, one per file in order")
    p.add_argument("--events", type=int, help="use only the first N events of each file (or join)")
    _hard_level_options(p, "also calibrate the hard-level likelihood of the same events and sets, the reference")
    p.add_argument(
        "--mirror",
        action="store_true",
        help="θ and −θ are nearly degenerate (e.g. the sign of a CP phase): also count the sets nearer −θ_true "
        "and give the pulls of the others",
    )
    _common(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("discriminant", help="D = P_a/(P_a + γ P_b) of two event classes: distributions, ROC, AUC")
    p.add_argument("events_a", help="results file of the class-a events (log P under hypothesis a, and b)")
    p.add_argument("events_b", help="results file of the class-b events")
    p.add_argument("--a", action="append", metavar="NAME=VALUE", help="θ point of hypothesis a in the grid")
    p.add_argument("--b", action="append", metavar="NAME=VALUE", help="θ point of hypothesis b")
    p.add_argument(
        "--b-results",
        nargs=2,
        metavar=("A_UNDER_B", "B_UNDER_B"),
        help="log P under hypothesis b from other files (another process' model), same events",
    )
    p.add_argument("--gamma", type=float, default=1.0, help="expected ratio of b to a events (D shape only)")
    p.add_argument("--label-a", default="a", help="name of class a in the plot")
    p.add_argument("--label-b", default="b", help="name of class b in the plot")
    _common(p)
    p.set_defaults(func=cmd_discriminant)
