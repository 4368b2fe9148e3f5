"""Tests of hard event records (memzoo.simulation.hard, DrellYan.hard_record, THj.hard_record)."""

from __future__ import annotations

import pytest
import torch

from memzoo.physics.constants import SM
from memzoo.physics.lorentz import mass_squared
from memzoo.processes.drell_yan import DrellYan
from memzoo.processes.thj import THj
from memzoo.simulation.hard import colour_flow_ok

# χ² quantile at p = 0.001, by degrees of freedom (scipy.stats.chi2.ppf(0.999, dof))
CHI2_999 = {dof: q for dof, q in enumerate([0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88])}


class ToyPDF:
    """Smooth analytic x f(x) with distinct u, d, c, s, b (no Q² dependence), cheap to evaluate."""

    def xfxq2_all(self, x: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
        sea = 0.2 * (1 - x) ** 7
        scale = torch.tensor([0.3, 0.5, 0.8, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 0.8, 0.5, 0.3, 0.1], dtype=x.dtype)
        out = sea[..., None] * scale
        out[..., 7] += x**0.5 * (1 - x) ** 4  # valence d
        out[..., 8] += 2 * x**0.5 * (1 - x) ** 3  # valence u
        return out


@pytest.fixture(scope="module")
def thj() -> THj:
    return THj(THj.Config(), pdf=ToyPDF())


def _unweighted(process, n_points: int, n_events: int, seed: int) -> torch.Tensor:
    """An unweighted sample from dσ: uniform points resampled ∝ dσ·J (with replacement)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n_points, process.hard_dim, generator=gen, dtype=torch.float64)
    coords, jac = process.from_unit(u)
    w = torch.nan_to_num(process.dsigma(coords, process.theta())[:, 0] * jac).clamp(min=0)
    return coords[torch.multinomial(w, n_events, replacement=True, generator=gen)]


def _channel_index(process, record) -> torch.Tensor:
    """Channel of every record, matched against ``process.channels``."""
    table = process.channels
    if table.shape[1] == 2:  # Drell-Yan: the two incoming partons
        key = record.pdg[:, :2]
    else:  # tHj: partons, light quark (row 5), top (row 3)
        key = torch.stack([record.pdg[:, 0], record.pdg[:, 1], record.pdg[:, 4], record.pdg[:, 2]], -1)
    match = (key[:, None, :] == table[None]).all(-1)
    assert (match.sum(-1) == 1).all()
    return match.long().argmax(-1)


@pytest.mark.parametrize("name", ["dy", "thj"])
def test_record_is_complete_balanced_and_on_shell(name: str, request) -> None:
    process = request.getfixturevalue(name)
    coords = _unweighted(process, 4000, 500, seed=1)
    rec = process.hard_record(coords, process.theta(), generator=torch.Generator().manual_seed(2))
    energy = rec.p[..., 0].abs().amax(-1, keepdim=True)
    assert rec.momentum_imbalance().abs().max() < 1e-9 * energy.min()
    masses = torch.sqrt(mass_squared(rec.p).clamp(min=0))
    # massless means |m²| at the rounding level of E², i.e. m ≲ 1e-7 E
    massless = mass_squared(rec.p).abs() < 1e-13 * rec.p[..., 0] ** 2
    assert massless[:, :2].all()
    n_final = rec.pdg.shape[1] - 2
    assert (rec.status == torch.tensor([-1, -1] + [1] * n_final)).all()
    assert (rec.mothers[:, 2:] == torch.tensor([1, 2])).all() and (rec.mothers[:, :2] == 0).all()
    assert rec.mask.all() and (rec.weight == 1).all()
    # incoming partons: massless, x₁ along +z, x₂ along -z, x ≤ 1
    assert (rec.p[:, :2, 1:3] == 0).all() and (rec.p[:, 0, 3] > 0).all() and (rec.p[:, 1, 3] < 0).all()
    assert torch.allclose(rec.p[:, :2, 0], rec.p[:, :2, 3].abs())
    assert (rec.p[:, :2, 0] < 0.5 * process.config.sqrt_s).all()
    assert colour_flow_ok(rec).all()
    if name == "dy":
        assert (rec.pdg[:, 2:] == torch.tensor([13, -13])).all()
        assert massless[:, 2:].all()
        m_mumu = torch.sqrt(mass_squared(rec.p[:, 2:].sum(1)))
        assert torch.allclose(rec.scale, m_mumu, rtol=1e-10)
        assert (rec.pdg[:, 0] == -rec.pdg[:, 1]).all()
    else:
        assert torch.allclose(masses[:, 2], torch.full_like(masses[:, 2], SM.m_t), rtol=1e-9)
        assert torch.allclose(masses[:, 3], torch.full_like(masses[:, 3], SM.m_h), rtol=1e-9)
        assert massless[:, 4].all() and (rec.scale == SM.m_t).all()
        # b (or b̄) → t (or t̄): the heavy line keeps its colour tag, the light line too
        heavy_row = torch.where(rec.pdg[:, 0].abs() == 5, 0, 1)
        heavy_colour = rec.colour[torch.arange(len(rec)), heavy_row]
        assert (heavy_colour == rec.colour[:, 2]).all() and (rec.colour[:, 3] == 0).all()
        assert (torch.sign(rec.pdg[:, 2]) == torch.sign(rec.pdg.gather(1, heavy_row[:, None])[:, 0])).all()


@pytest.mark.parametrize("name", ["dy", "thj"])
def test_channel_fractions_follow_per_channel_dsigma(name: str, request) -> None:
    """Counts per channel match Σ_events p_c(x) (χ², p > 0.001) and σ_c/σ within 4 standard errors."""
    process = request.getfixturevalue(name)
    n = 3000
    coords = _unweighted(process, 8000, n, seed=3)
    rec = process.hard_record(coords, process.theta(), generator=torch.Generator().manual_seed(4))
    counts = torch.bincount(_channel_index(process, rec), minlength=len(process.channels)).double()
    terms = process.channel_terms(coords) @ process.coefficients(process.theta())[0]  # (n, C)
    prob = terms.clamp(min=0) / terms.clamp(min=0).sum(-1, keepdim=True)
    expected = prob.sum(0)
    # merge rare channels into one bin so that the χ² approximation holds
    big = expected > 10
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    obs, exp = obs[exp > 0], exp[exp > 0]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = len(obs) - 1
    assert 2 <= dof and chi2 < (CHI2_999[dof] if dof in CHI2_999 else dof + 4.5 * (2 * dof) ** 0.5), (chi2, dof)
    # the sample's channel fractions estimate σ_c/σ (from the same unweighted events' mean p_c)
    frac = counts / n
    err = torch.sqrt(expected / n * (1 - expected / n) / n) + 1e-12
    assert ((frac - expected / n).abs() < 4 * err + 1e-3).all()


def test_thj_top_and_antitop_and_per_event_theta(thj: THj) -> None:
    coords = _unweighted(thj, 4000, 400, seed=5)
    theta = thj.theta(alpha=torch.linspace(-180, 180, 400).tolist())
    rec = thj.hard_record(coords, theta, generator=torch.Generator().manual_seed(6))
    tops = rec.pdg[:, 2]
    assert (tops == 6).any() and (tops == -6).any()
    only_top = THj(THj.Config(tops="top"), pdf=ToyPDF()).hard_record(coords, thj.theta())
    assert (only_top.pdg[:, 2] == 6).all() and len(THj(THj.Config(tops="top"), pdf=ToyPDF()).channels) == 8
    with pytest.raises(ValueError, match=r"\(1, P\) or \(B, P\)"):
        thj.hard_record(coords, thj.theta(alpha=[0.0, 10.0]))


def test_reproducible_and_rejects_points_without_cross_section(dy: DrellYan) -> None:
    coords = _unweighted(dy, 2000, 200, seed=7)
    a = dy.hard_record(coords, dy.theta(), generator=torch.Generator().manual_seed(8))
    b = dy.hard_record(coords, dy.theta(), generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.pdg, b.pdg) and torch.equal(a.p, b.p)
    outside = coords.clone()
    outside[0, 0] = 300.0  # m_μμ far above the window: dσ = 0
    with pytest.raises(ValueError, match="Event 0 has no positive partonic channel weight"):
        dy.hard_record(outside, dy.theta())


def test_channel_terms_sum_to_dsigma_terms(dy: DrellYan, thj: THj) -> None:
    for process in (dy, thj):
        coords = _unweighted(process, 2000, 100, seed=9)
        terms = process.channel_terms(coords)
        assert terms.shape == (100, len(process.channels), process.n_terms)
        assert torch.allclose(terms.sum(1), process.dsigma_terms(coords), rtol=1e-12, atol=0)
