"""``memzoo train`` with a regression card: trains the surrogate on integrator results, registers a
bundle whose likelihood model answers, without simulating anything."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import memzoo
from memzoo.cli import main

pytest.importorskip("memzoo_regression")

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "regression.toml"
EXACT = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"


@pytest.fixture(scope="module")
def training_files(tmp_path_factory):
    from memzoo.integration_job import integrate_dataset
    from memzoo.simulation.simulate import SimulationConfig, simulate

    tmp = tmp_path_factory.mktemp("train-regression")
    simulate(SimulationConfig("drell-yan", n_events=120, chunk_size=120, seed=4), tmp / "dy.h5", progress=False)
    options = {
        "n_points": 400,
        "min_iterations": 1,
        "max_iterations": 2,
        "target_rel_error": 0.05,
        "sigma_fid_points": 5000,
    }
    integrate_dataset(
        str(EXACT), tmp / "dy.h5", {"sin2theta_eff": [0.2, 0.25]}, tmp / "dy-gaussian.h5",
        n_events=30, chunk_size=30, options=options, progress=False,
    )  # fmt: skip
    return tmp


def tiny_card(tmp: Path) -> Path:
    text = CARD.read_text()
    text = text.replace("memzoo-runs/drell-yan-regression/dy.h5", str(tmp / "dy.h5"))
    text = text.replace("memzoo-runs/drell-yan-regression/dy-gaussian.h5", str(tmp / "dy-gaussian.h5"))
    text = text.replace("layers = 6", "layers = 2").replace("hidden = 200", "hidden = 16")
    text = text.replace("epochs = 60", "epochs = 2").replace("holdout_theta = { sin2theta_eff = [0.175, 0.275] }", "")
    path = tmp / "regression.toml"
    path.write_text(text)
    return path


def test_train_registers_a_surrogate_bundle(training_files, mlflow_store, capsys):
    from memzoo.data import read_dataset
    from memzoo.results import read_results

    card = tiny_card(training_files)
    assert main(["train", str(card), "--alias", "challenger"]) == 0
    printed = capsys.readouterr().out
    assert "test_resolution=" in printed and "registered models:/memzoo-drell-yan-regression/" in printed
    bundle = memzoo.load("models:/memzoo-drell-yan-regression@challenger")
    assert bundle.components().keys() == {"likelihood"} and bundle.process == "drell-yan"
    model = bundle.likelihood_model()
    assert model.config.objects == ("mu", "mu") and float(model.resolution) > 0
    res = read_results(training_files / "dy-gaussian.h5")
    reco = read_dataset(training_files / "dy.h5")[res.event].charged_reco
    with torch.no_grad():
        result = model.log_likelihood(reco, res.theta)
    assert result.logp.shape == res.logp.shape and bool(torch.isfinite(result.logp).all())
    assert torch.allclose(result.std, torch.full_like(result.std, math.log(10) * float(model.resolution)))
    # the regressed values are on the scale of the integrated ones (trained 2 epochs: loose)
    assert abs(float(result.logp.mean() - res.logp.mean())) < 3 * float(res.logp.std())


def test_regression_card_without_training_data_fails_clearly(tmp_path, mlflow_store):
    from memzoo.train_job import train_card

    text = CARD.read_text().replace('results = ["memzoo-runs/drell-yan-regression/dy-gaussian.h5"]', "")
    card = tmp_path / "regression.toml"
    card.write_text(text)
    with pytest.raises(ValueError, match="either results"):
        train_card(card, register=False, progress=False)
