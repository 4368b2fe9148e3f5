"""Bundles: the cooperating networks of one zoo entry, saved as safetensors + JSON manifests.

A bundle folder holds ``memzoo_bundle.json`` (process, components, preprocessing, metadata) and,
per component role (``transfer``, ``sampler``, ``acceptance``, ``likelihood``), a JSON manifest
naming the registered backend (kind, name, config, plugin, version) and a ``.safetensors``
weights file. Loading rebuilds every component *by name* through the plugin registry and fills
its weights; no file of the bundle is ever unpickled or executed (DESIGN §5).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from memzoo.config import config_to_dict
from memzoo.plugins import create, get_registry

__all__ = ["ROLES", "Bundle", "BundleFormatError", "load_bundle_dir", "save_bundle_dir"]

#: Component roles of a bundle and the registry kind each is built from.
ROLES: dict[str, str] = {
    "transfer": "transfer",
    "sampler": "sampler",
    "acceptance": "acceptance",
    "likelihood": "likelihood",
}
BUNDLE_FILE = "memzoo_bundle.json"
FORMAT = "memzoo-bundle"
FORMAT_VERSION = 1


class BundleFormatError(ValueError):
    """A bundle folder that is incomplete, malformed or asks for something unsafe."""


@dataclass
class Bundle:
    """The networks of one zoo entry and the process they belong to.

    Attributes:
        process: registered process name (``"thj"``).
        process_config: keyword config of the process (``{"tops": "top"}``).
        transfer, sampler, acceptance, likelihood: registered backends or ``None``.
        preprocessing: named tensors (saved as safetensors) and JSON values.
        metadata: free JSON metadata (card, data settings, metrics).
    """

    process: str
    process_config: dict[str, Any] = field(default_factory=dict)
    transfer: Any = None
    sampler: Any = None
    acceptance: Any = None
    likelihood: Any = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def components(self) -> dict[str, Any]:
        """The non-empty component roles."""
        return {role: getattr(self, role) for role in ROLES if getattr(self, role) is not None}

    def build_process(self) -> Any:
        """The process, built by name through the registry."""
        return create("process", self.process, **self.process_config)

    def likelihood_model(self) -> Any:
        """The bundle's :class:`~memzoo.protocols.LikelihoodModel`.

        A bundle with a ``likelihood`` component (e.g. a regression surrogate) answers with it.
        """
        if self.likelihood is None:
            raise ValueError(
                f"This {self.process!r} bundle has no 'likelihood' component; it holds "
                f"{sorted(self.components())}. Combine its networks with the MEM integrator, or "
                f"save a bundle with a likelihood model."
            )
        return self.likelihood

    def to(self, device: str | torch.device) -> Bundle:
        """Move every torch component to ``device`` (in place) and return self."""
        for obj in self.components().values():
            if isinstance(obj, torch.nn.Module):
                obj.to(device)
        return self


# ---------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------


def _manifest(role: str, obj: Any) -> dict[str, Any]:
    entry = get_registry().entry_of(obj)
    if entry.kind != ROLES[role]:
        raise TypeError(f"The {role} of a bundle must be a registered {ROLES[role]}, got a {entry.kind}.")
    return {
        "role": role,
        "kind": entry.kind,
        "name": entry.name,
        "config": config_to_dict(obj.config),
        "plugin": entry.plugin,
        "distribution": entry.distribution,
        "version": entry.version,
        "weights": f"{role}.safetensors" if isinstance(obj, torch.nn.Module) else None,
    }


def save_bundle_dir(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` into a new folder ``path`` (safetensors + JSON only)."""
    from memzoo import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=False)
    components = {}
    for role, obj in bundle.components().items():
        manifest = _manifest(role, obj)
        if manifest["weights"]:
            state = {k: v.detach().contiguous().cpu() for k, v in obj.state_dict().items()}
            save_file(state, str(path / manifest["weights"]))
        (path / f"{role}.json").write_text(json.dumps(manifest, indent=2))
        components[role] = f"{role}.json"
    tensors = {k: v for k, v in bundle.preprocessing.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in bundle.preprocessing.items() if not isinstance(v, torch.Tensor)}
    if tensors:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path / "preprocessing.safetensors")
        )
    top = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "memzoo_version": __version__,
        "process": {"name": bundle.process, "config": bundle.process_config},
        "components": components,
        "preprocessing": {"json": plain, "tensors": "preprocessing.safetensors" if tensors else None},
        "metadata": bundle.metadata,
    }
    (path / BUNDLE_FILE).write_text(json.dumps(top, indent=2))
    return path


# ---------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------


def _safe_member(folder: Path, name: Any, suffix: str) -> Path:
    """A file named in a manifest: a plain name inside the bundle folder with the given suffix."""
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".") or not name.endswith(suffix):
        raise BundleFormatError(
            f"Bundle {folder} names file {name!r}; only plain '*{suffix}' files inside the bundle are "
            f"read (memzoo never unpickles or executes model files)."
        )
    member = folder / name
    if not member.is_file():
        raise BundleFormatError(f"Bundle {folder} is incomplete: {name} is missing.")
    return member


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleFormatError(f"Cannot read bundle manifest {path}: {err}.") from err


def _load_component(folder: Path, role: str, manifest_name: str, device: str | torch.device) -> Any:
    manifest = _read_json(_safe_member(folder, manifest_name, ".json"))
    kind, name = manifest.get("kind"), manifest.get("name")
    if kind != ROLES[role]:
        raise BundleFormatError(f"{folder / manifest_name}: kind {kind!r} does not fit role {role!r}.")
    entry = get_registry().get(kind, name)
    if manifest.get("version") not in (None, entry.version):
        warnings.warn(
            f"{role} {name!r} was saved with {manifest.get('distribution')} {manifest.get('version')}, "
            f"installed is {entry.distribution} {entry.version}.",
            stacklevel=3,
        )
    obj = create(kind, name, **manifest.get("config", {}))
    if manifest.get("weights"):
        weights = load_file(str(_safe_member(folder, manifest["weights"], ".safetensors")), device=str(device))
        obj.load_state_dict(weights, strict=True)
    if isinstance(obj, torch.nn.Module):
        obj.to(device).eval()
    return obj


def load_bundle_dir(path: str | Path, device: str | torch.device | None = None) -> Bundle:
    """Rebuild a bundle from a folder written by :func:`save_bundle_dir`.

    Components are created by name through the plugin registry (so their plugins must be
    installed) and their weights read from safetensors onto ``device`` (default CPU).
    """
    folder = Path(path)
    top_file = folder / BUNDLE_FILE
    if not top_file.is_file():
        raise BundleFormatError(f"{folder} is not a memzoo bundle: {BUNDLE_FILE} is missing.")
    top = _read_json(top_file)
    if top.get("format") != FORMAT or top.get("format_version") != FORMAT_VERSION:
        raise BundleFormatError(
            f"{top_file} has format {top.get('format')!r} version {top.get('format_version')!r}; "
            f"this memzoo reads {FORMAT!r} version {FORMAT_VERSION}."
        )
    device = torch.device(device or "cpu")
    unknown = sorted(set(top.get("components", {})) - set(ROLES))
    if unknown:
        raise BundleFormatError(f"{top_file} has unknown component roles {unknown}; known: {sorted(ROLES)}.")
    components = {role: _load_component(folder, role, manifest, device) for role, manifest in top["components"].items()}
    pre = top.get("preprocessing", {}) or {}
    preprocessing: dict[str, Any] = dict(pre.get("json") or {})
    if pre.get("tensors"):
        preprocessing.update(load_file(str(_safe_member(folder, pre["tensors"], ".safetensors")), device=str(device)))
    process = top.get("process") or {}
    return Bundle(
        process=process.get("name", ""),
        process_config=process.get("config") or {},
        preprocessing=preprocessing,
        metadata=top.get("metadata") or {},
        **components,
    )
