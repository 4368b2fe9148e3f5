"""CFM transfer densities: throughput vs cINN and Transfermer, and ODE steps vs likelihood accuracy.

Usage: ``python benchmarks/bench_cfm.py [--size small|paper] [--events 1000] [--repeats 2]
[--train-steps 300] [--device cpu|cuda] [--threads 1] [--json PATH | --no-json]``.

Part 1 (throughput): the tHj hadronic layout (2 photons, 1 b-jet, 3 jets) and the networks of the
cards ``registry/thj/{cinn,transfermer,cfm,transfusion}.toml`` at the chosen size, on the same
events and device: random hard points (t, H three-momenta, forward-jet p_z), reco events drawn once
from the untrained Transfermer (speed does not depend on the physics). Density evaluations per
second (best of ``--repeats``) for the CFMs with the exact divergence and with one Hutchinson
probe, RK4 with step 0.05 (thesis Tables A.9, A.11).

Part 2 (accuracy): the CFM and the Transfusion are first trained for ``--train-steps`` Adam steps
on those pairs (a trained velocity field is curved; an untrained one is nearly linear and would
flatter the coarse solvers). Then log p of 200 events with RK4 at several steps, Euler, midpoint
and adaptive dopri5 is compared with a reference (dopri5, rtol = atol = 1e-7, float32 networks):
mean and largest |Δ log p|, velocity evaluations per event, and the time per event. For
Hutchinson, the spread is the standard deviation of log p over 20 probe draws.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

import memzoo

try:
    from benchmarks._common import Recorder, add_json_arguments, best_throughput, sig
except ModuleNotFoundError:  # run as a script: python benchmarks/bench_cfm.py
    from _common import Recorder, add_json_arguments, best_throughput, sig

#: How the docs name the networks and settings.
NAMES = {
    "cfm": "cfm (exact divergence, 22 features)",
    "transfusion": "transfusion (exact, 3–4 per object)",
}
LAYOUT = ["photon", "photon", "bjet", "jet", "jet", "jet"]


def throughput(model, reco, hard, repeats: int) -> float:
    """Best-of-``repeats`` density evaluations per second of ``model.log_prob(reco, hard)``."""
    with torch.no_grad():
        model.log_prob(reco[:16], hard[:16])  # warm-up
        return best_throughput(lambda: model.log_prob(reco, hard), len(hard), repeats, cuda=hard.is_cuda)


def count_velocity_calls(model) -> list[int]:
    """A counter of velocity-network calls (one per ODE function evaluation and object type)."""
    calls = [0]
    for m in model.modules():
        if type(m).__name__ == "VelocityMLP":
            m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def build(size: str):
    models = {
        "cinn": memzoo.create("transfer", "cinn", objects=LAYOUT, hard_dim=7, log_hard=[], hard_phi=[], size=size),
        "transfermer": memzoo.create("transfer", "transfermer", process="thj", objects=LAYOUT, size=size),
    }
    for label, divergence in (("", "exact"), (" (Hutchinson, 1 probe)", "hutchinson")):
        models["cfm" + label] = memzoo.create(
            "transfer", "cfm", objects=LAYOUT, hard_dim=7, log_hard=[], hard_phi=[], size=size, divergence=divergence
        )
        models["transfusion" + label] = memzoo.create(
            "transfer", "transfusion", process="thj", objects=LAYOUT, size=size, divergence=divergence
        )
    return models


def train(model, reco, hard, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        rows = torch.randint(0, len(hard), (256,), generator=gen)
        loss = model.loss({"reco": reco[rows], "hard": hard[rows]})
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss)


def accuracy(model, reco, hard) -> list[tuple[str, float, float, float, float]]:
    """(setting, mean |Δ log p|, max |Δ log p|, velocity evaluations per object type, ms per event)."""
    calls = count_velocity_calls(model)
    groups = len(getattr(getattr(model, "flow", None), "cfms", {"one": None}))
    rows = []
    with torch.no_grad(), model.solver_options(solver="dopri5", rtol=1e-7, atol=1e-7):
        ref = model.log_prob(reco, hard)
    settings = [("rk4", {"step": s}, f"RK4 step {s}") for s in (0.5, 0.25, 0.1, 0.05, 0.02)]
    settings += [("euler", {"step": 0.05}, "Euler step 0.05"), ("midpoint", {"step": 0.05}, "midpoint step 0.05")]
    settings += [("dopri5", {"rtol": t, "atol": t}, f"dopri5 tol {t:g}") for t in (1e-3, 1e-5)]
    for solver, options, label in settings:
        calls[0] = 0
        with torch.no_grad(), model.solver_options(solver=solver, **options):
            tick = time.perf_counter()
            log_p = model.log_prob(reco, hard)
            ms = 1e3 * (time.perf_counter() - tick) / len(hard)
        diff = (log_p - ref).abs()
        rows.append((label, float(diff.mean()), float(diff.max()), calls[0] / groups, ms))
    draws = []
    with torch.no_grad(), model.solver_options(divergence="hutchinson", probe_seed=None):
        tick = time.perf_counter()
        for _ in range(20):
            draws.append(model.log_prob(reco, hard))
        ms = 1e3 * (time.perf_counter() - tick) / len(hard) / 20
    draws = torch.stack(draws)
    spread = draws.std(0)
    bias = (draws.mean(0) - ref).abs()
    rows.append(("RK4 0.05, Hutchinson 1 probe (σ over draws)", float(spread.mean()), float(spread.max()), 80, ms))
    rows.append(("  … its mean over 20 draws − reference", float(bias.mean()), float(bias.max()), 80, ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["small", "paper"])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--accuracy-events", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    add_json_arguments(parser, "cfm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rec = Recorder.from_args("cfm", args, args.device)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    n = args.events
    hard = torch.cat([80 * torch.randn(n, 6, generator=gen), 300 * torch.randn(n, 1, generator=gen)], 1).double()
    models = build(args.size)
    reco = models["transfermer"].sample(hard, gen)
    for model in models.values():
        model.fit_preprocessing(reco, hard)
    with torch.no_grad():  # keep events every network supports
        keep = torch.stack([torch.isfinite(m.log_prob(reco[:n], hard[:n])) for m in models.values()]).all(0)
    reco, hard = reco[keep].to(dev), hard[keep].to(dev)
    print(f"device {dev} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), size {args.size}, batch {len(hard)}")  # fmt: skip
    rates = {k: throughput(m.to(dev).eval(), reco, hard, args.repeats) for k, m in models.items()}
    throughput_rows = rec.table("throughput", ["network", "parameters", "density evaluations / s", "ratio to cINN"])
    print("\n| network | parameters | density evaluations / s | ratio to cINN |")
    print("| --- | --- | --- | --- |")
    for label, rate in rates.items():
        params = sum(p.numel() for p in models[label].parameters())
        print(f"| {label} | {params / 1e6:.2f}M | {rate:.3g} | {rate / rates['cinn']:.3g} |")
        cells = [NAMES.get(label, label), f"{params / 1e6:.2f}M", sig(rate), f"{rate / rates['cinn']:.2g}"]
        throughput_rows.append(cells)
    per_model = {}
    m = args.accuracy_events
    for label in ("cfm", "transfusion"):
        model = models[label].train()
        last = train(model, reco.to(dev), hard.to(dev), args.train_steps)
        model.eval()
        print(f"\n{label}: trained {args.train_steps} steps (last loss {last:.3f}); {m} events; reference dopri5 1e-7")
        print("| solver | mean abs(Δ log p) | max abs(Δ log p) | velocity evaluations | ms / event |")
        print("| --- | --- | --- | --- | --- |")
        per_model[label] = accuracy(model, reco[:m], hard[:m])
        rec.notes[f"{label}_last_loss"] = round(last, 3)
        for name, mean, worst, nfe, ms in per_model[label]:
            print(f"| {name} | {mean:.2e} | {worst:.2e} | {nfe:.0f} | {ms:.3g} |")
    columns = ["solver"]
    for label in per_model:
        columns += [f"{label}: mean / max abs(Δ log p)", "evaluations", "ms / event"]
    table = rec.table("accuracy", columns)
    for k, (name, *_) in enumerate(next(iter(per_model.values()))):
        row = [name + (" (thesis)" if name == "RK4 step 0.05" else "")]
        for rows in per_model.values():
            _, mean, worst, nfe, ms = rows[k]
            row += [f"{_small(mean)} / {_small(worst)}", f"{nfe:.0f}", sig(ms, 2)]
        table.append(row)
    rec.notes.update(events=len(hard), accuracy_events=m, train_steps=args.train_steps, repeats=args.repeats)
    rec.write()


def _small(value: float) -> str:
    """Two significant figures, powers of ten below 0.01 (as ``docs/benchmarks.md`` writes them)."""
    return sig(value, 2) if value >= 0.01 else f"{value:.1e}".replace("e-0", "e-")


if __name__ == "__main__":
    main()
