"""Plots of the statistics layer: likelihood scans, calibration and pulls, discriminant and ROC.

Drawn in the mplhep style (the CMS one, without an experiment label) when mplhep is installed
(``pip install memzoo[plots]``), plain matplotlib otherwise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from memzoo.inference.calibration import Calibration
from memzoo.inference.fit import Estimate
from memzoo.inference.parameters import ParameterInfo
from memzoo.plots import pyplot, save_figure

__all__ = ["plot_calibration", "plot_discriminant", "plot_scan", "plot_scan_panels"]

COLOURS = ["#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300", "#b9ac70"]


#: How known parameters are written on axes.
TEX = {"alpha": r"$\alpha$", "sin2theta_eff": r"$\sin^2\theta_\mathrm{eff}$"}


def _axis_label(info: ParameterInfo, prefix: str = "") -> str:
    name = TEX.get(info.name, info.name)
    return f"{prefix}{name}" + (f" [{info.unit}]" if info.unit else "")


def _pm(value: float, error: float) -> str:
    """``$v \\pm e$`` in mathtext, or ``n/a`` where there is no number."""
    if not (np.isfinite(value) and np.isfinite(error)):
        return "n/a"
    return rf"${value:.2f} \pm {error:.2f}$"


def _style():
    plt = pyplot()
    try:
        import mplhep
    except ImportError:  # plots extra not installed
        return contextlib.nullcontext()
    return plt.style.context(mplhep.style.CMS)


def plot_scan(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    estimates: dict[str, Estimate],
    info: ParameterInfo,
    path: Path,
    truth: float | None = None,
    title: str = "",
) -> Path:
    """−2Δlog L of one parameter: the whole grid (left) and around the minimum (right).

    Args:
        curves: label -> (x ``(T,)``, −2Δlog L ``(T,)``, band ``(T,)`` or ``None``).
        estimates: label -> fitted estimate (drawn as the fit's minimum and interval).
        info: the parameter.
        path: the PNG file.
        truth: the true value, if known.
    """
    plt = pyplot()
    with _style():
        fig, axes = plt.subplots(1, 2, figsize=(17, 7.5))
        first = next(iter(estimates.values()), None)
        for ax, zoom in zip(axes, (False, True)):
            for k, (label, (x, y, band)) in enumerate(curves.items()):
                colour = COLOURS[k % len(COLOURS)]
                est = estimates.get(label)
                # periodic: the full panel shows [low, low + P), the zoom is unwrapped around the first fit
                if info.period is None:
                    xs = x
                elif zoom and first is not None:
                    xs = first.value + info.delta(x, first.value)
                else:
                    xs = info.wrap(x)
                order = np.argsort(xs)
                xs, ys = xs[order], y[order]
                smooth = zoom and est is not None and est.curve is not None
                if smooth:  # the zoom is relative to each fit's minimum, where Δ = 1 gives its interval
                    ys = ys - est.nll_min
                if smooth:  # grid points with their band as error bars; the fitted curve is the line
                    ax.errorbar(xs, ys, yerr=None if band is None else band[order], fmt="o", ms=5, color=colour)
                else:
                    ax.plot(xs, ys, "o-", ms=4, lw=1.5, color=colour, label=label)
                    if band is not None:
                        b = band[order]
                        ax.fill_between(xs, ys - b, ys + b, color=colour, alpha=0.25, lw=0)
                if est is not None:
                    lo, hi = est.interval
                    if zoom and first is not None and info.period is not None:
                        shift = float(info.delta(est.value, first.value)) - (est.value - first.value)
                        lo, hi = lo + shift, hi + shift
                    spans = [(lo, hi)]
                    if info.period is not None and not zoom:  # an interval through the seam: two pieces
                        top = info.low + info.period
                        if hi > top:
                            spans = [(lo, top), (info.low, hi - info.period)]
                        elif lo < info.low:
                            spans = [(info.low, hi), (lo + info.period, top)]
                    for a, b in spans:
                        ax.axvspan(a, b, color=colour, alpha=0.12, lw=0)
                    centre = est.value if not zoom or info.period is None else est.value + shift
                    ax.axvline(centre, color=colour, ls="--", lw=1.2)
                    if zoom and est.curve is not None:  # the fitted smooth curve the interval comes from
                        cx, cy = est.curve
                        if info.period is not None and first is not None:
                            cx = first.value + info.delta(cx, first.value)
                        order = np.argsort(cx)  # a full turn's samples wrap round: draw them in order
                        ax.plot(cx[order], (cy - est.nll_min)[order], "-", lw=2.2, color=colour, alpha=0.8)
            ax.axhline(1.0, color="black", ls=":", lw=1.2)
            if truth is not None:
                t = truth if not zoom or first is None else first.value + float(info.delta(truth, first.value))
                t = info.wrap(t) if not zoom else t
                ax.axvline(t, color="black", lw=1.5, label="true value" if not zoom else None)
            ax.set_xlabel(_axis_label(info))
            ax.set_ylabel(r"$-2\,\Delta\log L$")
            finite = np.concatenate([c[1][np.isfinite(c[1])] for c in curves.values()])
            if zoom and first is not None:
                x0 = first.value if info.period is None else 0.0  # unwrapped around the estimate
                xs_all = np.concatenate([x0 + info.delta(c[0], x0) for c in curves.values()])
                step = np.diff(np.unique(xs_all)).min() if len(np.unique(xs_all)) > 1 else 1.0
                # every estimate and the truth, with 3σ beyond them; the grid's neighbouring points
                # only where no fitted curve is drawn (a narrow curve on a coarse grid would be a spike)
                centres = [first.value + float(info.delta(e.value, first.value)) for e in estimates.values()]
                if truth is not None:
                    centres.append(first.value + float(info.delta(truth, first.value)))
                width = max(max(e.err_low, e.err_high) for e in estimates.values())
                if any(e.curve is None for e in estimates.values()):
                    width = max(width, 2 * step)
                left = max(min(centres) - 3 * width, xs_all.min() - step / 2)
                right = min(max(centres) + 3 * width, xs_all.max() + step / 2)
                ax.set_xlim(left, right)
                ax.set_ylim(-0.3, 9)
                title = f"around the minimum of {next(iter(estimates))} (fit: {first.method})"
                if first.curve is not None:
                    title = f"fits ({first.method}) around the minimum, each from 0"
                ax.set_title(title, fontsize=18)
            else:
                ax.set_ylim(-0.02 * finite.max(), 1.05 * finite.max())
                ax.set_title(title, fontsize=18)
        axes[0].legend(fontsize=15, loc="best")
        text = "\n".join(
            rf"{label}: ${e.value:.4g}^{{+{e.err_high:.2g}}}_{{-{e.err_low:.2g}}}$" + ("" if e.closed else " (open)")
            for label, e in estimates.items()
        )
        axes[1].text(0.03, 0.97, text, transform=axes[1].transAxes, va="top", fontsize=15)
        return save_figure(fig, path)


def plot_calibration(cal: Calibration, path: Path) -> Path:
    """θ̂ of every set against the truth (left) and the pull distributions (right)."""
    plt = pyplot()
    info = cal.parameter
    with _style():
        fig, (ax, axp) = plt.subplots(1, 2, figsize=(17, 7.5))
        single = len(cal.truths) == 1
        spacing = np.diff(sorted(set(cal.truths))).min() if len(set(cal.truths)) > 1 else 1.0
        for k, (truth, estimates) in enumerate(zip(cal.truths, cal.estimates)):
            colour = COLOURS[k % len(COLOURS)]
            values = truth + info.delta([e.value for e in estimates], truth)  # unwrapped near the truth
            # the points at their own value in the parameter's range: a set at −α (sign ambiguity)
            # shows as −α, not as the equivalent truth + 180° + … of the unwrapped value
            shown = values if info.period is None else np.asarray(info.wrap(np.asarray(values)), dtype=float)
            lo = [e.err_low for e in estimates]
            hi = [e.err_high for e in estimates]
            n = len(estimates)
            x = np.arange(n, dtype=float) if single else truth + spacing * 0.3 * (np.arange(n) / max(n - 1, 1) - 0.5)
            closed = np.array([e.closed for e in estimates])
            for sel, face in ((closed, colour), (~closed, "white")):
                if sel.any():
                    ax.errorbar(
                        x[sel],
                        shown[sel],
                        yerr=[np.array(lo)[sel], np.array(hi)[sel]],
                        fmt="o",
                        ms=5,
                        lw=0.8,
                        color=colour,
                        mfc=face,
                        alpha=0.7,
                    )
            if k == 0 and (~closed).any():
                ax.errorbar([], [], fmt="o", mfc="white", color="grey", label="interval open at the grid edge")
            if single:
                ax.axhline(truth, color="black", lw=1.5, label=f"true {info.name} = {truth:g}")
            else:
                ax.errorbar(
                    [truth],
                    [values.mean()],
                    yerr=[values.std(ddof=1) / np.sqrt(n)] if n > 1 else None,
                    fmt="s",
                    ms=8,
                    color="black",
                    zorder=5,
                )
        if single:
            ax.set_xlabel(f"set (of {cal.set_size} events)")
        else:
            t = np.array(sorted(set(cal.truths)))
            pad = 0.5 * spacing
            ax.plot(
                [t[0] - pad, t[-1] + pad],
                [t[0] - pad, t[-1] + pad],
                color="black",
                ls="--",
                lw=1,
                label=r"$\hat\theta$ = truth",
            )
            ax.errorbar([], [], fmt="s", color="black", label="mean of the sets")
            ax.set_xlabel(_axis_label(info, "true "))
        ax.set_ylabel(_axis_label(info, "fitted ") + " (68% interval)")
        ax.legend(fontsize=15)
        ax.set_title(f"{sum(map(len, cal.estimates))} sets of {cal.set_size} events", fontsize=18)
        pulls_all = np.concatenate(cal.pulls)
        finite = pulls_all[np.isfinite(pulls_all)]
        edge = max(4.0, min(8.0, float(np.abs(finite).max()) if len(finite) else 4.0))
        bins = np.linspace(-edge, edge, 25)
        for k, (truth, pulls, s) in enumerate(zip(cal.truths, cal.pulls, cal.summaries)):
            label = f"{truth:g}: mean {_pm(s.mean, s.mean_err)}, width {_pm(s.width, s.width_err)}"
            if s.n < len(pulls):
                label += f" ({len(pulls) - s.n} open left out)"
            colour = COLOURS[k % len(COLOURS)]
            axp.hist(np.clip(pulls, -edge, edge), bins=bins, histtype="step", lw=2, color=colour, label=label)
        grid = np.linspace(-edge, edge, 200)
        width = bins[1] - bins[0]
        n_max = max(len(p) for p in cal.pulls)
        axp.plot(
            grid, n_max * width * np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), color="black", ls="--", label="N(0, 1)"
        )
        axp.set_xlabel(r"pull $(\hat\theta - \theta_\mathrm{true})/\sigma_\mp$")
        axp.set_ylabel("sets")
        o = cal.overall
        axp.set_title(f"closed sets: mean {_pm(o.mean, o.mean_err)}, width {_pm(o.width, o.width_err)}", fontsize=18)
        axp.legend(fontsize=12, title=f"true {info.name}", title_fontsize=12)
        axp.set_ylim(0, axp.get_ylim()[1] * 1.35)
        return save_figure(fig, path)


def plot_discriminant(
    d_a: np.ndarray,
    d_b: np.ndarray,
    fpr: np.ndarray,
    tpr: np.ndarray,
    area: float,
    area_err: float,
    labels: tuple[str, str],
    path: Path,
) -> Path:
    """Distributions of D for both classes (left) and the ROC curve (right)."""
    plt = pyplot()
    with _style():
        fig, (ax, axr) = plt.subplots(1, 2, figsize=(17, 7.5))
        bins = np.linspace(0, 1, 41)
        ax.hist(d_a, bins=bins, histtype="step", lw=2, density=True, color=COLOURS[0], label=f"{labels[0]} events")
        ax.hist(d_b, bins=bins, histtype="step", lw=2, density=True, color=COLOURS[1], label=f"{labels[1]} events")
        ax.set_xlabel(r"$D = P_a / (P_a + \gamma P_b)$")
        ax.set_ylabel("density")
        ax.set_yscale("log")
        ax.legend(fontsize=15)
        axr.plot(fpr, tpr, lw=2, color=COLOURS[2], label=rf"AUC = {area:.3f} $\pm$ {area_err:.3f}")
        axr.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="no separation")
        axr.set_xlabel(f"{labels[1]} events kept (false-positive rate)")
        axr.set_ylabel(f"{labels[0]} events kept (true-positive rate)")
        axr.set_xlim(0, 1)
        axr.set_ylim(0, 1.02)
        axr.legend(fontsize=15, loc="lower right")
        return save_figure(fig, path)


def plot_scan_panels(
    rows: list[list[dict]],
    path: Path,
    parameter: str,
    *,
    period: float | None = None,
    unit: str = "",
    row_titles: list[str] | None = None,
    level: float = 9.0,
) -> Path:
    """A grid of fitted −2Δlog L curves around their minima from ``memzoo scan`` summaries.

    The thesis' figure set (Heimel 2024, Figs. 6.7 and 6.14): one column per true value, one row
    per sample size; each panel shows every curve of its summary (e.g. the learned MEM and the
    hard level) as its fitted curve drawn from its own minimum, with the grid points, the 68 %
    intervals and the truth.

    Args:
        rows: ``rows[i][j]`` the parsed ``scan.json`` of panel (i, j).
        path: the PNG file.
        parameter: the fitted parameter shown.
        period: its period, if periodic: each fitted curve is drawn around its own estimate;
            estimates, grid points and truth keep their values in the parameter's range, so a
            panel whose curves found minima at θ and −θ spans both.
        unit: its unit, for the axis label.
        row_titles: a title prefix per row (default: the summaries' event counts).
        level: the height of the panels in −2Δlog L.
    """
    plt = pyplot()
    n_rows, n_cols = len(rows), max(len(r) for r in rows)

    def near(values, centre: float) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return values if period is None else centre + np.mod(values - centre + period / 2, period) - period / 2

    with _style():
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.5 * n_cols, 5.2 * n_rows), squeeze=False)
        for i, row in enumerate(rows):
            for j, summary in enumerate(row):
                ax = axes[i][j]
                curves, estimates = summary["curves"][parameter], summary["parameters"][parameter]
                truth = summary.get("truth", {}).get(parameter)
                shown, widths = [], []
                labels = sorted(curves, key=lambda name: name == "hard level")  # the reference last
                for k, label in enumerate(labels):
                    curve, colour, est = curves[label], COLOURS[k % len(COLOURS)], estimates[label]
                    value, fit = est["value"], curve.get("fit")
                    if fit is not None:  # the curve lies around its own estimate (unwrapped there)
                        fx, fy = near(fit["theta"], value), np.asarray(fit["delta_nll"]) - est["nll_min"]
                        order = np.argsort(fx)  # a full turn's samples wrap round: draw them in order
                        ax.plot(fx[order], fy[order], color=colour, lw=2.2, label=label)
                    y = np.asarray(curve["delta_nll"], dtype=float) - est["nll_min"]
                    ax.plot(curve["theta"], y, "o", ms=5, color=colour, label=None if fit else label)
                    ax.axvspan(value - est["err_low"], value + est["err_high"], color=colour, alpha=0.12, lw=0)
                    shown.append(value)
                    widths.append(max(est["err_low"], est["err_high"]))
                if truth is not None:
                    ax.axvline(truth, color="black", lw=1.5, label="true value")
                    shown.append(truth)
                width = max(widths) if widths else 1.0
                ax.set_xlim(min(shown) - 4 * width, max(shown) + 4 * width)
                ax.set_ylim(-0.3, level)
                ax.axhline(1.0, color="black", ls=":", lw=1.2)
                text = "\n".join(
                    rf"{label}: ${e['value']:.3g}^{{+{e['err_high']:.2g}}}_{{-{e['err_low']:.2g}}}$"
                    for label, e in ((name, estimates[name]) for name in labels)
                )
                ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=12)
                prefix = row_titles[i] if row_titles else f"{summary['n_events']} events"
                ax.set_title(prefix if truth is None else f"{prefix}, true value {truth:g}", fontsize=15)
                ax.set_xlabel(TEX.get(parameter, parameter) + (f" [{unit}]" if unit else ""))
                ax.set_ylabel(r"$-2\,\Delta\log L$")
        axes[0][0].legend(fontsize=12, loc="center right")
        return save_figure(fig, path)
