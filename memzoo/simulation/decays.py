"""Leading-order decays of the hard final state: t → b W (W → q q̄′ or μ ν_μ) and H → γγ.

Kinematics, batched over events:

* The top keeps its momentum (on shell as given, unpolarised): the W flies isotropically in the
  top rest frame. Its mass is drawn from a relativistic Breit-Wigner in m² (m_W, Γ_W of
  :mod:`memzoo.physics.constants`) truncated to the kinematically allowed range
  [m₁ + m₂, m_t − m_b] (massless W decay products, so from 0).
* The W decay angle θ* is that of the down-type decay product (ℓ⁺, d̄, s̄ for W⁺; ℓ⁻, d, s for
  W⁻) in the W rest frame, measured against the W direction in the top rest frame. At LO with
  a massless b,

      1/N dN/dcosθ* = 3/8 F_L (1 − cosθ*)² + 3/4 F_0 sin²θ* + 3/8 F_R (1 + cosθ*)²,
      F_0 = m_t²/(m_t² + 2 m_W²),  F_L = 2 m_W²/(m_t² + 2 m_W²),  F_R = 0

  (Kane, Ladinsky & Yuan, Phys. Rev. D 45 (1992) 124; the same form holds for t̄ → b̄ W⁻ by CP).
  The three shapes are the densities of the minimum, median and maximum of three uniform
  numbers on [−1, 1], which is how cosθ* is drawn (no rejection, no root finding). F_0 uses
  each event's own W mass.
* H → γγ is isotropic in the H rest frame (scalar), on shell.

Record conventions (Les Houches): decayed particles become status 2; products are status 1
with both mothers pointing at the decayed particle's (1-based) row; the b inherits the top's
colour, a hadronic W's q q̄′ get a fresh colour tag. Events of processes without tops or Higgs
bosons (Drell-Yan) are returned unchanged. Rows are appended per decayable column of the
record, masked off in events where that column holds no decayable particle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from memzoo.physics.constants import SM
from memzoo.physics.lorentz import boost_from_rest_frame, mass_squared
from memzoo.physics.phase_space import breit_wigner_map, kallen, two_body_decay
from memzoo.simulation.hard import FIRST_COLOUR
from memzoo.simulation.record import FINAL, RESONANCE, EventRecord

__all__ = ["DecayConfig", "decay", "helicity_fractions"]

_CHANNELS = ("hadronic", "leptonic")


@dataclass(frozen=True)
class DecayConfig:
    """Settings of :func:`decay` (masses and widths in GeV).

    Attributes:
        m_w, width_w: W Breit-Wigner mass and width (MG5 ``sm``).
        m_b: b-quark mass in the top decay (MG5 ``sm`` default 4.7); W decay products, photons
            and the muon are massless.
    """

    m_w: float = SM.m_w
    width_w: float = SM.width_w
    m_b: float = 4.7

    def __post_init__(self) -> None:
        if not (self.m_w > 0 and self.width_w > 0 and self.m_b >= 0):
            raise ValueError(f"DecayConfig needs m_w > 0, width_w > 0 and m_b >= 0 (GeV), got {self}.")


def helicity_fractions(m_t: torch.Tensor, m_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """LO W helicity fractions ``(F_L, F_0, F_R)`` in t → b W with a massless b, each ``(...)``."""
    r = 2 * m_w**2 / m_t**2
    f_0 = 1 / (1 + r)
    return 1 - f_0, f_0, torch.zeros_like(f_0)


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    # drawn on the CPU so that a seeded CPU generator gives the same events on any device
    return torch.rand(shape, generator=generator, dtype=torch.float64).to(device)


def _isotropic(u: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(B, 3)`` from ``u (B, 2)`` uniform: cosθ = 2u₀ − 1, φ = 2π u₁."""
    cos = 2 * u[:, 0] - 1
    sin = torch.sqrt((1 - cos**2).clamp(min=0.0))
    phi = 2 * torch.pi * u[:, 1]
    return torch.stack([sin * torch.cos(phi), sin * torch.sin(phi), cos], -1)


def _rest(mass: torch.Tensor, q: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """Four-momenta ``(B, 4)`` of mass ``mass`` and momentum ``q`` along unit ``direction``."""
    return torch.cat([torch.sqrt(q**2 + mass**2)[:, None], q[:, None] * direction], -1)


def _w_decay_direction(axis: torch.Tensor, cos_star: torch.Tensor, phi_star: torch.Tensor) -> torch.Tensor:
    """Unit vectors ``(B, 3)`` at polar angle θ* and azimuth φ* about unit ``axis (B, 3)``."""
    # any vector not parallel to the axis spans the transverse plane
    helper = torch.zeros_like(axis)
    use_x = axis[:, 0].abs() < 0.9
    helper[:, 0] = use_x.to(axis.dtype)
    helper[:, 1] = (~use_x).to(axis.dtype)
    e1 = helper - (helper * axis).sum(-1, keepdim=True) * axis
    e1 = e1 / torch.linalg.norm(e1, dim=-1, keepdim=True)
    e2 = torch.linalg.cross(axis, e1)
    sin_star = torch.sqrt((1 - cos_star**2).clamp(min=0.0))
    transverse = torch.cos(phi_star)[:, None] * e1 + torch.sin(phi_star)[:, None] * e2
    return cos_star[:, None] * axis + sin_star[:, None] * transverse


def _top_decay(p_top, sign, channel, config, generator):
    """Momenta ``(B, 4, 4)`` of (b, W, f₁, f₂) and PDG codes ``(B, 4)`` for tops of PDG sign ``sign``."""
    b, device = p_top.shape[0], p_top.device
    u = _uniform((b, 9), generator, device)
    m_t = torch.sqrt(mass_squared(p_top).clamp(min=0.0))
    m_max = (m_t - config.m_b).clamp(min=1e-9)
    m2_w, _ = breit_wigner_map(u[:, 0], config.m_w, config.width_w, 0.0, m_max**2)
    m_w = torch.sqrt(m2_w)
    q = torch.sqrt(kallen(m_t**2, m2_w, config.m_b**2).clamp(min=0.0)) / (2 * m_t)
    n_w = _isotropic(u[:, 1:3])
    w_top = _rest(m_w, q, n_w)  # in the top rest frame
    b_top = _rest(torch.full_like(q, config.m_b), q, -n_w)
    # cosθ* of the down-type product: min / median / max of three uniforms for L / 0 / R
    f_l, f_0, _ = helicity_fractions(m_t, m_w)
    order = torch.sort(u[:, 3:6], dim=-1).values
    helicity = (u[:, 6] >= f_l).long() + (u[:, 6] >= f_l + f_0).long()
    cos_star = 2 * order.gather(1, helicity[:, None])[:, 0] - 1
    d = _w_decay_direction(n_w, cos_star, 2 * torch.pi * u[:, 7])
    half = 0.5 * m_w
    down_w = torch.cat([half[:, None], half[:, None] * d], -1)
    up_w = torch.cat([half[:, None], -half[:, None] * d], -1)
    down_top, up_top = boost_from_rest_frame(down_w, w_top), boost_from_rest_frame(up_w, w_top)
    momenta = torch.stack([b_top, w_top, up_top, down_top], 1)
    momenta = boost_from_rest_frame(momenta, p_top[:, None, :])
    if channel == "hadronic":
        # u d̄ or c s̄ with equal weight (diagonal CKM, no QCD correction to the ratio)
        charm = u[:, 8] < 0.5
        up, down = torch.where(charm, 4, 2), torch.where(charm, 3, 1)
    else:
        up, down = torch.full((b,), 14, device=device), torch.full((b,), 13, device=device)
    pdg = torch.stack([5 * sign, 24 * sign, up * sign, -down * sign], -1)
    if channel == "leptonic":
        # LHE habit: charged lepton first, "W → μ ν_μ"
        momenta, pdg = momenta[:, [0, 1, 3, 2]], pdg[:, [0, 1, 3, 2]]
    return momenta, pdg


def _block(b: int, k: int, device: torch.device) -> dict[str, torch.Tensor]:
    long = dict(dtype=torch.int64, device=device)
    return {
        "p": torch.zeros(b, k, 4, dtype=torch.float64, device=device),
        "pdg": torch.zeros(b, k, **long),
        "status": torch.full((b, k), FINAL, **long),
        "mothers": torch.zeros(b, k, 2, **long),
        "colour": torch.zeros(b, k, 2, **long),
    }


def decay(
    record: EventRecord,
    channel: Literal["hadronic", "leptonic"] = "hadronic",
    generator: torch.Generator | None = None,
    config: DecayConfig | None = None,
) -> EventRecord:
    """Decay every final-state top, antitop and Higgs boson of ``record``.

    Args:
        record: hard event record with B events (see :class:`EventRecord`).
        channel: W decay mode, ``"hadronic"`` (u d̄, c s̄ equally) or ``"leptonic"`` (μ ν_μ).
        generator: torch random generator (CPU) for reproducible decays.
        config: masses and widths, :class:`DecayConfig` defaults when None.

    Returns:
        A new record with the decayed particles at status 2 and 4 rows (b, W, f₁, f₂) appended
        per top column and 2 rows (γ, γ) per Higgs column; ``record`` itself when nothing decays.
    """
    if channel not in _CHANNELS:
        raise ValueError(f"channel must be one of {list(_CHANNELS)}, got {channel!r}.")
    config = DecayConfig() if config is None else config
    b, m = record.pdg.shape
    device = record.p.device
    status = record.status.clone()
    blocks: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = []
    next_row = m  # 0-based index of the next appended row
    fresh = record.colour.amax(dim=(1, 2)).clamp(min=FIRST_COLOUR - 1) + 1  # (B,) unused tag
    for j in range(m):
        live = record.mask[:, j] & (record.status[:, j] == FINAL)
        is_top = live & (record.pdg[:, j].abs() == 6)
        is_higgs = live & (record.pdg[:, j] == 25)
        if is_top.any():
            sign = torch.sign(record.pdg[:, j])
            blk = _block(b, 4, device)
            blk["p"], blk["pdg"] = _top_decay(record.p[:, j], sign, channel, config, generator)
            blk["status"][:, 1] = RESONANCE
            blk["mothers"][:, :2] = j + 1
            blk["mothers"][:, 2:] = next_row + 2  # the W's 1-based row
            blk["colour"][:, 0] = record.colour[:, j]  # b inherits the top's colour line
            if channel == "hadronic":
                quark = blk["pdg"][:, 2:] > 0
                tag = fresh[:, None].expand(-1, 2)
                blk["colour"][:, 2:, 0] = torch.where(quark, tag, 0)
                blk["colour"][:, 2:, 1] = torch.where(quark, 0, tag)
                fresh = fresh + is_top.long()
            status[:, j] = torch.where(is_top, RESONANCE, status[:, j])
            blocks.append((blk, is_top))
            next_row += 4
        if is_higgs.any():
            blk = _block(b, 2, device)
            u = _uniform((b, 2), generator, device)
            g1, g2, _ = two_body_decay(record.p[:, j], 0.0, 0.0, 2 * u[:, 0] - 1, 2 * torch.pi * u[:, 1])
            blk["p"] = torch.stack([g1, g2], 1)
            blk["pdg"][:] = 22
            blk["mothers"][:] = j + 1
            status[:, j] = torch.where(is_higgs, RESONANCE, status[:, j])
            blocks.append((blk, is_higgs))
            next_row += 2
    if not blocks:
        return record
    fields = {"p": [record.p], "pdg": [record.pdg], "status": [status], "mothers": [record.mothers]}
    fields |= {"colour": [record.colour], "mask": [record.mask]}
    for blk, present in blocks:
        keep = present & record.mask.any(1)
        k = blk["pdg"].shape[1]
        for name, value in blk.items():
            # rows of events without this particle are padding: zero them, mask them off
            shaped = keep.view(b, *([1] * (value.ndim - 1)))
            fields[name].append(torch.where(shaped, value, torch.zeros_like(value)))
        fields["mask"].append(keep[:, None].expand(-1, k))
    return EventRecord(
        **{name: torch.cat(parts, 1) for name, parts in fields.items()},
        weight=record.weight.clone(),
        scale=record.scale.clone(),
    )
