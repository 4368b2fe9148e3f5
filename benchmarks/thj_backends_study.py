"""tHj with the Pythia chain: every transfer backend trained and validated on the same events (issues #7, #8).

Usage::

    python benchmarks/thj_backends_study.py --out thj-pythia [--events 250000] [--true-alpha 45]
        [--backends cinn,transfermer,cfm,transfusion] [--size small] [--device cuda] [--workers 16]
        [--integrate-events 400] [--set-size 100] [--points 1000] [--study-events 4000] [--tiny]

Every step is skipped when its output exists, so the script resumes after an interruption; the
commands are printed before they run (as in ``benchmarks/thj_study.py``) and can be copied into a
batch job. Runs and registered models live in an MLflow store inside ``OUT`` (``OUT/memzoo-runs``:
every ``memzoo`` command runs with ``OUT`` as working directory and without
``MLFLOW_TRACKING_URI``, see :func:`memzoo.tracking.configure_tracking`).

1. ``memzoo simulate thj --detector pythia --channel hadronic`` (Pythia 8 shower, hadronisation and
   anti-kT jets, then the parametric smearing): the training file with α uniform in [−180°, 180°]
   (the cards' seed and chunking), and a held-out file at the true α whose size is set from the
   acceptance and layout fraction measured on its first chunk.
2. Per backend, ``OUT/cards/<backend>.toml``: ``registry/thj/<backend>.toml`` at ``--size`` with
   ``[data] path`` set to the training file, named ``memzoo-thj-<backend>-pythia`` (the registry is
   never edited); ``memzoo train`` registers it as ``models:/memzoo-thj-<backend>-pythia@champion``.
   The showered events carry ISR/FSR jets: ``transfermer`` and ``transfusion`` model up to
   ``max_extra`` of them, ``cinn`` and ``cfm`` have a fixed layout, and accepted events with other
   multiplicities get log p = −∞ and are left out of their transfer loss (``OUT/layouts.json``
   counts them).
3. ``benchmarks/transfer_study.py`` twice, on the held-out events:

   * ``OUT/study``: all accepted events (extra jets present): generated-vs-true distributions of
     every object, classifier two-sample AUCs and the held-out log p (−∞ counted per backend);
   * ``OUT/study-mem``: the accepted events inside every backend's layout (the events whose
     likelihood each backend can give; integrating an event outside a layout gives L = 0 for all
     α and no estimate), the same validation plus the MEM likelihoods on an α grid of 10° steps
     and the calibration pulls over disjoint sets of ``--set-size`` events, side by side.

``OUT/table.md`` and ``OUT/summary.json`` join both studies, the layout fractions and the wall
time of every step (``OUT/timings.json``). ``--tiny`` shrinks everything to a smoke test of the
whole chain (a few thousand events, one epoch, a coarse ODE step, a few integrand points).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import tomli_w
import tomllib

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("cinn", "transfermer", "cfm", "transfusion")
GRID = "alpha=-180:170:36"  # 10° steps; α is periodic, so 180° is -180°
TINY_GRID = "alpha=-180:120:6"  # 60° steps: the smoke test's integrations
ROLES = ("transfer", "sampler", "acceptance")


def run(command: list[str], out: Path) -> None:
    """Print and run a command in ``out`` (the MLflow store ``out/memzoo-runs`` is the one used)."""
    print("+", f"(cd {shlex.quote(str(out))} &&", shlex.join(command) + ")", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    subprocess.run(command, check=True, cwd=out, env=env)


def skip(what: str) -> None:
    print(f"skip {what} (done)", flush=True)


def n_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with h5py.File(path, "r") as f:
        return int(f.attrs.get("n_events", 0))


def layout_of(card: dict[str, Any]) -> dict[str, Any]:
    """The reco layout of a card's transfer: base objects, extra kind and how many extras it models."""
    config = card["transfer"].get("config", {})
    return {"objects": list(config["objects"]), "extra": config.get("extra"), "max_extra": config.get("max_extra", 0)}


def in_layout(reco: Any, layout: dict[str, Any]) -> Any:
    """``(B,)`` bool: the events a backend with ``layout`` describes (its own counting rule).

    A base kind needs exactly as many objects as the layout has slots, the extra kind at most
    ``max_extra`` more; other kinds are ignored. This is ``RecoLayout.select`` of the Transfermer,
    which for ``max_extra = 0`` is the fixed layout of the cINN and CFM (``Layout.select``).
    """
    from memzoo_transfermer.sequences import RecoLayout

    rule = RecoLayout(tuple(layout["objects"]), layout["extra"], layout["max_extra"])
    return rule.select(reco)[-1].cpu()


def derived_card(backend: str, size: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``registry/thj/<backend>.toml`` at ``size``, trained on ``data``, named ``memzoo-thj-<backend>-pythia``."""
    from memzoo.cards import load_card

    source = ROOT / "registry" / "thj" / f"{backend}.toml"
    card = load_card(source, size=size).tables  # base tables with the size merged in, no [size]
    card["entry"]["name"] = f"memzoo-thj-{backend}-pythia"
    card["entry"]["description"] += " (Pythia 8 shower + FastJet chain)"
    card["data"] = {"path": str(data.resolve())}
    card["size"] = {size: {}}  # memzoo train loads the card at this size: already merged
    for role in ROLES:
        table = card["training"].setdefault(role, {})
        if args.device:
            table["device"] = args.device
        if args.tiny:
            table.update(epochs=1, batch_size=256)
            table.pop("early_stopping_patience", None)
    if args.tiny and "step" in card["transfer"].get("config", {}):
        card["transfer"]["config"]["step"] = 0.25  # 4 RK4 steps instead of 20: a smoke test
    if args.tiny:  # σ_fid(α) by VEGAS dominates a tiny integration at its default 50k points
        card.setdefault("integrator", {})["sigma_fid_points"] = 2000
    return card


class Timings:
    """Wall time of every step, kept in ``OUT/timings.json`` across resumed runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def step(self, name: str, command: list[str], out: Path) -> None:
        t0 = time.perf_counter()
        run(command, out)
        self.data[name] = time.perf_counter() - t0
        self.path.write_text(json.dumps(self.data, indent=2))


def simulate(args: argparse.Namespace, timings: Timings) -> tuple[Path, Path]:
    """Step 1: the training file (α uniform) and the held-out file at the true α."""
    memzoo = [sys.executable, "-m", "memzoo.cli"]
    base = [*memzoo, "simulate", "thj", "--detector", "pythia", "--channel", "hadronic"]
    base += ["--workers", str(args.workers)]
    registry = tomllib.loads((ROOT / "registry" / "thj" / "cinn.toml").read_text())["data"]
    chunk = min(args.chunk or registry["chunk_size"], args.events)
    train = args.out / "thj-pythia-train.h5"
    if n_rows(train) >= args.events:
        skip(f"simulation of {train.name}")
    else:
        command = [*base, "--theta", "alpha=-180:180", "--seed", str(registry["seed"]), "--events", str(args.events)]
        timings.step("simulate_train", [*command, "--chunk-size", str(chunk), "--out", str(train)], args.out)
    held = args.out / f"thj-pythia-alpha{args.true_alpha:g}.h5"
    command = [*base, "--theta", f"alpha={args.true_alpha:g}", "--seed", str(args.seed + int(args.true_alpha))]
    command += ["--chunk-size", str(chunk), "--out", str(held)]
    if n_rows(held) == 0:  # one chunk first, to measure acceptance × layout fraction
        timings.step("simulate_held_out_first_chunk", [*command, "--events", str(chunk)], args.out)
    fraction = usable_fraction(held, args)
    needed = max(args.integrate_events, 20)
    total = max(n_rows(held), chunk * math.ceil(1.2 * needed / max(fraction, 1e-3) / chunk))
    if n_rows(held) >= total:
        skip(f"simulation of {held.name} ({n_rows(held)} events, usable fraction {fraction:.3f})")
    else:
        timings.step("simulate_held_out", [*command, "--events", str(total)], args.out)
    return train, held


def usable_fraction(path: Path, args: argparse.Namespace) -> float:
    """Fraction of all simulated events that are accepted and inside every backend's layout."""
    from memzoo.data import read_dataset

    data = read_dataset(path)
    accepted = data[data.accepted]
    mask = common_layout_mask(accepted.charged_reco, args)
    return float(mask.double().sum()) / max(len(data), 1)


def common_layout_mask(reco: Any, args: argparse.Namespace) -> Any:
    mask = None
    for backend in args.backends:
        card = tomllib.loads((ROOT / "registry" / "thj" / f"{backend}.toml").read_text())
        valid = in_layout(reco, layout_of(card))
        mask = valid if mask is None else mask & valid
    return mask


def train(args: argparse.Namespace, data: Path, timings: Timings) -> dict[str, str]:
    """Step 2: one derived card per backend, trained and registered in the store inside OUT.

    With ``cinn`` among the backends and without ``--own-samplers``, it is trained first and the
    others take its Sampling-cINN and acceptance classifier (``memzoo train --reuse ... --retrain
    transfer``): the bundles then differ in the transfer only, so the MEM comparison measures the
    transfer backends and not four samplers of different quality.
    """
    (args.out / "cards").mkdir(exist_ok=True)
    (args.out / "trained").mkdir(exist_ok=True)
    models: dict[str, str] = {}
    shared = "cinn" in args.backends and not args.own_samplers
    for backend in sorted(args.backends, key=lambda b: b != "cinn") if shared else args.backends:
        card = derived_card(backend, args.size, data, args)
        text = f"# Derived by benchmarks/thj_backends_study.py from registry/thj/{backend}.toml\n"
        text += tomli_w.dumps(card)
        path = args.out / "cards" / f"{backend}.toml"
        digest = hashlib.sha256(text.encode()).hexdigest()
        marker = args.out / "trained" / f"{backend}.sha256"
        name = card["entry"]["name"]
        models[backend] = f"models:/{name}@champion"
        command = [sys.executable, "-m", "memzoo.cli", "train", str(path), "--size", args.size, "--alias", "champion"]
        if shared and backend != "cinn":
            command += ["--reuse", models["cinn"], "--retrain", "transfer"]
            # retrained with the cINN bundle it reuses
            digest = hashlib.sha256((digest + (args.out / "trained" / "cinn.sha256").read_text()).encode()).hexdigest()
        if marker.is_file() and marker.read_text() == digest and (args.out / "memzoo-runs").is_dir():
            skip(f"training of {name}")
            continue
        path.write_text(text)
        timings.step(f"train_{backend}", command, args.out)
        marker.write_text(digest)
    return models


def layouts(args: argparse.Namespace, held: Path, train_file: Path) -> tuple[Path, dict[str, Any]]:
    """The held-out accepted events inside every backend's layout, and the per-backend fractions."""
    import torch

    from memzoo.data import read_dataset

    sys.path.insert(0, str(ROOT))
    from benchmarks.transfer_study import write_events

    report: dict[str, Any] = {}
    for label, path in (("train", train_file), ("held_out", held)):
        data = read_dataset(path)
        accepted = data[data.accepted]
        reco = accepted.charged_reco
        row: dict[str, Any] = {"events": len(data), "accepted": len(accepted)}
        for backend in args.backends:
            card = tomllib.loads((ROOT / "registry" / "thj" / f"{backend}.toml").read_text())
            row[f"{backend}_in_layout"] = float(in_layout(reco, layout_of(card)).double().mean())
        light = (reco.mask & (reco.kind == 1)).sum(1)
        row["light_jets"] = {str(n): int(c) for n, c in enumerate(torch.bincount(light)) if c}
        report[label] = row
    data = read_dataset(held)
    accepted = data[data.accepted]
    common = accepted[common_layout_mask(accepted.charged_reco, args)]
    report["held_out"]["common_layout_events"] = len(common)
    mem_events = args.out / "held_out_common_layout.h5"
    if n_rows(mem_events) != len(common):
        note = {"source": str(held.resolve()), "filter": f"in the layouts of {args.backends}"}
        write_events(common, mem_events, note)
    (args.out / "layouts.json").write_text(json.dumps(report, indent=2))
    return mem_events, report


def study(args: argparse.Namespace, models: dict[str, str], held: Path, mem_events: Path, timings: Timings) -> None:
    """Step 3: transfer_study.py on all accepted held-out events, then with the MEM on the common-layout ones."""
    base = [sys.executable, str(ROOT / "benchmarks" / "transfer_study.py"), "--held-out", "all"]
    base += [arg for backend, uri in models.items() for arg in ("--model", f"{backend}={uri}")]
    base += ["--events", str(args.study_events)] + (["--device", args.device] if args.device else [])
    if args.tiny:
        base += ["--epochs", "5"]
    out = args.out / "study"
    if (out / "summary.json").is_file():
        skip("transfer study on all accepted events")
    else:
        timings.step("study", [*base, "--data", str(held), "--out", str(out)], args.out)
    out = args.out / "study-mem"
    if (out / "summary.json").is_file():
        skip("transfer study with the MEM on the common-layout events")
    else:
        grid = TINY_GRID if args.tiny else GRID
        command = [*base, "--data", str(mem_events), "--out", str(out), "--integrate", "--grid", grid]
        command += ["--match-multiplicity"]  # these events were selected by their jet count
        command += ["--integrate-events", str(args.integrate_events), "--set-size", str(args.set_size)]
        command += ["--points", str(args.points)] + (["--bootstrap", "2"] if args.tiny else [])
        timings.step("study_mem", command, args.out)


def write_summary(args: argparse.Namespace, report: dict[str, Any], timings: Timings) -> dict[str, Any]:
    studies = {name: json.loads((args.out / name / "summary.json").read_text()) for name in ("study", "study-mem")}
    summary = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    summary.update(layouts=report, timings=timings.data, studies=studies)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    lines = [f"tHj hadronic, Pythia chain, true α = {args.true_alpha:g}°", ""]
    held = report["held_out"]
    fractions = ", ".join(f"{b} {held[f'{b}_in_layout']:.1%}" for b in args.backends)
    lines += [f"Accepted held-out events inside each backend's layout: {fractions}.", ""]
    lines += ["All accepted events (extra jets present):", "", (args.out / "study" / "table.md").read_text()]
    lines += [f"Events inside every layout ({held['common_layout_events']}), with the MEM:", ""]
    lines += [(args.out / "study-mem" / "table.md").read_text()]
    (args.out / "table.md").write_text("\n".join(lines))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for data, cards, MLflow store and results")
    parser.add_argument("--events", type=int, default=250_000, help="training events (accepted and rejected)")
    parser.add_argument("--true-alpha", type=float, default=45.0, help="α of the held-out events (degrees)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {BACKENDS}")
    parser.add_argument("--size", default="small", help="card size (small or paper)")
    parser.add_argument("--device", default=None, help="torch device for training and the study, e.g. cuda")
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--integrate-events", type=int, default=400)
    parser.add_argument("--set-size", type=int, default=100)
    parser.add_argument("--points", type=int, default=1000, help="integrand points per event and iteration")
    parser.add_argument("--study-events", type=int, default=4000, help="held-out accepted events validated")
    parser.add_argument("--seed", type=int, default=100, help="held-out seed (plus the true α)")
    parser.add_argument("--chunk", type=int, default=None, help="simulation chunk (default: the cards')")
    parser.add_argument(
        "--own-samplers",
        action="store_true",
        help="train every card's own sampler and acceptance (default: all backends use the cinn bundle's)",
    )
    parser.add_argument("--tiny", action="store_true", help="smoke test: few events, one epoch, tiny integrations")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(args.backends) - set(BACKENDS))
    if unknown or not args.backends:
        parser.error(f"--backends must be a subset of {','.join(BACKENDS)}; got {unknown or 'none'}.")
    if args.tiny:
        args.events = min(args.events, 1000)
        args.chunk = args.chunk or 500
        args.integrate_events = min(args.integrate_events, 20)
        args.set_size = min(args.set_size, 10)
        args.points = min(args.points, 100)
        args.study_events = min(args.study_events, 200)
    args.out = args.out.resolve()
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timings = Timings(args.out / "timings.json")
    train_file, held = simulate(args, timings)
    models = train(args, train_file, timings)
    mem_events, report = layouts(args, held, train_file)
    study(args, models, held, mem_events, timings)
    summary = write_summary(args, report, timings)
    print((args.out / "table.md").read_text())
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'table.md'}")
    return summary


if __name__ == "__main__":
    main()
