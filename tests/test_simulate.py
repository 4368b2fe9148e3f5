"""``memzoo simulate``: determinism per seed, independence of workers, resuming, θ ranges, errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from memzoo.cli import main
from memzoo.data import read_dataset
from memzoo.simulation import simulate as sim
from memzoo.simulation.simulate import SimulationConfig, chunk_seed, simulate

DY = dict(process="drell-yan", n_events=450, chunk_size=150, seed=11)


def _columns(path):
    with h5py.File(path, "r") as f:
        return {
            name: f[name][: f.attrs["n_events"]] for name in ("theta", "hard/coords", "reco/p", "reco/kind", "accepted")
        }


def _same(a, b):
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "dy.h5"
    simulate(SimulationConfig(**DY), path, progress=False)
    return path


def test_dataset_content(reference):
    data = read_dataset(reference)
    assert len(data) == 450 and data.info["process"] == "drell-yan"
    assert data.info["settings"]["selection"] == "drell-yan"
    acc = data.accepted
    assert 0.2 < float(acc.float().mean()) < 0.6  # two muons with pT > 20 GeV, |η| < 2.4
    # accepted events hold exactly one μ⁺ and one μ⁻ and a missing-pT object; rejected ones nothing
    assert bool((data.reco.count(13)[acc] == 2).all()) and bool((data.reco.count(12)[acc] == 1).all())
    assert not bool(data.reco.mask[~acc].any())
    assert bool((data.charge[acc].sum(-1) == 0).all())
    # hard coordinates and momenta agree, and the default θ was used
    torch.testing.assert_close(data.theta, torch.full((450, 1), 0.2315, dtype=torch.float64))


def test_same_seed_same_file_whatever_the_workers(reference, tmp_path):
    again = tmp_path / "two_workers.h5"
    simulate(SimulationConfig(**DY), again, workers=2, progress=False)
    _same(_columns(reference), _columns(again))
    other = tmp_path / "other_seed.h5"
    simulate(SimulationConfig(**{**DY, "n_events": 150, "seed": 12}), other, progress=False)
    assert not np.array_equal(_columns(other)["hard/coords"], _columns(reference)["hard/coords"][:150])
    assert chunk_seed(11, 0) != chunk_seed(11, 1) and chunk_seed(11, 0) == chunk_seed(11, 0)


def test_interrupted_run_resumes_to_the_same_file(reference, tmp_path, monkeypatch):
    path = tmp_path / "interrupted.h5"
    run = sim._Pipeline.run

    def crash_on_third(self, chunk):
        if chunk == 2:
            raise KeyboardInterrupt
        return run(self, chunk)

    monkeypatch.setattr(sim._Pipeline, "run", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        simulate(SimulationConfig(**DY), path, progress=False)
    with h5py.File(path, "r") as f:
        assert f.attrs["n_events"] == 300  # the two finished chunks survived
    monkeypatch.setattr(sim._Pipeline, "run", run)
    done = []
    monkeypatch.setattr(sim._Pipeline, "run", lambda self, chunk: done.append(chunk) or run(self, chunk))
    simulate(SimulationConfig(**DY), path, progress=False)
    assert done == [2]  # only the missing chunk was simulated
    _same(_columns(reference), _columns(path))


def test_resume_with_other_settings_is_refused(reference, tmp_path):
    import shutil

    copy = tmp_path / "copy.h5"
    shutil.copy(reference, copy)
    with pytest.raises(ValueError, match="seed"):
        simulate(SimulationConfig(**{**DY, "seed": 99}), copy, progress=False)


def test_theta_range_is_drawn_per_event(tmp_path):
    path = tmp_path / "range.h5"
    config = SimulationConfig("drell-yan", n_events=200, chunk_size=200, theta={"sin2theta_eff": (0.2, 0.26)})
    simulate(config, path, progress=False)
    theta = read_dataset(path).theta[:, 0]
    assert float(theta.min()) >= 0.2 and float(theta.max()) <= 0.26 and len(set(theta.tolist())) == 200
    assert abs(float(theta.mean()) - 0.23) < 0.005  # uniform: σ_mean = 0.06/√12/√200 ≈ 0.0012


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(theta={"alpha": 0.0}), "Unknown parameter 'alpha'"),
        (dict(theta={"sin2theta_eff": 0.9}), "outside its range"),
        (dict(detector="delphes"), "detector must be"),
        (dict(n_events=0), "n_events and chunk_size must be >= 1"),
        (dict(detector_config={"jet_pt_mn": 20.0}), "jet_pt_mn"),
    ],
)
def test_bad_configuration_is_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate(SimulationConfig(**{**DY, **kwargs}), tmp_path / "bad.h5", progress=False)
    assert not (tmp_path / "bad.h5").exists() or kwargs.get("theta") is None


def test_cli_simulate_and_plots(tmp_path, capsys):
    path = tmp_path / "thj.h5"
    argv = ["simulate", "thj", "--events", "300", "--chunk-size", "300", "--theta", "alpha=-90:90"]
    assert main([*argv, "--out", str(path), "--seed", "3", "--channel", "leptonic"]) == 0
    assert "selection thj-leptonic" in capsys.readouterr().out
    data = read_dataset(path)
    assert data.info["settings"]["channel"] == "leptonic" and data.theta.abs().max() <= 90
    assert main(["plots", str(path), "--out", str(tmp_path / "plots")]) == 0
    written = capsys.readouterr().out.split()
    assert any(p.endswith("objects_pt_eta.png") for p in written)
    assert main(["simulate", "thj", "--events", "10", "--out", str(path), "--theta", "alpha=x"]) == 2
    assert "NAME=VALUE or NAME=LOW:HIGH" in capsys.readouterr().err


def test_pythia_chain_dataset(tmp_path):
    """The shower chain writes the same schema; accepted Drell-Yan events hold an opposite-sign muon pair."""
    path = tmp_path / "dy_pythia.h5"
    config = SimulationConfig("drell-yan", n_events=40, chunk_size=40, seed=4, detector="pythia")
    simulate(config, path, progress=False)
    data = read_dataset(path)
    acc = data.accepted
    assert data.info["settings"]["detector"] == "pythia" and 5 <= int(acc.sum()) <= 35
    assert bool((data.reco.count(13)[acc] == 2).all()) and bool((data.charge[acc].sum(-1) == 0).all())
    # the reconstructed dimuon mass sits in the generated window (resolution and FSR allow a margin)
    from memzoo.plots import m_pair

    m, ok = m_pair(data.reco[acc], 13)
    assert bool(ok.all()) and bool(((m > 50) & (m < 130)).all())


def test_cli_export_lhe_round_trip(tmp_path, capsys):
    from memzoo.simulation.lhe import read_lhe

    path = tmp_path / "dy.lhe.gz"
    assert main(["export-lhe", "drell-yan", "--events", "20", "--out", str(path), "--decay", "none"]) == 0
    assert "20 unweighted drell-yan events" in capsys.readouterr().out
    record = read_lhe(path)
    assert len(record) == 20
    assert float(record.momentum_imbalance().abs().max()) < 1e-6
    assert sorted(record.pdg[0, 2:].tolist()) == [-13, 13]
