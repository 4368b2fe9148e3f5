"""Commands of the ``memzoo`` CLI that run physics jobs: xsec, simulate, export-lhe, integrate, plots."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from memzoo.cli_util import print_result, table

__all__ = ["add_engine_arguments", "cmd_export_lhe", "cmd_integrate", "cmd_plots", "cmd_simulate", "cmd_xsec"]


def _parse_assignments(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict; values are JSON literals where they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} must look like NAME=VALUE.")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _parse_theta(items: Sequence[str] | None) -> dict[str, list[float]]:
    """``NAME=V1,V2,...`` or ``NAME=START:STOP:N`` to lists of θ values."""
    out: dict[str, list[float]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--theta {item!r} must look like NAME=VALUE, NAME=V1,V2 or NAME=START:STOP:N.")
        try:
            if raw.count(":") == 2:
                start, stop, n = raw.split(":")
                count = int(n)
                step = (float(stop) - float(start)) / max(count - 1, 1)
                out[key] = [float(start) + i * step for i in range(count)]
            else:
                out[key] = [float(v) for v in raw.split(",")]
        except ValueError:
            raise ValueError(f"--theta {item!r}: values must be numbers.") from None
    return out


def cmd_xsec(args: argparse.Namespace) -> int:
    import memzoo

    process = memzoo.create("process", args.process, **_parse_assignments(args.process_option, "--process-option"))
    values = _parse_theta(args.theta)
    lengths = {len(v) for v in values.values()}
    if len(lengths) > 1:
        raise ValueError("Every --theta must list the same number of values (or a single one).")
    theta = process.theta(values)
    sigma, error = process.cross_section(theta, n_points=args.points, n_iter=args.iterations, seed=args.seed)
    names = [p.name for p in process.parameters]
    results = [
        {
            "process": process.name,
            "theta": dict(zip(names, row.tolist())),
            "sigma_fb": float(s),
            "error_fb": float(e),
        }
        for row, s, e in zip(theta, sigma, error)
    ]
    units = {p.name: p.unit for p in process.parameters}
    rows = [
        [
            ", ".join(f"{k}={v:g}{units[k] and ' ' + units[k]}" for k, v in r["theta"].items()),
            f"{r['sigma_fb']:.6g}",
            f"{r['error_fb']:.2g}",
        ]
        for r in results
    ]
    text = f"{process.name}: total cross section (VEGAS, {args.iterations} x {args.points} points)\n"
    print_result(
        results[0] if len(results) == 1 else results,
        args.json,
        text + table(rows, ["theta", "sigma [fb]", "error [fb]"]),
    )
    return 0


def _parse_sim_theta(items: Sequence[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` (fixed) or ``NAME=LOW:HIGH`` (uniform per event)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            parts = [float(v) for v in raw.split(":")]
            if len(parts) not in (1, 2):
                raise ValueError
        except ValueError:
            raise ValueError(f"--theta {item!r} must look like NAME=VALUE or NAME=LOW:HIGH (numbers).") from None
        out[key] = parts[0] if len(parts) == 1 else tuple(parts)
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    from memzoo.simulation.simulate import SimulationConfig, simulate

    config = SimulationConfig(
        process=args.process,
        n_events=args.events,
        process_config=_parse_assignments(args.process_option, "--process-option"),
        theta=_parse_sim_theta(args.theta),
        seed=args.seed,
        chunk_size=args.chunk_size,
        channel=args.channel,
        detector=args.detector,
        detector_config=_parse_assignments(args.detector_option, "--detector-option"),
        pythia_config=_parse_assignments(args.pythia_option, "--pythia-option"),
        selection=args.selection,
        n_reco_max=args.max_objects,
    )
    path = simulate(config, args.out, workers=args.workers, overwrite=args.overwrite)
    from memzoo.data import read_dataset

    data = read_dataset(path)
    accepted = int(data.accepted.sum())
    print(
        f"{path}: {len(data)} events, {accepted} accepted ({accepted / len(data):.1%}), "
        f"selection {config.selection_name}"
    )
    return 0


#: LHAPDF ids of the sets shipped with pythia8mc that the built-in processes use (LHE init block).
LHAPDF_IDS = {"NNPDF23_lo_as_0130_qed": 247000, "NNPDF23_nlo_as_0119_qed": 244800}


def cmd_export_lhe(args: argparse.Namespace) -> int:
    import torch

    import memzoo
    from memzoo.simulation.decays import decay
    from memzoo.simulation.lhe import write_lhe

    process = memzoo.create("process", args.process, **_parse_assignments(args.process_option, "--process-option"))
    theta = process.theta({k: v for k, v in _parse_sim_theta(args.theta).items() if not isinstance(v, tuple)})
    gen = torch.Generator().manual_seed(args.seed)
    sigma, error = process.cross_section(theta, seed=args.seed)
    coords = process.sample(args.events, theta, generator=gen)
    record = process.hard_record(coords, theta, generator=gen)
    if args.decay != "none":
        record = decay(record, args.decay, generator=gen)
    path = write_lhe(
        record,
        args.out,
        beam_energy=process.config.sqrt_s / 2,
        pdf_id=LHAPDF_IDS.get(getattr(process.config, "pdf", ""), 0),
        cross_section_pb=float(sigma[0]) / 1000,
        error_pb=float(error[0]) / 1000,
    )
    print(
        f"{path}: {args.events} unweighted {process.name} events, σ = {float(sigma[0]):.6g} ± {float(error[0]):.2g} fb"
    )
    return 0


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``memzoo integrate`` flags choosing where the chunks are integrated."""
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: Ray workers, one per GPU (--device cuda) or per --threads CPUs",
    )
    parser.add_argument("--address", help="Ray cluster address (auto, HOST:6379, ray://HOST:10001); default: local Ray")
    parser.add_argument("--workers", type=int, help="at most this many Ray workers (default: as many as fit)")
    parser.add_argument("--threads", type=int, default=1, help="CPUs and torch threads per Ray worker")


def cmd_integrate(args: argparse.Namespace) -> int:
    from memzoo.integration_job import integrate_dataset
    from memzoo.results import read_results

    options = {
        key: value
        for key, value in {
            "n_points": args.points,
            "target_rel_error": args.target,
            "min_iterations": args.min_iterations,
            "max_iterations": args.max_iterations,
            "bootstrap": args.bootstrap,
            "seed": args.seed,
            "max_batch_points": args.max_batch_points,
        }.items()
        if value is not None
    }
    path = integrate_dataset(
        args.model,
        args.data,
        _parse_theta(args.theta),
        args.out,
        n_events=args.events,
        chunk_size=args.chunk_size,
        options=options,
        device=args.device,
        engine=args.engine,
        address=args.address,
        workers=args.workers,
        threads_per_worker=args.threads,
    )
    results = read_results(path)
    nll = -results.total()
    best = int(nll.argmin())
    names = [f"{v:g}" for v in results.theta[best].tolist()]
    print(f"{path}: {len(results.event)} events; summed -log L is smallest at θ = ({', '.join(names)})")
    return 0


def cmd_plots(args: argparse.Namespace) -> int:
    from memzoo.plots import kinematics_plots

    paths = kinematics_plots(args.dataset, args.out)
    for path in paths:
        print(path)
    return 0
