"""Tests of memzoo.simulation.decays: t → b W (W → q q̄′, μ ν), H → γγ on tHj records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from test_hard_record import ToyPDF

from memzoo.physics.constants import SM
from memzoo.physics.lorentz import boost_to_rest_frame, mass_squared
from memzoo.processes.drell_yan import DrellYan
from memzoo.processes.thj import THj
from memzoo.simulation.decays import DecayConfig, decay, helicity_fractions
from memzoo.simulation.hard import colour_flow_ok

N_HARD, N_COPIES = 1000, 40  # 40 000 decays of 1 000 hard events


@pytest.fixture(scope="module")
def hard():
    proc = THj(THj.Config(), pdf=ToyPDF())
    gen = torch.Generator().manual_seed(11)
    coords, _ = proc.from_unit(torch.rand(4 * N_HARD, 7, generator=gen, dtype=torch.float64))
    coords = coords[proc.dsigma(coords, proc.theta())[:, 0] > 0][:N_HARD]
    rec = proc.hard_record(coords, proc.theta(), generator=gen)
    return rec[torch.arange(len(rec)).repeat(N_COPIES)]


@pytest.fixture(scope="module", params=["hadronic", "leptonic"])
def decayed(request, hard):
    return request.param, decay(hard, request.param, generator=torch.Generator().manual_seed(12))


def _rows(rec, pdg_abs: set[int], status: int = 1) -> torch.Tensor:
    """(B,) column of the single particle with |pdg| in ``pdg_abs`` and ``status`` per event."""
    hit = rec.mask & (rec.status == status) & torch.isin(rec.pdg.abs(), torch.tensor(sorted(pdg_abs)))
    assert (hit.sum(1) == 1).all()
    return hit.long().argmax(1)


def _take(x: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    return x[torch.arange(len(col)), col]


def test_structure_balance_masses_and_colours(decayed) -> None:
    channel, rec = decayed
    energy = rec.p[..., 0].abs().amax(-1)
    assert (rec.momentum_imbalance().abs().amax(-1) < 1e-9 * energy).all()
    # the top and Higgs are now status 2, each final particle on its mass shell
    assert (rec.status[:, 2:4] == 2).all() and rec.mask.all()
    final = rec.final
    m2 = mass_squared(rec.p)
    massless = m2.abs() < 1e-12 * rec.p[..., 0] ** 2
    b = rec.pdg.abs() == 5
    b_out = final & b
    assert torch.allclose(m2[b_out].sqrt(), torch.full_like(m2[b_out], 4.7), rtol=1e-9)
    assert (massless | ~final | b_out).all()
    assert torch.allclose(m2[:, 2].sqrt(), torch.full_like(m2[:, 2], SM.m_t), rtol=1e-9)
    # mothers: b, W → top row 3; W products → W row; γγ → H row 4, with m_γγ = m_H
    w = _rows(rec, {24}, status=2)
    assert (_take(rec.mothers, w) == 3).all()
    products = rec.mothers[..., 0] == (w + 1)[:, None]
    assert (products.sum(1) == 2).all()
    m_w2 = mass_squared(torch.where(products[..., None], rec.p, 0.0).sum(1))
    assert torch.allclose(m_w2, mass_squared(_take(rec.p, w)), rtol=1e-8)
    photons = rec.pdg == 22
    assert (photons.sum(1) == 2).all() and (rec.mothers[photons] == 4).all()
    m_yy = torch.sqrt(mass_squared(torch.where(photons[..., None], rec.p, 0.0).sum(1)))
    assert torch.allclose(m_yy, torch.full_like(m_yy, SM.m_h), rtol=1e-9)
    # colours: b inherits the top's tag, a hadronic W gets a fresh pair, the flow closes
    assert (_take(rec.colour, _rows(rec, {5}))[:, 0] == rec.colour[:, 2, 0]).all()
    assert colour_flow_ok(rec).all()
    w_products_coloured = (rec.colour[products] > 0).any(-1)
    assert w_products_coloured.all() if channel == "hadronic" else not w_products_coloured.any()


def test_w_mass_follows_truncated_breit_wigner(decayed) -> None:
    """KS test of m_W² against the Breit-Wigner CDF truncated to [0, (m_t - m_b)²]: p > 0.001."""
    _, rec = decayed
    m2 = mass_squared(_take(rec.p, _rows(rec, {24}, status=2)))
    cfg = DecayConfig()
    mg = cfg.m_w * cfg.width_w
    lo, hi = math.atan(-(cfg.m_w**2) / mg), math.atan(((SM.m_t - cfg.m_b) ** 2 - cfg.m_w**2) / mg)
    assert m2.min() >= 0 and m2.max() <= (SM.m_t - cfg.m_b) ** 2
    result = stats.kstest(m2.numpy(), lambda x: (np.arctan((x - cfg.m_w**2) / mg) - lo) / (hi - lo))
    assert result.pvalue > 1e-3, result


def _cos_theta_star(rec) -> torch.Tensor:
    """cosθ* of the down-type W product (ℓ⁺, d̄, s̄ / ℓ⁻, d, s) against the W direction in the top frame."""
    top = rec.p[:, 2]
    w = _take(rec.p, _rows(rec, {24}, status=2))
    down = rec.mask & (rec.status == 1) & torch.isin(rec.pdg.abs(), torch.tensor([1, 3, 13]))
    down &= torch.sign(rec.pdg) == -torch.sign(rec.pdg[:, 2:3])  # d̄ from t, d from t̄
    assert (down.sum(1) == 1).all()
    k = _take(rec.p, down.long().argmax(1))
    w_t, k_t = boost_to_rest_frame(w, top), boost_to_rest_frame(k, top)
    k_w = boost_to_rest_frame(k_t, w_t)
    axis = w_t[:, 1:] / torch.linalg.norm(w_t[:, 1:], dim=-1, keepdim=True)
    return (k_w[:, 1:] * axis).sum(-1) / torch.linalg.norm(k_w[:, 1:], dim=-1)


def test_decay_angle_follows_lo_helicity_fractions(decayed) -> None:
    """Binned χ² (10 bins) of cosθ* against Σ_events of the LO density with F_0(m_W): p > 0.001."""
    _, rec = decayed
    cos = _cos_theta_star(rec)
    edges = torch.linspace(-1, 1, 11, dtype=torch.float64)
    counts = torch.histc(cos, bins=10, min=-1, max=1)
    m_w = torch.sqrt(mass_squared(_take(rec.p, _rows(rec, {24}, status=2))))
    f_l, f_0, _ = helicity_fractions(torch.full_like(m_w, SM.m_t), m_w)
    lo, hi = edges[:-1], edges[1:]
    # ∫ 3/8 (1-c)² dc and ∫ 3/4 (1-c²) dc over each bin
    left = ((1 - lo) ** 3 - (1 - hi) ** 3) / 8
    long = 0.75 * ((hi - lo) - (hi**3 - lo**3) / 3)
    expected = (f_l[:, None] * left + f_0[:, None] * long).sum(0)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.ppf(0.999, 9), chi2
    # and the shape is not flat: F_L ≈ 0.30 shows as a backward excess
    assert counts[:5].sum() > 1.1 * counts[5:].sum()
    # each top flavour separately too (CP: same distribution for t̄ → b̄ W⁻ with ℓ⁻, d, s)
    for sign in (1, -1):
        sel = torch.sign(rec.pdg[:, 2]) == sign
        assert abs(float(cos[sel].mean()) - float((-(f_l[sel]) / 2).mean())) < 4 / math.sqrt(3 * int(sel.sum()))


def test_hadronic_flavour_fractions(decayed) -> None:
    """u d̄ and c s̄ (and conjugates) each half of the W decays within 4σ; never mixed."""
    channel, rec = decayed
    w = _rows(rec, {24}, status=2)
    products = rec.mothers[..., 0] == (w + 1)[:, None]
    pdgs = torch.sort(rec.pdg[products].view(-1, 2).abs(), dim=-1).values
    if channel == "leptonic":
        assert (pdgs == torch.tensor([13, 14])).all()
        return
    ud = (pdgs == torch.tensor([1, 2])).all(-1)
    cs = (pdgs == torch.tensor([3, 4])).all(-1)
    assert (ud | cs).all()
    n = len(ud)
    assert abs(float(ud.sum()) - n / 2) < 4 * math.sqrt(n / 4)
    # charges: up-type quark of a W⁺ is a quark, of a W⁻ an antiquark
    up = rec.pdg[products].view(-1, 2)
    up = torch.where(up.abs() % 2 == 0, up, 0).sum(-1)
    assert (torch.sign(up) == torch.sign(_take(rec.pdg, w))).all()


def test_drell_yan_passes_through_and_bad_channel_rejected() -> None:
    dy = DrellYan(DrellYan.Config())
    coords, _ = dy.from_unit(torch.rand(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    coords = coords[dy.dsigma(coords, dy.theta())[:, 0] > 0]
    rec = dy.hard_record(coords, dy.theta(), generator=torch.Generator().manual_seed(2))
    assert decay(rec) is rec
    with pytest.raises(ValueError, match="must be one of"):
        decay(rec, channel="invisible")


def test_decay_is_reproducible_and_idempotent(hard) -> None:
    small = hard[:50]
    a = decay(small, generator=torch.Generator().manual_seed(3))
    b = decay(small, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.p, b.p) and torch.equal(a.pdg, b.pdg)
    assert decay(a) is a  # nothing left at status 1 to decay
