"""Protocol helpers: θ tensors, the Likelihood result type and structural conformance."""

from __future__ import annotations

import math

import pytest
import torch

import memzoo
from memzoo.protocols import (
    AcceptanceModel,
    Likelihood,
    LikelihoodModel,
    Parameter,
    Process,
    Sampler,
    TransferModel,
    make_theta,
    reco_measure_dims,
)

ALPHA = Parameter("alpha", "deg", 0.0, (-180.0, 180.0))
KAPPA = Parameter("kappa", "", 1.0, (0.0, 2.0))


def test_make_theta_defaults_and_grids():
    theta = make_theta([ALPHA, KAPPA], {"alpha": [0, 45, 90]})
    assert theta.shape == (3, 2) and theta.dtype == torch.float64
    assert theta[:, 1].tolist() == [1.0, 1.0, 1.0] and theta[:, 0].tolist() == [0.0, 45.0, 90.0]
    assert make_theta([ALPHA, KAPPA]).tolist() == [[0.0, 1.0]]


def test_make_theta_errors():
    with pytest.raises(
        ValueError, match=r"Unknown parameter\(s\) \['alfa'\]. This process has parameters \['alpha', 'kappa'\]"
    ):
        make_theta([ALPHA, KAPPA], {"alfa": 1.0})
    with pytest.raises(ValueError, match=r"alpha = 270.0 deg is outside its range \[-180.0, 180.0\]"):
        make_theta([ALPHA], {"alpha": [0, 270]})
    with pytest.raises(ValueError, match="same length"):
        make_theta([ALPHA, KAPPA], {"alpha": [0, 1], "kappa": [1, 1, 1]})
    with pytest.raises(ValueError, match="default 5.0 is outside"):
        Parameter("x", "", 5.0, (0.0, 1.0))


def test_likelihood_shapes_and_conversions():
    logp = torch.log(torch.tensor([[0.1, 0.01], [1e-3, 1e-4]], dtype=torch.float64))
    result = Likelihood(logp, torch.zeros_like(logp), torch.tensor([[0.0], [1.0]]))
    torch.testing.assert_close(result.neg_log10, torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    torch.testing.assert_close(result.total(), logp.sum(0))
    with pytest.raises(ValueError, match=r"must both be \(E, T\)"):
        Likelihood(logp, torch.zeros(2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"theta must be \(T, P\) with T = 2"):
        Likelihood(logp, torch.zeros_like(logp), torch.zeros(3, 1))


def test_registered_toy_backends_satisfy_the_protocols():
    assert isinstance(memzoo.create("process", "toy-muon"), Process)
    assert isinstance(memzoo.create("transfer", "toy-smear"), TransferModel)
    assert isinstance(memzoo.create("sampler", "toy-gauss"), Sampler)
    assert isinstance(memzoo.create("acceptance", "mlp", hard_dim=2), AcceptanceModel)
    assert isinstance(memzoo.create("likelihood", "toy-analytic"), LikelihoodModel)
    assert not isinstance(memzoo.create("acceptance", "constant"), TransferModel)


def test_reco_measure_dims():
    kind = torch.tensor([[22, 13, 11, 5, 1, 12, 0]])
    assert reco_measure_dims(kind).tolist() == [[3, 3, 3, 4, 4, 2, 0]]


def test_process_base_checks_theta():
    process = memzoo.create("process", "toy-muon")
    with pytest.raises(ValueError, match=r"must be \(T, 1\) with columns \['slope'\]"):
        process.dsigma(torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"slope = 0.5 1/GeV is outside \[0.01, 0.2\]"):
        process.dsigma(torch.zeros(2, 3), torch.tensor([[0.5]]))
    coords = torch.tensor([[30.0, 0.0, 0.0], [10.0, 0.0, 0.0], [30.0, 3.0, 0.0]], dtype=torch.float64)
    d = process.dsigma(coords, process.theta(slope=0.05))
    assert d[1:, 0].tolist() == [0.0, 0.0]  # below pT_min, outside |η| < 2.4
    expect = 100 * 0.05 * math.exp(-0.05 * 10) / (4.8 * 2 * math.pi)
    assert float(d[0, 0]) == pytest.approx(expect, rel=1e-12)


def test_parameter_period_must_match_its_range():
    from memzoo.protocols import Parameter

    assert Parameter("alpha", "deg", 0.0, (-180.0, 180.0), period=360.0).period == 360.0
    with pytest.raises(ValueError, match="period 180.0 must be positive and equal to the range's width 360.0"):
        Parameter("alpha", "deg", 0.0, (-180.0, 180.0), period=180.0)
    thj = memzoo.create("process", "thj")
    assert thj.parameters[0].period == 360.0
