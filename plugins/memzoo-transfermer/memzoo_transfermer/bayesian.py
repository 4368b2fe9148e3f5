"""Bayesian Transfermer: variational per-particle cINN subnets with fixable replicas (thesis 6.4.1, 6.5.2).

The thesis estimates the training uncertainty of the Transfermer with a Bayesian network and
propagates it through the integrator by evaluating every posterior draw ("replica") on the same
phase-space points (Sec. 6.4.1, Fig. 6.19). Here every linear layer of the per-particle cINN
subnets becomes a Gaussian-posterior layer (memzoo-cinn's
:class:`~memzoo_cinn.bayesian.BayesianLinear`: KL to a Gaussian prior, eqs. 3.64–3.66, local
reparametrisation in training); the transformer and the multiplicity classifier keep point
weights (PyTorch's fused attention kernels read weights directly, so replacing their layers
would silently bypass the draws). The loss is NLL + KL / N (thesis eq. 3.67).
"""

from __future__ import annotations

from dataclasses import dataclass

from memzoo_cinn.bayesian import BayesianConfig, BayesianMixin

from memzoo_transfermer.config import TransfermerConfig
from memzoo_transfermer.transfer import Transfermer

__all__ = ["BayesianTransfermer"]


@dataclass(frozen=True)
class BayesianTransfermerConfig(TransfermerConfig, BayesianConfig):
    """:class:`TransfermerConfig` plus ``n_replicas``, ``prior_std``, ``init_logvar``,
    ``train_size`` and ``replica_seed`` (see :class:`memzoo_cinn.bayesian.BayesianConfig`)."""


class BayesianTransfermer(BayesianMixin, Transfermer):
    """Bayesian Transfermer (:class:`memzoo.protocols.SupportsReplicas`).

    ``log_prob`` and ``sample`` use the posterior means unless a replica is fixed with
    ``replica(i)``; ``loss`` adds KL / N to the NLL of one local-reparametrisation draw.
    """

    name = "transfermer-bayesian"
    Config = BayesianTransfermerConfig
