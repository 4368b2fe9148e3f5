"""memzoo plugin ``transfusion``: the transformer + per-particle CFM transfer probability.

Heimel, PhD thesis 2024, Sec. 6.5.2 (eq. 6.44, Table A.11): the Transfermer's autoregressive
transformer (``memzoo-transfermer``) conditioning small conditional flow-matching networks
(``memzoo-cfm``), one for 3-d on-shell objects and one for 4-d jets, with variable multiplicity.
"""

from __future__ import annotations

from memzoo.hookspecs import hookimpl
from memzoo_transfusion.config import TransfusionConfig
from memzoo_transfusion.particle_cfm import ParticleCFM
from memzoo_transfusion.transfer import Transfusion

__all__ = ["ParticleCFM", "Transfusion", "TransfusionConfig", "memzoo_register_transfer_models"]


@hookimpl
def memzoo_register_transfer_models() -> list[type]:
    return [Transfusion]
