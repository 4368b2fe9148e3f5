"""memzoo plugin ``cfm``: the Transfer-CFM, a conditional flow-matching transfer probability.

Heimel, PhD thesis 2024, Secs. 3.2.4 and 6.5.1 (eqs. 3.52–3.58, Table A.9); Lipman et al.,
arXiv:2210.02747. The reusable pieces — :class:`ConditionalFlowMatching`, the ODE solver
settings and the exact/Hutchinson divergences — are public for other backends (Transfusion).
"""

from __future__ import annotations

from memzoo.hookspecs import hookimpl
from memzoo_cfm.config import CFMConfig, SolverConfig, SolverMixin
from memzoo_cfm.flow import ConditionalFlowMatching, VelocityMLP
from memzoo_cfm.ode import ODESolver, exact_divergence, hutchinson_divergence, log_density, sample_flow
from memzoo_cfm.transfer import CFMTransfer

__all__ = [
    "CFMConfig",
    "CFMTransfer",
    "ConditionalFlowMatching",
    "ODESolver",
    "SolverConfig",
    "SolverMixin",
    "VelocityMLP",
    "exact_divergence",
    "hutchinson_divergence",
    "log_density",
    "memzoo_register_transfer_models",
    "sample_flow",
]


@hookimpl
def memzoo_register_transfer_models() -> list[type]:
    return [CFMTransfer]
