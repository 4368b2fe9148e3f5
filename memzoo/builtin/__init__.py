"""The backends memzoo ships itself, registered through the same hooks as any plugin."""

from __future__ import annotations

from memzoo.hookspecs import hookimpl

__all__ = [
    "memzoo_register_acceptance_models",
    "memzoo_register_processes",
    "memzoo_register_samplers",
    "memzoo_register_transfer_models",
]


@hookimpl
def memzoo_register_acceptance_models() -> list[type]:
    from memzoo.builtin.acceptance import ConstantAcceptance, MLPAcceptance
    from memzoo.builtin.gaussian import ExactAcceptance

    return [ConstantAcceptance, MLPAcceptance, ExactAcceptance]


@hookimpl
def memzoo_register_processes() -> list[type]:
    from memzoo.processes.drell_yan import DrellYan
    from memzoo.processes.thj import THj

    return [DrellYan, THj]


@hookimpl
def memzoo_register_transfer_models() -> list[type]:
    from memzoo.builtin.gaussian import GaussianTransfer

    return [GaussianTransfer]


@hookimpl
def memzoo_register_samplers() -> list[type]:
    from memzoo.builtin.gaussian import GaussianSampler

    return [GaussianSampler]
