"""``make demo``: the machine-learned MEM end to end on the embedded MLflow store.

The default job (``python -m memzoo.demo``): simulate Drell-Yan with the parametric detector,
train the small cINN bundle of ``registry/drell-yan/cinn.toml`` (transfer, acceptance, sampler;
registered as ``memzoo-drell-yan-cinn@champion``), integrate 200 events simulated at the SM
value over a sin²θ_eff grid, and plot the likelihood scan of the learned MEM against the
exact-transfer MEM (``registry/drell-yan/gaussian.toml``) and the hard-level likelihood.

``python -m memzoo.demo --physics`` runs the physics-core job instead. It computes, in one
MLflow run of the local ``./memzoo-runs`` store (or ``$MLFLOW_TRACKING_URI``):

* the Drell-Yan cross section in the 60–120 GeV window as a function of sin²θ_eff (one
  factorised VEGAS pass for every θ) and the m_μμ spectrum of unweighted events against dσ/dm;
* the tHj cross section σ(α) over the CP phase (thesis Fig. 6.2 shape, hard level);

and logs numbers as metrics and the plots as artifacts, then prints where they are. Run with
``python -m memzoo.demo [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

import memzoo
from memzoo.inference import hard_level_likelihood
from memzoo.plots import pyplot, save_figure

__all__ = ["main"]


def _plot_dy(dy, sigma_grid, masses, hist_events, hist_expected, edges, out: Path) -> Path:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    s2w, sig, err = sigma_grid
    ax1.errorbar(s2w, sig / 1e6, yerr=err / 1e6, fmt="o-", ms=3)
    ax1.set_xlabel(r"$\sin^2\theta_\mathrm{eff}$")
    ax1.set_ylabel(r"$\sigma(pp\to\mu\mu,\ 60<m_{\mu\mu}<120$ GeV) [nb]")
    ax1.set_title("Drell-Yan, LO, 13 TeV, NNPDF2.3 LO")
    centres = 0.5 * (edges[1:] + edges[:-1])
    ax2.step(centres, hist_expected, where="mid", label=r"$d\sigma/dm$ (weighted)", color="k")
    ax2.errorbar(centres, hist_events, yerr=hist_events.sqrt(), fmt=".", label="unweighted events")
    ax2.set_yscale("log")
    ax2.set_xlabel(r"$m_{\mu\mu}$ [GeV]")
    ax2.set_ylabel("events / bin")
    ax2.legend()
    return save_figure(fig, out / "drell_yan.png")


def _plot_thj(alpha, sigma, error, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(alpha, sigma, yerr=error, fmt="o-", ms=3)
    ax.set_xlabel(r"CP phase $\alpha$ [deg]")
    ax.set_ylabel(r"$\sigma(pp\to tHj)$ [fb]")
    ax.set_title("tHj (t + tbar), LO, 13 TeV")
    ax.set_xticks(range(-180, 181, 90))
    return save_figure(fig, out / "thj_sigma_alpha.png")


def run(out: Path, quick: bool = False) -> dict:
    """Run the demo, writing plots into ``out``; returns the numbers it logged."""
    import mlflow

    from memzoo.events import invariant_mass
    from memzoo.tracking import configure_tracking

    out.mkdir(parents=True, exist_ok=True)
    uri = configure_tracking()
    n_points = 4000 if quick else 20_000
    numbers: dict = {}
    steps = tqdm(total=4, desc="memzoo demo", unit="step")
    with mlflow.start_run(run_name="demo-physics") as run:
        # -- Drell-Yan ------------------------------------------------------------------
        dy = memzoo.create("process", "drell-yan")
        theta = dy.theta(sin2theta_eff=[0.20 + 0.01 * i for i in range(7)])
        sigma, error = dy.cross_section(theta, n_points=n_points)
        numbers["dy_sigma_fb"] = float(dy.cross_section(dy.theta(), n_points=n_points)[0][0])
        steps.update()
        n_events = 2000 if quick else 20_000
        coords = dy.sample(n_events, dy.theta(), generator=torch.Generator().manual_seed(1))
        masses = invariant_mass(*dy.momenta_from_coords(coords).unbind(-2))
        edges = torch.linspace(dy.config.m_min, dy.config.m_max, 25, dtype=torch.float64)
        hist = torch.histogram(masses, edges).hist
        # expected counts: weighted VEGAS-free estimate from the phase-space map
        u = torch.rand(200_000, dy.hard_dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        c, jac = dy.from_unit(u)
        w = dy.dsigma(c, dy.theta())[:, 0] * jac
        m_w = invariant_mass(*dy.momenta_from_coords(c).unbind(-2))
        expected = torch.histogram(m_w, edges, weight=w).hist / w.sum() * n_events
        dy_plot = _plot_dy(dy, (theta[:, 0], sigma, error), masses, hist, expected, edges, out)
        steps.update()
        # -- tHj ------------------------------------------------------------------------
        thj = memzoo.create("process", "thj")
        alpha = torch.linspace(-180, 180, 13 if not quick else 5, dtype=torch.float64)
        sig_thj, err_thj = thj.cross_section(thj.theta(alpha=alpha.tolist()), n_points=n_points)
        steps.update()
        thj_plot = _plot_thj(alpha.numpy(), sig_thj.numpy(), err_thj.numpy(), out)
        for a, s, e in zip(alpha.tolist(), sig_thj.tolist(), err_thj.tolist()):
            numbers[f"thj_sigma_fb_alpha_{a:+.0f}"] = s
            numbers[f"thj_error_fb_alpha_{a:+.0f}"] = e
        numbers["dy_sigma_fb_err"] = float(error[3])
        mlflow.log_params({"dy_window_gev": f"{dy.config.m_min}-{dy.config.m_max}", "vegas_points": n_points})
        mlflow.log_metrics({k.replace("+", "p").replace("-", "m"): v for k, v in numbers.items()})
        mlflow.log_artifact(str(dy_plot))
        mlflow.log_artifact(str(thj_plot))
        (out / "demo_numbers.json").write_text(json.dumps(numbers, indent=2))
        steps.update()
        steps.close()
        numbers["run_id"] = run.info.run_id
    numbers["tracking_uri"] = uri
    numbers["plots"] = [str(dy_plot), str(thj_plot)]
    return numbers


def _scan_plot(theta, curves, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for label, (nll, err) in curves.items():
        ax.errorbar(theta, nll - nll.min(), yerr=err, fmt="o-", ms=3, capsize=2, label=label)
    ax.axvline(0.2315, color="grey", ls=":", label="true value")
    ax.set_xlabel(r"$\sin^2\theta_\mathrm{eff}$")
    ax.set_ylabel(r"$-2\,\Delta \log L$")
    ax.set_title("Drell-Yan likelihood scan, 200 events (bootstrap errors of the differences)", fontsize=9)
    ax.legend()
    return save_figure(fig, out / "likelihood_scan.png")


def run_mlmem(out: Path, n_events: int = 200, card: str | Path | None = None, points: int = 2000) -> dict:
    """The ML-MEM demo; returns the numbers it logged (see the module docstring)."""
    import mlflow

    from memzoo.cards import load_card
    from memzoo.data import read_dataset
    from memzoo.integrator import MEMIntegrator
    from memzoo.simulation.simulate import SimulationConfig, simulate
    from memzoo.tracking import configure_tracking
    from memzoo.train_job import train_card

    registry = Path(__file__).resolve().parents[1] / "registry" / "drell-yan"
    card = Path(card) if card else registry / "cinn.toml"
    out.mkdir(parents=True, exist_ok=True)
    uri = configure_tracking()
    trained = train_card(card, size="small", alias="champion")
    observed = out / "observed_dy.h5"
    simulate(SimulationConfig("drell-yan", n_events=4 * n_events, chunk_size=4 * n_events, seed=2315), observed)
    data = read_dataset(observed, accepted_only=True)[:n_events]
    bundle = memzoo.load("models:/memzoo-drell-yan-cinn@champion")
    process = bundle.build_process()
    theta = process.theta(sin2theta_eff=torch.linspace(0.15, 0.31, 17, dtype=torch.float64).tolist())
    options = {"n_points": points, "min_iterations": 2, "max_iterations": 6, "target_rel_error": 0.02, "bootstrap": 16}
    exact = load_card(registry / "gaussian.toml").build()
    curves, numbers, sigma_fid = {}, {}, {}
    with mlflow.start_run(run_name="demo likelihood scan") as run:
        for label, parts in (
            ("learned MEM (cINN)", (process, bundle.transfer, bundle.sampler, bundle.acceptance)),
            ("exact-transfer MEM", (exact["process"], exact["transfer"], exact["sampler"], exact["acceptance"])),
        ):
            start = time.time()
            result = MEMIntegrator(*parts, **options).log_likelihood(data.charged_reco, theta)
            nll = -2 * result.logp.sum(0)
            # the single pass correlates the θ points: errors of -2Δlog L from the bootstrap replicas
            replicas = -2 * result.diagnostics["logp_replicas"].sum(0)  # (T, M)
            best = int(nll.argmin())
            curves[label] = (nll, (replicas - replicas[best]).std(-1))
            sigma_fid[label] = result.diagnostics["sigma_fid"][0]  # (T,) fb
            numbers[f"{label.split()[0]}_seconds"] = time.time() - start
        hard = hard_level_likelihood(
            process, data.hard_coords, theta, acceptance=exact["acceptance"], sigma=sigma_fid["exact-transfer MEM"]
        )
        hard_nll = -2 * hard.logp.sum(0)
        curves["hard-level likelihood"] = (hard_nll, torch.zeros(len(theta)))
        for label, (nll, _) in curves.items():
            best = float(theta[int(nll.argmin()), 0])
            numbers[f"{label.split()[0]}_best_sin2theta"] = best
        plot = _scan_plot(theta[:, 0].numpy(), {k: (v[0].numpy(), v[1].numpy()) for k, v in curves.items()}, out)
        mlflow.log_metrics({k.replace("-", "_"): v for k, v in numbers.items()})
        mlflow.log_artifact(str(plot))
        numbers.update(run_id=run.info.run_id, tracking_uri=uri, plot=str(plot), metrics=trained["metrics"])
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memzoo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="memzoo-runs/demo", help="folder for the plots")
    parser.add_argument("--physics", action="store_true", help="run the physics-core demo (σ, spectra) instead")
    parser.add_argument("--quick", action="store_true", help="fewer points (for tests; physics demo)")
    args = parser.parse_args(argv)
    start = time.time()
    if not args.physics:
        numbers = run_mlmem(Path(args.out))
        print("\nbest sin²θ_eff on the grid (true 0.2315):")
        for key in (k for k in numbers if k.endswith("_best_sin2theta")):
            print(f"  {key.split('_')[0]:8s} {numbers[key]:.4f}")
        print(f"\nlikelihood scan: {numbers['plot']}")
        print(f"MLflow run:      {numbers['run_id']} in {numbers['tracking_uri']}")
        print("trained bundle:  models:/memzoo-drell-yan-cinn@champion  (memzoo registry show memzoo-drell-yan-cinn)")
        print(f"browse with:     mlflow ui --backend-store-uri {numbers['tracking_uri']}")
        print(f"({time.time() - start:.0f} s)")
        return 0
    numbers = run(Path(args.out), quick=args.quick)
    print(f"\nDrell-Yan σ(60 < m_μμ < 120 GeV) = {numbers['dy_sigma_fb'] / 1e6:.4f} nb at sin²θ_eff = 0.2315")
    for key in sorted((k for k in numbers if k.startswith("thj_sigma")), key=lambda k: float(k.rsplit("_", 1)[-1])):
        a = key.rsplit("_", 1)[-1]
        print(f"tHj σ(α = {float(a):+4.0f}°) = {numbers[key]:.3f} ± {numbers[key.replace('sigma', 'error')]:.3f} fb")
    print(f"\nplots:        {', '.join(numbers['plots'])}")
    print(f"MLflow run:   {numbers['run_id']} in {numbers['tracking_uri']}")
    print(f"browse with:  mlflow ui --backend-store-uri {numbers['tracking_uri']}")
    print(f"({time.time() - start:.0f} s, {'quick' if args.quick else 'full'} settings)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
