"""``memzoo integrate --engine ray``: bit-identical to the single-process engine, retries, resume.

One local Ray instance (2 CPUs, no dashboard) serves the module; every job has 2 workers and
integrates a few Drell-Yan events with the analytic ``gaussian`` card.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import h5py
import pytest
import torch

from memzoo.cli_jobs import add_engine_arguments, cmd_integrate
from memzoo.integration_job import integrate_dataset
from memzoo.results import read_results
from memzoo.simulation.simulate import SimulationConfig, simulate

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'memzoo[ray]'")

CARD = Path(__file__).parents[1] / "registry" / "drell-yan" / "gaussian.toml"
THETA = {"sin2theta_eff": [0.21, 0.2315, 0.25]}
OPTIONS = {"n_points": 400, "min_iterations": 2, "max_iterations": 3, "bootstrap": 2, "seed": 5}
N_EVENTS, CHUNK = 10, 3  # 4 chunks, the last one short


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """The gaussian card with a cheaper σ_fid integral (the CLI has no flag for it)."""
    path = tmp_path_factory.mktemp("card") / "gaussian.toml"
    path.write_text(CARD.read_text() + "sigma_fid_points = 4000\n")
    return str(path)


@pytest.fixture(scope="module")
def dy_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("distributed") / "dy.h5"
    simulate(SimulationConfig("drell-yan", n_events=80, chunk_size=80, seed=33), path, progress=False)
    return path


@pytest.fixture(scope="module")
def reference(card, dy_data, tmp_path_factory):
    """The single-process file of the whole job."""
    out = tmp_path_factory.mktemp("reference") / "local.h5"
    run(card, dy_data, out, "local")
    return read_results(out)


def run(card, data, out, engine, n_events=N_EVENTS, **kwargs):
    return integrate_dataset(
        card,
        data,
        THETA,
        out,
        n_events=n_events,
        chunk_size=CHUNK,
        options=OPTIONS,
        progress=False,
        engine=engine,
        workers=2 if engine == "ray" else None,
        **kwargs,
    )


def assert_identical(a, b):
    """Bit for bit: events, log-likelihoods, errors, replicas, diagnostics."""
    assert a.event.tolist() == b.event.tolist()
    for name in ("logp", "std", "logp_replicas", "n_points", "n_nonfinite"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.settings == b.settings


def test_two_workers_bit_identical_to_single_process(local_ray, card, dy_data, reference, tmp_path, capsys):
    """Through the command's flags: ``--engine ray --workers 2``."""
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    args = parser.parse_args(["--engine", "ray", "--workers", "2", "--threads", "1"])
    options = {"points": 400, "min_iterations": 2, "max_iterations": 3, "bootstrap": 2, "seed": 5, "target": None}
    options["max_batch_points"] = None
    args.__dict__.update(options, model=card, data=str(dy_data), out=str(tmp_path / "ray.h5"), device=None)
    args.__dict__.update(theta=["sin2theta_eff=0.21,0.2315,0.25"], events=N_EVENTS, chunk_size=CHUNK)
    assert cmd_integrate(args) == 0
    assert f"{N_EVENTS} events" in capsys.readouterr().out
    result = read_results(tmp_path / "ray.h5")
    assert_identical(result, reference)
    assert len(result.event) == N_EVENTS and len(set(result.event.tolist())) == N_EVENTS
    assert bool(torch.isfinite(result.logp).all()) and result.logp_replicas.shape == (N_EVENTS, 3, 2)


def test_resumed_driver_skips_finished_chunks_and_killed_worker_is_retried(
    local_ray, card, dy_data, reference, tmp_path, caplog, monkeypatch
):
    """A driver died while chunk 1 was being written; the resumed run loses a worker at chunk 2.

    The file then holds chunk 0 and rows of chunk 1 that were never committed. The resumed Ray
    run must integrate chunks 1-3 only, survive the killed worker (Ray restarts it and retries
    the chunk), and end bit for bit on the single-process file: nothing lost, nothing twice.
    """
    out = tmp_path / "ray.h5"
    run(card, dy_data, out, "local", n_events=CHUNK)  # chunk 0 committed
    with h5py.File(out, "r+") as f:  # uncommitted rows of chunk 1: the driver died mid-write
        for name in ("event", "logp", "std", "n_points", "n_nonfinite", "logp_replicas"):
            f[name].resize(CHUNK + 2, axis=0)
    marker = tmp_path / "killed"
    monkeypatch.setenv("MEMZOO_FAULT_INJECTION", f"2:{marker}")
    with caplog.at_level(logging.INFO, logger="memzoo.integrate"):
        run(card, dy_data, out, "ray")
    assert marker.exists(), "the fault was not injected: the test would prove nothing"
    assert "killed at chunk 2" in marker.read_text()
    written = [r.getMessage() for r in caplog.records if "written" in r.getMessage()]
    assert written == ["chunk 1: events 3-5 written", "chunk 2: events 6-8 written", "chunk 3: events 9-9 written"]
    assert_identical(read_results(out), reference)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="memzoo.integrate"):
        run(card, dy_data, out, "ray")  # complete: no worker is even started
    assert not [r for r in caplog.records if "written" in r.getMessage() or "ray:" in r.getMessage()]
    assert_identical(read_results(out), reference)


def test_malformed_fault_injection_is_refused_before_any_work(card, dy_data, tmp_path, monkeypatch):
    monkeypatch.setenv("MEMZOO_FAULT_INJECTION", "not-a-chunk")
    with pytest.raises(ValueError, match="CHUNK:MARKER_FILE"):
        run(card, dy_data, tmp_path / "ray.h5", "ray", n_events=CHUNK)


def test_workers_load_the_model_from_the_mlflow_registry(local_ray, dy_data, reference, tmp_path, mlflow_store):
    """``models:/NAME@ALIAS``: every worker loads the bundle from the driver's MLflow store."""
    import memzoo
    from memzoo.bundle import Bundle
    from memzoo.tracking import register_bundle

    bundle = Bundle(
        "drell-yan",
        {"m_min": 60.0, "m_max": 120.0},
        transfer=memzoo.create("transfer", "gaussian", conditional=True),
        sampler=memzoo.create("sampler", "gaussian"),
        acceptance=memzoo.create("acceptance", "parametric-exact"),
        metadata={"integrator": {"target_rel_error": 0.02, "sigma_fid_points": 4000}},
    )
    version = register_bundle(bundle, "memzoo-drell-yan-raytest", alias="champion").version
    out = run("models:/memzoo-drell-yan-raytest@champion", dy_data, tmp_path / "ray.h5", "ray", n_events=2 * CHUNK)
    result = read_results(out)
    # the alias is pinned: the workers loaded the version it pointed at when the job started
    pinned = f"models:/memzoo-drell-yan-raytest/{version}"
    assert result.settings["model"] == f"uri:models:/memzoo-drell-yan-raytest@champion = {pinned}"
    assert result.event.tolist() == reference.event[: 2 * CHUNK].tolist()
    assert torch.equal(result.logp, reference.logp[: 2 * CHUNK])  # same components, seeds and options as the card
    assert torch.equal(result.logp_replicas, reference.logp_replicas[: 2 * CHUNK])
