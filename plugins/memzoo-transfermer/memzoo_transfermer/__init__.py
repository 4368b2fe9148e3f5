"""memzoo plugin ``transfermer``: the transformer + per-particle cINN transfer probability.

Heimel, PhD thesis 2024, Sec. 6.5.2 (eqs. 6.40–6.45, Tables A.8 and A.10): ``transfermer``
models p(x_reco, n|x_hard) with a variable number of extra objects, and
``transfermer-bayesian`` adds fixable posterior replicas for the integrator (Sec. 6.4.1).
"""

from __future__ import annotations

from memzoo.hookspecs import hookimpl
from memzoo_transfermer.bayesian import BayesianTransfermer
from memzoo_transfermer.config import TransfermerConfig
from memzoo_transfermer.particle_flow import ParticleFlow
from memzoo_transfermer.sequences import RecoLayout
from memzoo_transfermer.transfer import Transfermer

__all__ = [
    "BayesianTransfermer",
    "ParticleFlow",
    "RecoLayout",
    "Transfermer",
    "TransfermerConfig",
    "memzoo_register_transfer_models",
]


@hookimpl
def memzoo_register_transfer_models() -> list[type]:
    return [Transfermer, BayesianTransfermer]
