"""The ``memzoo`` command line: plugins, backends and the MLflow model registry.

Examples::

    memzoo plugins --json
    memzoo backends 'toy*'
    memzoo registry list
    memzoo registry alias memzoo-thj-cinn champion 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from memzoo.cli_inference import add_inference_commands
from memzoo.cli_jobs import add_engine_arguments, cmd_export_lhe, cmd_integrate, cmd_plots, cmd_simulate, cmd_xsec
from memzoo.cli_util import print_result, table

__all__ = ["backends_markdown", "build_parser", "main"]


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
    print_result(infos, args.json, table(rows, ["plugin", "distribution", "version", "provides"]))
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
    print_result(
        data, args.json, table(rows, ["kind", "name", "plugin", "distribution"]) if rows else "no backends match"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from memzoo.train_job import train_card

    retrain = tuple(r.strip() for r in args.retrain.split(",") if r.strip())
    out = train_card(
        args.card, size=args.size, alias=args.alias, register=not args.no_register, reuse=args.reuse, retrain=retrain
    )
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in out["metrics"].items())
    print(f"trained {args.card} ({args.size}): {metrics}")
    if "uri" in out:
        print(f"registered {out['uri']}" + (f" (alias {args.alias})" if args.alias else ""))
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
        text = table(rows, ["name", "latest", "aliases"]) if rows else "no registered models"
        print_result(models, args.json, text)
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
        print_result(info, args.json, f"{info['name']}\n" + table(rows, ["version", "aliases", "run", "tags"]))
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
    p.add_argument(
        "--max-batch-points",
        type=int,
        help="(event, point) rows per model call (default 2^20); lower it when a process runs out of memory "
        "(the numbers do not change, and a run may resume with another value)",
    )
    add_engine_arguments(p)
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

    p = sub.add_parser("train", help="train every network of a model card and register the bundle in MLflow")
    p.add_argument("card", help="model card, e.g. registry/drell-yan/cinn.toml")
    p.add_argument("--size", default="small", help="card size: small (laptop) or paper (thesis)")
    p.add_argument("--alias", help="point this alias (champion, challenger) at the new version")
    p.add_argument("--no-register", action="store_true", help="train and log, but register no version")
    p.add_argument(
        "--reuse", metavar="URI", help="take the trained networks of this bundle (models:/NAME@ALIAS) except --retrain"
    )
    p.add_argument(
        "--retrain", default="sampler", help="with --reuse: comma-separated roles to train anew (default: sampler)"
    )
    p.set_defaults(func=cmd_train)

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

    add_inference_commands(sub)  # scan, calibrate, discriminant (memzoo/cli_inference.py)
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
