"""The tHj CP-phase study (thesis Sec. 6.3–6.5): calibration and likelihoods of a trained bundle.

Usage::

    python benchmarks/thj_study.py --out thj-study [--model models:/memzoo-thj-cinn@champion]
        [--sets 50] [--set-size 100] [--batch-sets 0] [--alphas 0,45,90] [--points 2000]
        [--device cuda] [--workers 16]

Train the bundle first (``memzoo train registry/thj/cinn.toml --alias champion``). Every step is
a ``memzoo`` command that resumes where it stopped, so the script can be rerun after an
interruption and only missing work is done:

1. ``memzoo simulate thj --theta alpha=A`` for each true α (hadronic channel, parametric detector)
   with enough events for ``sets × set_size`` accepted ones (acceptance measured on the first
   chunk);
2. ``memzoo integrate`` of those events with the bundle on an α grid of 10° steps (the
   factorised single pass serves every grid point);
   With ``--batch-sets K`` the sample of each α is made in batches of K sets: batch k has its own
   dataset (seed + 100·k) and results file, and step 3 joins them (``A.h5,B.h5``). A study can
   so grow by more sets without touching the files it has (``memzoo integrate`` refuses to
   resume on a dataset grown in place: its checksum changed).
3. ``memzoo scan`` (``--fit``, default spline) of the first 400 and of all events of each α
   against the hard-level likelihood, and ``memzoo calibrate --hard-level fiducial`` over disjoint sets of ``set_size``
   events: pulls of α̂ with mean and width, for the learned MEM and for the hard-level
   likelihood of the same sets (the reference a perfect detector would give); and the figure
   ``thj_scans.png`` of all scans (one column per α, rows 400 and all events);
4. optionally (``--convergence-events N``) the first N events of each α again with 4× the
   points: an under-trained sampler leaves the importance-sampling estimate of log p biased
   low, and by different amounts at different α, which the scans of the two files show.

The commands are printed before they run, so the sequence can also be copied into a batch job.
Cost on a 2-core CPU with the small cINN bundle: about 0.7 s per event and core at 1000 points
and 2–4 iterations, 2 s at 2000 points and 6 iterations (15k events: 3–8 core-hours); on one
GPU the integration is minutes.
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from pathlib import Path

import h5py


def run(command: list[str]) -> None:
    print("+", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def accepted_fraction(path: Path) -> float:
    from memzoo.data import read_dataset

    data = read_dataset(path)
    return float(data.accepted.double().mean())


def n_rows(path: Path) -> int:
    with h5py.File(path, "r") as f:
        return int(f.attrs.get("n_events", 0))


def simulate_batch(
    memzoo: list[str], args: argparse.Namespace, alpha: float, data: Path, seed: int, needed: int
) -> None:
    """Simulate ``data`` at α with enough events for ``needed`` accepted ones (10 % margin)."""
    simulate = [*memzoo, "simulate", "thj", "--theta", f"alpha={alpha:g}", "--channel", "hadronic"]
    simulate += ["--seed", str(seed), "--workers", str(args.workers), "--out", str(data)]
    chunk = args.chunk
    if not data.exists():  # one chunk first, to measure the acceptance
        run([*simulate, "--events", str(chunk), "--chunk-size", str(chunk)])
    fraction = accepted_fraction(data)
    total = max(n_rows(data), chunk * math.ceil(1.1 * needed / max(fraction, 1e-3) / chunk))
    run([*simulate, "--events", str(total), "--chunk-size", str(chunk)])


def integrate(
    memzoo: list[str], args: argparse.Namespace, data: Path, out: Path, events: int, points: int, chunk_size: int
) -> None:
    """``memzoo integrate`` of the first ``events`` accepted events of ``data`` on the 10° α grid."""
    command = [*memzoo, "integrate", "--model", args.model, "--data", str(data), "--out", str(out)]
    command += ["--theta", "alpha=-180:170:36", "--events", str(events), "--points", str(points)]
    command += ["--min-iterations", str(args.min_iterations), "--max-iterations", str(args.max_iterations)]
    command += ["--chunk-size", str(chunk_size), "--engine", args.engine]
    if args.device:
        command += ["--device", args.device]
    if args.int_workers:
        command += ["--workers", str(args.int_workers)]
    run(command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for datasets, results and plots")
    parser.add_argument("--model", default="models:/memzoo-thj-cinn@champion")
    parser.add_argument("--alphas", default="0,45,90", help="true α values in degrees")
    parser.add_argument("--sets", type=int, default=50)
    parser.add_argument("--set-size", type=int, default=100)
    parser.add_argument(
        "--batch-sets",
        type=int,
        default=0,
        help="sets per batch: each batch its own dataset (seed + 100·k) and results file, joined for the "
        "scans and the calibration (0: one batch)",
    )
    parser.add_argument(
        "--fit",
        choices=["poly", "spline"],
        default="spline",
        help="smoother of the scans and the calibration (spline: the single-pass curves on a 10° grid, "
        "which is coarse for large samples; see docs/inference.md)",
    )
    parser.add_argument("--points", type=int, default=2000, help="integrand points per event and iteration")
    parser.add_argument("--min-iterations", type=int, default=2)
    parser.add_argument("--max-iterations", type=int, default=6)
    parser.add_argument("--int-chunk", type=int, default=100, help="events per written integration chunk")
    parser.add_argument("--device", default=None, help="torch device for the integration, e.g. cuda")
    parser.add_argument("--engine", default="local", choices=["local", "ray"], help="memzoo integrate --engine")
    parser.add_argument("--int-workers", type=int, default=None, help="Ray workers of the integration")
    parser.add_argument("--workers", type=int, default=2, help="simulation processes")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=20_000, help="simulation chunk (events)")
    parser.add_argument(
        "--convergence-events",
        type=int,
        default=0,
        help="also integrate the first N events of each α with 4× the points (convergence check of the "
        "importance sampling: the shift of log p and of the summed scan)",
    )
    args = parser.parse_args(argv)
    memzoo = [sys.executable, "-m", "memzoo.cli"]
    args.out.mkdir(parents=True, exist_ok=True)
    needed = args.sets * args.set_size
    results = []
    per_batch = args.batch_sets or args.sets
    batches = math.ceil(args.sets / per_batch)
    for alpha in (float(a) for a in args.alphas.split(",")):
        tag = f"alpha{alpha:g}"
        parts = []
        for k in range(batches):
            suffix = "" if k == 0 else f"-b{k}"
            sets = min(per_batch, args.sets - k * per_batch)
            data = args.out / f"thj-{tag}{suffix}.h5"
            result = args.out / f"mem-{tag}{suffix}.h5"
            seed = args.seed + int(alpha) + 100 * k
            simulate_batch(memzoo, args, alpha, data, seed, sets * args.set_size)
            integrate(memzoo, args, data, result, sets * args.set_size, args.points, args.int_chunk)
            parts.append(str(result))
        joined = ",".join(parts)
        for events in (400, needed):
            scan = [*memzoo, "scan", joined, "--events", str(events), "--hard-level", "fiducial"]
            run([*scan, "--method", args.fit, "--out", str(args.out / f"scan-{tag}-{events}")])
        if args.convergence_events:
            check = args.out / f"mem-{tag}-x4.h5"
            n = args.convergence_events
            integrate(memzoo, args, args.out / f"thj-{tag}.h5", check, n, 4 * args.points, n)
            scan = [*memzoo, "scan", parts[0], str(check), "--events", str(n), "--hard-level", "fiducial"]
            scan += ["--label", f"{args.points} points", "--label", f"{4 * args.points} points"]
            run([*scan, "--out", str(args.out / f"scan-{tag}-convergence")])
        results.append(joined)
    calibrate = [
        *memzoo,
        "calibrate",
        *results,
        "--set-size",
        str(args.set_size),
        "--hard-level",
        "fiducial",
        "--mirror",
        "--method",
        args.fit,
    ]
    run([*calibrate, "--out", str(args.out / "calibration")])
    print("figure:", figure(args.out, [float(a) for a in args.alphas.split(",")], [400, needed]))


def figure(out: Path, alphas: list[float], sizes: list[int]) -> Path:
    """The thesis-style figure (Figs. 6.7, 6.14) from the scans: one column per α, one row per size."""
    import json

    from memzoo.inference.plots import plot_scan_panels

    rows = [[json.loads((out / f"scan-alpha{a:g}-{n}" / "scan.json").read_text()) for a in alphas] for n in sizes]
    return plot_scan_panels(rows, out / "thj_scans.png", "alpha", period=360.0, unit="deg")


if __name__ == "__main__":
    main()
