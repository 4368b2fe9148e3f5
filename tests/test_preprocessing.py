"""Preprocessing transforms: round trips, log-Jacobians against autograd, serialisation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memzoo.bundle import Bundle, load_bundle_dir, save_bundle_dir
from memzoo.events import from_ptetaphim
from memzoo.preprocessing import (
    TRANSFORMS,
    Chain,
    DeltaPhi,
    LogMass,
    LogPt,
    PtEtaPhiM,
    Standardise,
    Transform,
    load_transform,
)

B, N = 3, 3


def momenta(seed: int, massive: bool = True, pad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, N, 4)`` float64 four-momenta (padding zeros) and their ``(B, N)`` mask; object 0 present."""
    g = torch.Generator().manual_seed(seed)
    pt = 5 + 200 * torch.rand(B, N, generator=g, dtype=torch.float64)
    eta = 4 * torch.rand(B, N, generator=g, dtype=torch.float64) - 2
    phi = (2 * torch.rand(B, N, generator=g, dtype=torch.float64) - 1) * 3.1
    m = (1 + 30 * torch.rand(B, N, generator=g, dtype=torch.float64)) * massive
    mask = (torch.rand(B, N, generator=g) > 0.3) | (not pad)
    mask[:, 0] = True
    p = from_ptetaphim(torch.stack([pt, eta, phi, m], -1))
    return torch.where(mask[..., None], p, 0.0), mask


def features(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pT, η, φ, m) per object, the input of the per-column transforms."""
    p, mask = momenta(seed)
    return PtEtaPhiM().forward(p, mask)[0], mask


def autograd_log_det(transform: Transform, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` log |det ∂y/∂x| per event from the full autograd Jacobian (block-diagonal in events)."""
    jac = torch.autograd.functional.jacobian(lambda v: transform.forward(v, mask)[0], x)
    size = x[0].numel()
    jac = jac.reshape(x.shape[0], size, x.shape[0], size)
    return torch.stack([torch.linalg.slogdet(jac[b, :, b, :])[1] for b in range(x.shape[0])])


def check(transform: Transform, x: torch.Tensor, mask: torch.Tensor) -> None:
    y, log_det = transform.forward(x, mask)
    assert y.shape == x.shape and log_det.shape == (x.shape[0],) and y.dtype == x.dtype
    torch.testing.assert_close(transform.inverse(y, mask), x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(log_det, autograd_log_det(transform, x, mask), rtol=1e-7, atol=1e-7)
    assert torch.equal(y[~mask], x[~mask])  # padding passes through


SEEDS = st.integers(0, 2**31 - 1)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS)
def test_ptetaphim_energy_measure(seed):
    check(PtEtaPhiM(), *momenta(seed))


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, massive=st.booleans())
def test_ptetaphim_mass_measure_is_finite_for_massless_objects(seed, massive):
    p, mask = momenta(seed, massive, pad=False)  # no padding: every entry enters the 4N x 4N Jacobian
    t = PtEtaPhiM(measure="m")
    y, log_det = t.forward(p, mask)
    assert torch.isfinite(log_det).all()
    # against autograd of (px, py, pz, m) -> (pT, η, φ, m), with E = sqrt(|p|² + m²)
    q = torch.cat([p[..., 1:], y[..., 3:]], -1)

    def as_pm(v: torch.Tensor) -> torch.Tensor:
        e = torch.sqrt((v[..., :3] ** 2).sum(-1) + v[..., 3] ** 2)
        return t.forward(torch.cat([e[..., None], v[..., :3]], -1), mask)[0]

    if massive:
        jac = torch.autograd.functional.jacobian(as_pm, q).reshape(B, 4 * N, B, 4 * N)
        expected = torch.stack([torch.linalg.slogdet(jac[b, :, b, :])[1] for b in range(B)])
        torch.testing.assert_close(log_det, expected, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(t.inverse(y, mask)[..., 1:], p[..., 1:], rtol=1e-9, atol=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, offset=st.floats(0.01, 10.0))
def test_log_pt_and_log_mass(seed, offset):
    x, mask = features(seed)
    check(LogPt(), x, mask)
    check(LogMass(offset=offset), x, mask)


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, reference=st.integers(0, N - 1))
def test_delta_phi_wraps_and_preserves_volume(seed, reference):
    x, mask = features(seed)
    mask[:, reference] = True
    t = DeltaPhi(reference=reference)
    check(t, x, mask)
    y = t.forward(x, mask)[0]
    assert (y[..., 2] >= -math.pi).all() and (y[..., 2] < math.pi).all()
    torch.testing.assert_close(y[:, reference], x[:, reference])


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, share=st.booleans())
def test_standardise_fits_present_entries(seed, share):
    x, mask = features(seed)
    t = Standardise(share_objects=share).fit(x, mask)
    check(t, x, mask)
    y = t.forward(x, mask)[0]
    if share:
        torch.testing.assert_close(y[mask].mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-9, rtol=0)
    flat = torch.randn(7, 5, dtype=torch.float64) * 3 + 1
    check(Standardise().fit(flat), flat, torch.ones(7, dtype=torch.bool))


def reco_chain() -> Chain:
    return Chain(PtEtaPhiM(), LogPt(), LogMass(offset=0.5), DeltaPhi(reference=0), Standardise(share_objects=True))


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_chain_log_det_is_the_sum(seed):
    p, mask = momenta(seed)
    chain = reco_chain().fit(p, mask)
    check(chain, p, mask)
    x, total = p, torch.zeros(B, dtype=torch.float64)
    for t in chain.transforms:
        x, step = t.forward(x, mask)
        total += step
    torch.testing.assert_close(chain.forward(p, mask)[1], total)


def test_fitted_chain_serialises_through_a_bundle(tmp_path):
    p, mask = momenta(0)
    chain = reco_chain().fit(p, mask)
    state = chain.to_dict("reco.")
    assert state["reco.transform"] == "chain" and isinstance(state["reco.4.mean"], torch.Tensor)
    assert not any(isinstance(v, Transform) for v in state.values())
    bundle = Bundle(process="drell-yan", preprocessing={**state, **Standardise().fit(p[:, 0]).to_dict("hard.")})
    loaded = load_bundle_dir(save_bundle_dir(bundle, tmp_path / "bundle")).preprocessing
    rebuilt = load_transform(loaded, "reco.")
    assert [type(t) for t in rebuilt.transforms] == [type(t) for t in chain.transforms]
    for (a, la), (b, lb) in zip([chain.forward(p, mask)], [rebuilt.forward(p, mask)]):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(la, lb)
    assert isinstance(load_transform(loaded, "hard."), Standardise)


def test_errors_say_what_to_fix():
    p, mask = momenta(1)
    with pytest.raises(ValueError, match="not fitted"):
        Standardise().forward(p, mask)
    with pytest.raises(ValueError, match="not fitted"):
        Standardise().to_dict()
    with pytest.raises(ValueError, match="known transforms"):
        load_transform({"transform": "pickle"})
    with pytest.raises(ValueError, match="mask must be a bool tensor of shape"):
        LogPt().forward(p, mask[:, :2])
    with pytest.raises(ValueError, match="measure must be"):
        PtEtaPhiM(measure="pT")
    with pytest.raises(ValueError, match="offset must be > 0"):
        LogMass(offset=0.0)
    assert {"chain", "ptetaphim", "log_pt", "log_mass", "delta_phi", "standardise"} <= set(TRANSFORMS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype_follow_the_input(dtype):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    p, mask = momenta(2)
    chain = reco_chain().fit(p, mask)
    y, log_det = chain.forward(p.to(device, dtype), mask.to(device))
    assert y.device.type == device and y.dtype == dtype and log_det.dtype == dtype
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all()


def test_fitted_preprocessing_travels_in_a_bundle(tmp_path):
    """A fitted chain saved as a bundle's preprocessing (safetensors + JSON) is rebuilt exactly."""
    from memzoo.bundle import Bundle, load_bundle_dir, save_bundle_dir
    from memzoo.preprocessing import Chain, LogPt, PtEtaPhiM, Standardise, load_transform

    gen = torch.Generator().manual_seed(0)
    p = torch.randn(64, 3, 4, generator=gen, dtype=torch.float64) * 30
    p[..., 0] = p[..., 1:].norm(dim=-1) + 5.0
    mask = torch.ones(64, 3, dtype=torch.bool)
    chain = Chain(PtEtaPhiM(), LogPt(), Standardise())
    chain.fit(p, mask)
    folder = save_bundle_dir(Bundle("toy-muon", preprocessing=chain.to_dict()), tmp_path / "b")
    rebuilt = load_transform(load_bundle_dir(folder).preprocessing)
    y, logdet = chain.forward(p, mask)
    y2, logdet2 = rebuilt.forward(p, mask)
    torch.testing.assert_close(y2, y)
    torch.testing.assert_close(logdet2, logdet)
