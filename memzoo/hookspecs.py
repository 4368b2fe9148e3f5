"""Hook specifications of memzoo plugins (pluggy project ``memzoo``).

A plugin is a module (found through the ``memzoo`` entry-point group) that implements some of
these hooks with ``@memzoo.hookimpl``. Every hook returns a list of classes; each class has a
unique ``name`` within its kind, a ``Config`` frozen dataclass and is built as ``cls(config)``.

Example plugin module::

    import memzoo

    @memzoo.hookimpl
    def memzoo_register_transfer_models():
        return [MyTransfer]
"""

from __future__ import annotations

import pluggy

__all__ = ["HOOK_FOR_KIND", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("memzoo")
hookimpl = pluggy.HookimplMarker("memzoo")


# ---------------------------------------------------------------------------------------
# registration hooks: one per protocol kind
# ---------------------------------------------------------------------------------------


@hookspec
def memzoo_register_processes() -> list[type]:
    """Register hard processes (:class:`memzoo.protocols.Process`).

    Returns:
        Classes with a unique ``name``; ``memzoo.create("process", name, **config)`` builds one.
    """


@hookspec
def memzoo_register_transfer_models() -> list[type]:
    """Register transfer models p(x_reco|x_hard) (:class:`memzoo.protocols.TransferModel`).

    Returns:
        Classes with a unique ``name``; ``memzoo.create("transfer", name, **config)`` builds one.
    """


@hookspec
def memzoo_register_samplers() -> list[type]:
    """Register importance samplers q(x_hard|x_reco, θ) (:class:`memzoo.protocols.Sampler`).

    Returns:
        Classes with a unique ``name``; ``memzoo.create("sampler", name, **config)`` builds one.
    """


@hookspec
def memzoo_register_acceptance_models() -> list[type]:
    """Register acceptance models ε(x_hard) (:class:`memzoo.protocols.AcceptanceModel`).

    Returns:
        Classes with a unique ``name``; ``memzoo.create("acceptance", name, **config)`` builds one.
    """


@hookspec
def memzoo_register_likelihood_models() -> list[type]:
    """Register likelihood models (:class:`memzoo.protocols.LikelihoodModel`).

    Returns:
        Classes with a unique ``name``; ``memzoo.create("likelihood", name, **config)`` builds one.
    """


#: The registration hook of each kind, in the order kinds are listed to users.
HOOK_FOR_KIND: dict[str, str] = {
    "process": "memzoo_register_processes",
    "transfer": "memzoo_register_transfer_models",
    "sampler": "memzoo_register_samplers",
    "acceptance": "memzoo_register_acceptance_models",
    "likelihood": "memzoo_register_likelihood_models",
}
