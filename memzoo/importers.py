"""Importers of users' own samples (HDF5, ROOT, LHE) into :class:`~memzoo.data.DatasetChunk` s.

An importer returns one chunk; write it with :class:`~memzoo.data_writer.DatasetWriter` to get a
memzoo dataset file. HDF5 and ROOT files are read through a **mapping** from memzoo's columns
to the user's columns (HDF5 dataset paths, ROOT branch names)::

    {
        "theta": "alpha",            # a column (N,) or (N, P), a list of (N,) columns, or constants
        "hard/momenta": "truth/p4",  # (N, n_hard, 4) (E, px, py, pz), or a list of per-particle specs
        "hard/coords": "truth/x",    # (N, D); default: process.coords_from_momenta(hard/momenta)
        "accepted": "passed",        # (N,) bool; default: events with at least one reco object
        "reco": {                    # object collections, concatenated and padded to Nmax
            "Jet": 1,                # shorthand for {"kind": 1}: columns Jet_pt, Jet_eta, ... (ROOT)
            "BJet": {"kind": 5, "pt": "BJet_pt", "eta": "BJet_eta", "phi": "BJet_phi", "mass": "BJet_mass"},
            "Muon": {"kind": 13, "p4": "muons/p4", "charge": "muons/q", "max": 2},
        },
    }

A collection spec holds ``kind`` (an object code of :data:`memzoo.events.KINDS` or a column of
codes) and the momenta as ``p4`` (one ``(..., 4)`` column of (E, px, py, pz) in GeV), as
``E``/``px``/``py``/``pz``, or as ``pt``/``eta``/``phi``/``mass`` (GeV, -, rad, GeV; a number
stands for a constant such as ``"mass": 0.0``). Missing momentum keys default to the columns
``<name><sep>pt`` etc. (``sep`` is ``_`` for ROOT, ``/`` for HDF5; missing pT has η = m = 0).
Optional: ``charge`` (column or number; default ``<name><sep>charge`` if present, else 0),
``mask`` (bool column), ``count`` (multiplicity column) and ``max`` (keep the first k objects).
Columns may be ``(N,)`` (one object per event), ``(N, k)`` or jagged (ROOT ``Jet_pt[nJet]``).
The flat keys ``reco/p``, ``reco/kind``, ``reco/mask``, ``reco/charge`` describe one collection.
Rejected events (``accepted`` false) are kept with their reco objects masked out. Present
objects are moved to the front of each event. Errors name the file, the column and the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from memzoo.column_mapping import ColumnSource, chunk_from_mapping
from memzoo.data import DatasetChunk, check_rows
from memzoo.events import Particles

__all__ = ["import_hdf5", "import_lhe", "import_root"]


def import_hdf5(
    path: str | Path, mapping: Mapping[str, Any], *, process: Any = None, n_max: int | None = None
) -> DatasetChunk:
    """Read an arbitrary HDF5 layout through a column mapping (module docstring).

    Args:
        path: HDF5 file; mapping values are dataset paths inside it (``"jets/p4"``).
        mapping: memzoo column → user column(s).
        process: computes ``hard/coords`` from ``hard/momenta`` when the mapping has none.
        n_max: reco slots per event (default: the largest multiplicity in the file).

    Returns:
        One :class:`~memzoo.data.DatasetChunk` with all events of the file.
    """
    import h5py

    path = Path(path)
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        src = ColumnSource(f"file '{path}'", names, lambda name: f[name][...], "/")
        return chunk_from_mapping(src, mapping, process, n_max)


def import_root(
    path: str | Path, tree: str, mapping: Mapping[str, Any], *, process: Any = None, n_max: int | None = None
) -> DatasetChunk:
    """Read a ROOT TTree through uproot with a branch mapping (module docstring).

    Jagged branches (``Jet_pt[nJet]``) become padded objects; ``{"reco": {"Jet": 1, "Muon": 13}}``
    reads ``Jet_pt``, ``Jet_eta``, ``Jet_phi``, ``Jet_mass`` (and ``Jet_charge`` if present).

    Args:
        path: ROOT file.
        tree: name of the TTree inside it.
        mapping: memzoo column → branch name(s).
        process: computes ``hard/coords`` from ``hard/momenta`` when the mapping has none.
        n_max: reco slots per event (default: the largest multiplicity in the file).
    """
    import uproot

    path = Path(path)
    with uproot.open(path) as f:
        if tree not in f:
            raise ValueError(f"file '{path}' has no tree {tree!r}; it holds {sorted(f.keys(cycle=False))}.")
        t = f[tree]
        src = ColumnSource(f"file '{path}', tree '{tree}'", t.keys(), lambda name: t[name].array(library="ak"), "_")
        return chunk_from_mapping(src, mapping, process, n_max)


def import_lhe(path: str | Path, process: Any, *, theta: Any = None) -> DatasetChunk:
    """Hard events of an LHE file (via pylhe) in the process' ``hard_kinds`` order.

    Each slot of ``process.hard_kinds`` takes the first unused status-1 or status-2 particle
    with that PDG id, else with the opposite sign (a ``tops="both"`` t̄ in the t slot), else,
    for slot 1 (light jet), any light quark or gluon; particles closer to the hard process
    (fewer decayed ancestors) are preferred, so W-decay quarks do not fill the jet slot.

    Args:
        path: LHE file (plain or gzipped).
        process: the Process (``hard_kinds``, ``coords_from_momenta``, ``theta``).
        theta: the parameter point of the sample, ``(1, P)`` / ``(N, P)`` tensor or a dict of
            named values (default: the process' defaults).

    Returns:
        A chunk without reco objects: ``accepted`` is false since nothing was reconstructed
        yet; run the detector simulation to fill ``reco`` and ``accepted``.
    """
    import pylhe

    path = Path(path)
    where = f"file '{path}'"
    if not path.is_file():
        raise FileNotFoundError(f"LHE file {path} does not exist.")
    slots = [int(k) for k in process.hard_kinds]
    events: list[list[tuple[int, int, int, float, float, float, float]]] = []
    try:
        for event in pylhe.LHEFile.fromfile(str(path), with_attributes=False).events:
            events.append([(int(q.id), int(q.status), int(q.mother1), q.e, q.px, q.py, q.pz) for q in event.particles])
    except Exception as err:  # pylhe's XML and parsing errors vary between versions
        raise ValueError(f"{where} is not a readable LHE file (error after {len(events)} events): {err}") from err
    rows = [_match_hard(particles, slots, f"{where}, event {row}") for row, particles in enumerate(events)]
    hard = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(slots), 4)
    check_rows(hard, f"{where}, hard particles", axis1="particle")
    coords = process.coords_from_momenta(hard)
    check_rows(coords, f"{where}, hard coordinates")
    if not isinstance(theta, torch.Tensor):
        theta = process.theta(theta)
    n = len(rows)
    reco = Particles(
        torch.zeros(n, 0, 4, dtype=torch.float64),
        torch.zeros(n, 0, dtype=torch.long),
        torch.zeros(n, 0, dtype=torch.bool),
    )
    return DatasetChunk(
        theta.to(torch.float64).expand(n, -1).clone(), hard, coords, reco, accepted=torch.zeros(n, dtype=torch.bool)
    )


def _fits(pid: int, kind: int, level: int) -> bool:
    """PDG id ``pid`` fills a hard slot of code ``kind`` at matching level 0 (exact), 1 (±), 2 (jet)."""
    if level == 0:
        return pid == kind
    if level == 1:
        return abs(pid) == abs(kind)
    return kind == 1 and abs(pid) in (1, 2, 3, 4, 21)


def _match_hard(particles: Sequence[tuple], slots: Sequence[int], where: str) -> list[list[float]]:
    """(E, px, py, pz) of the particles ``(id, status, mother1, E, px, py, pz)`` filling ``slots``."""

    def depth(i: int) -> int:  # number of decayed (status 2) ancestors
        mother = particles[i][2] - 1
        return 0 if mother < 0 or particles[mother][1] != 2 else 1 + depth(mother)

    candidates = sorted((depth(i), i) for i, q in enumerate(particles) if q[1] in (1, 2))
    used: set[int] = set()
    out = []
    for slot, kind in enumerate(slots):
        found = next(
            (i for level in range(3) for _, i in candidates if i not in used and _fits(particles[i][0], kind, level)),
            None,
        )
        if found is None:
            ids = [particles[i][0] for _, i in candidates]
            raise ValueError(f"{where} has no particle for hard slot {slot} (PDG {kind}); its particles are {ids}.")
        used.add(found)
        out.append([float(x) for x in particles[found][3:]])
    return out
