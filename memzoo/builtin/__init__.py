"""The backends memzoo ships itself, registered through the same hooks as any plugin."""

from __future__ import annotations

from memzoo.hookspecs import hookimpl

__all__ = [
    "memzoo_register_acceptance_models",
    "memzoo_register_processes",
]


@hookimpl
def memzoo_register_acceptance_models() -> list[type]:
    from memzoo.builtin.acceptance import ConstantAcceptance, MLPAcceptance

    return [ConstantAcceptance, MLPAcceptance]


@hookimpl
def memzoo_register_processes() -> list[type]:
    from memzoo.processes.drell_yan import DrellYan
    from memzoo.processes.thj import THj

    return [DrellYan, THj]
