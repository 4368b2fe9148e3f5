"""Transfer-density throughput: the Transfermer vs the Transfer-cINN on the same events and device.

Usage: ``python benchmarks/bench_transfer.py [--size small|paper] [--events 10000] [--repeats 3]
[--device cpu|cuda] [--threads 1]``.

The tHj hadronic layout (2 photons, 1 b-jet, 3 jets) and the networks of the cards
``registry/thj/transfermer.toml`` and ``registry/thj/cinn.toml`` at the chosen size. Hard points
are random (t, H) three-momenta and a forward-jet p_z (speed does not depend on the physics);
the reco events are drawn once from the (untrained) Transfermer and evaluated by both networks in batches of
``--events`` (the integrator's batch). The Transfermer is also timed with up to two extra jets
(its multiplicity classifier evaluated too) on the same events. Prints density evaluations per
second (events × networks' log_prob per second, best of ``--repeats``) and the ratio
Transfermer / cINN (thesis Sec. 6.5.2: "as fast as the Transfer-cINN").
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import memzoo

LAYOUT = ["photon", "photon", "bjet", "jet", "jet", "jet"]


def throughput(model, reco, hard, repeats: int) -> float:
    """Best-of-``repeats`` density evaluations per second of ``model.log_prob(reco, hard)``."""
    best = float("inf")
    with torch.no_grad():
        model.log_prob(reco[:64], hard[:64])  # warm-up
        for _ in range(repeats):
            if hard.is_cuda:
                torch.cuda.synchronize()
            tick = time.perf_counter()
            model.log_prob(reco, hard)
            if hard.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - tick)
    return len(hard) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["small", "paper"])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    n = args.events
    hard = torch.cat([80 * torch.randn(n, 6, generator=gen), 300 * torch.randn(n, 1, generator=gen)], 1).double()
    cinn = memzoo.create("transfer", "cinn", objects=LAYOUT, hard_dim=7, log_hard=[], hard_phi=[], size=args.size)
    models = {"cinn": cinn}
    for label, extra in (("transfermer", {}), ("transfermer + multiplicity", {"extra": "jet", "max_extra": 2})):
        models[label] = memzoo.create("transfer", "transfermer", process="thj", objects=LAYOUT, size=args.size, **extra)
    reco = models["transfermer"].sample(hard, gen)  # in every network's support (|η| < 5)
    for model in models.values():
        model.fit_preprocessing(reco, hard)
    with torch.no_grad():  # keep events every network supports
        keep = torch.stack([torch.isfinite(m.log_prob(reco, hard)) for m in models.values()]).all(0)
    reco, hard = reco[keep].to(dev), hard[keep].to(dev)
    rates = {k: throughput(m.to(dev).eval(), reco, hard, args.repeats) for k, m in models.items()}
    print(f"device {dev} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), size {args.size}, batch {len(hard)}")  # fmt: skip
    print("| network | parameters | density evaluations / s | ratio to cINN |")
    print("| --- | --- | --- | --- |")
    for label, rate in rates.items():
        params = sum(p.numel() for p in models[label].parameters())
        print(f"| {label} | {params / 1e6:.2f}M | {rate:.3g} | {rate / rates['cinn']:.2f} |")


if __name__ == "__main__":
    main()
