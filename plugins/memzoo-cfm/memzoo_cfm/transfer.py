"""Transfer-CFM: p(x_reco|x_hard) as a conditional flow-matching network (thesis Sec. 6.5.1, Table A.9).

Heimel, PhD thesis 2024, Sec. 6.5.1: a CFM "can be used in place of the Transfer-cINN from
Eq. (6.21) without further modifications". The reco objects of a fixed layout become the
features of the ``cinn`` backend (:class:`memzoo_cinn.features.Layout`: log pT, η, atanh(Δφ/π),
log(m + 1) for jets, Δφ relative to a hard azimuth), standardised with statistics fitted on
data, and a velocity network conditioned on the standardised hard coordinates and t transports
them to a standard normal. Training minimises the CFM loss (eq. 3.58); ``sample`` solves the ODE
from the latent; ``log_prob`` integrates the divergence along the trajectory (eq. 3.55) with every
Jacobian of the feature map included, so the density is per dpT dη dφ (dm) of each object, the
measure of :mod:`memzoo.protocols` and of the ``cinn`` backend.

Cost: one density evaluation is one ODE solve (RK4, step 0.05: 80 evaluations of v) of the
augmented state, each evaluation with the exact divergence costing about F forward-mode passes
(F features; ~22 for the tHj layout) or one per Hutchinson probe.
"""

from __future__ import annotations

from typing import Any

import torch
from memzoo_cinn.features import Layout, standardise
from memzoo_cinn.transfer import hard_log_columns, unpack
from torch import nn

from memzoo.events import Particles
from memzoo.preprocessing import Standardise
from memzoo_cfm.config import CFMConfig, SolverMixin, resolve_sizes
from memzoo_cfm.flow import ConditionalFlowMatching, VelocityMLP

__all__ = ["CFMTransfer"]


class CFMTransfer(SolverMixin, nn.Module):
    """Transfer-CFM p(x_reco|x_hard) for a fixed set of reco objects.

    Events without exactly the layout's objects get log p = −inf. Defaults fit one reco muon
    and hard coordinates (pT, η, φ). ``solver_options(...)`` changes the ODE settings for a while.

    Example:
        >>> model = CFMTransfer(CFMTransfer.Config(objects=("mu",), hard_dim=3, layers=2, hidden=16))
        >>> hard = torch.tensor([[40.0, 0.5, 1.0]], dtype=torch.float64)
        >>> model.log_prob(model.sample(hard), hard).shape
        torch.Size([1])
    """

    name = "cfm"
    Config = CFMConfig

    def __init__(self, config: CFMConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or self.Config()
        c.ode_solver()  # validates the solver settings now
        for field in ("log_hard", "hard_phi"):
            bad = [i for i in getattr(c, field) if not 0 <= i < c.hard_dim]
            if bad:
                raise ValueError(f"{field} = {list(getattr(c, field))} has columns outside [0, {c.hard_dim}).")
        if c.time_features < 0:
            raise ValueError(f"time_features must be >= 0, got {c.time_features}.")
        self.layout = Layout(tuple(c.objects), c.charge_order)
        n_reco, n_hard = self.layout.n_features, c.hard_dim
        s = resolve_sizes(c)
        self.cfm = ConditionalFlowMatching(
            VelocityMLP(n_reco, n_hard, s["layers"], s["hidden"], c.activation, c.time_features), n_reco
        )
        self.register_buffer("reco_mean", torch.zeros(n_reco, dtype=torch.float64))
        self.register_buffer("reco_std", torch.ones(n_reco, dtype=torch.float64))
        self.register_buffer("hard_mean", torch.zeros(n_hard, dtype=torch.float64))
        self.register_buffer("hard_std", torch.ones(n_hard, dtype=torch.float64))

    def _phi_ref(self, hard: torch.Tensor) -> torch.Tensor:
        phi = self.config.hard_phi
        return hard[:, phi[0]].to(torch.float64) if phi else hard.new_zeros(len(hard), dtype=torch.float64)

    def _check_hard(self, hard: torch.Tensor) -> None:
        if hard.ndim != 2 or hard.shape[1] != self.config.hard_dim:
            raise ValueError(f"hard must be (B, {self.config.hard_dim}) hard coordinates, got {tuple(hard.shape)}.")

    def _context(self, hard: torch.Tensor) -> torch.Tensor:
        c = hard_log_columns(hard, self.config.log_hard)[0]
        return standardise(c, self.hard_mean, self.hard_std).to(self.reco_mean.device, torch.float32)

    def _features(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None):
        """Standardised features ``(B, F)`` float32, log |∂features/∂(pT, η, φ, m)| ``(B,)`` float64, valid."""
        self._check_hard(hard)
        dev = self.reco_mean.device
        x, log_det, valid = self.layout.features(reco.to(dev), self._phi_ref(hard).to(dev), charge)
        y = standardise(x, self.reco_mean, self.reco_std)
        return y.float(), log_det - torch.log(self.reco_std).sum(), valid

    @torch.no_grad()
    def fit_preprocessing(self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None) -> None:
        """Fit the feature and condition standardisation on training pairs (layout events only)."""
        self._check_hard(hard)
        dev = self.reco_mean.device
        x, _, valid = self.layout.features(reco.to(dev), self._phi_ref(hard).to(dev), charge)
        if int(valid.sum()) < 2:
            raise ValueError("fit_preprocessing needs at least two events with the layout's reco objects.")
        c = hard_log_columns(hard.to(dev), self.config.log_hard)[0]
        for (mean, std), data in (((self.reco_mean, self.reco_std), x), ((self.hard_mean, self.hard_std), c)):
            fitted = Standardise().fit(data[valid])
            mean.copy_(fitted.mean)
            std.copy_(fitted.std)

    def log_prob(
        self, reco: Particles, hard: torch.Tensor, charge: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """``(B,)`` float64 log p(x_reco|x_hard) per dpT dη dφ (dm) of each layout object.

        Args:
            reco: B reco events; the layout's objects are picked by kind (others ignored).
            hard: ``(B, D)`` hard coordinates.
            charge: ``(B, N)`` charges for ``charge_order`` (default ``reco.charge``).
            generator: draws the Hutchinson probes (``divergence="hutchinson"``).

        One batched ODE solve (eq. 3.55); differentiable with respect to the weights.
        """
        y, log_det, valid = self._features(reco, hard, charge)
        log_p = self.cfm.log_prob(y, self._context(hard), self.ode, generator).double() + log_det
        return torch.where(valid, log_p, -torch.inf)

    @torch.no_grad()
    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        """One reco event per hard point ``hard (B, D)``: the layout's objects, float64 momenta."""
        self._check_hard(hard)
        dev = self.reco_mean.device
        gen_dev = generator.device if generator is not None else dev
        z = torch.randn(len(hard), self.layout.n_features, generator=generator, device=gen_dev).to(dev)
        y = self.cfm.sample(self._context(hard), self.ode, z)
        x = standardise(y.double(), self.reco_mean, self.reco_std, inverse=True)
        return self.layout.particles(x, self._phi_ref(hard).to(dev))

    def loss(self, batch: Any) -> torch.Tensor:
        """CFM loss (thesis eq. 3.58) of a batch with ``reco`` and ``hard``: mean over the layout's
        events of ‖v_θ − (ε − x₀)‖² in the standardised features (one draw of t and ε per event)."""
        reco, hard, charge = unpack(batch, "reco", "hard", "charge")
        y, _, valid = self._features(reco, hard, charge)
        if not bool(valid.any()):
            raise ValueError("No event of the batch has the layout's reco objects; check `objects`.")
        return self.cfm.loss(y[valid], self._context(hard)[valid]).mean()

    def extra_repr(self) -> str:
        return f"objects={list(self.config.objects)}, solver={self.ode.method}, divergence={self.ode.divergence}"
