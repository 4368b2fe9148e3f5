"""Tests of the parametric detector, the parton-level truth and the reco selections.

Statistical checks use 1e5 objects and a 5σ tolerance, σ being the estimator's own standard
error: binomial sqrt(ε(1-ε)/n) for efficiencies, σ·sqrt((κ-1)/(4n)) for a measured standard
deviation (κ the sample kurtosis; κ = 3 for a Gaussian), σ/sqrt(n) for means.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.config import make_config
from memzoo.events import Particles, from_ptetaphim, pseudorapidity, to_ptetaphim, transverse_momentum
from memzoo.simulation.detector import (
    KIND_ORDER,
    DetectorConfig,
    ParametricDetector,
    TruthObjects,
    extra_jets,
    truth_from_partons,
)
from memzoo.simulation.record import EventRecord
from memzoo.simulation.selection import SELECTIONS, RecoParticles, select

N_STAT = 100_000
PERFECT = DetectorConfig(
    jet_energy_resolution=((10.0, 0.0, 0.0),),
    photon_energy_resolution=((10.0, 0.0, 0.0),),
    muon_pt_resolution=((10.0, 0.0, 0.0),),
    electron_pt_resolution=((10.0, 0.0, 0.0),),
    jet_eta_resolution=0.0,
    jet_phi_resolution=0.0,
    photon_eta_resolution=0.0,
    photon_phi_resolution=0.0,
    lepton_eta_resolution=0.0,
    lepton_phi_resolution=0.0,
    photon_efficiency=((10.0, 1.0),),
    muon_efficiency=((2.4, 1.0),),
    electron_efficiency=((10.0, 1.0),),
)


def truth_of(*objects, batch: int = 1) -> TruthObjects:
    """One event (repeated ``batch`` times) of objects ``(label, pt, eta, phi, m)``."""
    x = torch.tensor([o[1:] for o in objects], dtype=torch.float64)
    p = from_ptetaphim(x)[None].repeat(batch, 1, 1)
    label = torch.tensor([o[0] for o in objects])[None].repeat(batch, 1)
    return TruthObjects(p, label, torch.ones(batch, len(objects), dtype=torch.bool))


def random_singles(label: int, pt_range, eta_max: float, seed: int = 0, n: int = N_STAT) -> TruthObjects:
    """n events with one object each: pT flat in ``pt_range`` (GeV), η flat in ±eta_max."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 3, generator=g, dtype=torch.float64)
    lo, hi = pt_range
    mass = 10.0 if label in (1, 5, 21) else 0.0
    x = torch.stack([lo + (hi - lo) * u[:, 0], eta_max * (2 * u[:, 1] - 1), math.pi * (2 * u[:, 2] - 1)], -1)
    x = torch.cat([x, torch.full((n, 1), mass, dtype=torch.float64)], -1)
    return TruthObjects(from_ptetaphim(x)[:, None], torch.full((n, 1), label), torch.ones(n, 1, dtype=torch.bool))


def std_tolerance(residual: torch.Tensor) -> float:
    """5 standard errors of the sample standard deviation, relative."""
    z = (residual - residual.mean()) / residual.std()
    kurtosis = float((z**4).mean())
    return 5 * math.sqrt((kurtosis - 1) / (4 * len(residual)))


# ---------------------------------------------------------------------------------------
# defaults and configuration
# ---------------------------------------------------------------------------------------


def test_defaults_reproduce_the_delphes_cms_card_formulas():
    det = ParametricDetector()
    objs = truth_of(
        (1, 100.0, 0.0, 0.0, 0.0), (22, 50.0, 1.0, 0.0, 0.0), (13, 50.0, 1.0, 0.0, 0.0), (11, 50.0, 2.0, 0, 0)
    )
    res = det.resolution(objs.label, objs.p)[0]
    e_gamma = 50 * math.cosh(1.0)
    expected = [
        math.sqrt(1.5**2 / 100 + 0.05**2),
        (1 + 0.64) * math.sqrt(0.11**2 / e_gamma + 0.008**2 + 0.40**2 / e_gamma**2),
        math.hypot(0.015, 50 * 1.5e-4),
        math.hypot(0.15, 50 * 3.1e-3),
    ]
    torch.testing.assert_close(res, torch.tensor(expected, dtype=torch.float64))
    jets = truth_of((5, 100.0, 0.0, 0, 0), (4, 50.0, 1.0, 0, 0), (1, 100.0, -1.0, 0, 0), (5, 100.0, 2.6, 0, 0))
    eff = det.btag_efficiency(jets.label, jets.p)[0]
    expected = [0.85 * math.tanh(0.25) * 25 / (1 + 6.3), 0.25 * math.tanh(0.9) / (1 + 0.065), 0.01 + 0.0038, 0.0]
    torch.testing.assert_close(eff, torch.tensor(expected, dtype=torch.float64))
    assert 0.7 < eff[0] < 0.75 and 0.1 < eff[1] < 0.2
    objs = truth_of((22, 50.0, 2.0, 0, 0), (13, 50.0, 2.45, 0, 0), (13, 9.0, 0.0, 0, 0), (11, 50.0, 0.3, 0, 0))
    torch.testing.assert_close(det.efficiency(objs.label, objs.p)[0], torch.tensor([0.85, 0.0, 0.0, 0.95]).double())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("jet_eta_resolution", -0.1),
        ("jet_energy_resolution", ((3.0, -1.5, 0.05),)),
        ("photon_energy_resolution", ((2.5, 0.1, 0.01), (1.5, 0.1, 0.01))),
        ("muon_efficiency", ((2.4, 1.2),)),
        ("btag_b", (0.7, 0.0)),
        ("muon_pt_resolution", ((2.5, 0.01),)),
        ("extra_jet_mean", float("nan")),
        ("jet_pt_min", -5),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DetectorConfig(**{field: value})


def test_config_from_plain_values():
    cfg = make_config(DetectorConfig, {"jet_energy_resolution": [[4.0, 1.0, 0.1]], "btag_b": [0, 0, 0, 0.7, 0]})
    assert cfg.jet_energy_resolution[0].stochastic == 1.0 and cfg.jet_energy_resolution[0].noise == 0.0
    assert dataclasses.replace(cfg).jet_energy_resolution == cfg.jet_energy_resolution


def test_unknown_truth_label_is_rejected():
    with pytest.raises(ValueError, match="unsupported code 6"):
        truth_of((6, 100.0, 0.0, 0.0, 173.0))


# ---------------------------------------------------------------------------------------
# resolutions and efficiencies on large samples
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "pt_range", "eta_max", "pt_bins", "eta_bins"),
    [
        (1, (30.0, 300.0), 4.5, (30, 60, 120, 300), (0.0, 1.5, 3.0, 4.5)),
        (22, (20.0, 200.0), 2.4, (20, 50, 100, 200), (0.0, 0.75, 1.5, 2.4)),
        (13, (20.0, 1000.0), 2.4, (20, 100, 300, 1000), (0.0, 0.5, 1.5, 2.4)),
        (11, (20.0, 200.0), 2.4, (20, 50, 100, 200), (0.0, 0.5, 1.5, 2.4)),
    ],
)
def test_measured_resolutions_match_the_configuration(label, pt_range, eta_max, pt_bins, eta_bins):
    cfg = dataclasses.replace(
        DetectorConfig(), jet_pt_min=0.0, jet_eta_max=10.0, photon_efficiency=((10.0, 1.0),), photon_pt_min=0.0
    )
    cfg = dataclasses.replace(cfg, muon_efficiency=((10.0, 1.0),), electron_efficiency=((10.0, 1.0),))
    det = ParametricDetector(cfg)
    truth = random_singles(label, pt_range, eta_max)
    reco = det.reconstruct(truth, torch.Generator().manual_seed(1))
    assert bool((reco.kind[:, 0] != 12).all()) and bool((reco.kind[:, 1] == 12).all())
    true, meas = truth.p[:, 0], reco.p[:, 0]
    is_track = label in (11, 13)
    ratio = transverse_momentum(meas) / transverse_momentum(true) if is_track else meas[:, 0] / true[:, 0]
    sigma = det.resolution(truth.label, truth.p)[:, 0]
    pt, abs_eta = transverse_momentum(true), pseudorapidity(true).abs()
    for pt_lo, pt_hi in itertools.pairwise(pt_bins):
        for eta_lo, eta_hi in itertools.pairwise(eta_bins):
            in_bin = (pt >= pt_lo) & (pt < pt_hi) & (abs_eta >= eta_lo) & (abs_eta < eta_hi)
            residual = ratio[in_bin] - 1
            expected = float(sigma[in_bin].pow(2).mean().sqrt())  # zero-mean mixture: var = <σ²>
            measured = float(residual.std())
            assert abs(measured / expected - 1) < std_tolerance(residual), (pt_lo, eta_lo, measured, expected)
            assert abs(float(residual.mean())) < 5 * measured / math.sqrt(len(residual))
    # angles: Gaussian with the configured widths
    kind = {1: "jet", 22: "photon"}.get(label, "lepton")
    d_eta = to_ptetaphim(meas)[:, 1] - to_ptetaphim(true)[:, 1]
    width = getattr(cfg, f"{kind}_eta_resolution")
    assert abs(float(d_eta.std()) / width - 1) < std_tolerance(d_eta)


def test_measured_reconstruction_efficiencies():
    det = ParametricDetector()
    for label, regions in (
        (22, [(0.0, 1.4, 0.95), (1.6, 2.4, 0.85), (2.6, 3.0, 0.0)]),
        (13, [(0.0, 2.3, 0.95), (2.5, 3.0, 0.0)]),
        (11, [(0.0, 1.4, 0.95), (1.6, 2.4, 0.85), (2.6, 3.0, 0.0)]),
    ):
        truth = random_singles(label, (15.0, 200.0), 3.0, seed=label)
        reco = det.reconstruct(truth, torch.Generator().manual_seed(2))
        found = reco.count(label) == 1
        abs_eta = pseudorapidity(truth.p[:, 0]).abs()
        for lo, hi, eff in regions:
            sel = found[(abs_eta > lo) & (abs_eta < hi)].double()
            tol = 5 * math.sqrt(max(eff * (1 - eff), 1e-4) / len(sel))
            assert abs(float(sel.mean()) - eff) < tol, (label, lo, float(sel.mean()), eff)
    soft = det.reconstruct(random_singles(13, (5.0, 9.0), 2.0, n=1000), torch.Generator().manual_seed(3))
    assert int(soft.count(13).sum()) == 0


@pytest.mark.parametrize("flavour", [5, 4, 1, 21])
def test_measured_btag_rates(flavour):
    det = ParametricDetector()
    truth = random_singles(flavour, (30.0, 300.0), 2.3, seed=flavour)
    reco = det.reconstruct(truth, torch.Generator().manual_seed(4))
    is_jet = torch.isin(reco.kind[:, 0], torch.tensor([1, 5]))
    jet_p, tagged = reco.p[is_jet, 0], reco.kind[is_jet, 0] == 5
    expected = det.btag_efficiency(torch.full(tagged.shape, flavour), jet_p)
    pt = transverse_momentum(jet_p)
    for lo, hi in ((30, 60), (60, 120), (120, 300)):
        in_bin = (pt >= lo) & (pt < hi)
        eff, rate = float(expected[in_bin].mean()), float(tagged[in_bin].double().mean())
        assert abs(rate - eff) < 5 * math.sqrt(eff * (1 - eff) / int(in_bin.sum())), (lo, rate, eff)
    forward = det.reconstruct(random_singles(5, (50.0, 100.0), 4.0, n=2000, seed=9), torch.Generator().manual_seed(5))
    beyond = pseudorapidity(forward.p[:, 0]).abs() > 2.5
    assert int((forward.kind[:, 0][beyond] == 5).sum()) == 0


def test_flat_btag_efficiency():
    det = ParametricDetector(DetectorConfig(btag_b=(0.0, 0.0, 0.0, 0.7, 0.0)))
    reco = det.reconstruct(random_singles(5, (30.0, 300.0), 2.3), torch.Generator().manual_seed(6))
    rate = float((reco.kind[:, 0] == 5).double().sum() / torch.isin(reco.kind[:, 0], torch.tensor([1, 5])).sum())
    assert abs(rate - 0.7) < 5 * math.sqrt(0.21 / N_STAT)


# ---------------------------------------------------------------------------------------
# jets, isolation, missing pT
# ---------------------------------------------------------------------------------------


def record_of(*final) -> EventRecord:
    """One event: two incoming gluons and final-state particles ``(pdg, pt, eta, phi, m)``."""
    beams = torch.tensor([[500.0, 0, 0, 500.0], [500.0, 0, 0, -500.0]], dtype=torch.float64)
    p = torch.cat([beams, from_ptetaphim(torch.tensor([f[1:] for f in final], dtype=torch.float64))])[None]
    m = p.shape[1]
    pdg = torch.tensor([[21, 21, *[f[0] for f in final]]])
    status = torch.tensor([[-1, -1] + [1] * len(final)])
    zeros = torch.zeros(1, m, 2, dtype=torch.int64)
    return EventRecord(p, pdg, status, zeros, zeros, torch.ones(1, m, dtype=torch.bool), torch.ones(1), torch.ones(1))


@pytest.mark.parametrize(
    ("a", "b", "dphi", "labels"),
    [
        (5, 21, 0.39, [5]),
        (21, 5, 0.39, [5]),
        (1, 4, 0.399, [4]),
        (21, 21, 0.2, [21]),
        (5, 21, 0.41, [5, 21]),
        (2, 1, 1.0, [2, 1]),
    ],
)
def test_partons_closer_than_0p4_merge(a, b, dphi, labels):
    record = record_of(
        (a, 60.0, 0.5, 0.0, 0.0), (b, 40.0, 0.5, dphi, 0.0), (-13, 30.0, 0.5, 0.2, 0.1), (14, 20, 0, 3, 0)
    )
    truth = truth_from_partons(record)
    jets = torch.isin(truth.label.abs(), torch.tensor([1, 2, 3, 4, 5, 21])) & truth.mask
    assert truth.label[jets].tolist() == labels
    assert sorted(truth.label[truth.mask & ~jets].tolist()) == [-13, 14]  # muon not merged, beams dropped
    if len(labels) == 1:
        torch.testing.assert_close(truth.p[jets][0], record.p[0, 2] + record.p[0, 3])
    torch.testing.assert_close(truth.p[truth.mask].sum(0), record.p[0, 2:].sum(0))


def test_merging_takes_the_closest_pair_first():
    # a-b 0.35 and b-c 0.30: b and c merge; the merged axis sits ~0.48 from a, so a stays.
    record = record_of((1, 50.0, 0.0, 0.0, 0.0), (21, 50.0, 0.0, 0.35, 0.0), (21, 50.0, 0.0, 0.65, 0.0))
    truth = truth_from_partons(record)
    assert int(truth.mask.sum()) == 2
    torch.testing.assert_close(truth.p[0, 1], record.p[0, 3] + record.p[0, 4])


@pytest.mark.parametrize(
    ("lepton", "jets", "into"),
    [
        (22, [(20.0, 0.3)], 0),  # 20 GeV > 0.12 x 100 GeV inside ΔR 0.5: merged
        (22, [(10.0, 0.3)], None),  # 10 GeV < 12 GeV: isolated
        (22, [(200.0, 0.6)], None),  # outside the cone
        (22, [(20.0, 0.45), (20.0, 0.2)], 1),  # into the nearest jet
        (13, [(20.0, 0.3)], None),  # muons: 20 GeV < 0.25 x 100 GeV
        (13, [(30.0, 0.3)], 0),
    ],
)
def test_non_isolated_photons_and_muons_merge_into_the_nearest_jet(lepton, jets, into):
    truth = truth_of((lepton, 100.0, 0.0, 0.0, 0.1), *[(1, pt, 0.0, dphi, 5.0) for pt, dphi in jets])
    reco = ParametricDetector(dataclasses.replace(PERFECT, jet_pt_min=0.0)).reconstruct(truth)
    assert int(reco.count(lepton)[0]) == (1 if into is None else 0)
    if into is not None:  # four-vector sum
        merged = reco.p[0][(reco.kind[0] == 1) | (reco.kind[0] == 5)]
        assert any(torch.allclose(j, truth.p[0, 0] + truth.p[0, 1 + into]) for j in merged)
    off = ParametricDetector(dataclasses.replace(PERFECT, jet_pt_min=0.0, isolation_dr=0.0)).reconstruct(truth)
    assert int(off.count(lepton)[0]) == 1


def test_missing_pt_balances_the_visible_objects():
    objs = [(22, 80.0, 0.3, 0.1, 0), (22, 50.0, -1.0, 2.0, 0), (5, 70.0, 1.2, -2.0, 8), (1, 45.0, -0.4, -0.9, 5)]
    balance = from_ptetaphim(torch.tensor([o[1:] for o in objs], dtype=torch.float64)).sum(0)
    pt_nu, phi_nu = float(balance[1:3].norm()), math.atan2(-balance[2], -balance[1])
    truth = truth_of(*objs, (14, pt_nu, 0.7, phi_nu, 0.0), batch=1000)
    det = ParametricDetector(dataclasses.replace(DetectorConfig(), photon_efficiency=((2.5, 1.0),)))
    reco = det.reconstruct(truth, torch.Generator().manual_seed(7))
    assert bool((reco.count(12) == 1).all())
    met = reco.p[reco.kind == 12]
    torch.testing.assert_close(met[:, 0], met[:, 1:3].norm(dim=-1))
    assert bool((met[:, 3] == 0).all())
    # every object reconstructed (photons at efficiency 1, jets above threshold): Σ pT(reco) = 0
    full = reco.multiplicity == 5
    assert int(full.sum()) > 500
    torch.testing.assert_close(reco.p[full][..., 1:3].sum(1), torch.zeros(int(full.sum()), 2, dtype=torch.float64))
    # perfect measurement: missing pT is the neutrino, also when a soft jet misses the threshold
    soft = truth_of(*objs[:2], (1, 15.0, 0.0, 1.0, 2.0), (14, 40.0, 0.0, -1.0, 0.0), (-13, 30.0, 2.6, 0.5, 0.1))
    reco = ParametricDetector(PERFECT).reconstruct(soft)
    assert reco.count(1).item() == 0 and reco.count(13).item() == 0
    nu_and_lost_muon = soft.p[0, 3] + soft.p[0, 4]
    torch.testing.assert_close(reco.p[reco.kind == 12][0, 1:3], nu_and_lost_muon[1:3])


def test_extra_jet_multiplicity_and_spectrum():
    cfg = DetectorConfig(extra_jet_mean=1.3, extra_jet_pt_min=30.0, extra_jet_eta_max=2.0)
    n = 20_000
    jets = extra_jets(n, cfg, torch.Generator().manual_seed(8))
    counts = jets.mask.sum(1).double()
    assert abs(float(counts.mean()) - 1.3) < 5 * math.sqrt(1.3 / n)
    assert abs(float(counts.var()) - 1.3) < 0.08  # Poisson: variance = mean (5 standard errors)
    pt, eta = transverse_momentum(jets.p)[jets.mask], pseudorapidity(jets.p)[jets.mask]
    # dN/dpT ∝ pT^-4 from 30 GeV: mean 1.5·30 GeV, standard deviation sqrt(3/4)·30 GeV
    assert abs(float(pt.mean()) - 45.0) < 5 * math.sqrt(0.75) * 30 / math.sqrt(len(pt))
    assert float(pt.min()) >= 30.0 and float(eta.abs().max()) <= 2.0
    assert abs(float(eta.abs().mean()) - 1.0) < 5 * (2.0 / math.sqrt(12)) / math.sqrt(len(eta))
    # through the detector: one photon per event, extra jets add jets but no missing pT (no recoil)
    det = ParametricDetector(dataclasses.replace(PERFECT, extra_jet_mean=1.3, jet_pt_min=0.0))
    reco = det.reconstruct(truth_of((22, 60.0, 0.0, 0.0, 0.0), batch=n), torch.Generator().manual_seed(9))
    n_jets = (reco.count(1) + reco.count(5)).double()
    assert abs(float(n_jets.mean()) - 1.3) < 5 * math.sqrt(1.3 / n)
    torch.testing.assert_close(reco.p[reco.kind == 12][:, 1:3], torch.zeros(n, 2, dtype=torch.float64))


# ---------------------------------------------------------------------------------------
# output format, determinism, devices
# ---------------------------------------------------------------------------------------


def thj_truth(batch: int) -> TruthObjects:
    return truth_of(
        (22, 60.0, 0.2, 0.0, 0),
        (22, 90.0, -0.5, 2.0, 0),
        (5, 70.0, 1.0, -2.0, 4.8),
        (-13, 40.0, 0.5, 1.0, 0.1),
        (14, 50.0, 1.5, -1.0, 0),
        (2, 80.0, 2.0, -0.5, 0),
        (21, 30.0, -4.0, 1.5, 0),
        batch=batch,
    )


def test_reco_layout_is_sorted_and_padded():
    reco = ParametricDetector(DetectorConfig(extra_jet_mean=1.0)).reconstruct(thj_truth(500), torch.Generator())
    assert isinstance(reco, RecoParticles) and reco.p.dtype == torch.float64
    reco.check()
    rank = {k: i for i, k in enumerate(KIND_ORDER)}
    pt = transverse_momentum(reco.p)
    for row in range(len(reco)):
        kinds = reco.kind[row][reco.mask[row]].tolist()
        assert kinds[-1] == 12 and kinds.count(12) == 1
        assert [rank[k] for k in kinds] == sorted(rank[k] for k in kinds)
        for k in set(kinds):
            pts = pt[row][(reco.kind[row] == k) & reco.mask[row]].tolist()
            assert pts == sorted(pts, reverse=True)
        assert not bool(reco.mask[row, len(kinds) :].any()) and bool((reco.kind[row, len(kinds) :] == 0).all())
    assert bool((reco.charge[reco.kind == 13] == 1).all()) and bool((reco.charge[reco.kind != 13] == 0).all())
    assert bool((reco[3:7].charge == reco.charge[3:7]).all())


def test_empty_batches_and_events():
    det = ParametricDetector(DetectorConfig(extra_jet_mean=0.5))
    empty = det.reconstruct(
        TruthObjects(torch.zeros(0, 3, 4), torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, 3, dtype=torch.bool))
    )
    assert empty.p.shape[0] == 0 and det.select(empty, "drell-yan").shape == (0,)
    nothing = TruthObjects(
        torch.zeros(4, 0, 4), torch.zeros(4, 0, dtype=torch.int64), torch.zeros(4, 0, dtype=torch.bool)
    )
    reco = ParametricDetector().reconstruct(nothing, torch.Generator().manual_seed(0))
    assert reco.kind.tolist() == [[12]] * 4 and float(reco.p.abs().max()) == 0.0


def test_same_seed_same_events():
    det = ParametricDetector(DetectorConfig(extra_jet_mean=0.8))
    runs = [det.reconstruct(thj_truth(300), torch.Generator().manual_seed(s)) for s in (11, 11, 12)]
    for field in ("p", "kind", "mask", "charge"):
        assert torch.equal(getattr(runs[0], field), getattr(runs[1], field))
    assert not torch.equal(runs[0].p, runs[2].p)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_runs_on_the_device():
    truth = thj_truth(100)
    truth = TruthObjects(truth.p.cuda(), truth.label.cuda(), truth.mask.cuda())
    det = ParametricDetector(DetectorConfig(extra_jet_mean=1.0))
    reco = det.reconstruct(truth, torch.Generator("cuda").manual_seed(0))
    assert reco.p.device.type == "cuda" and det.select(reco, "thj-leptonic").device.type == "cuda"


# ---------------------------------------------------------------------------------------
# selections
# ---------------------------------------------------------------------------------------


def test_selection_examples():
    det = ParametricDetector(dataclasses.replace(PERFECT, btag_b=(0, 0, 0, 1, 0), btag_light=(0, 0, 0, 0, 0)))
    reco = det.reconstruct(thj_truth(1))
    assert det.select(reco, "thj-leptonic").tolist() == [True]
    assert det.select(reco, "thj-hadronic").tolist() == [False]  # one central light jet only
    mumu = det.reconstruct(truth_of((13, 40.0, 0.1, 0.0, 0.1), (-13, 30.0, -1.0, 2.5, 0.1)))
    same = det.reconstruct(truth_of((13, 40.0, 0.1, 0.0, 0.1), (13, 30.0, -1.0, 2.5, 0.1)))
    assert det.select(mumu, "drell-yan").tolist() == [True] and det.select(same, "drell-yan").tolist() == [False]
    with pytest.raises(ValueError, match="charge"):
        select(Particles.cat([mumu]), "drell-yan")
    with pytest.raises(ValueError, match="thj-hadronic"):
        det.select(reco, "thj")


KINDS = st.sampled_from([22, 5, 13, 11, 1, 12])
OBJECT = st.tuples(KINDS, st.floats(1.0, 60.0), st.floats(-3.0, 3.0), st.floats(-3.1, 3.1), st.sampled_from([-1, 1]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(OBJECT, max_size=9), min_size=1, max_size=5))
def test_selection_flags_match_object_counts(events):
    n = max(1, max(len(e) for e in events))
    x = torch.zeros(len(events), n, 4, dtype=torch.float64)
    kind = torch.zeros(len(events), n, dtype=torch.int64)
    charge = torch.zeros_like(kind)
    for row, objects in enumerate(events):
        for i, (k, pt, eta, phi, q) in enumerate(objects):
            x[row, i] = torch.tensor([pt, eta, phi, 0.0])
            kind[row, i], charge[row, i] = k, q if k in (11, 13) else 0
    mask = kind > 0
    reco = RecoParticles(torch.where(mask[..., None], from_ptetaphim(x), 0.0), kind, mask, charge=charge)
    flags = {name: select(reco, name).tolist() for name in SELECTIONS}
    measured = to_ptetaphim(reco.p).tolist()  # the cuts act on the stored momenta, to the last bit
    for row, objects in enumerate(events):
        rows = [(k, *measured[row][i][:2], q) for i, (k, _, _, _, q) in enumerate(objects)]

        def count(k, pt_min, sign=None, rows=rows):
            return sum(1 for kk, pt, eta, q in rows if kk == k and pt > pt_min and abs(eta) < 2.4 and sign in (None, q))

        common = count(22, 20) >= 2 and count(5, 25) == 1
        assert flags["thj-hadronic"][row] == (common and count(1, 25) >= 3)
        assert flags["thj-leptonic"][row] == (common and count(13, 20) >= 1 and count(1, 25) >= 1)
        assert flags["drell-yan"][row] == (count(13, 20, +1) == 1 and count(13, 20, -1) == 1)
