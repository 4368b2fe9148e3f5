"""The small per-particle CFMs of the Transfusion (Heimel, PhD thesis 2024, Sec. 6.5.2, eq. 6.44).

"We build two different CFMs, one for the 3-dimensional on-shell momenta and a second one for
the 4-dimensional jet momenta" — each a conditional flow matching network
(:class:`memzoo_cfm.ConditionalFlowMatching`) whose velocity sees the object's components, t and
the transformer condition c_i. Missing pT (kind 12, only pT and φ) gets a third, 2-d CFM when
the layout has one. Components per object (those it has):

* f_pT: the Transfermer's pT feature (standardised log pT, or log(log pT_prev − log pT) on
  pT-ordered slots, see :mod:`memzoo_transfermer.sequences`);
* η (the CFM lives on ℝ, so there is no η_max cut as in the Transfermer's spline);
* a = atanh(wrap(φ_rel − ψ(c))/π): the circle, cut opposite a direction ψ(c) predicted from the
  condition, mapped onto ℝ as in :mod:`memzoo_cinn.features`, so a flow on ℝ is exactly
  normalised over φ ∈ [−π, π) for any ψ (a rotation has unit Jacobian; c is fixed during the
  ODE); log |da/dφ| is added. ψ(c) = atan2 of a linear map of c, trained by the circular loss
  1 − cos(φ_rel − ψ) (a von Mises NLL up to constants; the CFM loss sees ψ detached), so the cut
  moves away from where the object is: without it, back-to-back objects (the Drell-Yan muons
  relative to the first hard muon) would sit at the cut with a bimodal, far-apart a;
* u_m: standardised log(m + m_offset) (jets only).

:class:`ParticleCFM` has the interface of :class:`memzoo_transfermer.ParticleFlow` (``log_prob``
per du_pt dη dφ du_m and ``sample`` from uniform noise), so the Transfermer's sequence code uses
it unchanged; ``loss`` is the CFM loss (eq. 3.58) per object.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from memzoo_cfm import ConditionalFlowMatching, SolverMixin, VelocityMLP
from memzoo_cinn.features import azimuth_from_feature, feature_from_azimuth
from torch import nn

__all__ = ["ParticleCFM"]

#: CFM groups: name, data dimension.
GROUPS = {"met": 2, "onshell": 3, "jet": 4}


class ParticleCFM(SolverMixin, nn.Module):
    """Conditional densities of single reco objects given a condition c, one CFM per object type.

    Args:
        config: holds the ODE settings (:class:`memzoo_cfm.SolverConfig` fields).
        context: C, the size of the condition (transformer output plus kind one-hot).
        groups: which of ``met``, ``onshell``, ``jet`` the layout needs.
        layers, hidden, activation, time_features: of each velocity network (thesis Table A.11:
            6 × 400, ReLU; see :class:`~memzoo_transfusion.config.TransfusionConfig` on SiLU).
    """

    def __init__(
        self, config, context: int, groups: tuple[str, ...], layers: int = 6, hidden: int = 400,
        activation: str = "silu", time_features: int = 4,
    ) -> None:  # fmt: skip
        super().__init__()
        self.config = config
        self.cfms = nn.ModuleDict(
            {
                g: ConditionalFlowMatching(
                    VelocityMLP(GROUPS[g], context, layers, hidden, activation, time_features), GROUPS[g]
                )
                for g in GROUPS
                if g in groups
            }
        )
        self.direction = nn.Linear(context, 2)  # ψ(c) = atan2(y, x + 1): zero-initialised, ψ = 0
        nn.init.zeros_(self.direction.weight)
        nn.init.zeros_(self.direction.bias)
        self._density = True

    @contextlib.contextmanager
    def without_density(self) -> Iterator[None]:
        """``log_prob`` returns zeros meanwhile (sampling alone needs no divergence integrals)."""
        before, self._density = self._density, False
        try:
            yield
        finally:
            self._density = before

    @staticmethod
    def _masks(has_eta: torch.Tensor, has_mass: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows of each object type. A type without a CFM only occurs for the empty sequence slots
        the Transfermer passes while sampling (kind 0, masked out later): their rows stay 0."""
        return {"met": ~has_eta, "onshell": has_eta & ~has_mass, "jet": has_mass}

    @staticmethod
    def _vector(group: str, u_pt, eta, a, u_m) -> torch.Tensor:
        parts = {"met": (u_pt, a), "onshell": (u_pt, eta, a), "jet": (u_pt, eta, a, u_m)}[group]
        return torch.stack([p.float() for p in parts], -1)

    def _psi(self, c: torch.Tensor) -> torch.Tensor:
        """``(T,)`` the predicted azimuth ψ(c) (relative to the hard reference), rad."""
        out = self.direction(c)
        return torch.atan2(out[..., 1], out[..., 0] + 1.0)

    def _terms(self, c, u_pt, eta, phi, u_m, has_eta, has_mass, term):
        masks = self._masks(has_eta, has_mass)
        a, log_da = feature_from_azimuth(phi.double(), self._psi(c).detach().double())
        out = torch.zeros(len(c), dtype=torch.float32, device=c.device)
        for group, cfm in self.cfms.items():
            m = masks[group]
            if bool(m.any()):
                out[m] = term(cfm, self._vector(group, u_pt[m], eta[m], a[m], u_m[m]), c[m]).float()
        return out, log_da

    def log_prob(
        self,
        c: torch.Tensor,
        u_pt: torch.Tensor,
        eta: torch.Tensor,
        phi: torch.Tensor,
        u_m: torch.Tensor,
        has_eta: torch.Tensor,
        has_mass: torch.Tensor,
    ) -> torch.Tensor:
        """``(T,)`` log density of T objects' features per du_pt dη dφ du_m (the components each has).

        One batched ODE solve per object type (eq. 3.55) with the conditions ``c (T, C)`` fixed:
        the transformer is not evaluated inside the solver. Zeros inside :meth:`without_density`.
        """
        if not self._density:
            return torch.zeros(len(c), dtype=torch.float32, device=c.device)
        log_p, log_da = self._terms(
            c, u_pt, eta, phi, u_m, has_eta, has_mass, lambda f, x, cc: f.log_prob(x, cc, self.ode)
        )
        return log_p + log_da.float()

    def loss(self, c, u_pt, eta, phi, u_m, has_eta, has_mass) -> torch.Tensor:
        """``(T,)`` per-object CFM loss ‖v_θ − (ε − x₀)‖² (eq. 3.58) in the CFM coordinates plus the
        circular loss 1 − cos(φ − ψ(c)) of the cut direction."""
        cfm = self._terms(c, u_pt, eta, phi, u_m, has_eta, has_mass, lambda f, x, cc: f.loss(x, cc))[0]
        return cfm + 1 - torch.cos(phi.float() - self._psi(c))

    @torch.no_grad()
    def sample(
        self, c: torch.Tensor, has_eta: torch.Tensor, has_mass: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``(u_pt, eta, phi, u_m)``, each ``(T,)``, from latent ``noise (T, 4)`` ~ U(0, 1)⁴.

        The first d uniforms become the CFM's normal latent (inverse normal CDF); components an
        object does not have come back as 0. One ODE solve per object type.
        """
        masks = self._masks(has_eta, has_mass)
        z = torch.special.ndtri(noise.clamp(1e-7, 1 - 1e-7)).float()
        out = torch.zeros(4, len(c), dtype=torch.float32, device=c.device)  # u_pt, eta, a, u_m
        rows = {"met": [0, 2], "onshell": [0, 1, 2], "jet": [0, 1, 2, 3]}
        for group, cfm in self.cfms.items():
            m = masks[group]
            if bool(m.any()):
                x = cfm.sample(c[m], self.ode, z[m, : GROUPS[group]])
                for j, row in enumerate(rows[group]):
                    out[row, m] = x[:, j]
        phi = azimuth_from_feature(out[2].double(), self._psi(c).double())
        return out[0], out[1], phi.float(), out[3]
