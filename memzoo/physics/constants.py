"""Standard-Model input parameters of the MadGraph5_aMC@NLO ``sm`` model and unit conversions.

Source: the default parameter card of the UFO model ``sm`` shipped with MadGraph5_aMC@NLO
(Alwall et al., arXiv:1405.0301), which takes (α_EW(m_Z), G_F, m_Z) as electroweak inputs and
derives m_W, sin²θ_W, e, g_w and v at tree level (the ``G_μ``-like scheme of that model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["GEV2_TO_FB", "GEV2_TO_MB", "SM", "SMParameters"]

#: (ħc)² in GeV² mb (PDG 2024, "Physical constants"): a cross section in GeV⁻² times this is in mb.
GEV2_TO_MB: float = 0.3893793721
#: Conversion of a cross section from GeV⁻² to fb (1 mb = 10¹² fb).
GEV2_TO_FB: float = GEV2_TO_MB * 1e12


@dataclass(frozen=True)
class SMParameters:
    """Electroweak and Higgs-sector parameters, MG5 ``sm`` defaults (masses and widths in GeV).

    Inputs (MG5 ``param_card.dat`` of ``sm``): ``alpha_ew_inv`` = 1/α_EW(m_Z) (block SMINPUTS 1),
    ``g_fermi`` = G_F in GeV⁻² (SMINPUTS 2), ``m_z``, ``m_t``, ``m_h`` (block MASS) and the widths
    ``width_*`` (DECAY blocks). Everything else is derived at tree level exactly as the model's
    ``parameters.py`` does; see the properties.

    Example:
        >>> round(SMParameters().m_w, 3)
        80.419
    """

    alpha_ew_inv: float = 132.507
    g_fermi: float = 1.16639e-5
    m_z: float = 91.188
    m_t: float = 173.2
    m_h: float = 125.0
    width_z: float = 2.441404
    width_w: float = 2.047600
    width_t: float = 1.491500
    width_h: float = 6.38233934e-03

    @property
    def alpha_ew(self) -> float:
        """α_EW(m_Z), the electromagnetic coupling used in every vertex."""
        return 1.0 / self.alpha_ew_inv

    @property
    def e(self) -> float:
        """Electric charge unit e = sqrt(4π α_EW)."""
        return math.sqrt(4.0 * math.pi * self.alpha_ew)

    @property
    def m_w(self) -> float:
        """W mass from m_W² = m_Z²/2 + sqrt(m_Z⁴/4 - π α m_Z² / (√2 G_F)) (MG5 ``sm``), ≈ 80.419 GeV."""
        mz2 = self.m_z**2
        root = mz2**2 / 4.0 - math.pi * self.alpha_ew * mz2 / (math.sqrt(2.0) * self.g_fermi)
        return math.sqrt(mz2 / 2.0 + math.sqrt(root))

    @property
    def sin2_theta_w(self) -> float:
        """On-shell weak mixing angle sin²θ_W = 1 - m_W²/m_Z² (≈ 0.2222)."""
        return 1.0 - self.m_w**2 / self.m_z**2

    @property
    def cos2_theta_w(self) -> float:
        """cos²θ_W = m_W²/m_Z²."""
        return self.m_w**2 / self.m_z**2

    @property
    def g_w(self) -> float:
        """SU(2) coupling g_w = e / sinθ_W."""
        return self.e / math.sqrt(self.sin2_theta_w)

    @property
    def g_z(self) -> float:
        """Z coupling normalisation e / (sinθ_W cosθ_W)."""
        return self.e / math.sqrt(self.sin2_theta_w * self.cos2_theta_w)

    @property
    def vev(self) -> float:
        """Higgs vacuum expectation value v = 2 m_W sinθ_W / e (≈ 246.2 GeV)."""
        return 2.0 * self.m_w * math.sqrt(self.sin2_theta_w) / self.e

    @property
    def y_t(self) -> float:
        """Top Yukawa coupling y_t = √2 m_t / v (≈ 0.995)."""
        return math.sqrt(2.0) * self.m_t / self.vev


#: The default parameter set.
SM = SMParameters()
