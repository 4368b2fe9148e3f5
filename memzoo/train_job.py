"""``memzoo train CARD``: simulate (or reuse) the card's data, train its networks, register the bundle.

Order (thesis Sec. 6.2–6.4): the transfer network p(x_reco|x_hard) on accepted pairs, the
acceptance classifier ε(x_hard) on accepted and rejected hard events, then the sampling network
q(x_hard|x_reco, θ), on the true pairs (eq. 6.36) or, with ``[training.sampler] reco = "transfer"``,
on reco events drawn from the trained transfer (eqs. 6.37–6.38). ``hard = "acceptance"`` also
replaces the accepted hard events by all simulated ones, thinned batch by batch with the trained
classifier (kept with probability ε(x)): the pairs then follow dσ(x) ε(x) p(x_reco|x), the MEM
integrand itself, and every epoch sees other hard events, so a sample with a small acceptance
(4.6 % for the hadronic tHj selection) still trains the sampler on all its hard events.
``reuse`` takes networks from a registered bundle instead of training them (e.g. retrain only
the sampler of a bundle). Every network is one MLflow run nested under
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


def _resampled_loss(transfer: Any, acceptance: Any = None):
    """The sampler loss on reco events drawn from the trained ``transfer`` at each batch's hard events,
    x̃_reco ~ p(x_reco|x_hard), fresh in every epoch (Heimel, PhD thesis 2024, eqs. 6.37–6.38): q then
    learns the modelled distribution and cannot memorise the finite set of reco events.

    With a trained ``acceptance`` the batches hold all simulated hard events and each row is kept
    with probability ε(x_hard): the kept pairs follow dσ(x) ε(x) p(x_reco|x), the integrand the
    sampler must match (eq. 6.39)."""

    def loss(model: Any, p, kind, mask, charge, hard, theta) -> torch.Tensor:
        with torch.no_grad():
            if acceptance is not None:
                keep = torch.rand(len(hard), device=hard.device) < acceptance.prob(hard.double()).to(hard.device)
                if not bool(keep.any()):  # a (rare, small) batch without a kept row: no update
                    return next(model.parameters()).sum() * 0.0
                hard, theta = hard[keep], theta[keep]
            reco = transfer.sample(hard)
        return model.loss({"reco": reco, "hard": hard, "theta": theta, "charge": None})

    return loss


def _sampler_setup(card_path: Path, options: dict[str, Any], built: dict[str, Any], train: Any, val: Any):
    """Loss, training/validation events (``None``: the accepted pairs) and metrics of the sampler."""
    source, hard = options.pop("reco", "true"), options.pop("hard", "accepted")
    if source not in ("true", "transfer"):
        raise ValueError(
            f"{card_path}: [training.sampler] reco = {source!r}; use 'true' (the simulated reco "
            "events, eq. 6.36) or 'transfer' (drawn from the trained transfer network, eqs. 6.37–6.38)."
        )
    if hard not in ("accepted", "acceptance"):
        raise ValueError(
            f"{card_path}: [training.sampler] hard = {hard!r}; use 'accepted' (the simulated accepted "
            "events) or 'acceptance' (all simulated hard events thinned by the trained acceptance classifier)."
        )
    if source == "transfer" and "transfer" not in built:
        raise ValueError(f"{card_path}: [training.sampler] reco = 'transfer' needs a [transfer].")
    if hard == "acceptance":
        if source != "transfer" or not callable(getattr(built.get("acceptance"), "prob", None)):
            raise ValueError(
                f"{card_path}: [training.sampler] hard = 'acceptance' needs reco = 'transfer' (rejected events "
                "have no reco objects of the layout) and an [acceptance] classifier."
            )
        acceptance = built["acceptance"].eval()
        with torch.no_grad():
            mean_eps = float(acceptance.prob(train.hard_coords.double()).mean())
        # batches of all events hold batch_size kept events on average
        options["batch_size"] = max(1, round(int(options.get("batch_size", 1024)) / max(mean_eps, 1e-3)))
        loss = _resampled_loss(built["transfer"].eval(), acceptance)
        return loss, train, val, {"sampler_mean_acceptance": mean_eps}
    if source == "transfer":
        return _resampled_loss(built["transfer"].eval()), None, None, {}
    return _pair_loss, None, None, {}


def _reused(
    card_path: str | Path, built: dict[str, Any], reuse: str | None, retrain: tuple[str, ...]
) -> tuple[set[str], str | None]:
    """Replace the networks of ``built`` by those of the bundle ``reuse`` (all but ``retrain``).

    Returns the roles taken and the URI loaded (an alias pinned to its current version).
    """
    if reuse is None:
        return set(), None
    import memzoo
    from memzoo.tracking import resolve_model_uri

    unknown = set(retrain) - {"transfer", "acceptance", "sampler"}
    if unknown:
        raise ValueError(f"retrain: unknown roles {sorted(unknown)}; choose from transfer, acceptance, sampler.")
    reuse = resolve_model_uri(str(reuse))  # the version, not an alias that may move
    parts = memzoo.load(reuse).components()
    taken = set()
    for role in ("transfer", "acceptance", "sampler"):
        if role not in built or role in retrain:
            continue
        if role not in parts:
            raise ValueError(f"{reuse} has no {role} to reuse; add it to --retrain.")
        if getattr(parts[role], "name", None) != getattr(built[role], "name", None):
            raise ValueError(
                f"{card_path}: the card's {role} is {getattr(built[role], 'name', '?')!r}, but {reuse} holds "
                f"{getattr(parts[role], 'name', '?')!r}; reuse a bundle of this card or retrain the {role}."
            )
        built[role] = parts[role]
        taken.add(role)
    return taken, reuse


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
    reuse: str | None = None,
    retrain: tuple[str, ...] = ("sampler",),
) -> dict[str, Any]:
    """Train every network the card names and register the bundle; returns metrics and the version.

    Args:
        reuse: a bundle URI (``models:/NAME@ALIAS``, ``runs:/…``, a folder); its networks are
            taken as trained, except the roles in ``retrain``. Their backends must be the card's.
        retrain: with ``reuse``, the roles trained anew.
    """
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
        trained, pinned = _reused(card_path, built, reuse, retrain)
        if trained:
            mlflow.log_params({"reuse": pinned, "reused_roles": ",".join(sorted(trained))})
        for role in ("transfer", "acceptance", "sampler"):
            if role not in built or role in trained:
                continue
            model = built[role]
            if role == "acceptance":
                if not hasattr(model, "fit_standardisation"):
                    continue  # a fixed (untrainable) acceptance
                config = TrainingConfig.from_dict(training.get("acceptance", {}))
                fit = train_acceptance(
                    model,
                    dataset.hard_coords.float(),
                    dataset.accepted,
                    config,
                    names=list(process.coordinate_names),
                    name=f"{entry}/acceptance",
                    progress=progress,
                )
                metrics.update({f"acceptance_{k}": float(v) for k, v in fit.metrics.items()})
                continue
            options = dict(training.get(role, {}))
            loss, fit_train, fit_val = _pair_loss, acc_train, acc_val
            if role == "transfer":
                model.fit_preprocessing(fit_train.charged_reco, fit_train.hard_coords)
            else:
                loss, fit_train, fit_val, extra = _sampler_setup(Path(card_path), options, built, train, val)
                metrics.update(extra)
                pairs_train, pairs_val = _in_layout(model, acc_train), _in_layout(model, acc_val)
                if len(pairs_train) < 2 or len(pairs_val) < 1:
                    raise ValueError(
                        f"{card_path}: only {len(pairs_train)} training and {len(pairs_val)} validation events have "
                        f"the {role}'s reco layout; simulate more events or check its objects."
                    )
                metrics[f"{role}_layout_fraction"] = len(pairs_train) / max(len(acc_train), 1)
                if fit_train is None:  # pairs of the accepted events in the sampler's layout
                    fit_train, fit_val = pairs_train, pairs_val
                model.fit_preprocessing(pairs_train.charged_reco, pairs_train.hard_coords, pairs_train.theta)
                chosen = training.get(role, {})
                defaults = (("reco", "true"), ("hard", "accepted"))
                mlflow.log_params({f"sampler_{k}": chosen.get(k, d) for k, d in defaults})
            config = TrainingConfig.from_dict(options)
            result = Trainer(model, loss, config, name=f"{entry}/{role}", progress=progress).fit(
                _columns(fit_train), _columns(fit_val)
            )
            metrics[f"{role}_val_loss"] = float(result.best_val_loss)
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
