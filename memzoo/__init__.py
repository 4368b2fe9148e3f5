"""memzoo: a plugin-architecture model zoo for the machine-learned Matrix Element Method.

Quick use::

    import memzoo
    memzoo.available("transfer")              # names of installed transfer models
    model = memzoo.create("acceptance", "mlp", hard_dim=7)
    bundle = memzoo.load("models:/memzoo-thj-cinn@champion")
"""

from __future__ import annotations

from typing import Any

from memzoo.events import Particles
from memzoo.hookspecs import hookimpl
from memzoo.plugins import available, create, get_plugin_manager, plugin_info, reset_plugins
from memzoo.protocols import Likelihood, Parameter

__version__ = "0.1.0"

__all__ = [
    "Likelihood",
    "Parameter",
    "Particles",
    "__version__",
    "available",
    "create",
    "get_plugin_manager",
    "hookimpl",
    "load",
    "plugin_info",
    "reset_plugins",
]


def load(uri: str, device: str | None = None) -> Any:
    """Load a trained bundle from an MLflow URI (``models:/NAME@ALIAS``, ``runs:/ID/PATH``) or folder.

    See :func:`memzoo.tracking.load_bundle`; MLflow is imported only when this is called.
    """
    from memzoo.tracking import load_bundle

    return load_bundle(uri, device=device)
