"""``memzoo train CARD``: simulate (or reuse) the card's data, train its networks, register the bundle.

Order (thesis Sec. 6.2–6.4): the transfer network p(x_reco|x_hard) on accepted pairs, the
acceptance classifier ε(x_hard) on accepted and rejected hard events, then the sampling network
q(x_hard|x_reco, θ) on the true pairs (eq. 6.36). Every network is one MLflow run nested under
the card's run; the bundle is registered as a new version of the card's ``entry.name`` with the
validation losses as version tags. A card with a ``[likelihood]`` surrogate (e.g. ``regression``)
trains it on the data its ``[data]`` table names, through the backend's ``fit_card``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["train_card"]


def _data_path(card: Any, root: Path) -> Path:
    settings = json.dumps(
        {"process": card.process, "config": card.process_config, **card.tables.get("data", {})}, sort_keys=True
    )
    digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
    return root / "data" / f"{card.process}-{digest}.h5"


def _simulate(card: Any, root: Path, progress: bool) -> Path:
    from memzoo.simulation.simulate import SimulationConfig, simulate

    data = dict(card.tables.get("data", {}))
    if "path" in data:
        return Path(data["path"])
    theta = {k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("theta", {}).items()}
    n_events = data.pop("events", None)
    if n_events is None:
        raise ValueError(f"{card.path}: the [data] table needs events = N (or path = a dataset file).")
    workers = int(data.pop("workers", 1))
    path = _data_path(card, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = SimulationConfig(card.process, n_events=n_events, process_config=card.process_config, theta=theta, **data)
    return simulate(config, path, workers=workers, progress=progress)


def _columns(part: Any) -> tuple[torch.Tensor, ...]:
    reco = part.charged_reco
    return (reco.p.float(), reco.kind, reco.mask, reco.charge, part.hard_coords.float(), part.theta.float())


def _in_layout(model: Any, part: Any) -> Any:
    """The events of ``part`` whose reco objects a fixed-layout model can read (``layout.select``).

    The cINN sampler conditions on a fixed reco layout and rejects any other event, while the
    showered data (or a variable-multiplicity transfer such as the Transfermer) carry extra jets;
    like the transfer loss of a fixed layout, its training leaves those events out.
    """
    layout = getattr(model, "layout", None)
    if not callable(getattr(layout, "select", None)):
        return part
    valid = layout.select(part.charged_reco)[-1].cpu()
    return part if bool(valid.all()) else part[valid]


def _pair_loss(model: Any, p, kind, mask, charge, hard, theta) -> torch.Tensor:
    from memzoo.events import RecoParticles

    reco = RecoParticles(p, kind, mask, validate=False, charge=charge)
    return model.loss({"reco": reco, "hard": hard, "theta": theta, "charge": charge})


def _resampled_loss(transfer: Any):
    """The sampler loss on reco events drawn from the trained ``transfer`` at each batch's hard events,
    x̃_reco ~ p(x_reco|x_hard), fresh in every epoch (Heimel, PhD thesis 2024, eqs. 6.37–6.38): q then
    learns the modelled distribution and cannot memorise the finite set of reco events."""

    def loss(model: Any, p, kind, mask, charge, hard, theta) -> torch.Tensor:
        with torch.no_grad():
            reco = transfer.sample(hard)
        return model.loss({"reco": reco, "hard": hard, "theta": theta, "charge": None})

    return loss


def _train_surrogate(card: Any, card_path: Path, **kw: Any) -> dict[str, Any]:
    """A card with a trainable ``[likelihood]`` (a surrogate such as ``regression``): its ``fit_card``
    reads the training data the card names (no simulation); the bundle holds the likelihood alone."""
    import mlflow

    from memzoo.bundle import Bundle
    from memzoo.tracking import register_bundle

    torch.manual_seed(int(card.tables.get("training", {}).get("seed", 0)))  # reproducible initial weights
    model = card.build()["likelihood"]
    if not callable(getattr(model, "fit_card", None)):
        raise ValueError(f"{card_path}: likelihood backend {card.components['likelihood'][0]!r} is not trainable.")
    entry = card.entry.get("name", f"memzoo-{card.process}")
    with mlflow.start_run(run_name=f"train {entry} ({kw['size'] or 'base'})") as run:
        mlflow.log_params({"card": str(card_path.resolve()), "size": kw["size"] or "base"})
        metrics = model.fit_card(card, progress=kw["progress"])
        mlflow.log_metrics(metrics)
        meta = {"card": card.entry, "size": kw["size"], "metrics": metrics, "data": card.tables.get("data", {})}
        bundle = Bundle(card.process, dict(card.process_config), likelihood=model, metadata=meta)
        out: dict[str, Any] = {"metrics": metrics, "run_id": run.info.run_id, "bundle": bundle}
        if kw["register"]:
            version = register_bundle(bundle, entry, alias=kw["alias"], tags=metrics)
            out["version"] = int(version.version)
            out["uri"] = f"models:/{entry}/{version.version}"
    return out


def train_card(
    card_path: str | Path,
    *,
    size: str | None = "small",
    root: str | Path = "memzoo-runs",
    alias: str | None = None,
    register: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every network the card names and register the bundle; returns metrics and the version."""
    import mlflow

    from memzoo.builtin.acceptance_training import train_acceptance
    from memzoo.bundle import Bundle
    from memzoo.cards import load_card
    from memzoo.data import read_dataset
    from memzoo.tracking import ensure_tracking, register_bundle
    from memzoo.training import Trainer
    from memzoo.training_config import TrainingConfig

    card = load_card(card_path, size=size)
    root = Path(root)
    ensure_tracking()
    if "likelihood" in card.components:
        return _train_surrogate(card, Path(card_path), size=size, alias=alias, register=register, progress=progress)
    path = _simulate(card, root, progress)
    dataset = read_dataset(path)
    seed = int(card.tables.get("training", {}).get("seed", 0))
    train, val, _test = dataset.split(seed, (0.8, 0.1, 0.1))
    training = {k: v for k, v in card.tables.get("training", {}).items() if isinstance(v, dict)}
    torch.manual_seed(seed)  # reproducible initial weights: the same card trains the same bundle
    built = card.build()
    process = built["process"]
    metrics: dict[str, float] = {}
    entry = card.entry.get("name", f"memzoo-{card.process}")
    with mlflow.start_run(run_name=f"train {entry} ({size or 'base'})") as run:
        mlflow.log_params({"card": str(Path(card_path).resolve()), "size": size or "base", "data": str(path)})
        acc_train, acc_val = train[train.accepted], val[val.accepted]
        for role in ("transfer", "sampler"):
            if role not in built:
                continue
            model = built[role]
            if role == "transfer":
                fit_train, fit_val = acc_train, acc_val
                model.fit_preprocessing(fit_train.charged_reco, fit_train.hard_coords)
            else:
                fit_train, fit_val = _in_layout(model, acc_train), _in_layout(model, acc_val)
                if len(fit_train) < 2 or len(fit_val) < 1:
                    raise ValueError(
                        f"{card_path}: only {len(fit_train)} training and {len(fit_val)} validation events have "
                        f"the {role}'s reco layout; simulate more events or check its objects."
                    )
                metrics[f"{role}_layout_fraction"] = len(fit_train) / max(len(acc_train), 1)
                model.fit_preprocessing(fit_train.charged_reco, fit_train.hard_coords, fit_train.theta)
            options = dict(training.get(role, {}))
            loss = _pair_loss
            if role == "sampler":
                source = options.pop("reco", "true")
                if source not in ("true", "transfer"):
                    raise ValueError(
                        f"{card_path}: [training.sampler] reco = {source!r}; use 'true' (the simulated reco "
                        "events, eq. 6.36) or 'transfer' (drawn from the trained transfer network, eqs. 6.37–6.38)."
                    )
                if source == "transfer":
                    if "transfer" not in built:
                        raise ValueError(f"{card_path}: [training.sampler] reco = 'transfer' needs a [transfer].")
                    built["transfer"].eval()
                    loss = _resampled_loss(built["transfer"])
                mlflow.log_param("sampler_reco", source)
            config = TrainingConfig.from_dict(options)
            result = Trainer(model, loss, config, name=f"{entry}/{role}", progress=progress).fit(
                _columns(fit_train), _columns(fit_val)
            )
            metrics[f"{role}_val_loss"] = float(result.best_val_loss)
        if "acceptance" in built and hasattr(built["acceptance"], "fit_standardisation"):
            config = TrainingConfig.from_dict(training.get("acceptance", {}))
            fit = train_acceptance(
                built["acceptance"],
                dataset.hard_coords.float(),
                dataset.accepted,
                config,
                names=list(process.coordinate_names),
                name=f"{entry}/acceptance",
                progress=progress,
            )
            metrics.update({f"acceptance_{k}": float(v) for k, v in fit.metrics.items()})
        mlflow.log_metrics(metrics)
        bundle = Bundle(
            card.process,
            dict(card.process_config),
            **{role: built[role] for role in ("transfer", "sampler", "acceptance", "likelihood") if role in built},
            metadata={
                "card": card.entry,
                "size": size,
                "integrator": card.integrator,
                "metrics": metrics,
                "data": str(path),
            },
        )
        out: dict[str, Any] = {"metrics": metrics, "run_id": run.info.run_id, "data": str(path), "bundle": bundle}
        if register:
            version = register_bundle(bundle, entry, alias=alias, tags=metrics)
            out["version"] = int(version.version)
            out["uri"] = f"models:/{entry}/{version.version}"
    return out
