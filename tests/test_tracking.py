"""Bundles through the local MLflow store: register, alias, load, pyfunc, and never unpickle."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import mlflow
import pytest
import torch

import memzoo
from memzoo import tracking
from memzoo.bundle import Bundle, BundleFormatError, load_bundle_dir, save_bundle_dir
from memzoo.events import RecoParticles
from memzoo.testing import ToyProblem


def _bundle(pt_resolution=3.0, scale=1.5):
    torch.manual_seed(7)  # the same network weights on every call
    transfer = memzoo.create("transfer", "toy-smear", pt_resolution=pt_resolution)
    with torch.no_grad():
        transfer.log_resolution[0] = scale  # differs from the config: weights must travel
    acceptance = memzoo.create("acceptance", "mlp", hard_dim=3, layers=2, hidden=8)
    acceptance.fit_standardisation(torch.randn(100, 3) * 10 + 5)
    return Bundle(
        "toy-muon",
        {"pt_min": 20.0},
        transfer=transfer,
        sampler=memzoo.create("sampler", "toy-gauss", width=[4.0, 0.05, 0.05]),
        acceptance=acceptance,
        likelihood=memzoo.create("likelihood", "toy-analytic"),
        preprocessing={"shift": torch.arange(3.0), "names": ["pT", "eta", "phi"]},
        metadata={"card": "tests"},
    )


def _same_outputs(a: Bundle, b: Bundle) -> None:
    p = ToyProblem.one_muon(n=16)
    with torch.no_grad():
        torch.testing.assert_close(a.transfer.log_prob(p.reco, p.hard), b.transfer.log_prob(p.reco, p.hard))
        torch.testing.assert_close(a.acceptance.prob(p.hard.float()), b.acceptance.prob(p.hard.float()))
        theta = p.theta[:1].expand(16, -1)
        torch.testing.assert_close(a.sampler.log_prob(p.hard, p.reco, theta), b.sampler.log_prob(p.hard, p.reco, theta))
    torch.testing.assert_close(b.preprocessing["shift"], torch.arange(3.0))
    assert b.preprocessing["names"] == ["pT", "eta", "phi"]
    assert (b.process, b.process_config, b.metadata) == ("toy-muon", {"pt_min": 20.0}, {"card": "tests"})


def test_bundle_folder_round_trip(tmp_path):
    original = _bundle()
    folder = save_bundle_dir(original, tmp_path / "b")
    files = sorted(p.name for p in folder.iterdir())
    assert all(f.endswith((".json", ".safetensors")) for f in files), files
    manifest = json.loads((folder / "transfer.json").read_text())
    assert manifest["name"] == "toy-smear" and manifest["plugin"] == "toy" and manifest["version"] == "0.0.1"
    assert manifest["config"]["pt_resolution"] == 3.0
    _same_outputs(original, load_bundle_dir(folder))


def test_register_alias_and_load_by_alias_on_cpu(mlflow_store):
    first = tracking.register_bundle(_bundle(scale=1.0), "memzoo-toy-test", alias="champion", tags={"val_loss": 0.7})
    second = tracking.register_bundle(_bundle(scale=2.0), "memzoo-toy-test", alias="challenger")
    assert (int(first.version), int(second.version)) == (1, 2)
    champion = memzoo.load("models:/memzoo-toy-test@champion", device="cpu")
    assert float(champion.transfer.log_resolution[0].detach()) == 1.0
    assert champion.transfer.log_resolution.device.type == "cpu"
    _same_outputs(_bundle(scale=1.0), champion)

    tracking.set_alias("memzoo-toy-test", "champion", 2)  # promote the challenger
    assert float(memzoo.load("models:/memzoo-toy-test@champion").transfer.log_resolution[0].detach()) == 2.0
    assert float(memzoo.load("models:/memzoo-toy-test/1").transfer.log_resolution[0].detach()) == 1.0

    info = tracking.show_registered("memzoo-toy-test")
    assert [v["aliases"] for v in info["versions"]] == [[], ["challenger", "champion"]]
    assert info["versions"][0]["tags"] == {"val_loss": "0.7"}
    listed = {m["name"]: m for m in tracking.list_registered()}
    assert listed["memzoo-toy-test"]["latest_version"] == 2

    tracking.delete_alias("memzoo-toy-test", "challenger")
    assert tracking.show_registered("memzoo-toy-test")["versions"][1]["aliases"] == ["champion"]
    with pytest.raises(mlflow.exceptions.MlflowException):
        memzoo.load("models:/memzoo-toy-test@challenger")


def test_load_by_run_uri(mlflow_store):
    with mlflow.start_run() as run:
        tracking.log_model(_bundle(scale=0.5), name="bundle")
    loaded = memzoo.load(f"runs:/{run.info.run_id}/bundle")
    assert float(loaded.transfer.log_resolution[0].detach()) == 0.5


def test_pyfunc_returns_log_likelihoods(mlflow_store):
    bundle = _bundle()
    tracking.register_bundle(bundle, "memzoo-toy-pyfunc", alias="champion")
    model = mlflow.pyfunc.load_model("models:/memzoo-toy-pyfunc@champion")
    p = ToyProblem.one_muon(n=10)
    frame = tracking.particles_to_frame(p.reco)
    frame["slope"] = [0.03] * 5 + [0.08] * 5
    out = model.predict(frame)
    direct = torch.cat(
        [
            bundle.likelihood.log_likelihood(p.reco[:5], torch.tensor([[0.03]])).logp[:, 0],
            bundle.likelihood.log_likelihood(p.reco[5:], torch.tensor([[0.08]])).logp[:, 0],
        ]
    )
    torch.testing.assert_close(torch.tensor(out["log_likelihood"].to_numpy()), direct)
    # without θ columns the parameter defaults (slope = 0.05) apply
    default = model.predict(tracking.particles_to_frame(p.reco))
    expect = bundle.likelihood.log_likelihood(p.reco, torch.tensor([[0.05]])).logp[:, 0]
    torch.testing.assert_close(torch.tensor(default["log_likelihood"].to_numpy()), expect)


def test_frame_round_trip_keeps_padding():
    p = ToyProblem.one_muon(n=4).reco
    two = memzoo.Particles.cat(
        [p, memzoo.Particles(torch.cat([p.p, p.p], 1), torch.full((4, 2), 13), torch.ones(4, 2, dtype=torch.bool))]
    )
    back = tracking.frame_to_particles(tracking.particles_to_frame(two))
    assert back.mask.tolist() == two.mask.tolist()
    torch.testing.assert_close(back.p[back.mask], two.p[two.mask].double())


def test_frame_round_trip_keeps_charges():
    p = ToyProblem.one_muon(n=4).reco
    two = memzoo.Particles(torch.cat([p.p, p.p], 1), torch.full((4, 2), 13), torch.ones(4, 2, dtype=torch.bool))
    two.mask[1, 1] = False
    charged = RecoParticles(two.p, two.kind, two.mask, charge=torch.tensor([[-1, 1], [1, -1], [1, 1], [-1, -1]]))
    back = tracking.frame_to_particles(tracking.particles_to_frame(charged))
    assert isinstance(back, RecoParticles)
    assert back.charge.tolist() == [[-1, 1], [1, 0], [1, 1], [-1, -1]]  # padding carries charge 0
    assert not isinstance(tracking.frame_to_particles(tracking.particles_to_frame(two)), RecoParticles)


class _Boom:
    """Unpickling this runs os.system: a stand-in for a malicious model file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_in_artifact_is_never_unpickled(tmp_path, mlflow_store):
    marker = tmp_path / "pwned"
    folder = save_bundle_dir(_bundle(), tmp_path / "evil")
    payload = pickle.dumps(_Boom(marker))
    # 1. a pickle lying beside the weights is ignored
    (folder / "transfer.pkl").write_bytes(payload)
    (folder / "model.pt").write_bytes(payload)
    load_bundle_dir(folder)
    # 2. a manifest pointing at a pickle is refused
    manifest = json.loads((folder / "transfer.json").read_text())
    manifest["weights"] = "transfer.pkl"
    (folder / "transfer.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match=r"only plain '\*\.safetensors' files .* never unpickles"):
        load_bundle_dir(folder)
    # 3. the same through MLflow: log the tampered folder as a run artifact and load it
    mlmodel = tmp_path / "evil_model"
    tracking.save_model(_bundle(), mlmodel)
    shutil.copy(folder / "transfer.pkl", mlmodel / "bundle" / "transfer.pkl")
    (mlmodel / "bundle" / "transfer.json").write_text(json.dumps(manifest))
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(mlmodel), "evil")
    with pytest.raises(BundleFormatError):
        memzoo.load(f"runs:/{run.info.run_id}/evil")
    with pytest.raises(BundleFormatError):
        mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/evil")
    assert not marker.exists(), "a pickle was executed"
    # the marker mechanism works, so the assertion above can fail (run the payload's call directly)
    call, args = _Boom(marker).__reduce__()
    call(*args)
    assert marker.exists()


def test_foreign_and_malformed_artifacts_are_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "MLmodel").write_text("flavors:\n  pytorch:\n    pickle_module_name: cloudpickle\n")
    with pytest.raises(BundleFormatError, match="not the 'memzoo' flavour"):
        memzoo.load(foreign)
    with pytest.raises(FileNotFoundError, match="No bundle at"):
        memzoo.load(tmp_path / "missing")
    folder = save_bundle_dir(_bundle(), tmp_path / "b")
    manifest = json.loads((folder / "sampler.json").read_text())
    manifest["weights"] = "../b/sampler.safetensors"
    (folder / "sampler.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="only plain"):
        load_bundle_dir(folder)
    (folder / "memzoo_bundle.json").write_text(json.dumps({"format": "memzoo-bundle", "format_version": 99}))
    with pytest.raises(BundleFormatError, match="version 99"):
        load_bundle_dir(folder)


def test_missing_plugin_gives_install_hint(tmp_path, monkeypatch):
    folder = save_bundle_dir(_bundle(), tmp_path / "b")
    monkeypatch.setenv("MEMZOO_DISABLE_PLUGINS", "toy")
    memzoo.reset_plugins()
    with pytest.raises(KeyError, match="Unknown transfer 'toy-smear'.*Install the plugin"):
        load_bundle_dir(folder)


def test_bundle_without_likelihood_says_so():
    with pytest.raises(ValueError, match="has no 'likelihood' component"):
        Bundle("toy-muon", transfer=memzoo.create("transfer", "toy-smear")).likelihood_model()
