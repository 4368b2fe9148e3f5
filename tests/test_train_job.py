"""``memzoo train CARD``: data, three networks, a registered bundle that integrates."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import memzoo
from memzoo.cli import main

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "cinn.toml"


@pytest.fixture
def tiny_card(tmp_path):
    text = CARD.read_text()
    text = text.replace("events = 60000", "events = 2000").replace("chunk_size = 10000", "chunk_size = 1000")
    for before in ("epochs = 15", "epochs = 5", "epochs = 40"):
        text = text.replace(before, "epochs = 1")
    path = tmp_path / "cinn.toml"
    path.write_text(text)
    return path


def test_train_registers_a_bundle_that_integrates(tiny_card, tmp_path, mlflow_store, capsys):
    from memzoo.data import read_dataset
    from memzoo.integrator import MEMIntegrator
    from memzoo.train_job import train_card

    out = train_card(tiny_card, size="small", root=tmp_path, alias="challenger", progress=False)
    assert set(out["metrics"]) >= {"transfer_val_loss", "sampler_val_loss", "acceptance_val_bce"}
    assert all(torch.isfinite(torch.tensor(v)) for v in out["metrics"].values())
    bundle = memzoo.load("models:/memzoo-drell-yan-cinn@challenger")
    assert bundle.metadata["size"] == "small" and bundle.transfer.config.objects == ("mu", "mu")
    data = read_dataset(out["data"], accepted_only=True)[:3]
    process = bundle.build_process()
    mem = MEMIntegrator(process, bundle.transfer, bundle.sampler, bundle.acceptance, n_points=500, max_iterations=2)
    result = mem.log_likelihood(data.charged_reco, process.theta(sin2theta_eff=[0.22, 0.24]))
    assert bool(torch.isfinite(result.logp).all())
    # the same card trains the same networks (seeded initial weights, seeded shuffling)
    again = train_card(tiny_card, size="small", root=tmp_path, register=False, progress=False)
    assert again["metrics"] == out["metrics"]


def test_train_command_errors(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[process]\nname = "drell-yan"\n[transfer]\nbackend = "cinn"\n')
    assert main(["train", str(bad), "--size", "paper"]) == 2
    assert "has no size 'paper'" in capsys.readouterr().err


def test_sampler_on_transfer_resampled_reco(tiny_card, tmp_path, mlflow_store, monkeypatch):
    """``[training.sampler] reco = "transfer"`` trains q on reco events drawn from the trained transfer
    network in every batch (eqs. 6.37–6.38); other values are refused with the choices."""
    from memzoo_cinn.transfer import CINNTransfer

    from memzoo.train_job import train_card

    text = tiny_card.read_text()
    assert "[training.sampler]\n" in text
    tiny_card.write_text(text.replace("[training.sampler]\n", '[training.sampler]\nreco = "transfer"\n'))
    calls = []
    original = CINNTransfer.sample

    def counting(self, hard, generator=None):
        calls.append(len(hard))
        return original(self, hard, generator)

    monkeypatch.setattr(CINNTransfer, "sample", counting)
    out = train_card(tiny_card, size="small", root=tmp_path, register=False, progress=False)
    assert torch.isfinite(torch.tensor(out["metrics"]["sampler_val_loss"]))
    # every training and validation event of the sampler's (one) epoch got freshly drawn reco objects
    from memzoo.data import read_dataset

    train, val, _ = read_dataset(out["data"]).split(0, (0.8, 0.1, 0.1))
    assert sum(calls) >= int(train.accepted.sum()) + int(val.accepted.sum()) > 100
    tiny_card.write_text(text.replace("[training.sampler]\n", '[training.sampler]\nreco = "simulated"\n'))
    with pytest.raises(ValueError, match="'true' .* or 'transfer'"):
        train_card(tiny_card, size="small", root=tmp_path, register=False, progress=False)
