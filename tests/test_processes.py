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


def test_per_event_theta_sampling_follows_each_theta():
    """Events sampled at alternating θ_i follow dσ(x|θ_i) each.

    Observable: m_μμ bins × the sign of cos θ* · y_μμ (the forward-backward asymmetry, which
    pp collisions keep through the boost). sin²θ_eff = 0.1 and 0.4 change the Z vector
    couplings and with them A_FB and the peak-to-continuum ratio: each group must match its
    own θ (χ² < 30 for 9 d.o.f.) and differ from the other (expected χ² ≈ 200).
    """
    import torch

    dy = memzoo.create("process", "drell-yan")
    n = 4000
    theta = dy.theta(sin2theta_eff=[0.1, 0.4] * (n // 2))
    coords = dy.sample(n, theta, generator=torch.Generator().manual_seed(3), n_adapt_points=5000, n_scan=50_000)
    assert coords.shape == (n, 4) and dy.last_sample_info["overweight_fraction"] < 1e-3

    def bins(c):
        m = 2 * c[:, 0] * torch.cosh((c[:, 1] - c[:, 2]) / 2)
        forward = torch.tanh((c[:, 1] - c[:, 2]) / 2) * (c[:, 1] + c[:, 2]) > 0
        return torch.bucketize(m, torch.tensor([85.0, 89, 93, 97], dtype=torch.float64)) * 2 + forward.long()

    u = torch.rand(200_000, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ref, jac = dy.from_unit(u)

    def expected(value, count):
        w = dy.dsigma(ref, dy.theta(sin2theta_eff=value))[:, 0] * jac
        return count * torch.bincount(bins(ref), weights=w, minlength=10) / w.sum()

    for value, other, rows in ((0.1, 0.4, slice(0, None, 2)), (0.4, 0.1, slice(1, None, 2))):
        counts = torch.bincount(bins(coords[rows]), minlength=10).double()
        own, wrong = expected(value, n // 2), expected(other, n // 2)
        chi2_own = float(((counts - own) ** 2 / own).sum())
        chi2_wrong = float(((counts - wrong) ** 2 / wrong).sum())
        assert chi2_own < 30, (value, chi2_own)
        assert chi2_wrong > 80, (value, chi2_wrong)


def test_integration_and_sampling_are_functions_of_the_seed():
    import torch

    process = memzoo.create("process", "drell-yan")
    theta = process.theta()
    a = process.cross_section(theta, n_points=2000, n_adapt=2, n_iter=2, seed=5)
    b = process.cross_section(theta, n_points=2000, n_adapt=2, n_iter=2, seed=5)
    c = process.cross_section(theta, n_points=2000, n_adapt=2, n_iter=2, seed=6)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    kw = dict(n_adapt_points=2000, n_scan=5000)
    x = process.sample(50, theta, generator=torch.Generator().manual_seed(1), **kw)
    y = process.sample(50, theta, generator=torch.Generator().manual_seed(1), **kw)
    z = process.sample(50, theta, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(x, y) and not torch.equal(x, z)
