"""Kinematics helpers and the Particles container."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.events import (
    Particles,
    delta_phi,
    delta_r,
    from_ptetaphim,
    invariant_mass,
    mass,
    to_ptetaphim,
    wrap_phi,
)

finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    pt=st.floats(0.1, 5000, **finite),
    eta=st.floats(-5, 5, **finite),
    phi=st.floats(-math.pi, math.pi * 0.999999, **finite),
    m=st.floats(0, 500, **finite),
)
def test_ptetaphim_round_trip(pt, eta, phi, m):
    x = torch.tensor([[pt, eta, phi, m]], dtype=torch.float64)
    p = from_ptetaphim(x)
    back = to_ptetaphim(p)
    # mass from E² - p² loses precision when m << |p| (cancellation): compare m² relative to E².
    torch.testing.assert_close(back[:, :3], x[:, :3], rtol=1e-9, atol=1e-9)
    assert abs(back[0, 3] ** 2 - m**2) <= 1e-9 * float(p[0, 0]) ** 2 + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e4, 1e4, **finite), st.floats(-1e4, 1e4, **finite))
def test_delta_phi_wrapped(a, b):
    d = float(delta_phi(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    assert -math.pi <= d < math.pi
    # the wrapped difference differs from a - b by a multiple of 2π
    k = (a - b - d) / (2 * math.pi)
    assert abs(k - round(k)) < 1e-6


def test_known_values():
    p = torch.tensor([[50.0, 30.0, 40.0, 0.0]], dtype=torch.float64)
    pt, eta, phi, m = to_ptetaphim(p)[0]
    assert float(pt) == pytest.approx(50.0) and float(eta) == pytest.approx(0.0)
    assert float(phi) == pytest.approx(math.atan2(40, 30)) and float(m) == pytest.approx(0.0, abs=1e-6)
    # Z -> μμ back to back at rest: m = 2E
    mu1 = torch.tensor([45.594, 0.0, 0.0, 45.594], dtype=torch.float64)
    mu2 = torch.tensor([45.594, 0.0, 0.0, -45.594], dtype=torch.float64)
    assert float(invariant_mass(mu1, mu2)) == pytest.approx(91.188)
    assert float(wrap_phi(torch.tensor(3 * math.pi))) == pytest.approx(-math.pi)
    a = from_ptetaphim(torch.tensor([[40.0, 0.5, 3.1, 0.0]], dtype=torch.float64))
    b = from_ptetaphim(torch.tensor([[40.0, 0.2, -3.1, 0.0]], dtype=torch.float64))
    assert float(delta_r(a, b)[0]) == pytest.approx(math.hypot(0.3, 2 * math.pi - 6.2))
    spacelike = torch.tensor([[1.0, 2.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(mass(spacelike)[0]) == pytest.approx(-math.sqrt(3))


def _particles(b=3, n=2):
    p = torch.zeros(b, n, 4, dtype=torch.float64)
    p[..., 0] = 50.0
    p[..., 3] = 10.0
    return p, torch.full((b, n), 13), torch.ones(b, n, dtype=torch.bool)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_particles_rejects_nonfinite(bad):
    p, kind, mask = _particles()
    p[2, 1, 2] = bad
    with pytest.raises(ValueError, match=r"Particles\.p .*non-finite.*row 2, object 1"):
        Particles(p, kind, mask)


def test_particles_ignores_masked_padding():
    p, kind, mask = _particles()
    p[1, 1] = math.nan
    mask[1, 1] = False
    kind[1, 1] = 0
    reco = Particles(p, kind, mask)
    assert reco.multiplicity.tolist() == [2, 1, 2]


def test_particles_rejects_negative_energy():
    p, kind, mask = _particles()
    p[1, 0, 0] = -5.0
    with pytest.raises(ValueError, match=r"negative energy .* row 1, object 0"):
        Particles(p, kind, mask)


def test_particles_rejects_mismatched_shapes():
    p, kind, mask = _particles()
    with pytest.raises(ValueError, match=r"Particles\.kind has shape \(3, 3\)"):
        Particles(p, torch.full((3, 3), 13), mask)
    with pytest.raises(ValueError, match=r"Particles\.mask has shape \(2, 2\)"):
        Particles(p, kind, mask[:2])
    with pytest.raises(ValueError, match=r"Particles\.p must have shape \(B, N, 4\)"):
        Particles(p[..., :3], kind, mask)


def test_particles_rejects_bad_dtypes_and_codes():
    p, kind, mask = _particles()
    with pytest.raises(TypeError, match="mask must be a bool"):
        Particles(p, kind, mask.int())
    with pytest.raises(TypeError, match="kind must be an integer"):
        Particles(p, kind.double(), mask)
    kind[0, 1] = 42
    with pytest.raises(ValueError, match=r"unknown object code 42 at row 0, object 1"):
        Particles(p, kind, mask)


def test_particles_container():
    p, kind, mask = _particles(b=4)
    reco = Particles(p, kind, mask)
    assert len(reco[1:3]) == 2 and len(reco[0]) == 1 and len(reco[torch.tensor([True, False, True, True])]) == 3
    small = Particles(p[:, :1], kind[:, :1], mask[:, :1])
    both = Particles.cat([reco, small])
    assert both.p.shape == (8, 2, 4) and both.multiplicity.tolist() == [2] * 4 + [1] * 4
    assert both.count(13).tolist() == [2] * 4 + [1] * 4
    assert reco.to(torch.float32).p.dtype == torch.float32
    assert "events=4" in repr(reco)
