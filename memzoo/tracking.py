"""MLflow integration: the ``memzoo`` model flavour, the embedded store and the model registry.

A trained zoo entry is one registered MLflow model whose artifact is a bundle folder
(:mod:`memzoo.bundle`: safetensors + JSON). The flavour follows MLflow's own ones
(``save_model``/``log_model``/``load_model`` plus a pyfunc loader); the pyfunc flavour is
loaded through :func:`_load_pyfunc` from this module, never from a pickle, and its ``predict``
returns per-event log-likelihoods.

Store: unless ``MLFLOW_TRACKING_URI`` is set, runs and registered models live in an embedded
SQLite database with local artifacts under ``./memzoo-runs/`` (see :func:`configure_tracking`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from memzoo.bundle import Bundle, BundleFormatError, load_bundle_dir, save_bundle_dir
from memzoo.events import Particles

__all__ = [
    "FLAVOR_NAME",
    "configure_tracking",
    "delete_alias",
    "ensure_tracking",
    "frame_to_particles",
    "list_registered",
    "load_bundle",
    "load_model",
    "log_model",
    "particles_to_frame",
    "register_bundle",
    "resolve_model_uri",
    "save_model",
    "set_alias",
    "show_registered",
]

FLAVOR_NAME = "memzoo"
_STATE: dict[str, str] = {}
DATA_SUBPATH = "bundle"
DEFAULT_ROOT = "memzoo-runs"
EXPERIMENT = "memzoo"


def configure_tracking(root: str | Path | None = None) -> str:
    """Point MLflow at the shared server in ``MLFLOW_TRACKING_URI`` or at the embedded store.

    The embedded store is ``sqlite:///<root>/mlflow.db`` with artifacts in ``<root>/artifacts``
    (``root`` defaults to ``./memzoo-runs``). Creates the ``memzoo`` experiment if needed.

    Returns:
        The tracking URI in use.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    artifact_location = None
    if not uri:
        folder = Path(root or DEFAULT_ROOT).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        artifact_location = (folder / "artifacts").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _STATE["configured"] = uri
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


def ensure_tracking() -> str:
    """The store this process already chose, or the embedded default (:func:`configure_tracking`)."""
    return _STATE["configured"] if "configured" in _STATE else configure_tracking()


# ---------------------------------------------------------------------------------------
# the flavour
# ---------------------------------------------------------------------------------------


def save_model(bundle: Bundle, path: str | Path, mlflow_model: Any = None, **_: Any) -> None:
    """Save ``bundle`` as an MLflow model folder with the ``memzoo`` and pyfunc flavours."""
    from mlflow.models import Model
    from mlflow.pyfunc import add_to_model

    from memzoo import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_bundle_dir(bundle, path / DATA_SUBPATH)
    model = mlflow_model if mlflow_model is not None else Model()
    model.add_flavor(FLAVOR_NAME, memzoo_version=__version__, data=DATA_SUBPATH, process=bundle.process)
    add_to_model(model, loader_module="memzoo.tracking", data=DATA_SUBPATH)
    model.save(str(path / "MLmodel"))


def log_model(bundle: Bundle, name: str = "bundle", registered_model_name: str | None = None) -> Any:
    """Log ``bundle`` to the active MLflow run (started if needed); optionally register it.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``, ...).
    """
    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=sys.modules[__name__],
        bundle=bundle,
        registered_model_name=registered_model_name,
    )


def _bundle_folder(local: Path) -> Path:
    """The bundle folder inside a downloaded MLflow model (or the folder itself)."""
    if (local / "memzoo_bundle.json").is_file():
        return local
    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        raise BundleFormatError(f"{local} holds neither an MLflow model (MLmodel) nor a memzoo bundle.")
    from mlflow.models import Model

    flavors = Model.load(str(mlmodel)).flavors
    if FLAVOR_NAME not in flavors:
        raise BundleFormatError(
            f"{local} is an MLflow model with flavours {sorted(flavors)} but not the 'memzoo' flavour. "
            f"memzoo loads only safetensors + JSON bundles and never unpickles foreign models."
        )
    return local / flavors[FLAVOR_NAME]["data"]


def load_bundle(uri: str | Path, device: str | torch.device | None = None) -> Bundle:
    """Load a bundle from ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/NAME``,
    any MLflow artifact URI, or a local folder; weights go to ``device`` (default CPU)."""
    local = Path(uri) if not isinstance(uri, str) or ("://" not in uri and ":/" not in uri) else None
    if local is None:
        import mlflow

        ensure_tracking()
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(uri)))
    elif not local.exists():
        raise FileNotFoundError(f"No bundle at {local}. Give a folder or an MLflow URI such as models:/NAME@ALIAS.")
    return load_bundle_dir(_bundle_folder(local), device=device)


load_model = load_bundle


# ---------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------


def register_bundle(bundle: Bundle, name: str, alias: str | None = None, tags: dict[str, Any] | None = None) -> Any:
    """Log ``bundle`` in the active run (or a new one) and register it as a new version of ``name``.

    Args:
        name: registered model name, by convention ``memzoo-<process>-<backend>``.
        alias: optionally point this alias (``champion``, ``challenger``) at the new version.
        tags: version tags (e.g. validation metrics).

    Returns:
        The MLflow ``ModelVersion``.
    """
    import mlflow

    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    run = active or mlflow.start_run(run_name=f"register-{name}")
    try:
        info = log_model(bundle, registered_model_name=name)
    finally:
        if active is None:
            mlflow.end_run()
    version = str(info.registered_model_version)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, str(value))
    if alias:
        client.set_registered_model_alias(name, alias, version)
    del run
    return client.get_model_version(name, version)


def resolve_model_uri(uri: str) -> str:
    """``models:/NAME@ALIAS`` → ``models:/NAME/VERSION`` (the version the alias points at now).

    Any other URI is returned unchanged. Aliases move (``memzoo train --alias champion``), so a
    record of what was used must hold the version, not the alias.
    """
    if not uri.startswith("models:/") or "@" not in uri:
        return uri
    import mlflow

    ensure_tracking()
    name, alias = uri[len("models:/") :].rsplit("@", 1)
    version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    return f"models:/{name}/{version}"


def set_alias(name: str, alias: str, version: int | str) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (moving it if it exists)."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, alias, str(version))


def delete_alias(name: str, alias: str) -> None:
    """Remove ``alias`` from registered model ``name``."""
    import mlflow

    mlflow.MlflowClient().delete_registered_model_alias(name, alias)


def list_registered() -> list[dict[str, Any]]:
    """Registered models: name, latest version, aliases and description."""
    import mlflow

    out = []
    for model in mlflow.MlflowClient().search_registered_models():
        versions = [int(v.version) for v in model.latest_versions or []]
        out.append(
            {
                "name": model.name,
                "latest_version": max(versions) if versions else None,
                "aliases": {alias: int(v) for alias, v in (model.aliases or {}).items()},
                "description": model.description or "",
            }
        )
    return sorted(out, key=lambda m: m["name"])


def show_registered(name: str) -> dict[str, Any]:
    """One registered model with all its versions, their aliases, tags and source runs."""
    import mlflow

    client = mlflow.MlflowClient()
    model = client.get_registered_model(name)
    aliases_of: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases_of.setdefault(str(version), []).append(alias)
    versions = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    return {
        "name": model.name,
        "description": model.description or "",
        "versions": [
            {
                "version": int(v.version),
                "aliases": sorted(aliases_of.get(str(v.version), [])),
                "run_id": v.run_id,
                "source": v.source,
                "tags": dict(v.tags or {}),
            }
            for v in versions
        ],
    }


# ---------------------------------------------------------------------------------------
# pyfunc: frames of reco objects -> log-likelihoods
# ---------------------------------------------------------------------------------------

_COMPONENTS = ("E", "px", "py", "pz")


def particles_to_frame(reco: Particles, theta: torch.Tensor | None = None, names: list[str] | None = None) -> Any:
    """A pandas frame with columns ``obj{i}_E, _px, _py, _pz, _kind`` (+ ``_charge`` for reco events
    that carry charges, + one column per θ)."""
    import pandas as pd

    data: dict[str, Any] = {}
    p = reco.p.detach().cpu().double()
    for i in range(reco.n_objects):
        for c, comp in enumerate(_COMPONENTS):
            data[f"obj{i}_{comp}"] = p[:, i, c].numpy()
        data[f"obj{i}_kind"] = torch.where(reco.mask[:, i], reco.kind[:, i], 0).cpu().numpy()
        if getattr(reco, "charge", None) is not None:
            data[f"obj{i}_charge"] = torch.where(reco.mask[:, i], reco.charge[:, i], 0).cpu().numpy()
    if theta is not None:
        for j, name in enumerate(names or []):
            data[name] = theta[:, j].detach().cpu().double().numpy()
    return pd.DataFrame(data)


def frame_to_particles(frame: Any) -> Particles:
    """Inverse of :func:`particles_to_frame`; kind 0 or missing momenta mark absent objects."""
    import numpy as np

    n = 0
    while f"obj{n}_kind" in frame.columns:
        n += 1
    if n == 0:
        raise ValueError(
            "The input frame has no object columns; expected obj0_E, obj0_px, obj0_py, obj0_pz, obj0_kind, ..."
        )
    missing = [f"obj{i}_{c}" for i in range(n) for c in _COMPONENTS if f"obj{i}_{c}" not in frame.columns]
    if missing:
        raise ValueError(f"The input frame lacks columns {missing}.")
    p = np.stack([np.stack([frame[f"obj{i}_{c}"].to_numpy(float) for c in _COMPONENTS], -1) for i in range(n)], 1)
    kind = np.stack([frame[f"obj{i}_kind"].fillna(0).to_numpy(int) for i in range(n)], 1)
    mask = (kind != 0) & np.isfinite(p).all(-1)
    p = np.where(mask[..., None], p, 0.0)
    if all(f"obj{i}_charge" in frame.columns for i in range(n)):  # charge-ordered models need them
        from memzoo.events import RecoParticles

        charge = np.stack([frame[f"obj{i}_charge"].fillna(0).to_numpy(int) for i in range(n)], 1)
        return RecoParticles(
            torch.as_tensor(p), torch.as_tensor(kind), torch.as_tensor(mask), charge=torch.as_tensor(charge * mask)
        )
    return Particles(torch.as_tensor(p), torch.as_tensor(kind), torch.as_tensor(mask))


class _PyfuncBundle:
    """What ``mlflow.pyfunc.load_model`` wraps: frames of reco events -> log-likelihoods."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.process = bundle.build_process()
        self.model = bundle.likelihood_model()

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """Return a frame with ``log_likelihood`` and ``log_likelihood_std`` per input row.

        θ comes from columns named like the process parameters, else from ``params``,
        else the parameter defaults.
        """
        import numpy as np
        import pandas as pd

        reco = frame_to_particles(model_input)
        names = [p.name for p in self.process.parameters]
        given = {**{p.name: p.default for p in self.process.parameters}, **(params or {})}
        theta = torch.stack(
            [
                torch.as_tensor(
                    np.array(model_input[n], dtype=float) if n in model_input.columns else np.full(len(reco), given[n])
                )
                for n in names
            ],
            -1,
        ).double()
        logp = torch.empty(len(reco), dtype=torch.float64)
        std = torch.empty(len(reco), dtype=torch.float64)
        unique, which = torch.unique(theta, dim=0, return_inverse=True)
        with torch.no_grad():
            for j in range(len(unique)):
                rows = (which == j).nonzero().squeeze(-1)
                result = self.model.log_likelihood(reco[rows], unique[j : j + 1])
                logp[rows] = result.logp[:, 0].double().cpu()
                std[rows] = result.std[:, 0].double().cpu()
        return pd.DataFrame({"log_likelihood": logp.numpy(), "log_likelihood_std": std.numpy()})


def _load_pyfunc(data_path: str) -> _PyfuncBundle:
    """MLflow's pyfunc entry point (``loader_module: memzoo.tracking``)."""
    return _PyfuncBundle(load_bundle_dir(data_path))
