"""pytest plugin of memzoo (entry point ``pytest11``): device option, markers and fixtures.

Adds ``--memzoo-device`` (default ``cpu``; ``cuda`` runs the numeric paths on a GPU), registers
the ``slow`` and ``gpu`` markers and skips ``gpu`` tests when CUDA is absent.
"""

from __future__ import annotations

import os

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memzoo")
    group.addoption("--memzoo-device", default="cpu", help="torch device for memzoo conformance tests")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    config.addinivalue_line("markers", "slow: long-running tests")
    config.addinivalue_line("markers", "gpu: tests that need a CUDA device")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def memzoo_device(request: pytest.FixtureRequest) -> torch.device:
    """The device conformance tests run on (``--memzoo-device``)."""
    device = torch.device(request.config.getoption("--memzoo-device"))
    if device.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("--memzoo-device=cuda but CUDA is not available")
    return device
