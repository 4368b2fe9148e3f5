"""Every registered process passes the conformance checks (timm-style: parametrised over the registry)."""

from __future__ import annotations

import pytest

import memzoo
from memzoo.protocols import FactorisedProcess, Process
from memzoo.testing import check_process

SLOW = {"thj"}  # ~10^5 matrix-element calls for the VEGAS map and the unweighting pre-scan


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in memzoo.available("process")],
)
def test_registered_process_conforms(name):
    process = memzoo.create("process", name)
    assert isinstance(process, Process)
    check_process(process, n=100)


@pytest.mark.parametrize("name", ["drell-yan", "thj"])
def test_builtin_processes_are_factorised_and_documented(name):
    process = memzoo.create("process", name)
    assert isinstance(process, FactorisedProcess)
    assert len(process.coordinate_names) == process.hard_dim
    assert type(process).__doc__ and all(p.description for p in process.parameters)


def test_process_options_are_typed():
    with pytest.raises(ValueError, match="must be one of"):
        memzoo.create("process", "thj", tops="bottom")
    with pytest.raises(ValueError, match="m_min < m_max"):
        memzoo.create("process", "drell-yan", m_min=130.0)
    assert memzoo.create("process", "thj", tops="top").config.tops == "top"
