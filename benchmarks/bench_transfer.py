"""Transfer-density throughput: the Transfermer vs the Transfer-cINN on the same events and device.

Usage: ``python benchmarks/bench_transfer.py [--size small paper] [--events 10000 2000] [--repeats 3]
[--device cpu|cuda] [--threads 1] [--json PATH | --no-json]``.

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

import torch

import memzoo

try:
    from benchmarks._common import Recorder, add_json_arguments, best_throughput, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_transfer.py
    from _common import Recorder, add_json_arguments, best_throughput, sig

LAYOUT = ["photon", "photon", "bjet", "jet", "jet", "jet"]


def throughput(model, reco, hard, repeats: int) -> float:
    """Best-of-``repeats`` density evaluations per second of ``model.log_prob(reco, hard)``."""
    with torch.no_grad():
        model.log_prob(reco[:64], hard[:64])  # warm-up
        return best_throughput(lambda: model.log_prob(reco, hard), len(hard), repeats, cuda=hard.is_cuda)


def run_size(size: str, n: int, repeats: int, dev: torch.device) -> tuple[int, dict[str, tuple[int, float]]]:
    """Batch size after the support cut and ``{network: (parameters, density evaluations / s)}``."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    hard = torch.cat([80 * torch.randn(n, 6, generator=gen), 300 * torch.randn(n, 1, generator=gen)], 1).double()
    cinn = memzoo.create("transfer", "cinn", objects=LAYOUT, hard_dim=7, log_hard=[], hard_phi=[], size=size)
    models = {"cinn": cinn}
    for label, extra in (("transfermer", {}), ("transfermer + multiplicity", {"extra": "jet", "max_extra": 2})):
        models[label] = memzoo.create("transfer", "transfermer", process="thj", objects=LAYOUT, size=size, **extra)
    reco = models["transfermer"].sample(hard, gen)  # in every network's support (|η| < 5)
    for model in models.values():
        model.fit_preprocessing(reco, hard)
    with torch.no_grad():  # keep events every network supports
        keep = torch.stack([torch.isfinite(m.log_prob(reco, hard)) for m in models.values()]).all(0)
    reco, hard = reco[keep].to(dev), hard[keep].to(dev)
    return len(hard), {
        k: (sum(p.numel() for p in m.parameters()), throughput(m.to(dev).eval(), reco, hard, repeats))
        for k, m in models.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--events", type=int, nargs="+", default=None, help="batch per size (10000 small, 2000 paper)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    add_json_arguments(parser, "transfer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recorder.from_args("transfer", args, args.device)
    columns = ["size (batch)", "network", "parameters", "density evaluations / s", "ratio to cINN"]
    table = rec.table("throughput", columns)
    events = args.events or [{"small": 10000, "paper": 2000}[s] for s in args.size]
    if len(events) != len(args.size):
        raise SystemExit(f"Give one --events per --size ({len(args.size)}), got {len(events)}.")
    dev = torch.device(args.device)
    for size, n in zip(args.size, events):
        batch, rates = run_size(size, n, args.repeats, dev)
        print(f"device {dev} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
              f"{torch.get_num_threads()} thread(s), size {size}, batch {batch}")  # fmt: skip
        print("| network | parameters | density evaluations / s | ratio to cINN |")
        print("| --- | --- | --- | --- |")
        for label, (params, rate) in rates.items():
            ratio = f"{rate / rates['cinn'][1]:.2f}"
            print(f"| {label} | {params / 1e6:.2f}M | {rate:.3g} | {ratio} |")
            shown = f"{params / 1e6:.2f}M" if params < 1e7 else f"{params / 1e6:.1f}M"
            table.append([f"{size} ({batch})", label, shown, sig(rate), ratio])
    rec.notes["repeats"] = args.repeats
    rec.write()


if __name__ == "__main__":
    main()
