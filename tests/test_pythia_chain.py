"""Tests of memzoo.simulation.pythia: Pythia 8 shower, object identification and anti-kT jets.

Fast tests use ≤ 20 events each (one Pythia initialisation ≈ 0.2 s); statistics-heavy checks
are marked slow.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from memzoo.events import delta_r, invariant_mass, pseudorapidity, transverse_momentum
from memzoo.processes.drell_yan import DrellYan
from memzoo.processes.thj import THj
from memzoo.simulation.decays import decay
from memzoo.simulation.pythia import (
    PythiaConfig,
    PythiaFailureWarning,
    events_per_second,
    shower,
    shower_parallel,
)
from memzoo.simulation.record import EventRecord


def hard_events(process: str, n: int, seed: int = 1, channel: str = "hadronic") -> EventRecord:
    """n decayed hard events whose DY muons or Higgs photons lie in the central detector.

    Phase-space points are drawn flat in the unit cube (weighted events are fine for shower
    tests); points outside the cuts are dropped, and so are events whose two muons or photons
    are not both inside |η| < 2.2, pT > 20 GeV, or are closer than ΔR = 0.5: flat sampling makes
    many TeV Higgs bosons, whose collimated photons (rightly) fail each other's isolation.
    """
    g = torch.Generator().manual_seed(seed)
    proc = DrellYan() if process == "dy" else THj()
    theta = proc.theta()
    u = torch.rand(40 * n, 4 if process == "dy" else 7, generator=g, dtype=torch.float64)
    coords, jac = proc.from_unit(u)
    coords = coords[(jac > 0) & (proc.dsigma(coords, theta).reshape(-1) > 0)]
    record = decay(proc.hard_record(coords, theta, generator=g), channel, generator=g)
    central = record.final & (record.pdg.abs() == (13 if process == "dy" else 22))
    eta, pt = pseudorapidity(record.p).abs(), transverse_momentum(record.p)
    pair = record.p[central].reshape(len(record), 2, 4)  # μ⁻μ⁺ or γγ
    good = ~(central & ((eta > 2.2) | (pt < 20))).any(1) & (delta_r(pair[:, 0], pair[:, 1]) > 0.5)
    assert good.sum() >= n, "too few central events drawn; raise the oversampling"
    return record[good.nonzero()[:n, 0]]


def objects(truth, row: int, labels: tuple[int, ...]) -> torch.Tensor:
    """Four-momenta ``(k, 4)`` of the objects of one event whose |label| is in ``labels``."""
    keep = truth.mask[row] & torch.isin(truth.label[row].abs(), torch.tensor(labels))
    return truth.p[row][keep]


@pytest.fixture(scope="module")
def dy_record() -> EventRecord:
    return hard_events("dy", 20)


@pytest.fixture(scope="module")
def thj_record() -> EventRecord:
    return hard_events("thj", 20)


# ---------------------------------------------------------------------------------------
# configuration and input validation
# ---------------------------------------------------------------------------------------


def test_config_defaults_and_validation():
    cfg = PythiaConfig(settings=["TimeShower:alphaSvalue = 0.13"])
    assert cfg.settings == ("TimeShower:alphaSvalue = 0.13",)
    lines = cfg.pythia_settings()
    assert "PartonLevel:MPI = off" in lines and "PartonLevel:ISR = on" in lines and "Print:quiet = on" in lines
    with pytest.raises(ValueError, match="Random:seed"):
        PythiaConfig(settings=["Random:seed = 4"])
    with pytest.raises(TypeError, match="must be a list of"):
        PythiaConfig(settings="PartonLevel:ISR = off")
    with pytest.raises(ValueError, match="jet_r must be positive"):
        PythiaConfig(jet_r=0.0)
    with pytest.raises(ValueError, match="Pythia rejected"):
        shower(hard_events("dy", 1), PythiaConfig(settings=["TimeShower:noSuchSetting = 1"]))


def test_invalid_inputs_fail_clearly(tmp_path, dy_record):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        shower(tmp_path / "missing.lhe")
    bad = tmp_path / "bad.lhe"
    bad.write_text("<LesHouchesEvents version='3.0'>\n<init>\nthis is not LHE\n</init>\n")
    with pytest.raises(ValueError, match="bad.lhe"):
        shower(bad)
    with pytest.raises(TypeError, match="EventRecord or an LHE file path"):
        shower(42)
    broken = dy_record[:2]
    broken.status = broken.status.clone()
    broken.status[1, 1] = 1  # one incoming parton only
    with pytest.raises(ValueError, match="Event 1 .* 1 incoming"):
        shower(broken)


# ---------------------------------------------------------------------------------------
# physics
# ---------------------------------------------------------------------------------------


def test_drell_yan_keeps_two_isolated_muons(dy_record):
    """Both muons are identified with the LHE charges and the LHE dimuon mass.

    ISR recoil boosts the dimuon system (its pT changes), so the comparison uses the mass,
    which only QED FSR off the muons changes: ≥ 75 % of events within 2 %, all within 20 %.
    """
    truth = shower(dy_record, seed=11)
    shifts = []
    for row in range(len(dy_record)):
        muons = objects(truth, row, (13,))
        if len(muons) != 2:
            continue
        charges = sorted(truth.label[row][truth.mask[row] & (truth.label[row].abs() == 13)].tolist())
        assert charges == [-13, 13]
        m_lhe = invariant_mass(*dy_record.p[row][dy_record.final[row]])
        shifts.append(float(invariant_mass(*muons) / m_lhe - 1))
    assert len(shifts) >= 16, f"only {len(shifts)} of 20 central events kept both muons"
    shifts = torch.tensor(shifts)
    assert (shifts.abs() < 0.02).float().mean() >= 0.75 and (shifts.abs() < 0.2).all(), shifts


def test_thj_has_photons_and_b_jet(thj_record):
    truth = shower(thj_record, seed=12)
    n = len(thj_record)
    two_photons = sum(len(objects(truth, r, (22,))) >= 2 for r in range(n))
    jets = [truth.label[r][truth.mask[r] & torch.isin(truth.label[r], torch.tensor([1, 4, 5]))] for r in range(n)]
    assert two_photons >= 0.8 * n
    assert sum(len(j) >= 3 for j in jets) >= 0.7 * n
    assert sum((j == 5).any().item() for j in jets) >= 0.6 * n
    # jets are sorted by pT and above threshold
    for r in range(n):
        pt = transverse_momentum(truth.p[r][truth.mask[r] & torch.isin(truth.label[r], torch.tensor([1, 4, 5]))])
        assert (pt > 20).all() and (pt[:-1] >= pt[1:]).all()


def test_transverse_momentum_balance():
    """With every visible particle in some object, Σ p over objects + invisibles = beams."""
    record = hard_events("thj", 6, channel="leptonic")
    config = PythiaConfig(jet_pt_min=0.0, jet_eta_max=math.inf, particle_eta_max=math.inf)
    truth = shower(record, config, seed=13)
    total = torch.where(truth.mask[..., None], truth.p, 0.0).sum(1)
    assert total[:, 1:3].abs().max() < 1e-6
    assert torch.allclose(total[:, 0], torch.full((6,), 2 * config.beam_energy, dtype=torch.float64), rtol=1e-9)
    assert (truth.label == 12).sum(1).eq(1).all()  # one summed invisible object per event


def test_b_labels_from_partons_without_hadronisation(thj_record):
    """With hadronisation off, final b quarks are the flavour ghosts; b jets remain."""
    record = thj_record[:8]
    partons = shower(record, PythiaConfig(hadronisation=False), seed=14)
    assert (partons.label == 5).any(1).sum() >= 5
    assert not torch.isin(partons.label, torch.tensor([11, 12, 13])).any()  # no hadron decays


# ---------------------------------------------------------------------------------------
# seeds, workers, LHE files and failures
# ---------------------------------------------------------------------------------------


def test_determinism_and_workers(thj_record):
    record = thj_record[:6]
    first = shower(record, seed=5)
    again = shower_parallel(record, seed=5, workers=1)
    split = shower_parallel(record, seed=5, workers=2, chunk_size=3)
    for other in (again, split):
        assert torch.equal(first.p, other.p) and torch.equal(first.label, other.label)
        assert torch.equal(first.mask, other.mask)
    different = shower(record, seed=6)
    assert different.p.shape != first.p.shape or not torch.equal(different.p, first.p)


def test_lhe_file_input_equals_record(tmp_path, dy_record):
    from memzoo.simulation.lhe import write_lhe

    record = dy_record[:5]
    path = write_lhe(record, tmp_path / "dy.lhe")
    from_file, from_record = shower(path, seed=7), shower(record, seed=7)
    assert torch.equal(from_file.label, from_record.label)
    assert torch.allclose(from_file.p, from_record.p, rtol=0, atol=1e-9)


def test_failed_events_are_counted(dy_record):
    record = dy_record[:4]
    record.colour = record.colour.clone()
    record.colour[1, :2] = 0  # a colourless quark-antiquark pair: Pythia rejects the event
    with pytest.warns(PythiaFailureWarning, match="1 of 4 events") as caught:
        truth = shower(record, PythiaConfig(max_failure_fraction=0.5), seed=8)
    assert caught[0].message.rows == [1]
    assert truth.mask[1].sum() == 0 and truth.mask[[0, 2, 3]].sum(1).ge(2).all()
    with pytest.raises(RuntimeError, match="max_failure_fraction"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shower(record, seed=8)


# ---------------------------------------------------------------------------------------
# heavier statistics
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_drell_yan_statistics():
    record = hard_events("dy", 200, seed=3)
    truth = shower_parallel(record, seed=3, workers=2, chunk_size=50)
    kept = [r for r in range(200) if len(objects(truth, r, (13,))) == 2]
    assert len(kept) >= 0.85 * 200
    shifts = torch.tensor(
        [
            float(invariant_mass(*objects(truth, r, (13,))) / invariant_mass(*record.p[r][record.final[r]]) - 1)
            for r in kept
        ]
    )
    assert shifts.median().abs() < 0.005 and (shifts.abs() < 0.02).float().mean() > 0.8


@pytest.mark.slow
def test_thj_statistics_and_speed():
    record = hard_events("thj", 200, seed=4)
    truth = shower(record, seed=4)
    assert (truth.label == 22).sum(1).ge(2).float().mean() > 0.85
    assert (truth.label == 5).any(1).float().mean() > 0.7
    assert events_per_second(record[:50]) > 5
