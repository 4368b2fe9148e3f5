"""The ``memzoo`` command line: plugins, backends and the MLflow model registry.

Examples::

    memzoo plugins --json
    memzoo backends 'toy*'
    memzoo registry list
    memzoo registry alias memzoo-thj-cinn champion 3
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned plain-text table."""
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, sort_keys=True) if as_json else text)


# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    from memzoo.plugins import plugin_info

    infos = [p.as_dict() for p in plugin_info()]
    rows = [
        [
            p["name"],
            p["distribution"],
            p["version"],
            "; ".join(f"{k}: {', '.join(v)}" for k, v in p["provides"].items()),
        ]
        for p in infos
    ]
    _print(infos, args.json, _table(rows, ["plugin", "distribution", "version", "provides"]))
    return 0


def backends_markdown(exclude: tuple[str, ...] = ("memzoo-toyplugin",)) -> str:
    """The README's backend table: one row per registered backend (test plugins left out)."""
    from memzoo.plugins import KINDS, get_registry

    registry = get_registry()
    rows = ["| kind | name | distribution | what it is |", "| --- | --- | --- | --- |"]
    for kind in KINDS:
        for name in registry.names(kind):
            entry = registry.get(kind, name)
            if entry.distribution in exclude:
                continue
            doc = (entry.cls.__doc__ or "").strip().splitlines()
            summary = doc[0].replace("|", "\\|") if doc else ""
            rows.append(f"| {kind} | `{name}` | {entry.distribution} | {summary} |")
    return "\n".join(rows)


def cmd_backends(args: argparse.Namespace) -> int:
    from memzoo.plugins import KINDS, get_registry

    if args.markdown:
        print(backends_markdown())
        return 0
    registry = get_registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    data = {k: registry.names(k, args.pattern) for k in kinds}
    rows = []
    for kind, names in data.items():
        for name in names:
            entry = registry.get(kind, name)
            rows.append([kind, name, entry.plugin, entry.distribution])
    _print(data, args.json, _table(rows, ["kind", "name", "plugin", "distribution"]) if rows else "no backends match")
    return 0


def cmd_registry(args: argparse.Namespace) -> int:
    from memzoo import tracking

    tracking.configure_tracking()
    if args.action == "list":
        models = tracking.list_registered()
        rows = [
            [m["name"], str(m["latest_version"]), ", ".join(f"{a}->v{v}" for a, v in sorted(m["aliases"].items()))]
            for m in models
        ]
        text = _table(rows, ["name", "latest", "aliases"]) if rows else "no registered models"
        _print(models, args.json, text)
    elif args.action == "show":
        info = tracking.show_registered(args.name)
        rows = [
            [
                str(v["version"]),
                ", ".join(v["aliases"]),
                v["run_id"] or "",
                " ".join(f"{k}={x}" for k, x in v["tags"].items()),
            ]
            for v in info["versions"]
        ]
        _print(info, args.json, f"{info['name']}\n" + _table(rows, ["version", "aliases", "run", "tags"]))
    elif args.action == "alias":
        if args.delete:
            tracking.delete_alias(args.name, args.alias)
            print(f"removed alias {args.alias!r} of {args.name}")
        else:
            if args.version is None:
                raise ValueError("Give the version to point the alias at, or --delete to remove it.")
            tracking.set_alias(args.name, args.alias, args.version)
            print(f"{args.name}@{args.alias} -> version {args.version}")
    return 0


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
    _print(
        results[0] if len(results) == 1 else results,
        args.json,
        text + _table(rows, ["theta", "sigma [fb]", "error [fb]"]),
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


# ---------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memzoo", description="Model zoo for the machine-learned Matrix Element Method."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list installed plugins, versions and what each registers")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("backends", help="list registered backend names by kind")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'cinn*'")
    p.add_argument("--kind", choices=["process", "transfer", "sampler", "acceptance", "likelihood"])
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the README's backend table")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("xsec", help="total cross section of a process in fb, with its MC error")
    p.add_argument("process", help="registered process name, e.g. drell-yan or thj")
    p.add_argument(
        "--theta",
        action="append",
        metavar="NAME=VALUE",
        help="parameter value(s): NAME=V, NAME=V1,V2 or NAME=START:STOP:N",
    )
    p.add_argument("--process-option", action="append", metavar="KEY=VALUE", help="process config, e.g. tops=top")
    p.add_argument("--points", type=int, default=20_000, help="VEGAS points per iteration")
    p.add_argument("--iterations", type=int, default=8, help="VEGAS iterations after adaptation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON (keys sigma_fb, error_fb)")
    p.set_defaults(func=cmd_xsec)

    p = sub.add_parser("simulate", help="simulate a paired (θ, hard, reco) dataset into an HDF5 file")
    p.add_argument("process", help="registered process name, e.g. drell-yan or thj")
    p.add_argument("--events", type=int, required=True, help="number of events (accepted and rejected)")
    p.add_argument("--out", required=True, help="HDF5 file; rerunning the same command resumes it")
    p.add_argument("--theta", action="append", metavar="NAME=V|NAME=LOW:HIGH", help="fixed value or uniform range")
    p.add_argument("--detector", choices=["parametric", "pythia"], default="parametric")
    p.add_argument("--channel", choices=["hadronic", "leptonic"], default="hadronic", help="top decay channel")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="processes; the file does not depend on it")
    p.add_argument("--chunk-size", type=int, default=10_000, help="events per chunk (unit of writing and resuming)")
    p.add_argument("--process-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--detector-option", action="append", metavar="KEY=VALUE", help="DetectorConfig field")
    p.add_argument("--pythia-option", action="append", metavar="KEY=VALUE", help="PythiaConfig field")
    p.add_argument("--selection", help="selection name (default from process and channel)")
    p.add_argument("--max-objects", type=int, default=16, help="reco slots per event in the file")
    p.add_argument("--overwrite", action="store_true", help="start the file anew instead of resuming")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("integrate", help="MEM log-likelihoods of a dataset's events on a θ grid")
    p.add_argument("--model", required=True, help="model card (.toml) or MLflow URI (models:/NAME@ALIAS, runs:/...)")
    p.add_argument("--data", required=True, help="HDF5 dataset (accepted events are integrated)")
    p.add_argument("--theta", action="append", required=True, metavar="NAME=START:STOP:N", help="θ grid")
    p.add_argument("--out", required=True, help="results HDF5 file; rerunning the same command resumes it")
    p.add_argument("--events", type=int, help="integrate only the first N accepted events")
    p.add_argument("--chunk-size", type=int, default=50, help="events per written chunk")
    p.add_argument("--points", type=int, help="integrand points per event and iteration")
    p.add_argument("--target", type=float, help="target relative error per event and θ")
    p.add_argument("--min-iterations", type=int)
    p.add_argument("--max-iterations", type=int)
    p.add_argument("--bootstrap", type=int, help="bootstrap replicas for correlated errors")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="torch device, e.g. cuda")
    p.set_defaults(func=cmd_integrate)

    p = sub.add_parser("export-lhe", help="unweighted hard (optionally decayed) events as an LHE v3 file")
    p.add_argument("process", help="registered process name, e.g. drell-yan or thj")
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--out", required=True, help="LHE file (.lhe or .lhe.gz)")
    p.add_argument("--theta", action="append", metavar="NAME=VALUE", help="fixed parameter values")
    p.add_argument("--decay", choices=["hadronic", "leptonic", "none"], default="hadronic", help="top decays")
    p.add_argument("--process-option", action="append", metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_export_lhe)

    p = sub.add_parser("plots", help="kinematic distributions of a dataset (pT, η per object; m_γγ; m_bjj)")
    p.add_argument("dataset", help="HDF5 dataset file")
    p.add_argument("--out", default=None, help="folder for the PNG files (default: next to the dataset)")
    p.set_defaults(func=cmd_plots)

    p = sub.add_parser("registry", help="registered models of the MLflow model registry")
    rsub = p.add_subparsers(dest="action", required=True)
    r = rsub.add_parser("list", help="registered models with latest version and aliases")
    r.add_argument("--json", action="store_true")
    r = rsub.add_parser("show", help="all versions of one registered model")
    r.add_argument("name")
    r.add_argument("--json", action="store_true")
    r = rsub.add_parser("alias", help="point an alias (champion, challenger, ...) at a version, or delete it")
    r.add_argument("name")
    r.add_argument("alias")
    r.add_argument("version", nargs="?", type=int)
    r.add_argument("--delete", action="store_true")
    p.set_defaults(func=cmd_registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memzoo`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"memzoo {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
