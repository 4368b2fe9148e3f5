"""Importance-sampling quality of a bundle's sampler: effective sample size of the MEM weights.

For each of the first ``--events`` accepted events of a dataset and one θ, draws ``--points``
hard points x_j ~ q(x|x_reco, θ) straight from the sampler (no VEGAS refinement) and forms the
weights of the MEM integrand (eq. 6.39),

    w_j = dσ(x_j|θ) ε(x_j) p(x_reco|x_j) / q(x_j|x_reco, θ).

Reported per bundle (Kish's effective sample size, ESS = (Σw)² / Σw², as a fraction of the points;
Heimel, PhD thesis 2024, Sec. 2.2 on the variance of importance sampling):

* the median and the 10 % / 90 % quantiles of ESS/N over events;
* the median share of the largest single weight in Σw;
* the median of log Î(first 1000 points) − log Î(all points): how far a 1000-point estimate of the
  integral typically falls below the full one (a heavy-tailed weight distribution biases the
  log of a small-sample mean low, and by different amounts at different θ).

A sampler that matches the integrand has ESS/N near 1; the thesis' samplers reach the 2 % target
error of an event within ~10⁴–10⁵ points (Fig. 6.13). Compare bundles on the same events::

    python benchmarks/sampler_ess.py --data thj-alpha0.h5 --theta alpha=0 \\
        --model v1=models:/memzoo-thj-cinn/1 --model v3=models:/memzoo-thj-cinn/3

The numbers of docs/studies.md (tHj samplers) come from this script.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

try:
    from benchmarks._common import RESULTS, Recorder
except ModuleNotFoundError:  # run as a script: python benchmarks/sampler_ess.py
    from _common import RESULTS, Recorder

__all__ = ["event_weights", "main", "summarise"]


@torch.no_grad()
def event_weights(parts: dict, reco, theta: torch.Tensor, n_points: int, generator: torch.Generator) -> torch.Tensor:
    """``(N,)`` float64 log-weights log(dσ ε p / q) of one event, −inf where invalid.

    Args:
        parts: ``process``, ``transfer``, ``sampler`` and optionally ``acceptance`` (a bundle's
            ``{"process": bundle.build_process(), **bundle.components()}``).
        reco: one reco event; theta: ``(1, P)``.
    """
    process, sampler, transfer, acceptance = (parts.get(k) for k in ("process", "sampler", "transfer", "acceptance"))
    rows = reco[torch.zeros(n_points, dtype=torch.long)]
    u = torch.rand(n_points, process.hard_dim, generator=generator, dtype=torch.float64)
    coords, log_q = sampler.from_unit(u, rows, theta)
    log_w = transfer.log_prob(rows, coords).double() - log_q.double()
    if acceptance is not None:
        log_w = log_w + torch.log(acceptance.prob(coords).double())
    dsigma = process.dsigma(coords, theta).double()[:, 0]
    log_w = log_w + torch.log(dsigma.clamp(min=1e-300))
    valid = torch.isfinite(log_w) & (dsigma > 0) & torch.isfinite(coords).all(-1)
    return torch.where(valid, log_w, -math.inf)


def summarise(log_w: torch.Tensor, first: int = 1000) -> dict[str, float]:
    """ESS/N, the largest weight's share and log Î(first points) − log Î(all) of one event's log-weights."""
    top = log_w.max()
    if not bool(torch.isfinite(top)):
        return {"ess": 0.0, "top": 1.0, "small_minus_full": -math.inf}
    w = torch.exp(log_w - top)
    ess = float(w.sum() ** 2 / (w**2).sum()) / len(w)
    small = w[:first].mean()
    gap = float(torch.log(small) - torch.log(w.mean())) if small > 0 else -math.inf
    return {"ess": ess, "top": float(w.max() / w.sum()), "small_minus_full": gap}


def _theta(text: str, process) -> torch.Tensor:
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--theta {text!r} must look like NAME=VALUE (e.g. alpha=0).")
    return process.theta(**{name: [float(value)]})


def main(argv: list[str] | None = None) -> int:
    import memzoo
    from memzoo.data import read_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="dataset (.h5) whose accepted events are used")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=URI", help="a bundle, repeatable")
    parser.add_argument("--theta", required=True, help="the θ of the weights, NAME=VALUE (e.g. alpha=0)")
    parser.add_argument("--events", type=int, default=12, help="first N accepted events (default: %(default)s)")
    parser.add_argument("--points", type=int, default=20000, help="points per event (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="sampler_ess", help="results name: benchmarks/results/<name>.json")
    parser.add_argument("--json", default=None, help="results file (default: benchmarks/results/<name>.json)")
    parser.add_argument("--no-json", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    if args.events < 1 or args.points < 1000:
        raise SystemExit("--events must be >= 1 and --points >= 1000 (the small-sample column uses 1000 points).")
    args.json = args.json or str(RESULTS / f"{args.name}.json")
    if not Path(args.data).is_file():
        raise SystemExit(f"--data {args.data}: no such file.")
    torch.set_num_threads(1)
    rec = Recorder.from_args(args.name, args)
    reco = read_dataset(args.data, accepted_only=True)[: args.events].charged_reco
    columns = ["sampler", "events", "points", "ESS/N median", "ESS/N 10–90 %", "largest weight share"]
    columns += ["log Î(1000) − log Î(all)"]
    table = rec.table("ess", columns)
    for item in args.model:
        name, sep, uri = item.partition("=")
        if not sep:
            raise SystemExit(f"--model {item!r} must look like NAME=URI (e.g. v1=models:/memzoo-thj-cinn/1).")
        bundle = memzoo.load(uri)
        parts = {"process": bundle.build_process(), **bundle.components()}
        theta = _theta(args.theta, parts["process"])
        generator = torch.Generator().manual_seed(args.seed)
        stats = [summarise(event_weights(parts, reco[[e]], theta, args.points, generator)) for e in range(len(reco))]
        ess = np.array([s["ess"] for s in stats])
        top = np.median([s["top"] for s in stats])
        gap = np.median([s["small_minus_full"] for s in stats])
        q10, q90 = np.quantile(ess, [0.1, 0.9])
        row = [name, str(len(reco)), str(args.points), f"{np.median(ess):.4f}", f"{q10:.4f}–{q90:.4f}"]
        table.append([*row, f"{top:.3f}", f"{gap:+.2f}"])
        rec.notes[name] = {"uri": uri, "ess": ess.tolist()}
        print("| " + " | ".join(table[-1]) + " |", flush=True)
    rec.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
