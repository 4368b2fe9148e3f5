"""Pickle-free training checkpoints: tensors in safetensors, structure and scalars in JSON.

``torch.save`` pickles, and loading a pickle may execute code (DESIGN §5), so a checkpoint is a
pair ``checkpoint.safetensors`` (model weights, optimizer state tensors, RNG state, extra
tensors such as the best weights) + ``checkpoint.json`` (epoch, scheduler state, history and
the structure of the optimizer state). :func:`flatten_state` and :func:`unflatten_state`
convert any optimizer or scheduler ``state_dict()`` to and from that pair.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["flatten_state", "has_checkpoint", "load_checkpoint", "save_checkpoint", "unflatten_state"]

STEM = "checkpoint"
FORMAT = "memzoo-training-checkpoint"
_MARKERS = ("__tensor__", "__tuple__", "__items__")


def flatten_state(state: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON-serialisable structure of ``state``; its tensors are copied into ``tensors``.

    Handles what optimizer and scheduler ``state_dict()`` hold: dicts (also with integer keys),
    lists, tuples, tensors, numbers, strings, booleans and ``None``. Tensors are stored under
    ``prefix/<path>`` and replaced by ``{"__tensor__": name}``.

    Raises:
        TypeError: for any other object (it could only be saved by pickling).
    """
    if isinstance(state, torch.Tensor):
        if prefix in tensors:
            raise ValueError(f"Two state entries map to the tensor name {prefix!r}.")
        tensors[prefix] = state.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": prefix}
    if state is None or isinstance(state, bool | int | float | str):
        return state
    if isinstance(state, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(state)]}
    if isinstance(state, list):
        return [flatten_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(state)]
    if isinstance(state, dict):
        if all(isinstance(k, str) and k not in _MARKERS for k in state):
            return {k: flatten_state(v, tensors, f"{prefix}/{k}") for k, v in state.items()}
        # JSON object keys are strings: keep integer keys (optimizer parameter ids) as pairs
        items = [[flatten_state(k, {}, ""), flatten_state(v, tensors, f"{prefix}/{k}")] for k, v in state.items()]
        return {"__items__": items}
    raise TypeError(f"Cannot store {type(state).__name__} at {prefix!r} without pickling; state must be plain data.")


def unflatten_state(structure: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(structure, list):
        return [unflatten_state(v, tensors) for v in structure]
    if isinstance(structure, dict):
        if set(structure) == {"__tensor__"}:
            return tensors[structure["__tensor__"]]
        if set(structure) == {"__tuple__"}:
            return tuple(unflatten_state(v, tensors) for v in structure["__tuple__"])
        if set(structure) == {"__items__"}:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in structure["__items__"]}
        return {k: unflatten_state(v, tensors) for k, v in structure.items()}
    return structure


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a checkpoint."""
    return (Path(folder) / f"{STEM}.json").is_file()


def save_checkpoint(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    meta: Mapping[str, Any],
    extra: Mapping[str, torch.Tensor] | None = None,
    device: torch.device | None = None,
) -> Path:
    """Write model, optimizer, scheduler, RNG state, ``extra`` tensors and JSON ``meta`` to ``folder``.

    ``meta`` must contain ``epoch``. The files are written under temporary names and renamed, so
    a crash while writing leaves the previous checkpoint readable.

    Returns:
        The path of ``checkpoint.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    tensors |= {f"extra/{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in (extra or {}).items()}
    # the RNG state too, so that dropout or noise after a resume continues the same stream
    tensors["rng/cpu"] = torch.get_rng_state()
    if device is not None and device.type == "cuda":
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    manifest = {"format": FORMAT, "format_version": 1, **meta}
    manifest["optimizer"] = flatten_state(optimizer.state_dict(), tensors, "optimizer")
    manifest["scheduler"] = flatten_state(scheduler.state_dict(), tensors, "scheduler") if scheduler else None
    weights, index = folder / f"{STEM}.safetensors", folder / f"{STEM}.json"
    # the epoch in the safetensors metadata catches a crash between the two renames
    save_file(tensors, f"{weights}.tmp", metadata={"epoch": str(meta["epoch"])})
    Path(f"{index}.tmp").write_text(json.dumps(manifest, indent=1))
    os.replace(f"{weights}.tmp", weights)
    os.replace(f"{index}.tmp", index)
    return index


def load_checkpoint(
    folder: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    device: torch.device | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model, optimizer, scheduler and RNG state from ``folder``.

    Returns:
        The JSON ``meta`` and the ``extra`` tensors (on ``device``) given to :func:`save_checkpoint`.

    Raises:
        ValueError: when the two files do not belong together or are no memzoo checkpoint.
    """
    folder = Path(folder)
    meta = json.loads((folder / f"{STEM}.json").read_text())
    weights = folder / f"{STEM}.safetensors"
    with safe_open(str(weights), "pt") as f:
        tagged = (f.metadata() or {}).get("epoch")
    if meta.get("format") != FORMAT or tagged != str(meta.get("epoch")):
        raise ValueError(f"{folder} holds an incomplete or foreign checkpoint; delete it to start afresh.")
    tensors = load_file(str(weights))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    optimizer.load_state_dict(unflatten_state(meta.pop("optimizer"), tensors))
    scheduler_state = meta.pop("scheduler")
    if scheduler is not None:
        scheduler.load_state_dict(unflatten_state(scheduler_state, tensors))
    torch.set_rng_state(tensors["rng/cpu"])
    if "rng/cuda" in tensors and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], device)
    extra = {k[6:]: v.to(device or "cpu") for k, v in tensors.items() if k.startswith("extra/")}
    return meta, extra
