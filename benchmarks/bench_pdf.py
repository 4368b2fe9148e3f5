"""Throughput of the batched torch PDF interpolators (LHAPDF and Pythia schemes) vs Pythia 8's LHAGrid1
called point by point.

Usage: ``python -m benchmarks.bench_pdf [--batches 1e5 1e6] [--threads 1 2] [--device cuda]
[--json PATH | --no-json]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from memzoo.physics.pdf import load_pdf

try:
    from benchmarks._common import Recorder, add_json_arguments, best_throughput, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_pdf.py
    from _common import Recorder, add_json_arguments, best_throughput, sig

__all__ = ["main"]


def _pythia_rate(pset: int, x: np.ndarray, q2: np.ndarray) -> float:
    """Points/s of Pythia's PDF::xf for 13 flavours (-6..6, 0 = gluon) in a Python loop."""
    import pythia8mc

    py = pythia8mc.Pythia("", False)
    py.readString(f"PDF:pSet = {pset}")
    pdf = py.getPDFPtr(2212, 1, "A", True)
    pids = list(range(-6, 7))
    t0 = time.perf_counter()
    for xi, qi in zip(x.tolist(), q2.tolist(), strict=True):
        for pid in pids:
            pdf.xf(pid, xi, qi)  # Pythia updates all flavours once per (x, Q²); later calls are cached
    return len(x) / (time.perf_counter() - t0)


def _torch_rate(name: str, x: torch.Tensor, q2: torch.Tensor, interpolation: str, repeats: int = 3) -> float:
    """Best-of-``repeats`` points/s of ``xfxq2_all`` (13 flavours) on the tensors' device."""
    pdf = load_pdf(name, device=x.device, interpolation=interpolation)
    pdf.xfxq2_all(x[:1000], q2[:1000])  # warm-up
    return best_throughput(lambda: pdf.xfxq2_all(x, q2), x.numel(), repeats, cuda=x.is_cuda)


def main() -> None:
    """Print points/s for each batch size and the torch/Pythia ratio."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", default="NNPDF23_lo_as_0130_qed")
    ap.add_argument("--pset", type=int, default=13, help="Pythia PDF:pSet code of the same grid")
    ap.add_argument("--batches", type=float, nargs="+", default=[1e5, 1e6])
    ap.add_argument("--pythia-points", type=int, default=20000, help="points for the Pythia loop")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--interpolations", nargs="+", default=["lhapdf", "pythia"], choices=["lhapdf", "pythia"])
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, torch.get_num_threads()],
        help="torch intra-op thread counts to try (on a loaded CPU, 1 is often fastest)",
    )
    add_json_arguments(ap, "pdf")
    args = ap.parse_args()
    rec = Recorder.from_args("pdf", args, args.device)
    table = rec.table("throughput", ["implementation", "threads", "batch", "points/s", "vs Pythia loop"])
    labels = {"lhapdf": "memzoo, LHAPDF log-bicubic", "pythia": "memzoo, Pythia-compatible Lagrange"}
    rng = np.random.default_rng(1)
    pdf = load_pdf(args.name)
    nmax = int(max(args.batches))
    x = np.exp(rng.uniform(math.log(pdf.xmin), math.log(0.9), nmax))
    q2 = np.exp(rng.uniform(math.log(pdf.q2min), math.log(pdf.q2max), nmax))
    py_rate = _pythia_rate(args.pset, x[: args.pythia_points], q2[: args.pythia_points])
    print(f"torch {torch.__version__}, device={args.device}, {args.name}")
    print(f"pythia8mc PDF::xf python loop (13 flavours): {py_rate:11.4g} points/s ({args.pythia_points} pts)")
    table.append(["pythia8mc `xf`, Python loop", "1", "1", sig(py_rate, 2), "1"])
    for threads in dict.fromkeys(args.threads):
        torch.set_num_threads(threads)
        for interp in args.interpolations:
            for b in args.batches:
                n = int(b)
                xt = torch.from_numpy(x[:n]).to(args.device)
                qt = torch.from_numpy(q2[:n]).to(args.device)
                rate = _torch_rate(args.name, xt, qt, interp)
                print(
                    f"torch xfxq2_all {interp:>6s}, {threads} thread(s), batch {n:>8d}: {rate:11.4g} "
                    f"points/s  ratio {rate / py_rate:6.1f}x"
                )
                table.append([labels[interp], str(threads), f"{n:.0e}".replace("e+0", "e"), sig(rate, 2),
                              f"{rate / py_rate:.1f}×"])  # fmt: skip
    rec.notes["pythia_points"] = args.pythia_points
    rec.write()


if __name__ == "__main__":
    main()
