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


def test_sampler_on_acceptance_thinned_hard_events(tiny_card, tmp_path, mlflow_store, monkeypatch):
    """``hard = "acceptance"``: the sampler trains on all simulated hard events, each kept with the
    trained classifier's ε(x) and paired with fresh transfer reco; rejected events enter too, and the
    number kept matches Σ ε over the training and validation events."""
    from memzoo_cinn.transfer import CINNTransfer

    from memzoo.data import read_dataset
    from memzoo.train_job import train_card

    text = tiny_card.read_text()
    thinned = '[training.sampler]\nreco = "transfer"\nhard = "acceptance"\n'
    tiny_card.write_text(text.replace("[training.sampler]\n", thinned))
    rows = []
    original = CINNTransfer.sample

    def recording(self, hard, generator=None):
        rows.append(hard.detach().clone())
        return original(self, hard, generator)

    monkeypatch.setattr(CINNTransfer, "sample", recording)
    out = train_card(tiny_card, size="small", root=tmp_path, alias="thin", progress=False)
    assert torch.isfinite(torch.tensor(out["metrics"]["sampler_val_loss"]))
    train, val, _ = read_dataset(out["data"]).split(0, (0.8, 0.1, 0.1))
    eps = memzoo.load("models:/memzoo-drell-yan-cinn@thin").acceptance
    with torch.no_grad():
        expected = sum(float(eps.prob(part.hard_coords.double()).sum()) for part in (train, val))
        spread = sum(
            float((eps.prob(p.hard_coords.double()) * (1 - eps.prob(p.hard_coords.double()))).sum())
            for p in (train, val)
        )
    seen = torch.cat(rows)
    # one epoch: every training and validation event was offered once (binomial count, 5 σ)
    assert abs(len(seen) - expected) < 5 * spread**0.5 + 1
    rejected = train.hard_coords[~train.accepted].float()
    assert len(rejected) > 0
    hits = (seen[:, None, :] == rejected[None, :, :]).all(-1).any(0).sum()
    assert int(hits) > 0, "no rejected hard event reached the sampler"
    with torch.no_grad():
        mean_eps = float(eps.prob(train.hard_coords.double()).mean())
    assert abs(out["metrics"]["sampler_mean_acceptance"] - mean_eps) < 1e-6
    for bad, message in (
        ('[training.sampler]\nhard = "acceptance"\n', "needs reco = 'transfer'"),
        ('[training.sampler]\nreco = "transfer"\nhard = "all"\n', "'accepted' .* or 'acceptance'"),
    ):
        tiny_card.write_text(text.replace("[training.sampler]\n", bad))
        with pytest.raises(ValueError, match=message):
            train_card(tiny_card, size="small", root=tmp_path, register=False, progress=False)


def test_train_reuses_networks_of_a_bundle(tiny_card, tmp_path, mlflow_store, capsys):
    """``memzoo train CARD --reuse URI``: the transfer and acceptance of the bundle are kept bit for
    bit, only the sampler is trained anew; unknown roles are refused."""
    from memzoo.train_job import train_card

    train_card(tiny_card, size="small", root=tmp_path, alias="first", progress=False)
    first = memzoo.load("models:/memzoo-drell-yan-cinn@first")
    tiny_card.write_text(tiny_card.read_text().replace("[training]\nseed = 0", "[training]\nseed = 7"))
    argv = ["train", str(tiny_card), "--reuse", "models:/memzoo-drell-yan-cinn@first", "--alias", "second"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "registered models:/memzoo-drell-yan-cinn/" in printed and "(alias second)" in printed
    second = memzoo.load("models:/memzoo-drell-yan-cinn@second")
    for role in ("transfer", "acceptance"):
        a, b = getattr(first, role).state_dict(), getattr(second, role).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = first.sampler.state_dict(), second.sampler.state_dict()
    assert not all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown roles"):
        train_card(
            tiny_card,
            root=tmp_path,
            register=False,
            progress=False,
            reuse="models:/memzoo-drell-yan-cinn@first",
            retrain=("samplr",),
        )
