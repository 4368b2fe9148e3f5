"""Shared fixtures: an isolated MLflow store and a fresh plugin registry per test."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    """One intra-op thread: on a loaded 2-core box more torch threads slow the tests down."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dy():
    """The Drell-Yan process with its default configuration."""
    from memzoo.processes.drell_yan import DrellYan

    return DrellYan(DrellYan.Config())


@pytest.fixture(autouse=True)
def _fresh_plugins():
    """Every test sees plugins as installed, whatever an earlier test faked."""
    import memzoo

    memzoo.reset_plugins()
    yield
    memzoo.reset_plugins()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """An embedded SQLite + local-artifact MLflow store in a temporary working directory."""
    import mlflow

    from memzoo.tracking import configure_tracking

    root = tmp_path_factory.mktemp("mlflow")
    old_uri = os.environ.pop("MLFLOW_TRACKING_URI", None)
    uri = configure_tracking(root / "memzoo-runs")
    yield {"root": root / "memzoo-runs", "uri": uri}
    mlflow.set_tracking_uri(None)
    if old_uri is not None:
        os.environ["MLFLOW_TRACKING_URI"] = old_uri
