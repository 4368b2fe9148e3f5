"""The plugin manager and the name registry of backends.

Plugins are modules named by the ``memzoo`` entry-point group, e.g. in a plugin's
``pyproject.toml``::

    [project.entry-points.memzoo]
    cinn = "memzoo_cinn"

The core registers its own built-ins (:mod:`memzoo.builtin`) through the same hooks. Nothing is
loaded at import time: :func:`get_plugin_manager` builds the manager on first use and caches
it; :func:`reset_plugins` forgets it (for tests and after installing a plugin).
``MEMZOO_DISABLE_PLUGINS=name1,name2`` keeps the named entry points from loading.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from memzoo import hookspecs
from memzoo.config import make_config

__all__ = [
    "KINDS",
    "Entry",
    "PluginError",
    "PluginInfo",
    "Registry",
    "UnknownBackendError",
    "available",
    "create",
    "get_plugin_manager",
    "get_registry",
    "plugin_info",
    "reset_plugins",
]

KINDS: tuple[str, ...] = tuple(hookspecs.HOOK_FOR_KIND)

#: Methods every registered class of a kind must have (DESIGN §3).
REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "process": ("coords_from_momenta", "momenta_from_coords", "dsigma", "sample", "cross_section"),
    "transfer": ("log_prob", "sample"),
    "sampler": ("from_unit", "log_prob"),
    "acceptance": ("prob",),
    "likelihood": ("log_likelihood",),
}

ENTRY_POINT_GROUP = "memzoo"
BUILTIN_PLUGIN = "memzoo"


class PluginError(RuntimeError):
    """A plugin failed to load or registered something invalid."""


class UnknownBackendError(KeyError):
    """A backend name (or kind) that no installed plugin provides."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: its name, the distribution that ships it and what it registers."""

    name: str
    distribution: str
    version: str
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "provides": self.provides,
        }


@dataclass(frozen=True)
class Entry:
    """A registered backend class and where it came from."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str
    version: str


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownBackendError(f"Unknown kind {kind!r}. Must be one of {list(KINDS)}.")


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("MEMZOO_DISABLE_PLUGINS", "").split(",") if n.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> dict[str, tuple[str, str]]:
    """Register every ``memzoo`` entry point; return {plugin name: (distribution, version)}."""
    origins: dict[str, tuple[str, str]] = {}
    blocked = _disabled()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP or ep.name in blocked:
                continue
            dist_name = dist.metadata["Name"]
            if ep.name in origins or ep.name == BUILTIN_PLUGIN:
                other = origins.get(ep.name, ("memzoo", ""))[0]
                if other == dist_name:  # the same distribution seen twice on sys.path
                    continue
                raise PluginError(
                    f"Plugin name {ep.name!r} is claimed by distributions {other!r} and {dist_name!r}. "
                    f"Uninstall one, or block one with MEMZOO_DISABLE_PLUGINS={ep.name}."
                )
            try:
                module = ep.load()
            except Exception as err:
                raise PluginError(
                    f"Plugin {ep.name!r} from distribution {dist_name!r} failed to load ({ep.value}): "
                    f"{type(err).__name__}: {err}. Fix or uninstall it, or set "
                    f"MEMZOO_DISABLE_PLUGINS={ep.name} to skip it."
                ) from err
            pm.register(module, name=ep.name)
            origins[ep.name] = (dist_name, dist.version)
    return origins


def _build_plugin_manager() -> pluggy.PluginManager:
    from memzoo import __version__, builtin

    pm = pluggy.PluginManager("memzoo")
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name=BUILTIN_PLUGIN)
    origins = _load_entry_points(pm)
    origins[BUILTIN_PLUGIN] = ("memzoo", __version__)
    pm.check_pending()  # a misspelled memzoo_* hook fails here, naming the plugin
    pm.memzoo_origins = origins  # type: ignore[attr-defined]
    return pm


_STATE: dict[str, Any] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built (entry points loaded) on first call."""
    if "pm" not in _STATE:
        _STATE["pm"] = _build_plugin_manager()
    return _STATE["pm"]


def reset_plugins() -> None:
    """Forget the plugin manager and registry, so the next call rediscovers plugins."""
    _STATE.clear()


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------


class Registry:
    """All registered backends by kind and name, with duplicate and conformance checks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        origins: dict[str, tuple[str, str]] = getattr(pm, "memzoo_origins", {})
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, PluginInfo] = {}
        for plugin_name, _ in pm.list_name_plugin():
            dist, version = origins.get(plugin_name, ("?", "?"))
            self.plugins[plugin_name] = PluginInfo(plugin_name, dist, version, {})
        for kind, hook_name in hookspecs.HOOK_FOR_KIND.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                classes = impl.function() or []
                for cls in classes:
                    self._add(kind, cls, impl.plugin_name)

    def _add(self, kind: str, cls: Any, plugin: str) -> None:
        name = getattr(cls, "name", None)
        if not isinstance(cls, type) or not isinstance(name, str) or not name:
            raise PluginError(f"Plugin {plugin!r} registered {cls!r} as a {kind} without a string `name`.")
        if not hasattr(cls, "Config"):
            raise PluginError(f"{kind} {name!r} from plugin {plugin!r} has no `Config` dataclass.")
        missing = [m for m in REQUIRED_METHODS[kind] if not callable(getattr(cls, m, None))]
        if missing:
            raise PluginError(f"{kind} {name!r} from plugin {plugin!r} lacks method(s) {missing}.")
        if name in self.entries[kind]:
            other = self.entries[kind][name].plugin
            raise PluginError(
                f"Duplicate {kind} name {name!r}: registered by plugin {other!r} and by plugin {plugin!r}. "
                f"Uninstall one, or block one with MEMZOO_DISABLE_PLUGINS."
            )
        info = self.plugins[plugin]
        self.entries[kind][name] = Entry(kind, name, cls, plugin, info.distribution, info.version)
        info.provides.setdefault(kind, []).append(name)

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Sorted backend names of one kind matching a shell-style wildcard pattern."""
        _check_kind(kind)
        return sorted(n for n in self.entries[kind] if fnmatch.fnmatchcase(n, pattern))

    def get(self, kind: str, name: str) -> Entry:
        """The entry of one backend; unknown names raise listing the known ones."""
        _check_kind(kind)
        try:
            return self.entries[kind][name]
        except KeyError:
            known = self.names(kind)
            raise UnknownBackendError(
                f"Unknown {kind} {name!r}. Must be one of {known}. "
                f"Install the plugin that provides it (see `memzoo plugins`)."
            ) from None

    def entry_of(self, obj: Any) -> Entry:
        """The entry whose class built ``obj`` (exact class match)."""
        for kind_entries in self.entries.values():
            for entry in kind_entries.values():
                if type(obj) is entry.cls:
                    return entry
        raise UnknownBackendError(f"{type(obj).__qualname__} is not a registered memzoo backend.")

    def create(self, kind: str, name: str, /, **config: Any) -> Any:
        """Build a backend by name from keyword hyperparameters (type-checked)."""
        entry = self.get(kind, name)
        return entry.cls(make_config(entry.cls.Config, config, owner=f"{kind} {name!r}"))


def get_registry() -> Registry:
    """The registry of the current plugin manager (cached with it)."""
    if "registry" not in _STATE:
        _STATE["registry"] = Registry(get_plugin_manager())
    return _STATE["registry"]


def create(kind: str, name: str, /, **config: Any) -> Any:
    """Build a registered backend by kind and name, e.g. ``create("process", "thj", tops="top")``.

    Raises:
        UnknownBackendError: the kind or name is unknown (the message lists the known ones).
        memzoo.config.ConfigError: a config key is unknown or a value has the wrong type.
    """
    return get_registry().create(kind, name, **config)


def available(kind: str | None = None, pattern: str = "*") -> list[str] | dict[str, list[str]]:
    """Registered names of one kind (a list), or of every kind (a dict), matching ``pattern``."""
    registry = get_registry()
    if kind is None:
        return {k: registry.names(k, pattern) for k in KINDS}
    return registry.names(kind, pattern)


def plugin_info() -> list[PluginInfo]:
    """Every loaded plugin with its distribution, version and registered names, built-ins first."""
    registry = get_registry()
    return sorted(registry.plugins.values(), key=lambda p: (p.name != BUILTIN_PLUGIN, p.name))
