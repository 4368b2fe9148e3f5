"""Plugin discovery (real and faked entry points), the name registry and its errors."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from dataclasses import dataclass

import pytest

import memzoo
from memzoo.config import ConfigError
from memzoo.plugins import PluginError, UnknownBackendError, get_registry


class _FakeDist:
    """Just enough of importlib.metadata.Distribution for discovery."""

    def __init__(self, name, version, entry_points):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = [importlib.metadata.EntryPoint(n, v, "memzoo") for n, v in entry_points]


def _fake_plugin(monkeypatch, module_name, dist_name, ep_name, **hooks):
    module = types.ModuleType(module_name)
    for hook, classes in hooks.items():
        setattr(module, hook, memzoo.hookimpl(lambda classes=classes: classes))
        getattr(module, hook).__name__ = hook
    monkeypatch.setitem(sys.modules, module_name, module)
    real = importlib.metadata.distributions

    def distributions():
        yield from real()
        yield _FakeDist(dist_name, "9.9", [(ep_name, module_name)])

    monkeypatch.setattr(importlib.metadata, "distributions", distributions)
    return module


@dataclass(frozen=True)
class _NoConfig:
    pass


class _Accept:
    name = "fake-accept"
    Config = _NoConfig

    def __init__(self, config):
        self.config = config

    def prob(self, coords):
        return coords[:, 0] * 0 + 1


def test_builtins_and_installed_test_plugin_are_discovered():
    infos = {p.name: p for p in memzoo.plugin_info()}
    assert infos["memzoo"].distribution == "memzoo"
    assert infos["memzoo"].provides["acceptance"] == ["constant", "mlp", "parametric-exact"]
    toy = infos["toy"]
    assert toy.distribution == "memzoo-toyplugin" and toy.version == "0.0.1"
    assert toy.provides == {
        "process": ["toy-muon"],
        "transfer": ["toy-smear"],
        "sampler": ["toy-gauss"],
        "likelihood": ["toy-analytic"],
        "acceptance": ["toy-turn-on"],
    }
    assert {"gaussian", "toy-smear"} <= set(memzoo.available("transfer"))
    assert memzoo.available(pattern="toy-*")["sampler"] == ["toy-gauss"]
    assert memzoo.available("acceptance", "m*") == ["mlp"]
    assert memzoo.available("acceptance") == ["constant", "mlp", "parametric-exact", "toy-turn-on"]


def test_create_by_name_with_typed_config():
    model = memzoo.create("acceptance", "mlp", hard_dim=7, layers=3, hidden=16)
    assert model.config.hidden == 16 and type(model).name == "mlp"


def test_unknown_backend_lists_known_names():
    with pytest.raises(
        UnknownBackendError,
        match=r"Unknown acceptance 'mpl'. Must be one of \['constant', 'mlp', 'parametric-exact', 'toy-turn-on'\]",
    ):
        memzoo.create("acceptance", "mpl")
    with pytest.raises(UnknownBackendError, match=r"Unknown kind 'transfers'. Must be one of \['process'"):
        memzoo.create("transfers", "toy-smear")


def test_unknown_config_key_is_named():
    with pytest.raises(ConfigError, match=r"Unknown acceptance 'mlp' config key\(s\) \['hiden'\]"):
        memzoo.create("acceptance", "mlp", hard_dim=3, hiden=8)


def test_duplicate_names_fail_naming_both_plugins(monkeypatch):
    from memzoo_toyplugin import ToySmear

    _fake_plugin(monkeypatch, "fake_dup_plugin", "memzoo-dup", "dup", memzoo_register_transfer_models=[ToySmear])
    with pytest.raises(
        PluginError,
        match=r"Duplicate transfer name 'toy-smear': registered by plugin '(toy|dup)' and by plugin '(dup|toy)'",
    ):
        get_registry()


def test_faked_distribution_is_discovered_and_can_be_disabled(monkeypatch):
    _fake_plugin(monkeypatch, "fake_ok_plugin", "memzoo-fake", "fake", memzoo_register_acceptance_models=[_Accept])
    assert "fake-accept" in memzoo.available("acceptance")
    info = {p.name: p for p in memzoo.plugin_info()}["fake"]
    assert (info.distribution, info.version) == ("memzoo-fake", "9.9")

    monkeypatch.setenv("MEMZOO_DISABLE_PLUGINS", "fake, other")
    memzoo.reset_plugins()
    assert "fake-accept" not in memzoo.available("acceptance")
    monkeypatch.setenv("MEMZOO_DISABLE_PLUGINS", "toy")
    memzoo.reset_plugins()
    assert "toy-smear" not in memzoo.available("transfer") and "gaussian" in memzoo.available("transfer")


def test_misspelled_hook_fails_loudly(monkeypatch):
    _fake_plugin(monkeypatch, "fake_typo_plugin", "memzoo-typo", "typo", memzoo_register_transfers=[_Accept])
    with pytest.raises(Exception, match="memzoo_register_transfers"):
        get_registry()


def test_broken_plugin_import_names_plugin_and_fix(monkeypatch):
    real = importlib.metadata.distributions

    def distributions():
        yield from real()
        yield _FakeDist("memzoo-broken", "1.0", [("broken", "no_such_module_for_memzoo")])

    monkeypatch.setattr(importlib.metadata, "distributions", distributions)
    with pytest.raises(
        PluginError,
        match=r"Plugin 'broken' from distribution 'memzoo-broken' failed to load.*MEMZOO_DISABLE_PLUGINS=broken",
    ):
        get_registry()


def test_class_without_required_methods_is_rejected(monkeypatch):
    class NoProb(_Accept):
        name = "no-prob"
        prob = None

    _fake_plugin(monkeypatch, "fake_bad_plugin", "memzoo-bad", "bad", memzoo_register_acceptance_models=[NoProb])
    with pytest.raises(PluginError, match=r"acceptance 'no-prob' from plugin 'bad' lacks method\(s\) \['prob'\]"):
        get_registry()


def test_every_hook_is_documented_and_tested():
    """datasette-style guard: a new hook must get a docstring and a mention in the tests."""
    from pathlib import Path

    from memzoo import hookspecs

    tests = "".join(p.read_text() for p in Path(__file__).parent.rglob("*.py"))
    for hook in hookspecs.HOOK_FOR_KIND.values():
        assert getattr(hookspecs, hook).__doc__, f"hook {hook} lacks a docstring"
        assert f"def {hook}" in tests, f"no test plugin implements {hook}"
