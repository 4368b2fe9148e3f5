"""Training data of the surrogate: integrator results, external weights, invalid targets, cards."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import h5py
import pytest
import torch
from memzoo_regression.card import fit_from_card
from memzoo_regression.training_data import balance_weights, from_external, from_results

import memzoo
from memzoo.cards import load_card
from memzoo.data import read_dataset
from memzoo.protocols import Likelihood
from memzoo.results import ResultsWriter, read_results

REGISTRY = Path(__file__).parents[3] / "registry"
GRID = [0.19, 0.23, 0.27]


@pytest.fixture(scope="module")
def integrated(tmp_path_factory):
    """40 accepted Drell-Yan events integrated with the exact card on a 3-point grid."""
    from memzoo.integration_job import integrate_dataset
    from memzoo.simulation.simulate import SimulationConfig, simulate

    tmp = tmp_path_factory.mktemp("regression-data")
    data = tmp / "dy.h5"
    config = SimulationConfig("drell-yan", n_events=200, chunk_size=200, seed=3, theta={"sin2theta_eff": (0.15, 0.31)})
    simulate(config, data, progress=False)
    results = tmp / "dy-gaussian.h5"
    options = {"n_points": 400, "min_iterations": 1, "max_iterations": 2, "target_rel_error": 0.05}
    options["sigma_fid_points"] = 5000
    integrate_dataset(
        str(REGISTRY / "drell-yan" / "gaussian.toml"), data, {"sin2theta_eff": GRID}, results,
        n_events=40, chunk_size=40, options=options, progress=False,
    )  # fmt: skip
    return {"data": data, "results": results, "tmp": tmp}


def test_targets_are_minus_log10_of_the_integrated_likelihood(integrated):
    table = from_results(integrated["results"], integrated["data"])
    res = read_results(integrated["results"])
    torch.testing.assert_close(table.target, -res.logp / math.log(10))
    torch.testing.assert_close(table.theta, torch.tensor(GRID, dtype=torch.float64)[:, None])
    data = read_dataset(integrated["data"])
    assert torch.equal(table.reco.p, data[res.event].reco.p) and bool(data.accepted[table.event].all())
    assert table.reco.charge is not None


def test_failed_and_unconverged_integrations_are_invalid_but_kept(integrated, tmp_path):
    res = read_results(integrated["results"])
    logp, std = res.logp.clone(), res.std.clone()
    logp[3, 1] = float("nan")
    std[5, 2] = 0.5
    bad = tmp_path / "bad.h5"
    with ResultsWriter(bad, res.theta, res.settings) as writer:
        writer.append(res.event, Likelihood(logp, std, res.theta))
    table = from_results(bad, integrated["data"], max_std=0.1)
    assert len(table) == len(res.event)  # invalid targets stay, for evaluation
    assert (~table.valid).nonzero().tolist() == [[3, 1], [5, 2]]
    rows = table.rows(torch.zeros(len(table), 2))
    assert len(rows) == table.valid.numel() - 2 and bool(torch.isfinite(rows.target).all())
    assert len(table.rows(torch.zeros(len(table), 2), valid_only=False)) == table.valid.numel()


def test_results_from_another_dataset_are_refused(integrated, tmp_path):
    from memzoo.simulation.simulate import SimulationConfig, simulate

    other = tmp_path / "other.h5"
    simulate(SimulationConfig("drell-yan", n_events=100, chunk_size=100, seed=9), other, progress=False)
    with pytest.raises(ValueError, match="was integrated from"):
        from_results(integrated["results"], other)


def test_external_weights_give_the_same_targets(integrated, tmp_path):
    """The integrator's weights written as a MoMEMta-like flat HDF5 file and read back through a mapping."""
    table = from_results(integrated["results"], integrated["data"])
    res = read_results(integrated["results"])
    path = tmp_path / "momemta.h5"
    with h5py.File(path, "w") as f:
        f["muons/p4"] = table.reco.p[:, :2].numpy()
        f["muons/q"] = table.reco.charge[:, :2].numpy()
        for j in range(len(GRID)):
            f[f"weight_{j}"] = res.logp[:, j].exp().numpy()
            f[f"weight_err_{j}"] = (res.logp[:, j].exp() * res.std[:, j]).numpy()
    process = memzoo.create("process", "drell-yan")
    weights = {
        "theta": {"sin2theta_eff": GRID},
        "columns": [f"weight_{j}" for j in range(3)],
        "errors": [f"weight_err_{j}" for j in range(3)],
    }
    mapping = {"reco": {"muons": {"kind": 13, "p4": "muons/p4", "charge": "muons/q"}}}
    ext = from_external(path, mapping, weights, process=process, max_rel_error=0.1)
    torch.testing.assert_close(ext.target, table.target)
    assert torch.equal(ext.valid, table.valid)
    assert torch.equal(ext.reco.charge[:, :2], table.reco.charge[:, :2])
    with pytest.raises(ValueError, match="one column per θ"):
        from_external(path, mapping, {**weights, "columns": ["weight_0"]}, process=process)
    with pytest.raises(ValueError, match="no dataset"):
        from_external(path, mapping, {**weights, "columns": ["w0", "w1", "w2"]}, process=process)


def test_balance_weights_give_each_source_the_same_total():
    w = balance_weights(torch.tensor([0, 0, 0, 1, 2, 2]))
    totals = [float(w[:3].sum()), float(w[3:4].sum()), float(w[4:].sum())]
    assert totals == pytest.approx([2.0, 2.0, 2.0]) and float(w.mean()) == pytest.approx(1.0)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """An embedded MLflow store for this test only (plugin tests do not see tests/conftest.py)."""
    import mlflow

    from memzoo.tracking import configure_tracking

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    configure_tracking(tmp_path / "memzoo-runs")
    yield
    mlflow.set_tracking_uri(None)


def test_fit_from_card_reports_test_and_holdout_metrics(integrated, mlflow_store):
    card = load_card(REGISTRY / "drell-yan" / "regression.toml")
    data = {
        "dataset": str(integrated["data"]),
        "results": [str(integrated["results"])],
        "split": [0.6, 0.2, 0.2],
        "holdout_theta": {"sin2theta_eff": [0.23]},
    }
    training = {"seed": 0, "likelihood": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "schedule": "constant"}}
    card = dataclasses.replace(card, tables={**card.tables, "data": data, "training": training})
    model = memzoo.create("likelihood", "regression", objects=["mu", "mu"], charge_order=True, layers=2, hidden=16)
    metrics = fit_from_card(model, card)
    # 40 events: 24 train, 8 validation, 8 test; the held-out θ is only seen on the test events
    assert metrics["val_n"] == 8 * 2 and metrics["test_n"] == 8 * 2 and metrics["holdout_n"] == 8
    assert float(model.resolution) == pytest.approx(metrics["val_resolution"])
    bad = dataclasses.replace(card, tables={**card.tables, "data": {**data, "external": {}}})
    with pytest.raises(ValueError, match="either results"):
        fit_from_card(model, bad)
