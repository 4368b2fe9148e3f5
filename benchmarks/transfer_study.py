"""Transfer-model study: several backends' p(x_reco|x_hard) validated side by side on the same events.

Usage::

    python benchmarks/transfer_study.py --data DY.h5 --out study/ \\
        --model gaussian=registry/drell-yan/gaussian.toml \\
        --model cinn=models:/memzoo-drell-yan-cinn@champion \\
        [--events 2000] [--held-out test|all] [--split-seed 0] \\
        [--integrate --grid sin2theta_eff=0.17:0.29:13 --integrate-events 400 --set-size 50]

A model is ``LABEL=SPEC`` (or just SPEC) with SPEC a model card (``*.toml``), an MLflow URI or a
bundle folder, as for ``memzoo integrate``. The held-out events are the accepted events of the
test split of ``--data`` (``Dataset.split(split_seed, (0.8, 0.1, 0.1))``, what ``memzoo train``
leaves out when the card's ``training.seed`` equals ``--split-seed``), or all accepted events of
an independent file (``--held-out all``); they are written to ``OUT/held_out.h5`` and every
backend sees exactly these. Per backend:

* generated reco events: one per true hard event, from the backend's ``transfer.sample``;
* generated-vs-true distributions of every object (figures in ``OUT/distributions/``, a
  χ² per feature) and the classifier two-sample AUC (:mod:`memzoo.validation`; Heimel, PhD
  thesis 2024, Sec. 4.4), on the object kinds that the true events and every backend share:
  once on the reco features alone, once with the response features (each object relative to
  the nearest true hard particle), which test p(x_reco|x_hard) at the given hard events;
* the mean held-out log p(x_reco|x_hard) per event at the true hard events (natural log, in
  the backend's measure: per dpT dη dφ (dm) of each modelled object; comparable between
  backends that model the same objects);
* with ``--integrate``: the MEM likelihood of the first ``--integrate-events`` held-out events
  on ``--grid`` (``memzoo integrate``), the combined estimate θ̂ and the calibration pulls over
  disjoint sets of ``--set-size`` events (``memzoo calibrate``; needs events at one true θ).

Writes ``OUT/summary.json`` and ``OUT/table.md`` (one row per backend, for the docs).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from memzoo.data import Dataset, DatasetWriter, read_dataset
from memzoo.events import Particles
from memzoo.validation import (
    ClassifierConfig,
    FeatureSet,
    classifier_two_sample_test,
    distribution_comparisons,
    event_features,
    feature_layout,
    plot_distributions,
    response_features,
)

__all__ = [
    "calibration_numbers",
    "generate",
    "held_out_events",
    "log_prob_summary",
    "markdown_table",
    "parse_grid",
    "parse_model",
    "run_study",
    "transfer_log_prob",
]


def parse_model(spec: str) -> tuple[str, str]:
    """``"LABEL=SPEC"`` → (label, spec); a bare SPEC is labelled by its card stem or last path part."""
    label, sep, model = spec.partition("=")
    if sep and label and "/" not in label and ":" not in label:
        return label, model
    name = Path(spec.split("@")[0].rstrip("/")).name
    return (Path(name).stem if spec.endswith(".toml") else name), spec


def parse_grid(text: str) -> dict[str, list[float]]:
    """``"alpha=-90:90:13,beta=0:1:3"`` → ``{"alpha": [13 values], "beta": [3 values]}``."""
    grid = {}
    for part in text.split(","):
        name, sep, rng = part.partition("=")
        bits = rng.split(":")
        if not sep or len(bits) != 3:
            raise ValueError(f"Grid entry {part!r} must be NAME=START:STOP:N, e.g. sin2theta_eff=0.17:0.29:13.")
        n = int(bits[2])
        if n < 3:
            raise ValueError(f"Grid entry {part!r} needs at least 3 points for a fit, got {n}.")
        grid[name.strip()] = torch.linspace(float(bits[0]), float(bits[1]), n, dtype=torch.float64).tolist()
    return grid


def held_out_events(path: str | Path, held_out: str = "test", split_seed: int = 0, n: int | None = None) -> Dataset:
    """The accepted events of the test split (``"test"``) or of the whole file (``"all"``), first ``n``."""
    data = read_dataset(path)
    if held_out == "test":
        data = data.split(split_seed, (0.8, 0.1, 0.1))[2]
    elif held_out != "all":
        raise ValueError(f"held_out must be 'test' or 'all', got {held_out!r}.")
    data = data[data.accepted]
    if n is not None:
        data = data[:n]
    if len(data) < 20:
        raise ValueError(f"{path} has only {len(data)} held-out accepted events ({held_out}); the study needs >= 20.")
    return data


def write_events(data: Dataset, path: Path, note: dict[str, Any]) -> Path:
    """``data`` as a paired-dataset file (what ``memzoo integrate`` reads), with ``note`` in its settings."""
    info = data.info
    parameters = [(p["name"], p.get("unit", "")) for p in info["parameters"]]
    with DatasetWriter(
        path,
        process=info["process"],
        parameters=parameters,
        n_hard=data.hard_momenta.shape[1],
        hard_dim=data.hard_coords.shape[1],
        n_reco_max=data.reco.n_objects,
        chunk_size=len(data),
        resume=False,
        settings={**info.get("settings", {}), "held_out": note},
        process_config=info.get("process_config", {}),
    ) as writer:
        writer.append(data)
    return path


def _same_events(path: Path, data: Dataset) -> bool:
    if not path.is_file():
        return False
    old = read_dataset(path)
    return (
        len(old) == len(data)
        and torch.equal(old.hard_coords, data.hard_coords)
        and torch.equal(old.reco.p, data.reco.p)
    )


def generate(
    transfer: Any,
    hard: torch.Tensor,
    seed: int = 0,
    batch_size: int = 2000,
    match: Particles | None = None,
    max_rounds: int = 200,
) -> tuple[Particles, int]:
    """One generated reco event per hard point ``hard (E, D)``, sampled in batches with one seeded stream.

    With ``match`` (the true reco events, row for row), an event whose object counts differ from its
    true event's, for each kind that both contain, is drawn again (up to ``max_rounds`` times): the
    generated events then follow p(x_reco | x_hard, n) at the true multiplicities n. For a transfer that models the
    multiplicity (p(n | x_hard), eq. 6.45) this is the comparison that fits held-out events
    selected by their multiplicity; a fixed-layout transfer always matches such events.

    Returns:
        The generated events and the number of rows still unmatched after ``max_rounds``.
    """
    device = hard.device
    g = torch.Generator(device).manual_seed(seed)

    def draw(h: torch.Tensor) -> Particles:
        batches = [transfer.sample(b, generator=g) for b in h.split(batch_size)]
        return Particles.cat([Particles(b.p.double(), b.kind, b.mask, validate=False) for b in batches])

    out = draw(hard)
    if match is None:
        return out, 0
    # the kinds both model: e.g. the missing pT of the true events is no object of the cINN layout
    kinds = sorted(set(torch.unique(match.kind[match.mask]).tolist()) & set(torch.unique(out.kind[out.mask]).tolist()))

    def counts(reco: Particles) -> torch.Tensor:
        return torch.stack([(reco.mask & (reco.kind == k)).sum(1) for k in kinds], 1).cpu()

    want = counts(match)
    rows = torch.arange(len(hard))
    pieces, where = [], []
    for _ in range(max_rounds):
        ok = (counts(out) == want[rows]).all(1)
        pieces.append(out[torch.nonzero(ok).squeeze(-1).to(out.p.device)])
        where.append(rows[ok])
        rows = rows[~ok]
        if len(rows) == 0:
            break
        out = draw(hard[rows.to(device)])
    if len(rows):
        pieces.append(out)  # the last draw of the unmatched rows
        where.append(rows)
    order = torch.argsort(torch.cat(where))
    return Particles.cat(pieces)[order.to(out.p.device)], len(rows)


def transfer_log_prob(transfer: Any, reco: Particles, hard: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """``(E,)`` float64 log p(x_reco|x_hard) of row-wise pairs, evaluated in batches, on CPU."""
    out = []
    with torch.no_grad():
        for start in range(0, len(reco), batch_size):
            rows = slice(start, start + batch_size)
            out.append(transfer.log_prob(reco[rows], hard[rows]).double().cpu())
    return torch.cat(out)


def log_prob_summary(logp: torch.Tensor) -> dict[str, float | int]:
    """Mean log p over the events where it is finite, its standard error, and the count of the others."""
    ok = torch.isfinite(logp)
    v = logp[ok]
    n = len(v)
    return {
        "mean": float(v.mean()) if n else math.nan,
        "error": float(v.std() / math.sqrt(n)) if n > 1 else math.nan,
        "n": n,
        "n_nonfinite": int((~ok).sum()),
    }


def _finite_rows(f: FeatureSet) -> tuple[FeatureSet, int]:
    ok = torch.isfinite(f.values).all(-1)
    return replace(f, values=f.values[ok], present=f.present[ok]), int((~ok).sum())


def calibration_numbers(results: Path, parameter: str, set_size: int, n_events: int | None = None) -> dict[str, Any]:
    """θ̂ of the first ``n_events`` events combined and the pull summary over disjoint sets (``memzoo calibrate``).

    A file may hold more events than asked for (an earlier, longer run): every backend is
    compared on the same first ``n_events``.
    """
    from memzoo.inference import calibrate, fit_scan, load_event_likelihoods

    events, _ = load_event_likelihoods(results, n_events=n_events)
    est = fit_scan(events.combine(), parameter)
    out: dict[str, Any] = {
        "events": len(events),
        "estimate": est.value,
        "err_low": est.err_low,
        "err_high": est.err_high,
        "integration_std": est.value_std,
        "closed": est.closed,
    }
    try:
        cal = calibrate([events], set_size, parameter)
    except ValueError as err:  # e.g. events at several true θ, or fewer than one set
        out["calibration_error"] = str(err)
        return out
    pulls = cal.overall
    out.update(truth=cal.truths[0], n_sets=len(cal.estimates[0]), set_size=set_size)
    out.update(
        pull_mean=pulls.mean, pull_mean_err=pulls.mean_err, pull_width=pulls.width, pull_width_err=pulls.width_err
    )
    out["closed_sets"] = pulls.n
    return out


def run_study(
    data: str | Path,
    models: dict[str, str],
    out: str | Path,
    *,
    events: int | None = 2000,
    held_out: str = "test",
    split_seed: int = 0,
    seed: int = 0,
    classifier: ClassifierConfig | None = None,
    max_per_kind: int = 4,
    integrate: dict[str, Any] | None = None,
    device: str | None = None,
    plots: bool = True,
    match_multiplicity: bool = False,
) -> dict[str, Any]:
    """Run the study (module docstring) and write ``summary.json`` and ``table.md`` into ``out``.

    Args:
        models: label → model card, MLflow URI or bundle folder.
        integrate: ``None`` or ``{"grid": {name: values}, "events": N, "set_size": S, "options":
            MEMIntegrator options}``.
        match_multiplicity: generate every event at its true object counts per kind (see
            :func:`generate`): for held-out events selected by multiplicity.
    """
    from memzoo.integration_job import integrate_dataset, load_model_spec

    if not models:
        raise ValueError("Give at least one model (--model LABEL=CARD_OR_URI).")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = held_out_events(data, held_out, split_seed, events)
    note = {"source": str(Path(data).resolve()), "split": held_out, "split_seed": split_seed, "events": len(dataset)}
    events_file = out / "held_out.h5"
    if not _same_events(events_file, dataset):  # keep an identical file: integration results resume
        write_events(dataset, events_file, note)
    dev = torch.device(device or "cpu")
    hard, true_reco = dataset.hard_coords.to(dev), dataset.charged_reco.to(dev)
    rows: dict[str, dict[str, Any]] = {}
    generated: dict[str, Particles] = {}
    for label, model in models.items():
        parts, _, description = load_model_spec(model)
        if parts["process"].name != dataset.info.get("process"):
            raise ValueError(
                f"{label}: the model is for {parts['process'].name!r}, the events are {dataset.info.get('process')!r}."
            )
        if "transfer" not in parts:
            raise ValueError(f"{label} ({model}) has no transfer model to validate.")
        transfer = parts["transfer"].to(dev) if isinstance(parts["transfer"], torch.nn.Module) else parts["transfer"]
        t0 = time.perf_counter()
        reference = true_reco if match_multiplicity else None
        generated[label], unmatched = generate(transfer, hard, seed, match=reference)
        generated[label] = generated[label].to("cpu")
        t1 = time.perf_counter()
        logp = transfer_log_prob(transfer, true_reco, hard)
        t2 = time.perf_counter()
        rows[label] = {
            "model": description,
            "transfer": getattr(transfer, "name", type(transfer).__name__),
            "log_prob": log_prob_summary(logp),
            "generated_unmatched": unmatched,
            "seconds_sample": t1 - t0,
            "seconds_log_prob": t2 - t1,
        }
    true_reco = true_reco.to("cpu")
    layout = feature_layout(true_reco, *generated.values(), max_per_kind=max_per_kind)
    true_f = event_features(true_reco, layout)
    hard_p = dataset.hard_momenta
    true_r = true_f.join(response_features(true_reco, hard_p, layout))
    gen_f, gen_r = {}, {}
    for label, reco in generated.items():
        joined = event_features(reco, layout).join(response_features(reco, hard_p, layout))
        joined, rows[label]["generated_nonfinite"] = _finite_rows(joined)
        gen_r[label] = joined
        gen_f[label] = replace(
            joined,
            values=joined.values[:, : len(true_f.names)],
            present=joined.present[:, : len(true_f.names)],
            names=true_f.names,
            groups=true_f.groups,
            scales=true_f.scales,
        )
    comparisons = distribution_comparisons(true_f, gen_f)
    for label in models:
        chi2 = {name: (row[label].chi2, row[label].ndf) for name, row in comparisons.items() if label in row}
        worst = max(chi2, key=lambda k: chi2[k][0] / max(chi2[k][1], 1))
        rows[label]["chi2"] = {
            "sum": sum(c for c, _ in chi2.values()),
            "ndf": sum(n for _, n in chi2.values()),
            "worst_feature": worst,
            "per_feature": chi2,
        }
        result = classifier_two_sample_test(true_f, gen_f[label], classifier, device=device)
        rows[label]["two_sample"] = result.as_dict()
        response = classifier_two_sample_test(true_r, gen_r[label], classifier, device=device)
        rows[label]["two_sample_response"] = response.as_dict()
        print(
            f"{label}: AUC = {result.auc:.4f} ± {result.auc_error:.4f} (reco), {response.auc:.4f} ± "
            f"{response.auc_error:.4f} (reco and response), <log p> = {rows[label]['log_prob']['mean']:.3f}"
        )
    figures = (
        plot_distributions(true_f, gen_f, out / "distributions", title=dataset.info.get("process", "")) if plots else []
    )
    if integrate:
        parameter = next(iter(integrate["grid"]))
        for label, model in models.items():
            path = out / f"mem_{label}.h5"
            t0 = time.perf_counter()
            integrate_dataset(
                model,
                events_file,
                integrate["grid"],
                path,
                n_events=integrate.get("events"),
                options=integrate.get("options"),
                device=device,
                progress=False,
            )
            rows[label]["mem"] = {
                **calibration_numbers(path, parameter, integrate.get("set_size", 100), integrate.get("events")),
                "results": str(path),
                "seconds": time.perf_counter() - t0,
            }
    summary = {
        "data": note,
        "process": dataset.info.get("process"),
        "layout": {str(k): v for k, v in layout.items()},
        "features": list(true_f.names),
        "classifier": asdict(classifier or ClassifierConfig()),
        "integrate": integrate,
        "match_multiplicity": match_multiplicity,
        "figures": [str(p) for p in figures],
        "backends": rows,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    (out / "table.md").write_text(markdown_table(summary))
    return summary


def _pm(value: Any, error: Any, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return (
        f"{value:.{digits}f} ± {error:.{digits}f}"
        if error is not None and math.isfinite(error)
        else f"{value:.{digits}f}"
    )


def markdown_table(summary: dict[str, Any]) -> str:
    """One row per backend: AUC, Σχ²/ndf, mean log p, and (if integrated) θ̂ and the pulls."""
    mem = any("mem" in r for r in summary["backends"].values())
    head = ["backend", "transfer", "events", "AUC reco", "AUC reco + response", "Σχ²/ndf (worst)", "⟨log p⟩ / event"]
    head.append("log p = −∞")
    if mem:
        name = next(iter(summary["integrate"]["grid"]))
        head += [f"{name} (all events)", "closed sets", "pull mean", "pull width"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, r in summary["backends"].items():
        ts, lp, chi2 = r["two_sample"], r["log_prob"], r["chi2"]
        cells = [
            label,
            r["transfer"],
            str(summary["data"]["events"]),
            _pm(ts["auc"], ts["auc_error"]),
            _pm(r["two_sample_response"]["auc"], r["two_sample_response"]["auc_error"]),
            f"{chi2['sum']:.0f}/{chi2['ndf']} ({chi2['worst_feature']})",
            _pm(lp["mean"], lp["error"]),
            str(lp["n_nonfinite"]),
        ]
        if mem:
            m = r.get("mem", {})
            est = m.get("estimate")
            cells.append(f"{est:.4g} +{m['err_high']:.2g} −{m['err_low']:.2g}" if est is not None else "–")
            cells += [
                f"{m['closed_sets']}/{m['n_sets']}" if "n_sets" in m else "–",
                _pm(m.get("pull_mean"), m.get("pull_mean_err"), 2),
                _pm(m.get("pull_width"), m.get("pull_width_err"), 2),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="paired dataset file")
    parser.add_argument("--model", action="append", required=True, help="LABEL=CARD_OR_URI (repeat per backend)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the summary, table and figures")
    parser.add_argument("--events", type=int, default=2000, help="held-out accepted events to use")
    parser.add_argument("--held-out", choices=["test", "all"], default="test")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated events and the classifier")
    parser.add_argument("--max-per-kind", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=60, help="classifier epochs (early stopping)")
    parser.add_argument("--integrate", action="store_true", help="also run the MEM integral and the calibration")
    parser.add_argument("--grid", help="θ grid NAME=START:STOP:N[,...] for --integrate")
    parser.add_argument("--integrate-events", type=int, default=400)
    parser.add_argument("--set-size", type=int, default=50)
    parser.add_argument("--points", type=int, default=2000, help="integrator points per iteration")
    parser.add_argument("--bootstrap", type=int, default=8, help="bootstrap replicas of the integration")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--match-multiplicity",
        action="store_true",
        help="draw each generated event again until its object counts per kind equal the true event's",
    )
    args = parser.parse_args(argv)
    models = dict(parse_model(m) for m in args.model)
    if len(models) != len(args.model):
        parser.error("two --model entries have the same label; give LABEL=... to tell them apart.")
    integrate = None
    if args.integrate:
        if not args.grid:
            parser.error("--integrate needs --grid NAME=START:STOP:N.")
        options = {"n_points": args.points, "min_iterations": 2, "max_iterations": 8, "bootstrap": args.bootstrap}
        integrate = {
            "grid": parse_grid(args.grid),
            "events": args.integrate_events,
            "set_size": args.set_size,
            "options": options,
        }
    summary = run_study(
        args.data,
        models,
        args.out,
        events=args.events,
        held_out=args.held_out,
        split_seed=args.split_seed,
        seed=args.seed,
        classifier=ClassifierConfig(epochs=args.epochs, seed=args.seed),
        max_per_kind=args.max_per_kind,
        integrate=integrate,
        device=args.device,
        plots=not args.no_plots,
        match_multiplicity=args.match_multiplicity,
    )
    print(markdown_table(summary))
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'table.md'}")
    return summary


if __name__ == "__main__":
    main()
