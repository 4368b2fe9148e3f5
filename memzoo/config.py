"""Typed, frozen configurations for everything registered by name.

Every registered class carries a ``Config`` frozen dataclass holding its hyperparameters and
is constructed as ``cls(config)``. :func:`make_config` turns keyword arguments (from Python,
TOML cards, JSON manifests or the command line) into such a dataclass, rejecting unknown keys
and values of the wrong type with messages that say what to fix.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

__all__ = ["ConfigError", "config_to_dict", "make_config"]


class ConfigError(ValueError):
    """A configuration key or value that the backend does not accept."""


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint, converting JSON-ish values where lossless."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {list(args)}, got {value!r}.")
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _coerce(value, option, where)
            except (ConfigError, TypeError) as err:
                errors.append(str(err))
        names = [getattr(a, "__name__", str(a)) for a in args]
        raise ConfigError(f"{where} must be of type {' | '.join(names)}, got {value!r}.")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where} must be None, got {value!r}.")
        return None
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a sequence, got {type(value).__name__} {value!r}.")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where} must have {len(args)} entries, got {len(value)}.")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}.")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where} must be of type {hint.__name__}, got {type(value).__name__}.")
    return value


def make_config(config_cls: type, values: Mapping[str, Any] | None = None, *, owner: str = "") -> Any:
    """Build and type-check a frozen config dataclass from keyword values.

    Args:
        config_cls: the ``Config`` dataclass of a registered class.
        values: keyword values; missing keys take the dataclass defaults.
        owner: used in error messages, e.g. ``"transfer 'cinn'"``.

    Raises:
        ConfigError: for unknown keys (naming them and listing the accepted ones), missing
            required keys, or values of the wrong type.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"{config_cls!r} is not a dataclass; registered classes need a Config dataclass.")
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(config_cls) if f.init}
    label = f"{owner} config" if owner else config_cls.__qualname__
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"Unknown {label} key(s) {unknown}. Accepted keys: {sorted(fields) or 'none'}.")
    hints = typing.get_type_hints(config_cls)
    checked = {key: _coerce(value, hints.get(key, Any), f"{label} key {key!r}") for key, value in values.items()}
    missing = [
        name
        for name, f in fields.items()
        if name not in checked and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{label} is missing required key(s) {missing}.")
    return config_cls(**checked)


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-serialisable dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}
