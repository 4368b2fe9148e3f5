"""The Transfusion: p(x_reco, n|x_hard) from the Transfermer's transformer and small per-particle CFMs.

Heimel, PhD thesis 2024, Sec. 6.5.2 ("Transfusion", eq. 6.44, Table A.11): the autoregressive
structure and masked self-attention of the Transfermer (:mod:`memzoo_transfermer`, reused by
subclassing: hard tokens, encoder, causal decoder with (slot, kind) queries, multiplicity
classifier, ordered-slot pT features) with the per-particle cINN replaced by conditional flow
matching networks (:class:`~memzoo_transfusion.particle_cfm.ParticleCFM`),

    p(x_reco, n|x_hard) = p(n|x_hard) Π_i p_CFM(x_i | c_i(e_reco^(0..i−1), e_hard, n)).

The transformer output c_i does not depend on the ODE time, so it is evaluated once for a
density (all objects are known: one pass, then one batched ODE solve per object type over all
objects of all events) and once per autoregressive step when sampling, never inside the ODE.
Training minimises Σ_i ‖v_θ − (ε − x₀)‖² (eq. 3.58, per object) plus the multiplicity
classifier's cross-entropy −log p(n|x_hard); no ODE is solved in training.
"""

from __future__ import annotations

from typing import Any

import torch
from memzoo_transfermer import Transfermer
from memzoo_transfermer.config import TransfermerConfig
from memzoo_transfermer.transfer import unpack

from memzoo.events import Particles
from memzoo_transfusion.config import TRANSFERMER_FIELDS, TransfusionConfig, resolve_cfm_sizes
from memzoo_transfusion.particle_cfm import ParticleCFM

__all__ = ["Transfusion"]


class Transfusion(Transfermer):
    """Transformer + per-particle CFM transfer probability (see the module docstring).

    ``ode`` is the ODE setting in use; ``solver_options(...)`` changes it for a while (e.g.
    ``with model.solver_options(solver="dopri5", rtol=1e-7):``).

    Example:
        >>> model = Transfusion(Transfusion.Config(dim=16, heads=2, cfm_layers=2, cfm_hidden=16))
        >>> hard = torch.tensor([[40.0, 0.5, 1.0]], dtype=torch.float64)
        >>> model.log_prob(model.sample(hard), hard).shape
        torch.Size([1])
    """

    name = "transfusion"
    Config = TransfusionConfig

    def __init__(self, config: TransfusionConfig | None = None) -> None:
        c = config or self.Config()
        c.ode_solver()  # validates the ODE settings now
        cfm_sizes = resolve_cfm_sizes(c)
        # the Transfermer builds the sequence machinery; its spline flow is replaced below, so
        # it is built at the smallest size
        shared = {k: getattr(c, k) for k in TRANSFERMER_FIELDS}
        super().__init__(TransfermerConfig(**shared, subnet_layers=1, subnet_hidden=1, bins=2))
        self.config = c
        kinds = set(self.reco_codes)
        present = {"met": 12 in kinds, "onshell": bool(kinds & {11, 13, 22}), "jet": bool(kinds & {1, 5})}
        groups = tuple(g for g, yes in present.items() if yes)
        context = self.start.numel() + len(self.reco_codes)
        self.flow = ParticleCFM(
            c, context, groups, cfm_sizes["cfm_layers"], cfm_sizes["cfm_hidden"], c.activation, c.time_features
        )

    @property
    def ode(self):
        """The :class:`memzoo_cfm.ODESolver` in use."""
        return self.flow.ode

    def solver_options(self, **changes: Any):
        """Context manager evaluating with other ODE settings (see :class:`memzoo_cfm.SolverMixin`)."""
        return self.flow.solver_options(**changes)

    @torch.no_grad()
    def sample(self, hard: torch.Tensor, generator: torch.Generator | None = None) -> Particles:
        """One reco event per hard point ``hard (B, D)``: n ~ p(n|x_hard), then the objects one by one
        (one transformer pass and one ODE solve per object type per step; no density integrals)."""
        with self.flow.without_density():
            return self.sample_and_log_prob(hard, generator)[0]

    def loss(self, batch: Any) -> torch.Tensor:
        """Mean over the batch's events in the support of Σ_i CFM loss of object i (eq. 3.58 in the
        per-particle coordinates) − log p(n|x_hard); one transformer pass, no ODE."""
        reco, hard, charge = unpack(batch, "reco", "hard", "charge")
        dev = self.start.device
        p, kind, mask, n_extra, valid = self.layout.select(reco.to(dev), charge)
        memory, hard_mask, phi_ref, features = self._memory(self.hard_particles(hard), n_extra)
        numeric, f_pt, phi, _, has_eta, has_mass, ok = self._reco_features(p, kind, phi_ref)
        numeric = numeric * mask[..., None]
        c = self._conditions(memory, hard_mask, numeric, kind, mask)
        valid = valid & (ok | ~mask).all(1)
        if not bool(valid.any()):
            raise ValueError("No event of the batch lies in the layout's support; check objects/extra/max_extra.")
        use = mask & valid[:, None]
        per_object = self.flow.loss(
            c[use], f_pt[use], numeric[..., 1][use], phi[use], numeric[..., 4][use], has_eta[use], has_mass[use]
        )
        per_event = torch.zeros(kind.shape, dtype=per_object.dtype, device=dev)
        per_event[use] = per_object
        loss = per_event.sum(1)[valid]
        if self.multiplicity is not None:
            loss = loss - self.multiplicity.log_prob(features, n_extra)[valid]
        return loss.mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, solver={self.ode.method}, divergence={self.ode.divergence}"
