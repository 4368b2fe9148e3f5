"""memzoo plugin ``regression``: a DNN surrogate of the MEM likelihood (a LikelihoodModel).

Regresses the event information I = −log10 p(x_reco|θ) from boost- and φ-invariant reco
features and the theory parameters θ (Bury & Delaere, JHEP 04 (2021) 020, arXiv:2008.10949;
DeepMEM, CHEP 2023), trained on memzoo integrator results or external (e.g. MoMEMta) weights.
"""

from __future__ import annotations

from memzoo.hookspecs import hookimpl
from memzoo_regression.features import EventFeatures
from memzoo_regression.model import RegressionConfig, RegressionLikelihood

__all__ = ["EventFeatures", "RegressionConfig", "RegressionLikelihood", "memzoo_register_likelihood_models"]


@hookimpl
def memzoo_register_likelihood_models() -> list[type]:
    return [RegressionLikelihood]
