"""Generated-against-true histograms of event features, their ratios and a two-sample χ².

Per feature normalised histograms with ratio panels and the χ² homogeneity test of two
unweighted histograms (Gagunashvili, NIM A 614 (2010) 287), after Heimel, PhD thesis 2024,
Secs. 3.1.3 and 4.4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from memzoo.validation.features import FeatureSet, _check_compatible

__all__ = ["HistogramComparison", "compare_histograms", "distribution_comparisons", "plot_distributions"]


@dataclass
class HistogramComparison:
    """Two normalised histograms on common bins, their ratio and a two-sample χ².

    Attributes:
        edges: ``(K+1,)`` bin edges.
        counts_true, counts_generated: ``(K,)`` entries per bin.
        n_true, n_generated: all entries, those outside the edges included.
        density_true, density_generated, error_true, error_generated: ``(K,)`` entries /
            (n · bin width) and their Poisson errors: the fraction of all events per unit.
        ratio, ratio_error: generated / true per bin (NaN where true is empty).
        chi2, ndf: Σ (N_g n_t − N_t n_g)² / (N_t N_g (n_t + n_g)) over the bins and the
            under- and overflow, and the non-empty bins − 1 (homogeneity test of two
            unweighted histograms, Gagunashvili 2010, eq. 3).
    """

    edges: torch.Tensor
    counts_true: torch.Tensor
    counts_generated: torch.Tensor
    n_true: int
    n_generated: int
    density_true: torch.Tensor
    density_generated: torch.Tensor
    error_true: torch.Tensor
    error_generated: torch.Tensor
    ratio: torch.Tensor
    ratio_error: torch.Tensor
    chi2: float
    ndf: int


def compare_histograms(true: torch.Tensor, generated: torch.Tensor, edges: torch.Tensor) -> HistogramComparison:
    """Histogram ``true`` and ``generated`` (1-d values) on ``edges`` and compare them."""
    edges = torch.as_tensor(edges, dtype=torch.float64).cpu()
    if edges.ndim != 1 or len(edges) < 2 or not bool((edges.diff() > 0).all()):
        raise ValueError("edges must be a 1-d increasing tensor with at least two entries.")
    t, g = (torch.as_tensor(v).reshape(-1).double().cpu() for v in (true, generated))
    if len(t) == 0 or len(g) == 0:
        raise ValueError(f"Both samples need entries to compare, got {len(t)} (true) and {len(g)} (generated).")
    for name, v in (("true", t), ("generated", g)):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"The {name} values contain NaN/inf; drop them before histogramming.")
    ct, cg = torch.histogram(t, edges).hist, torch.histogram(g, edges).hist
    nt, ng = len(t), len(g)
    width = edges.diff()
    dens = lambda c, n: (c / (n * width), c.sqrt() / (n * width))
    (dt, et), (dg, eg) = dens(ct, nt), dens(cg, ng)
    with torch.no_grad():
        ratio = torch.where(dt > 0, dg / dt, torch.nan)
        rel = torch.sqrt(torch.where(cg > 0, 1 / cg, 0.0) + torch.where(ct > 0, 1 / ct, 0.0))
        ratio_error = torch.where(cg > 0, ratio * rel, torch.where(dt > 0, eg / dt, torch.nan))
    outside = lambda v: torch.stack([(v < edges[0]).sum(), (v > edges[-1]).sum()]).double()
    all_t, all_g = torch.cat([ct, outside(t)]), torch.cat([cg, outside(g)])
    used = (all_t + all_g) > 0
    chi2 = float(((ng * all_t - nt * all_g)[used] ** 2 / (all_t + all_g)[used]).sum() / (nt * ng))
    return HistogramComparison(edges, ct, cg, nt, ng, dt, dg, et, eg, ratio, ratio_error, chi2, int(used.sum()) - 1)


def _edges(values: torch.Tensor, scale: str, bins: int) -> torch.Tensor:
    if scale == "angle":
        return torch.linspace(-math.pi, math.pi, bins + 1, dtype=torch.float64)
    if scale == "count":
        lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
        return torch.arange(lo - 0.5, hi + 1.0, 1.0, dtype=torch.float64)
    lo, hi = (
        (torch.quantile(values, torch.tensor([0.005, 0.995], dtype=values.dtype)).tolist()) if len(values) else (0, 1)
    )
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64)


def distribution_comparisons(
    true: FeatureSet, generated: Mapping[str, FeatureSet], bins: int = 40
) -> dict[str, dict[str, HistogramComparison]]:
    """``{feature: {label: HistogramComparison}}`` of every generated sample against the true one.

    Binning per feature: φ on [-π, π), multiplicities per integer (all samples' range), others
    ``bins`` bins between the true 0.5 % and 99.5 % quantiles. Features absent from every event of
    a sample are skipped for it.
    """
    if not generated:
        raise ValueError("Give at least one generated sample to compare with the true one.")
    for label, sample in generated.items():
        _check_compatible(true, sample, f"distribution_comparisons ({label!r})")
    out: dict[str, dict[str, HistogramComparison]] = {}
    for name, scale in zip(true.names, true.scales):
        t = true.column(name).cpu()
        if len(t) == 0:
            continue
        every = torch.cat([t, *(s.column(name).cpu() for s in generated.values())]) if scale == "count" else t
        edges = _edges(every, scale, bins)
        row = {
            label: compare_histograms(t, s.column(name), edges) for label, s in generated.items() if len(s.column(name))
        }
        if row:
            out[name] = row
    return out


def _label(name: str) -> str:
    """Axis label of a feature: pT and H_T as mathtext, object symbols as they are."""
    return name.replace("pT(", "$p_T$(").replace("H_T", "$H_T$")


def plot_distributions(
    true: FeatureSet, generated: Mapping[str, FeatureSet], out: str | Path, bins: int = 40, title: str = ""
) -> list[Path]:
    """Generated-vs-true histograms with ratio panels, one PNG per object group, into ``out``.

    Each panel shows the true events (points, Poisson errors) and every generated sample
    (lines, with its χ²/ndf in the legend); below it the ratio generated/true.
    """
    from memzoo.inference.plots import COLOURS
    from memzoo.plots import pyplot

    comparisons = distribution_comparisons(true, generated, bins)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plt, paths = pyplot(), []
    for group in dict.fromkeys(true.groups):
        names = [n for n, g in zip(true.names, true.groups) if g == group and n in comparisons]
        if not names:
            continue
        ncol = min(4, len(names))
        nrow = math.ceil(len(names) / ncol)
        # constrained layout keeps each ratio panel flush under its histogram (tight_layout cannot)
        fig = plt.figure(figsize=(3.4 * ncol, 3.3 * nrow + 0.4), layout="constrained")
        rows = fig.subfigures(nrow, 1, squeeze=False)[:, 0]
        for r, sub in enumerate(rows):
            axes = sub.subplots(
                2, ncol, sharex="col", squeeze=False, gridspec_kw={"height_ratios": [3, 1], "hspace": 0}
            )
            for c in range(ncol):
                i = r * ncol + c
                ax, axr = axes[0, c], axes[1, c]
                if i >= len(names):
                    ax.axis("off"), axr.axis("off")
                    continue
                name = names[i]
                first = next(iter(comparisons[name].values()))
                centres = 0.5 * (first.edges[1:] + first.edges[:-1])
                ax.errorbar(
                    centres, first.density_true, yerr=first.error_true, fmt="o", ms=2.5, color="k", label="true"
                )
                for k, (label, h) in enumerate(comparisons[name].items()):
                    colour = COLOURS[k % len(COLOURS)]
                    ax.stairs(h.density_generated, h.edges, color=colour, label=f"{label} ({h.chi2:.0f}/{h.ndf})")
                    axr.errorbar(centres, h.ratio, yerr=h.ratio_error, fmt=".", ms=3, color=colour)
                axr.axhline(1.0, color="k", lw=0.8)
                axr.set_ylim(0.5, 1.5)
                axr.set_xlabel(_label(name))
                axr.set_ylabel("gen./true", fontsize=8)
                ax.set_ylabel("fraction / unit", fontsize=8)
                ax.legend(fontsize=6, title="sample (χ²/ndf)", title_fontsize=6)
        fig.suptitle(f"{title} {group.replace('_', ' ')}".strip(), fontsize=10)
        paths.append(out / f"{group}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
