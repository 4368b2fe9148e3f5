"""Model cards: TOML files that name a zoo entry's process, backends and settings (DESIGN §5).

A card lives at ``registry/<process>/<backend>.toml``::

    [entry]
    name = "memzoo-drell-yan-gaussian"      # MLflow registered-model name
    description = "exact-transfer MEM of the parametric detector"
    provenance = "Heimel, PhD thesis 2024, Sec. 6.4"

    [process]
    name = "drell-yan"
    config = { m_min = 60.0, m_max = 120.0 }

    [transfer]
    backend = "gaussian"
    config = {}

    [sampler]
    backend = "gaussian"

    [acceptance]
    backend = "parametric-exact"

    [integrator]                              # MEMIntegrator keyword options
    n_points = 10000

    [size.paper.transfer.config]              # optional sizes: tables merged over the base
    blocks = 20                               # when the card is loaded with size="paper"

Components are built by name through the plugin registry; unknown tables, backends and keys
fail with the accepted ones listed. Training settings (the ``[training]`` table) are read by the
trainer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ROLES", "Card", "load_card"]

ROLES = ("transfer", "sampler", "acceptance", "likelihood")
TABLES = {"entry", "process", "integrator", "training", "data", "size", *ROLES}


@dataclass(frozen=True)
class Card:
    """A parsed model card.

    Attributes:
        path: where it was read from.
        size: the size whose overrides were applied (None: the base card).
        entry: name, description, provenance.
        process: registered process name; process_config its keyword config.
        components: role -> (backend name, config) for the roles the card names.
        integrator: keyword options of :class:`memzoo.integrator.MEMIntegrator`.
        tables: every table of the file, for consumers of other sections (training, data).
    """

    path: Path
    size: str | None
    entry: dict[str, Any]
    process: str
    process_config: dict[str, Any]
    components: dict[str, tuple[str, dict[str, Any]]]
    integrator: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)

    def build(self) -> dict[str, Any]:
        """The process and every component, created by name (``{"process": ..., "transfer": ...}``)."""
        import memzoo

        built = {"process": memzoo.create("process", self.process, **self.process_config)}
        for role, (backend, config) in self.components.items():
            built[role] = memzoo.create(role, backend, **config)
        return built


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: tables merge, values of ``override`` win."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_card(path: str | Path, size: str | None = None) -> Card:
    """Read and check a model card; ``size`` merges the card's ``[size.<name>]`` tables over it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No model card at {path}.") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}.") from None
    sizes = data.pop("size", {})
    if size is not None:
        if size not in sizes:
            raise ValueError(f"{path} has no size {size!r}; it defines {sorted(sizes) or 'none'}.")
        data = _merge(data, sizes[size])
    unknown = sorted(set(data) - TABLES)
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; a card may have {sorted(TABLES)}.")
    process = data.get("process", {})
    if not isinstance(process.get("name"), str):
        raise ValueError(f'{path}: the [process] table needs a name, e.g. name = "drell-yan".')
    components = {}
    for role in ROLES:
        if role not in data:
            continue
        table = data[role]
        extra = sorted(set(table) - {"backend", "config"})
        if not isinstance(table.get("backend"), str) or extra:
            raise ValueError(
                f'{path}: [{role}] needs backend = "<name>" and an optional config table'
                + (f"; unknown key(s) {extra}" if extra else "")
                + "."
            )
        components[role] = (table["backend"], dict(table.get("config", {})))
    return Card(
        path=path,
        size=size,
        entry=dict(data.get("entry", {})),
        process=process["name"],
        process_config=dict(process.get("config", {})),
        components=components,
        integrator=dict(data.get("integrator", {})),
        tables=data,
    )
