"""The ``memzoo integrate`` job: a dataset's events × a θ grid → a resumable results file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

__all__ = ["integrate_dataset", "load_model_spec"]


def load_model_spec(model: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Components and integrator options of a model card (``*.toml``) or an MLflow/bundle URI.

    Returns:
        (components with ``process`` and the roles present, integrator options, a description
        recorded in the results' settings).
    """
    if model.endswith(".toml"):
        from memzoo.cards import load_card

        card = load_card(model)
        return card.build(), dict(card.integrator), f"card:{Path(model).resolve()}"
    import memzoo

    bundle = memzoo.load(model)
    parts = {"process": bundle.build_process(), **bundle.components()}
    return parts, dict(bundle.metadata.get("integrator", {})), f"uri:{model}"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def integrate_dataset(
    model: str,
    data: str | Path,
    theta: dict[str, list[float]],
    out: str | Path,
    *,
    n_events: int | None = None,
    chunk_size: int = 50,
    options: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Integrate the accepted events of ``data`` on a θ grid and write ``out`` chunk by chunk.

    Rerunning the same call resumes after the last complete chunk; other settings are refused.
    """
    from tqdm import tqdm

    from memzoo.data import read_dataset
    from memzoo.integrator import MEMIntegrator
    from memzoo.results import ResultsWriter

    parts, card_options, description = load_model_spec(model)
    process = parts["process"]
    for role in ("transfer", "sampler"):
        if role not in parts:
            raise ValueError(f"The model {model!r} has no {role}; the MEM integral needs transfer and sampler.")
    everything = read_dataset(data)
    rows_all = torch.nonzero(everything.accepted).squeeze(-1)  # file rows of the accepted events
    dataset = everything[rows_all]
    if dataset.info.get("process") not in (None, process.name):
        raise ValueError(f"{data} holds {dataset.info['process']!r} events but the model is for {process.name!r}.")
    total = len(dataset) if n_events is None else min(n_events, len(dataset))
    if total == 0:
        raise ValueError(f"{data} has no accepted events to integrate.")
    grid = process.theta(theta)
    opts = {**card_options, **(options or {})}
    integrator = MEMIntegrator(
        process, parts["transfer"], parts["sampler"], parts.get("acceptance"), device=device, **opts
    )
    settings = {
        "model": description,
        "data": str(Path(data).resolve()),
        "data_sha256": _file_digest(Path(data)),
        "options": opts,
        "chunk_size": chunk_size,
    }
    rows = rows_all[:total]
    n_replicas = int(opts.get("bootstrap", 0)) + int(opts.get("replicas", 0))
    with ResultsWriter(out, grid, settings, n_replicas=n_replicas) as writer:
        bar = tqdm(total=total, initial=min(writer.n_done, total), unit="ev", desc="integrate", disable=not progress)
        for start in range(writer.n_done, total, chunk_size):
            stop = min(start + chunk_size, total)
            writer.append(rows[start:stop], integrator.log_likelihood(dataset[start:stop].charged_reco, grid))
            bar.update(stop - start)
        bar.close()
    return Path(out)
