"""The MEM integrator on Drell-Yan with the exact transfer, and the ``memzoo integrate`` job."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import memzoo
from memzoo.cli import main
from memzoo.data import read_dataset
from memzoo.integrator import MEMIntegrator
from memzoo.results import read_results
from memzoo.simulation.simulate import SimulationConfig, simulate


@pytest.fixture(scope="module")
def dy_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("integrate") / "dy.h5"
    simulate(SimulationConfig("drell-yan", n_events=300, chunk_size=300, seed=21), path, progress=False)
    return path


def _reco(data):
    return data.charged_reco


def test_coverage_against_brute_force(dy_data):
    """Default-budget estimates agree with a 20x larger plain-MC integration within their errors.

    40 accepted events, one θ point per event (independent pulls); σ_fid is fixed to one shared
    value so that only the per-event integration errors enter. With 40 pulls the mean is known to
    ±0.16 and the width to ±0.11: we ask |mean| < 0.5 and 0.65 < width < 1.4.
    """
    data = read_dataset(dy_data, accepted_only=True)[:40]
    reco = _reco(data)
    parts = {
        "process": memzoo.create("process", "drell-yan"),
        "transfer": memzoo.create("transfer", "gaussian", conditional=True),
        "sampler": memzoo.create("sampler", "gaussian"),
        "acceptance": memzoo.create("acceptance", "parametric-exact"),
    }
    theta = parts["process"].theta(sin2theta_eff=[0.2315])
    fast = MEMIntegrator(*parts.values(), n_points=2000, min_iterations=2, max_iterations=2, seed=1)
    sigma = fast.sigma_fid(theta)
    brute = MEMIntegrator(
        *parts.values(),
        n_points=40_000,
        min_iterations=1,
        max_iterations=1,
        vegas=False,
        seed=2,
        sigma_fid=lambda t: sigma,
    )
    a, b = fast.log_likelihood(reco, theta), brute.log_likelihood(reco, theta)
    # the σ_fid error is common to both: remove it from the per-event errors
    err_a = (a.std**2 - (sigma[1] / sigma[0]) ** 2).clamp(min=0).sqrt()
    err_b = b.std  # sigma_fid given without error
    pulls = ((a.logp - b.logp) / (err_a**2 + err_b**2).sqrt())[:, 0]
    print(f"pulls: mean {float(pulls.mean()):.3f}, width {float(pulls.std()):.3f}")
    assert bool(torch.isfinite(pulls).all())
    assert abs(float(pulls.mean())) < 0.5, pulls
    assert 0.65 < float(pulls.std()) < 1.4, pulls
    assert int(a.diagnostics["n_nonfinite"].sum()) == 0


def test_reco_likelihood_follows_the_hard_likelihood(dy_data):
    """Muons are measured well: Δ log L(θ) of the reco-level MEM tracks the hard-level one."""
    data = read_dataset(dy_data, accepted_only=True)[:30]
    process = memzoo.create("process", "drell-yan")
    parts = [
        process,
        memzoo.create("transfer", "gaussian", conditional=True),
        memzoo.create("sampler", "gaussian"),
        memzoo.create("acceptance", "parametric-exact"),
    ]
    theta = process.theta(sin2theta_eff=[0.15, 0.2315, 0.35])
    reco_ll = MEMIntegrator(*parts, n_points=2000, seed=3).log_likelihood(_reco(data), theta).logp.sum(0)
    hard_ll = process.dsigma(data.hard_coords, theta).log().sum(0)
    sigma = MEMIntegrator(*parts, seed=3).sigma_fid(theta)[0]
    hard_ll = hard_ll - len(data) * sigma.log()
    d_reco, d_hard = reco_ll - reco_ll[1], hard_ll - hard_ll[1]
    torch.testing.assert_close(d_reco, d_hard, atol=1.0, rtol=0.1)


def test_integrate_command_writes_and_resumes(dy_data, tmp_path, capsys):
    from pathlib import Path

    card = str(Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml")
    out = tmp_path / "res.h5"
    argv = ["integrate", "--model", card, "--data", str(dy_data), "--theta", "sin2theta_eff=0.2:0.26:4"]
    argv += ["--out", str(out), "--events", "6", "--chunk-size", "4", "--points", "1000"]
    assert main(argv) == 0
    assert "6 events" in capsys.readouterr().out
    first = read_results(out)
    assert first.logp.shape == (6, 4) and bool(torch.isfinite(first.logp).all())
    assert first.settings["options"]["n_points"] == 1000
    assert main(argv) == 0  # nothing left to do: the file is complete
    torch.testing.assert_close(read_results(out).logp, first.logp)
    assert main([*argv[:-2], "--points", "2000"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_max_batch_points_changes_memory_not_numbers(dy_data, tmp_path, capsys):
    """--max-batch-points splits the (event, point) rows of a model call differently; every event
    draws from its own generator in the same order, so the numbers agree up to summation order and
    a file resumes with another value (the option is not in the file's settings)."""
    argv = ["integrate", "--model", GAUSSIAN_CARD, "--data", str(dy_data), "--theta", "sin2theta_eff=0.2:0.26:3"]
    argv += ["--chunk-size", "3", "--points", "1000", "--min-iterations", "2", "--max-iterations", "2"]
    whole, split = tmp_path / "whole.h5", tmp_path / "split.h5"
    assert main([*argv, "--events", "6", "--out", str(whole)]) == 0
    # 700 rows per call: one event and 700 of its 1000 points, then the remaining 300
    assert main([*argv, "--events", "3", "--out", str(split), "--max-batch-points", "700"]) == 0
    assert main([*argv, "--events", "6", "--out", str(split), "--max-batch-points", "5000"]) == 0
    a, b = read_results(whole), read_results(split)
    assert "max_batch_points" not in b.settings["options"]
    assert b.event.tolist() == a.event.tolist()
    torch.testing.assert_close(b.logp, a.logp, rtol=0, atol=1e-9)
    torch.testing.assert_close(b.std, a.std, rtol=0, atol=1e-9)
    assert main([*argv, "--events", "1", "--out", str(tmp_path / "bad.h5"), "--max-batch-points", "0"]) == 2
    assert "max_batch_points >= 1" in capsys.readouterr().err


def test_integrate_from_a_saved_bundle(dy_data, tmp_path):
    """--model also takes a bundle (folder or MLflow URI): same numbers as the card with the same seed."""
    from pathlib import Path

    from memzoo.bundle import Bundle, save_bundle_dir
    from memzoo.integration_job import integrate_dataset

    card = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"
    bundle = Bundle(
        "drell-yan",
        {"m_min": 60.0, "m_max": 120.0},
        transfer=memzoo.create("transfer", "gaussian", conditional=True),
        sampler=memzoo.create("sampler", "gaussian"),
        acceptance=memzoo.create("acceptance", "parametric-exact"),
        metadata={"integrator": {"n_points": 1000}},
    )
    folder = save_bundle_dir(bundle, tmp_path / "bundle")
    theta = {"sin2theta_eff": [0.22, 0.24]}
    a = integrate_dataset(str(folder), dy_data, theta, tmp_path / "a.h5", n_events=3, progress=False)
    b = integrate_dataset(
        str(card), dy_data, theta, tmp_path / "b.h5", n_events=3, options={"n_points": 1000}, progress=False
    )
    torch.testing.assert_close(read_results(a).logp, read_results(b).logp)


GAUSSIAN_CARD = str(Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml")
SMALL = {"n_points": 400, "min_iterations": 2, "max_iterations": 2, "seed": 9, "sigma_fid_points": 4000}


def _job(dy_data, n_events, chunk_size=3, options=SMALL):
    from memzoo.integration_job import integrate_dataset

    def run(out):
        theta = {"sin2theta_eff": [0.22, 0.24]}
        return integrate_dataset(
            GAUSSIAN_CARD,
            dy_data,
            theta,
            out,
            n_events=n_events,
            chunk_size=chunk_size,
            options=options,
            progress=False,
        )

    return run


def test_chunks_are_seeded_by_index_not_by_history(dy_data):
    """Chunk i draws from a stream of (seed, i) only: the same events as chunk 0 and chunk 1 differ,
    chunk 1 redone gives the same bits, and σ_fid is the job's, whatever the chunk."""
    from memzoo.integration_job import chunk_seed, prepare_job

    job = prepare_job(GAUSSIAN_CARD, dy_data, {"sin2theta_eff": [0.22, 0.24]}, n_events=6, chunk_size=3, options=SMALL)
    integrate = job.integrator()
    reco = job.chunk_reco(1)
    first, again, as_chunk_0 = integrate(1, reco), integrate(1, reco), integrate(0, reco)
    assert torch.equal(first.logp, again.logp) and torch.equal(first.std, again.std)
    assert not torch.equal(first.logp, as_chunk_0.logp)  # other random numbers ...
    torch.testing.assert_close(first.logp, as_chunk_0.logp, atol=0.2, rtol=0)  # ... same integral
    assert torch.equal(first.diagnostics["sigma_fid"], as_chunk_0.diagnostics["sigma_fid"])
    assert len({chunk_seed(9, i) for i in range(1000)} | {9}) == 1001
    assert job.pending(0) == [0, 1] and job.pending(3) == [1] and job.pending(4) == [1] and job.pending(6) == []


def test_resuming_in_pieces_is_bit_identical_to_one_run(dy_data, tmp_path):
    """A job stopped after whole chunks continues to the same bits; a job whose --events was raised
    mid-chunk completes that chunk with the same random numbers (equal up to BLAS rounding, as the
    first run integrated the short chunk in a smaller batch)."""
    whole = read_results(_job(dy_data, 8)(tmp_path / "whole.h5"))
    pieces = tmp_path / "pieces.h5"
    _job(dy_data, 6)(pieces)
    resumed = read_results(_job(dy_data, 8)(pieces))
    assert resumed.event.tolist() == whole.event.tolist()
    assert torch.equal(resumed.logp, whole.logp) and torch.equal(resumed.std, whole.std)
    raised = tmp_path / "raised.h5"
    _job(dy_data, 4)(raised)  # chunk 1 holds one event of three
    continued = read_results(_job(dy_data, 8)(raised))
    assert continued.event.tolist() == whole.event.tolist()
    torch.testing.assert_close(continued.logp, whole.logp, rtol=0, atol=1e-12)
    torch.testing.assert_close(continued.std, whole.std, rtol=0, atol=1e-12)


def test_unknown_engine_and_missing_ray_are_explained(dy_data, tmp_path, monkeypatch):
    import sys

    from memzoo.integration_job import integrate_dataset

    with pytest.raises(ValueError, match=r"Unknown engine 'spark'.*'local', 'ray'"):
        integrate_dataset(GAUSSIAN_CARD, dy_data, {"sin2theta_eff": [0.2]}, tmp_path / "b.h5", engine="spark")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(RuntimeError, match=r"pip install 'memzoo\[ray\]'"):
        integrate_dataset(GAUSSIAN_CARD, dy_data, {"sin2theta_eff": [0.2]}, tmp_path / "c.h5", engine="ray")
    assert not (tmp_path / "c.h5").exists()


def test_an_alias_is_pinned_to_its_version(dy_data, tmp_path, mlflow_store):
    """``--model models:/NAME@ALIAS`` records (and loads) the version the alias points at: once the
    alias moves to another version, resuming the file is refused instead of mixing two models."""
    from memzoo.bundle import Bundle
    from memzoo.integration_job import integrate_dataset
    from memzoo.tracking import register_bundle, resolve_model_uri

    def bundle(n_points):
        return Bundle(
            "drell-yan",
            {"m_min": 60.0, "m_max": 120.0},
            transfer=memzoo.create("transfer", "gaussian", conditional=True),
            sampler=memzoo.create("sampler", "gaussian"),
            acceptance=memzoo.create("acceptance", "parametric-exact"),
            metadata={"integrator": {"n_points": n_points, "sigma_fid_points": 4000}},
        )

    first = register_bundle(bundle(400), "memzoo-pinned-dy", alias="champion").version
    uri = "models:/memzoo-pinned-dy@champion"
    assert resolve_model_uri(uri) == f"models:/memzoo-pinned-dy/{first}"
    assert resolve_model_uri("models:/memzoo-pinned-dy/1") == "models:/memzoo-pinned-dy/1"
    theta = {"sin2theta_eff": [0.22, 0.24]}
    out = tmp_path / "pinned.h5"
    integrate_dataset(uri, dy_data, theta, out, n_events=2, chunk_size=1, progress=False)
    assert read_results(out).settings["model"] == f"uri:{uri} = models:/memzoo-pinned-dy/{first}"
    second = register_bundle(bundle(600), "memzoo-pinned-dy", alias="champion").version
    assert second != first
    with pytest.raises(ValueError, match=f"memzoo-pinned-dy/{first}.* in the file, now .*memzoo-pinned-dy/{second}"):
        integrate_dataset(uri, dy_data, theta, out, n_events=3, chunk_size=1, progress=False)
    # the file names the version it was integrated with: the hard level's acceptance comes from it
    from memzoo.cli_inference import model_acceptance
    from memzoo.integration_job import recorded_model

    settings = read_results(out).settings
    assert recorded_model(settings["model"]) == f"models:/memzoo-pinned-dy/{first}"
    assert model_acceptance(settings, str(out)).name == "parametric-exact"
    assert recorded_model("uri:models:/x/2") == "models:/x/2" and recorded_model("card:/a/b.toml") == "/a/b.toml"
    with pytest.raises(ValueError, match="not a recorded model"):
        recorded_model("gaussian")
