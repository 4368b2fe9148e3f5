"""Plots a person would rather look at than read: kinematic distributions of datasets."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from memzoo.events import KINDS, invariant_mass, to_ptetaphim

__all__ = ["kinematics_plots", "m_bjj", "m_pair", "pyplot", "save_figure"]

M_W = 80.419  # GeV, memzoo.physics.constants.SM.m_w


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay out, save and close a figure; returns the path."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def _nth(reco, kind: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Momenta ``(B, 4)`` of the rank-th (0-based, by pT) object of a kind, and a ``(B,)`` presence mask."""
    is_kind = reco.mask & (reco.kind == kind)
    pt = torch.where(is_kind, to_ptetaphim(reco.p.double())[..., 0], -1.0)
    order = pt.argsort(-1, descending=True)
    idx = order[:, rank : rank + 1]
    present = is_kind.gather(1, idx).squeeze(1) & (is_kind.sum(-1) > rank)
    return reco.p.double().gather(1, idx[..., None].expand(-1, -1, 4)).squeeze(1), present


def m_pair(reco, kind: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Invariant mass of the two leading objects of a kind (m_γγ, m_μμ), with a presence mask."""
    a, ok_a = _nth(reco, kind, 0)
    b, ok_b = _nth(reco, kind, 1)
    return invariant_mass(a, b), ok_a & ok_b


def m_bjj(reco, max_jets: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Top candidate mass: the leading b-jet with the light-jet pair whose mass is closest to m_W."""
    b, ok_b = _nth(reco, 5, 0)
    jets = [_nth(reco, 1, r) for r in range(max_jets)]
    best = torch.full((len(reco),), float("inf"), dtype=torch.float64)
    m_top = torch.zeros(len(reco), dtype=torch.float64)
    for (p1, ok1), (p2, ok2) in itertools.combinations(jets, 2):
        ok = ok1 & ok2
        dist = torch.where(ok, (invariant_mass(p1, p2) - M_W).abs(), float("inf"))
        better = dist < best
        best = torch.where(better, dist, best)
        m_top = torch.where(better, invariant_mass(b, p1, p2), m_top)
    return m_top, ok_b & torch.isfinite(best)


def kinematics_plots(dataset: str | Path, out: str | Path | None = None) -> list[Path]:
    """pT and η of the leading objects of each kind, m_γγ, m_μμ and m_bjj of accepted events.

    Returns:
        The PNG files written into ``out`` (default: ``<dataset stem>_plots`` beside the file).
    """
    from memzoo.data import read_dataset

    dataset = Path(dataset)
    data = read_dataset(dataset, accepted_only=True)
    if len(data) == 0:
        raise ValueError(f"{dataset} has no accepted events to plot.")
    out = Path(out) if out else dataset.with_name(dataset.stem + "_plots")
    out.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    reco = data.reco
    title = f"{data.info.get('process', '')}: {len(data)} accepted events"
    kinds = [k for k in (22, 5, 13, 11, 1, 12) if bool(((reco.kind == k) & reco.mask).any())]
    fig, axes = plt.subplots(2, len(kinds), figsize=(3.2 * len(kinds), 6), squeeze=False)
    for col, kind in enumerate(kinds):
        for rank in range(2 if kind != 12 else 1):
            p, ok = _nth(reco, kind, rank)
            x = to_ptetaphim(p[ok])
            label = f"{['leading', 'second'][rank]}"
            axes[0, col].hist(x[:, 0].numpy(), bins=40, histtype="step", label=label)
            if kind != 12:
                axes[1, col].hist(x[:, 1].numpy(), bins=40, histtype="step", label=label)
        axes[0, col].set_xlabel(f"{KINDS[kind]} $p_T$ [GeV]")
        axes[0, col].set_yscale("log")
        if kind == 12:
            axes[1, col].axis("off")
        else:
            axes[1, col].set_xlabel(f"{KINDS[kind]} $\\eta$")
        axes[0, col].legend(fontsize=7)
    fig.suptitle(title)
    paths = [save_figure(fig, out / "objects_pt_eta.png", dpi=110)]

    masses = []
    for kind, name, label, lo, hi in (
        (22, "m_gammagamma", r"$m_{\gamma\gamma}$", 100, 150),
        (13, "m_mumu", r"$m_{\mu\mu}$", 50, 130),
    ):
        m, ok = m_pair(reco, kind)
        if bool(ok.any()):
            masses.append((name, label, m[ok], lo, hi))
    m, ok = m_bjj(reco)
    if bool(ok.any()):
        masses.append(("m_bjj", r"$m_{bjj}$ (jj closest to $m_W$)", m[ok], 50, 350))
    for name, label, values, lo, hi in masses:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.hist(values.numpy(), bins=50, range=(lo, hi), histtype="step")
        ax.set_xlabel(f"{label} [GeV]")
        ax.set_ylabel("events / bin")
        ax.set_title(title, fontsize=9)
        paths.append(save_figure(fig, out / f"{name}.png", dpi=110))
    return paths
