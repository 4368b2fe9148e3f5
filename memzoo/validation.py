"""Validating transfer models: generated against true reco events, object by object and as a whole.

A transfer model p(x_reco|x_hard) sampled at the true hard events of a dataset must reproduce
the true reco events. Two checks, after Heimel, PhD thesis 2024, Secs. 3.1.3 and 4.4:

* **distributions**: per object (pT-ordered slots of each kind) pT, η, φ and m (jets), the
  multiplicities and invariant masses of object pairs, generated against true, as normalised
  histograms with ratio panels and a two-sample χ² (Gagunashvili, NIM A 614 (2010) 287);
* **classifier two-sample test**: an MLP trained to tell generated from true events on a train
  split; by eq. 3.19 it learns p_gen/(p_gen + p_true), so its ROC area on a held-out split is
  0.5 when the two distributions agree and grows with any difference in the joint distribution,
  correlations included. The error is Hanley & McNeil's (:func:`memzoo.inference.auc_error`),
  the spread over test events; retraining noise is not included.

Example:
    >>> layout = feature_layout(true_reco, generated_reco)            # doctest: +SKIP
    >>> result = classifier_two_sample_test(event_features(true_reco, layout),
    ...                                     event_features(generated_reco, layout))  # doctest: +SKIP
    >>> print(f"AUC = {result.auc:.3f} ± {result.auc_error:.3f}")     # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from memzoo.events import KINDS, Particles, delta_phi, invariant_mass, to_ptetaphim
from memzoo.inference.discriminant import auc, auc_error

__all__ = [
    "ClassifierConfig",
    "FeatureSet",
    "HistogramComparison",
    "TwoSampleResult",
    "classifier_two_sample_test",
    "compare_histograms",
    "distribution_comparisons",
    "event_features",
    "feature_layout",
    "plot_distributions",
    "response_features",
]

#: Kinds in the detector's order (memzoo.simulation.detector): γ, b, μ, e, jets, missing pT.
ORDER = (22, 5, 13, 11, 1, 12)
SYMBOL = {22: "γ", 5: "b", 13: "μ", 11: "e", 1: "j", 12: "miss"}
_JETS = (1, 5)


# ---------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSet:
    """Per-event features of B reco events.

    Attributes:
        values: ``(B, F)`` float64; 0 where the object is absent.
        present: ``(B, F)`` bool, false where the feature's object is absent.
        names: F names (``"pT(j1)"``, ``"m(γ1,γ2)"``, ``"n(j)"``).
        groups: F ASCII group names, one figure each (``"light_jet_1"``, ``"multiplicity"``).
        scales: F of ``"log"`` (positive GeV: log1p for the classifier), ``"linear"``,
            ``"angle"`` (φ in [-π, π)) or ``"count"`` (integers).
    """

    values: torch.Tensor
    present: torch.Tensor
    names: tuple[str, ...]
    groups: tuple[str, ...]
    scales: tuple[str, ...]

    def __len__(self) -> int:
        return self.values.shape[0]

    def column(self, name: str) -> torch.Tensor:
        """The values of feature ``name`` in the events where its object is present."""
        j = self.names.index(name)
        return self.values[self.present[:, j], j]

    def join(self, other: FeatureSet) -> FeatureSet:
        """The features of both sets side by side (same events)."""
        if len(other) != len(self):
            raise ValueError(
                f"Cannot join features of {len(self)} and {len(other)} events; they must be the same events."
            )
        cat = lambda a, b: torch.cat([a, b], -1)
        return FeatureSet(
            cat(self.values, other.values),
            cat(self.present, other.present),
            self.names + other.names,
            self.groups + other.groups,
            self.scales + other.scales,
        )

    def network_inputs(self) -> torch.Tensor:
        """``(B, F)`` float64 classifier inputs: log1p of GeV columns, others as they are."""
        logs = torch.tensor([s == "log" for s in self.scales], device=self.values.device)
        v = self.values
        return torch.where(logs, torch.sign(v) * torch.log1p(v.abs()), v)


def feature_layout(*samples: Particles, kinds: list[int] | None = None, max_per_kind: int = 4) -> dict[int, int]:
    """Slots per object kind shared by several samples of reco events (the feature layout).

    Args:
        samples: reco events, e.g. true and generated ones.
        kinds: object codes to compare (default: those present in every sample, so that
            objects a transfer does not model, e.g. missing pT, are left out).
        max_per_kind: at most this many pT-ordered objects of one kind get their own slot.

    Returns:
        ``{kind: number of slots}`` in the detector's order (missing pT: one slot).
    """
    if not samples:
        raise ValueError("feature_layout needs at least one sample of reco events.")
    if max_per_kind < 1:
        raise ValueError(f"max_per_kind must be >= 1, got {max_per_kind}.")
    found = [{k for k in ORDER if bool(s.count(k).gt(0).any())} for s in samples]
    if kinds is None:
        chosen = set.intersection(*found)
    else:
        unknown = sorted(set(kinds) - set(ORDER))
        if unknown:
            raise ValueError(f"Unknown object kind(s) {unknown}; known: { {k: KINDS[k] for k in ORDER} }.")
        chosen = set(kinds)
    if not chosen:
        raise ValueError(f"The samples share no object kind (kinds per sample: {[sorted(f) for f in found]}).")
    layout = {}
    for k in ORDER:
        if k in chosen:
            n = max(int(s.count(k).max()) if len(s) else 0 for s in samples)
            layout[k] = max(1, min(n, 1 if k == 12 else max_per_kind))
    return layout


def _slug(kind: int, rank: int, n: int) -> str:
    base = KINDS[kind].replace(" ", "_").replace("missing_pT", "missing_pt")
    return base if n == 1 else f"{base}_{rank + 1}"


def event_features(reco: Particles, layout: Mapping[int, int], pair_masses: bool = True) -> FeatureSet:
    """Features of reco events in a fixed layout (:func:`feature_layout`).

    Per slot (the rank-th object of a kind by descending pT): pT, η (not for missing pT), φ and
    m (jets only; photons and leptons are massless by construction). Per kind the number of
    objects; the scalar sum H_T of the visible objects of the layout's kinds; with
    ``pair_masses`` the invariant mass of every pair of visible slots.
    """
    if not isinstance(reco, Particles):
        raise TypeError(f"reco must be memzoo.events.Particles, got {type(reco).__name__}.")
    bad = sorted(set(layout) - set(ORDER))
    if bad:
        raise ValueError(f"The layout names unknown object kind(s) {bad}; build it with feature_layout().")
    slots = max(layout.values(), default=0)
    if reco.n_objects < slots:  # pad, so that every slot of the layout exists (absent objects)
        reco = Particles.cat(
            [
                reco,
                Particles(reco.p.new_zeros(0, slots, 4), reco.kind.new_zeros(0, slots), reco.mask.new_zeros(0, slots)),
            ]
        )
    p = reco.p.double()
    x = to_ptetaphim(torch.where(reco.mask[..., None], p, 1.0))  # padding: finite dummy momenta
    b = len(reco)
    rows = torch.arange(b, device=p.device)
    cols, names, groups, scales, objects = [], [], [], [], []

    def add(value, ok, name, group, scale):
        cols.append((torch.where(ok, value, torch.zeros_like(value)), ok))
        names.append(name)
        groups.append(group)
        scales.append(scale)

    for kind, n in layout.items():
        is_kind = reco.mask & (reco.kind == kind)
        pt = torch.where(is_kind, x[..., 0], -torch.inf)
        order = pt.argsort(dim=-1, descending=True, stable=True)
        for r in range(n):
            idx = order[:, r]
            ok = is_kind[rows, idx]
            xi, label, group = x[rows, idx], SYMBOL[kind] + (str(r + 1) if kind != 12 else ""), _slug(kind, r, n)
            add(xi[:, 0], ok, f"pT({label})", group, "log")
            if kind != 12:
                add(xi[:, 1], ok, f"η({label})", group, "linear")
            add(xi[:, 2], ok, f"φ({label})", group, "angle")
            if kind in _JETS:
                add(xi[:, 3], ok, f"m({label})", group, "log")
            if kind != 12:
                objects.append((label, p[rows, idx], ok))
    everyone = torch.ones(b, dtype=torch.bool, device=p.device)
    for kind in layout:
        add(reco.count(kind).double(), everyone, f"n({SYMBOL[kind]})", "multiplicity", "count")
    visible = reco.mask & torch.isin(reco.kind, torch.tensor([k for k in layout if k != 12], device=p.device))
    add(torch.where(visible, x[..., 0], 0.0).sum(-1), everyone, "H_T", "event", "log")
    if pair_masses:
        for (la, pa, oka), (lb, pb, okb) in itertools.combinations(objects, 2):
            add(invariant_mass(pa, pb), oka & okb, f"m({la},{lb})", "pair_masses", "log")
    values = torch.stack([c[0] for c in cols], -1) if cols else p.new_zeros(b, 0)
    present = torch.stack([c[1] for c in cols], -1) if cols else everyone[:, None][:, :0]
    return FeatureSet(values, present, tuple(names), tuple(groups), tuple(scales))


def response_features(reco: Particles, hard_momenta: torch.Tensor, layout: Mapping[int, int]) -> FeatureSet:
    """How each visible slot relates to the hard event: the detector response, not the physics.

    For every visible slot of :func:`event_features` (same layout): log(pT / pT_hard),
    η − η_hard and φ − φ_hard (wrapped) with respect to the hard particle nearest in ΔR.
    Appended to the event features they let the two-sample classifier test the conditional
    p(x_reco|x_hard) at the given hard events, where resolutions far below the spread of the
    physics distributions are invisible in the reco distributions alone.

    Args:
        reco: B reco events.
        hard_momenta: ``(B, n_hard, 4)`` the true hard final state (E, px, py, pz) in GeV.
    """
    if hard_momenta.ndim != 3 or hard_momenta.shape[0] != len(reco) or hard_momenta.shape[-1] != 4:
        raise ValueError(f"hard_momenta must be (B, n_hard, 4) with B = {len(reco)}, got {tuple(hard_momenta.shape)}.")
    f = event_features(reco, {k: n for k, n in layout.items() if k != 12}, pair_masses=False)
    h = to_ptetaphim(hard_momenta.double().to(f.values.device))
    rows = torch.arange(len(reco), device=h.device)
    values, present, names = [], [], []
    for i, name in enumerate(f.names):
        if not name.startswith("pT("):
            continue
        label, ok = name[3:-1], f.present[:, i]
        pt, eta, phi = (
            f.values[:, i],
            f.values[:, f.names.index(f"η({label})")],
            f.values[:, f.names.index(f"φ({label})")],
        )
        j = torch.hypot(eta[:, None] - h[..., 1], delta_phi(phi[:, None], h[..., 2])).argmin(-1)
        near = h[rows, j]
        ratio = torch.log(torch.where(ok, pt, 1.0) / near[:, 0].clamp(min=1e-9))
        for value, var in ((ratio, "log pT/pT_hard"), (eta - near[:, 1], "Δη"), (delta_phi(phi, near[:, 2]), "Δφ")):
            values.append(torch.where(ok, value, 0.0))
            present.append(ok)
            names.append(f"{var}({label})")
    return FeatureSet(
        torch.stack(values, -1),
        torch.stack(present, -1),
        tuple(names),
        ("response",) * len(names),
        ("linear",) * len(names),
    )


def _check_compatible(a: FeatureSet, b: FeatureSet, what: str) -> None:
    if not isinstance(a, FeatureSet) or not isinstance(b, FeatureSet):
        raise TypeError(
            f"{what} compares FeatureSets (from event_features), got {type(a).__name__}, {type(b).__name__}."
        )
    if a.names != b.names:
        only_a, only_b = sorted(set(a.names) - set(b.names)), sorted(set(b.names) - set(a.names))
        raise ValueError(
            f"{what}: the two samples have different features (only in the first: {only_a}, only in the "
            f"second: {only_b}, or another order); build both with one layout = feature_layout(true, generated)."
        )


# ---------------------------------------------------------------------------------------
# classifier two-sample test
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """The MLP two-sample classifier and its training.

    Attributes:
        hidden, layers: width and number of hidden layers (SiLU).
        epochs, batch_size, lr, weight_decay: Adam training; the state with the lowest
            validation loss is kept, training stops after ``patience`` epochs without one.
        test_fraction: share of each sample held out for the AUC.
        val_fraction: share of the training part used for early stopping.
        seed: splits, initialisation and batches.
    """

    hidden: int = 64
    layers: int = 3
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    patience: int = 8
    test_fraction: float = 0.5
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"ClassifierConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("test_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"ClassifierConfig.{name} must lie in (0, 1), got {getattr(self, name)}.")


@dataclass
class TwoSampleResult:
    """Outcome of :func:`classifier_two_sample_test` (generated events are the positive class).

    Attributes:
        auc, auc_error: held-out ROC area and its Hanley–McNeil error.
        n_test, n_train: events per sample (true, generated) in the test and training parts.
        epochs, best_epoch, val_loss: training length, the kept epoch and its validation loss.
        features: the input feature names.
        test_rows: (true, generated) row indices of the test events in the inputs.
        scores: (true, generated) classifier logits of the test events.
    """

    auc: float
    auc_error: float
    n_test: tuple[int, int]
    n_train: tuple[int, int]
    epochs: int
    best_epoch: int
    val_loss: float
    features: tuple[str, ...]
    test_rows: tuple[torch.Tensor, torch.Tensor]
    scores: tuple[torch.Tensor, torch.Tensor]

    def as_dict(self) -> dict:
        """The numbers, JSON-ready (without per-event arrays)."""
        out = asdict(self)
        for key in ("test_rows", "scores"):
            out.pop(key)
        out["features"] = list(self.features)
        return out


def _inputs(sample, name: str) -> torch.Tensor:
    x = sample.network_inputs() if isinstance(sample, FeatureSet) else sample
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"The {name} sample must be a FeatureSet or a (B, F) tensor, got {getattr(x, 'shape', x)!r}.")
    bad = ~torch.isfinite(x).all(-1)
    if bad.any():
        raise ValueError(
            f"The {name} sample has {int(bad.sum())} events with non-finite features (first: row "
            f"{int(bad.nonzero()[0, 0])}); drop or fix them before the two-sample test."
        )
    return x.double()


def _split(n: int, config: ClassifierConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    n_test = max(1, round(config.test_fraction * n))
    n_val = max(1, round(config.val_fraction * (n - n_test)))
    return perm[n_val : n - n_test], perm[:n_val], perm[n - n_test :]


def classifier_two_sample_test(
    true, generated, config: ClassifierConfig | None = None, device: str | torch.device | None = None
) -> TwoSampleResult:
    """Train an MLP to tell ``generated`` from ``true`` events; its held-out AUC (0.5: no difference).

    Args:
        true, generated: :class:`FeatureSet` s of one layout, or ``(B, F)`` tensors of features.
        config: the classifier and its training (default :class:`ClassifierConfig`).
        device: where to train (default CPU).
    """
    config = config or ClassifierConfig()
    if isinstance(true, FeatureSet) or isinstance(generated, FeatureSet):
        _check_compatible(true, generated, "classifier_two_sample_test")
    xa, xb = _inputs(true, "true"), _inputs(generated, "generated")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"The samples have {xa.shape[1]} and {xb.shape[1]} features; they must agree.")
    for name, x in (("true", xa), ("generated", xb)):
        if len(x) < 10:
            raise ValueError(f"The {name} sample has {len(x)} events; the two-sample test needs at least 10 each.")
    g = torch.Generator().manual_seed(config.seed)
    (ta, va, sa), (tb, vb, sb) = _split(len(xa), config, g), _split(len(xb), config, g)
    dev = torch.device(device or "cpu")

    def stack(ia, ib):
        x = torch.cat([xa[ia], xb[ib]])
        y = torch.cat([torch.zeros(len(ia)), torch.ones(len(ib))])
        w = torch.cat([torch.full((len(ia),), 0.5 / len(ia)), torch.full((len(ib),), 0.5 / len(ib))])
        return x, y.to(dev), (w * len(w)).to(dev)  # each class weighs half

    x_train, y_train, w_train = stack(ta, tb)
    mean, std = x_train.mean(0), x_train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    norm = lambda x: ((x - mean) / std).float().to(dev)
    x_train = norm(x_train)
    x_val, y_val, w_val = stack(va, vb)
    x_val = norm(x_val)
    torch.manual_seed(config.seed)
    width, dims = config.hidden, [x_train.shape[1]] + [config.hidden] * config.layers
    net = nn.Sequential(*itertools.chain(*((nn.Linear(i, o), nn.SiLU()) for i, o in itertools.pairwise(dims))))
    net.append(nn.Linear(width, 1))
    net.to(dev)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    best, best_state, best_epoch, epoch = math.inf, None, 0, 0
    for epoch in range(1, config.epochs + 1):
        net.train()
        for batch in torch.randperm(len(x_train), generator=g).split(config.batch_size):
            batch = batch.to(dev)
            loss = (loss_fn(net(x_train[batch])[:, 0], y_train[batch]) * w_train[batch]).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        net.eval()
        with torch.no_grad():
            val = float((loss_fn(net(x_val)[:, 0], y_val) * w_val).mean())
        if val < best - 1e-6:
            best, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
    net.load_state_dict(best_state)
    with torch.no_grad():
        score_a, score_b = net(norm(xa[sa]))[:, 0].double().cpu(), net(norm(xb[sb]))[:, 0].double().cpu()
    area = auc(score_b, score_a)
    return TwoSampleResult(
        auc=area,
        auc_error=auc_error(area, len(sb), len(sa)),
        n_test=(len(sa), len(sb)),
        n_train=(len(ta) + len(va), len(tb) + len(vb)),
        epochs=epoch,
        best_epoch=best_epoch,
        val_loss=best,
        features=tuple(true.names) if isinstance(true, FeatureSet) else tuple(f"x{i}" for i in range(xa.shape[1])),
        test_rows=(sa, sb),
        scores=(score_a, score_b),
    )


# ---------------------------------------------------------------------------------------
# histograms
# ---------------------------------------------------------------------------------------


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
