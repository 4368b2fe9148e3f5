"""memzoo plugin ``cinn``: conditional INNs (spline coupling flows) for the ML-MEM.

Transfer-cINN p(x_reco|x_hard) and Sampling-cINN q(x_hard|x_reco, θ) of Heimel's thesis
(2024, Secs. 6.2–6.4, eqs. 6.21, 6.27–6.28) and Butter et al., arXiv:2210.00019, built on
zuko's neural spline flows (Durkan et al., arXiv:1906.04032), each with a Bayesian variant
(``cinn-bayesian``) whose posterior draws can be fixed for the integrator (thesis 6.4.1).
"""

from __future__ import annotations

from memzoo.hookspecs import hookimpl
from memzoo_cinn.bayesian import BayesianLinear
from memzoo_cinn.features import Layout
from memzoo_cinn.sampler import BayesianCINNSampler, CINNSampler
from memzoo_cinn.transfer import BayesianCINNTransfer, CINNTransfer

__all__ = [
    "BayesianCINNSampler",
    "BayesianCINNTransfer",
    "BayesianLinear",
    "CINNSampler",
    "CINNTransfer",
    "Layout",
    "memzoo_register_samplers",
    "memzoo_register_transfer_models",
]


@hookimpl
def memzoo_register_transfer_models() -> list[type]:
    return [CINNTransfer, BayesianCINNTransfer]


@hookimpl
def memzoo_register_samplers() -> list[type]:
    return [CINNSampler, BayesianCINNSampler]
