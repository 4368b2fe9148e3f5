"""Pythia 8 shower and hadronisation of hard event records, with FastJet anti-kT truth jets.

Hard (decayed) :class:`~memzoo.simulation.record.EventRecord` events are handed to Pythia 8.3
(Bierlich et al., arXiv:2203.11601) through its Les Houches user-process interface (``LHAup``,
``Beams:frameType = 5``), showered and hadronised. In the final state, prompt (not from
hadronisation or hadron decays) isolated photons and leptons are identified, all other visible
particles are clustered with anti-kT (Cacciari, Salam, Soyez, arXiv:0802.1189) in FastJet
(arXiv:1111.6097), jets get b/c labels by ghost association of heavy-flavour hadrons (as in
arXiv:0802.1188), and the invisible particles are summed into one missing-momentum object.
The result is a padded :class:`~memzoo.simulation.truth.TruthObjects` batch.

Every event is showered with its own Pythia seed derived from ``(seed, event row)``, so a
result depends neither on the other events nor on how they are split over worker processes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass

import fastjet
import numpy as np
import pythia8mc
import torch

from memzoo.simulation.record import EventRecord
from memzoo.simulation.truth import TruthObjects

__all__ = ["PythiaConfig", "PythiaFailureWarning", "events_per_second", "shower", "shower_parallel"]

_MISSING = 12  # label of the summed-invisibles object, as for a neutrino
_LIGHT, _CHARM, _BOTTOM = 1, 4, 5
_GHOST_SCALE = 1e-18  # ghosts must not move jet momenta, only ride along in the clustering
_RESERVED = ("beams:", "random:")  # memzoo owns the beams (LHAup) and the per-event seeds


@dataclass(frozen=True)
class PythiaConfig:
    """Settings of the shower, the object identification and the jets (energies in GeV).

    Attributes:
        beam_energy: energy of each proton beam; must match the record's incoming partons
            (x = E_parton / beam_energy).
        isr, fsr, mpi, hadronisation: Pythia switches ``PartonLevel:ISR/FSR/MPI`` and
            ``HadronLevel:all``. MPI is off by default: underlying event is not part of the
            matrix-element transfer function we want to learn.
        settings: extra Pythia setting strings (``"TimeShower:alphaSvalue = 0.13"``), applied
            last. ``Beams:`` and ``Random:`` are reserved (memzoo feeds the events and seeds).
        jet_r, jet_pt_min, jet_eta_max: anti-kT R; kept jets have pT > jet_pt_min, |η| < jet_eta_max.
        particle_eta_max: |η| range of the particles that enter the clustering (calorimeter).
        iso_cone: ΔR of the isolation cone around photon and lepton candidates.
        photon_pt_min, photon_eta_max, photon_iso_max: a prompt photon is identified when its
            pT and |η| pass and the scalar pT sum of the other visible particles within
            ``iso_cone`` is below ``photon_iso_max * pT``.
        lepton_pt_min, lepton_eta_max, lepton_iso_max: the same for prompt muons and electrons.
        max_failure_fraction: a batch in which Pythia fails on a larger fraction of events
            raises ``RuntimeError``; smaller numbers of failures give a
            :class:`PythiaFailureWarning` and empty (fully masked) rows.

    Jet flavour: every b- and c-flavoured hadron of the event record (all generations, decayed
    or not) joins the clustering as a ghost of negligible momentum (10⁻¹⁸ of its own); a jet
    holding a B-hadron ghost is a b jet (label 5), else one holding a C-hadron ghost a c jet
    (4), else light (1). A ghost lands in a jet when its hadron lies within ≈ R of it, without
    the ambiguities of ΔR matching between overlapping jets. With hadronisation off, final b
    and c quarks are the ghosts.

    Seeds are not part of the configuration: :func:`shower` takes one and derives a Pythia
    seed per event from it.
    """

    beam_energy: float = 6500.0
    isr: bool = True
    fsr: bool = True
    mpi: bool = False
    hadronisation: bool = True
    settings: tuple[str, ...] = ()
    jet_r: float = 0.4
    jet_pt_min: float = 20.0
    jet_eta_max: float = 4.5
    particle_eta_max: float = 5.0
    iso_cone: float = 0.3
    photon_pt_min: float = 10.0
    photon_eta_max: float = 2.5
    photon_iso_max: float = 0.15
    lepton_pt_min: float = 10.0
    lepton_eta_max: float = 2.5
    lepton_iso_max: float = 0.15
    max_failure_fraction: float = 0.05

    def __post_init__(self) -> None:
        if isinstance(self.settings, str) or not all(isinstance(s, str) for s in self.settings):
            raise TypeError(f"PythiaConfig.settings must be a list of 'Key = value' strings, got {self.settings!r}.")
        object.__setattr__(self, "settings", tuple(self.settings))
        for line in self.settings:
            if line.strip().lower().startswith(_RESERVED):
                raise ValueError(f"PythiaConfig.settings may not set {line!r}: use beam_energy and the seed argument.")
        for name in ("beam_energy", "jet_r", "iso_cone"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PythiaConfig.{name} must be positive, got {getattr(self, name)}.")
        if not 0 <= self.max_failure_fraction <= 1:
            raise ValueError(f"max_failure_fraction must lie in [0, 1], got {self.max_failure_fraction}.")

    def pythia_settings(self) -> list[str]:
        """The Pythia setting strings this configuration stands for (without seeds)."""
        on = {True: "on", False: "off"}
        return [
            "Beams:frameType = 5",
            "Print:quiet = on",
            "Next:numberCount = 0",
            f"PartonLevel:ISR = {on[self.isr]}",
            f"PartonLevel:FSR = {on[self.fsr]}",
            f"PartonLevel:MPI = {on[self.mpi]}",
            f"HadronLevel:all = {on[self.hadronisation]}",
            "Random:setSeed = on",
            *self.settings,
        ]


class PythiaFailureWarning(RuntimeWarning):
    """Pythia failed on some events; they are kept as empty rows. ``rows`` lists them."""

    def __init__(self, message: str, rows: list[int]) -> None:
        super().__init__(message)
        self.rows = rows


def _record_arrays(record: EventRecord) -> dict[str, np.ndarray]:
    """Numpy copy of a record with 1-based rows renumbered over real particles (picklable)."""
    mask = record.mask.cpu().numpy().astype(bool)
    # padding may sit between particles; LHE mothers must index the compacted list
    new_index = np.where(mask, np.cumsum(mask, axis=1), 0)
    mothers = record.mothers.cpu().numpy()
    flat = np.clip(mothers - 1, 0, None).reshape(len(mask), -1)
    mothers = np.where(mothers > 0, np.take_along_axis(new_index, flat, 1).reshape(mothers.shape), 0)
    arrays = {name: getattr(record, name).detach().cpu().numpy() for name in ("p", "pdg", "status", "colour", "scale")}
    return {**arrays, "mothers": mothers, "mask": mask}


class _RecordFeed(pythia8mc.LHAup):
    """Serves row ``self.row`` of a record to Pythia, as often as Pythia asks (retries)."""

    def __init__(self, beam_energy: float) -> None:
        super().__init__(3)  # strategy 3: unit-weight events, every one accepted
        self.beam_energy = beam_energy
        self.arrays: dict[str, np.ndarray] = {}
        self.row = 0

    def setInit(self) -> bool:
        self.setBeamA(2212, self.beam_energy)
        self.setBeamB(2212, self.beam_energy)
        self.addProcess(1, 1.0, 0.0, 1.0)
        return True

    def setEvent(self, idProcess: int = 0) -> bool:  # Pythia calls this by name
        a, r = self.arrays, self.row
        self.setProcess(1, 1.0, float(a["scale"][r]), 1 / 128, 0.118)
        for j in np.flatnonzero(a["mask"][r]):
            e, px, py, pz = (float(v) for v in a["p"][r, j])
            m = float(np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)))
            m1, m2 = (int(v) for v in a["mothers"][r, j])
            c1, c2 = (int(v) for v in a["colour"][r, j])
            self.addParticle(int(a["pdg"][r, j]), int(a["status"][r, j]), m1, m2, c1, c2, px, py, pz, e, m, 0.0, 9.0)
        return True


def _event_seed(seed: int, row: int) -> int:
    """Pythia seed (1 … 900 000 000, Pythia's valid range) for one event row."""
    return int(np.random.SeedSequence([seed, row]).generate_state(1)[0]) % 900_000_000 + 1


def _flavour(pdg: int) -> int:
    """5 for hadrons with a b quark, 4 for charm (no b), else 0 (PDG numbering scheme)."""
    a = abs(pdg)
    digits = ((a // 100) % 10, (a // 1000) % 10)
    return 5 if 5 in digits else 4 if 4 in digits else 0


def _eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pT, η, φ of ``(n, 4)`` momenta; η is ±large rather than inf along the beam."""
    pt = np.hypot(p[:, 1], p[:, 2])
    eta = np.arcsinh(p[:, 3] / np.maximum(pt, 1e-12))
    return pt, eta, np.arctan2(p[:, 2], p[:, 1])


def _delta_r(eta1, phi1, eta2, phi2) -> np.ndarray:
    dphi = np.remainder(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


class _Showerer:
    """One initialised Pythia instance plus the object finding; lives inside one process."""

    def __init__(self, config: PythiaConfig) -> None:
        self.config = config
        self.pythia = pythia8mc.Pythia("", False)
        for line in config.pythia_settings():
            if not self.pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}; check its spelling in the Pythia 8.3 manual.")
        self.feed = _RecordFeed(config.beam_energy)
        self.pythia.setLHAupPtr(self.feed)
        if not self.pythia.init():
            raise RuntimeError("Pythia failed to initialise; rerun with 'Print:quiet = off' in PythiaConfig.settings.")
        self.jet_def = fastjet.JetDefinition(fastjet.antikt_algorithm, config.jet_r)
        photon = (config.photon_pt_min, config.photon_eta_max, config.photon_iso_max)
        lepton = (config.lepton_pt_min, config.lepton_eta_max, config.lepton_iso_max)
        self.id_cuts = {22: photon, 11: lepton, 13: lepton}  # |PDG id| -> (pT min, |η| max, isolation)
        # quiet by default (FastJet is cited above); the switch lives on the SWIG class only
        fastjet._swig.ClusterSequence.set_fastjet_banner_stream(None)

    def run(self, arrays: dict[str, np.ndarray], rows: range, seed: int) -> list[tuple | None]:
        """Shower events ``rows`` of ``arrays``; per row ``(p (n, 4), label (n,))`` or None."""
        self.feed.arrays = arrays
        out = []
        for local, row in enumerate(rows):
            self.feed.row = local
            self.pythia.rndm.init(_event_seed(seed, row))
            out.append(self._objects() if self.pythia.next() else None)
        return out

    def _objects(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, event = self.config, self.pythia.event
        final, tags = [], []
        # one pass over the record, as few calls into Pythia per particle as possible
        for i in range(event.size()):
            q = event[i]
            pdg, status = q.id(), q.status()
            final_parton = status > 0 and abs(pdg) in (4, 5)  # tags when hadronisation is off
            flavour = abs(pdg) if final_parton else _flavour(pdg)
            if flavour and (final_parton or q.isHadron()):
                tags.append((flavour, q.e(), q.px(), q.py(), q.pz()))
            if status > 0:  # Pythia's isFinal()
                # prompt: not from hadronisation (status 81-89) nor from a hadron decay (91-99)
                prompt = status < 81 or (status > 90 and not event[q.mother1()].isHadron())
                final.append((pdg, q.isVisible(), prompt, q.e(), q.px(), q.py(), q.pz()))
        pdg, visible, prompt = (np.array([f[k] for f in final]) for k in range(3))
        p = np.array([f[3:] for f in final], dtype=np.float64)
        pt, eta, phi = _eta_phi(p)

        def isolated(i: int, iso_max: float) -> bool:
            near = visible & (_delta_r(eta, phi, eta[i], phi[i]) < cfg.iso_cone)
            near[i] = False
            return pt[near].sum() < iso_max * pt[i]

        objects: list[tuple[int, np.ndarray]] = []
        used = ~visible  # invisibles never enter the clustering
        for i in np.flatnonzero(prompt & np.isin(np.abs(pdg), (11, 13, 22))):
            pt_min, eta_max, iso_max = self.id_cuts[abs(int(pdg[i]))]
            if pt[i] > pt_min and abs(eta[i]) < eta_max and isolated(i, iso_max):
                objects.append((int(pdg[i]), p[i]))
                used[i] = True
        objects += self._jets(p[~used & (np.abs(eta) < cfg.particle_eta_max)], np.array(tags).reshape(-1, 5))
        if (~visible).any():
            objects.append((_MISSING, p[~visible].sum(0)))
        label = np.array([o[0] for o in objects], dtype=np.int64)
        return np.array([o[1] for o in objects], dtype=np.float64).reshape(-1, 4), label

    def _jets(self, p: np.ndarray, tags: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Anti-kT jets of visible particles ``p (n, 4)``; ``tags (k, 5)`` = (flavour, E, px, py, pz)."""
        cfg = self.config
        inputs = [fastjet.PseudoJet(px, py, pz, e) for e, px, py, pz in p]  # user index 0: particle
        for flavour, e, px, py, pz in tags:
            g = fastjet.PseudoJet(*(_GHOST_SCALE * v for v in (px, py, pz, e)))
            g.set_user_index(int(flavour))
            inputs.append(g)
        jets = []
        if not inputs:
            return jets
        sequence = fastjet.ClusterSequence(inputs, self.jet_def)
        for jet in fastjet.sorted_by_pt(sequence.inclusive_jets(cfg.jet_pt_min)):
            flavours = {c.user_index() for c in jet.constituents()}
            if flavours <= {_CHARM, _BOTTOM} or abs(jet.eta()) >= cfg.jet_eta_max:
                continue  # ghost-only pseudo-jets, or outside the acceptance
            label = _BOTTOM if _BOTTOM in flavours else _CHARM if _CHARM in flavours else _LIGHT
            jets.append((label, np.array([jet.e(), jet.px(), jet.py(), jet.pz()])))
        return jets


def _as_record(record_or_lhe_path: EventRecord | str | os.PathLike) -> EventRecord:
    if isinstance(record_or_lhe_path, EventRecord):
        record = record_or_lhe_path
    elif isinstance(record_or_lhe_path, (str, os.PathLike)):
        path = os.fspath(record_or_lhe_path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"LHE file {path!r} does not exist; pass an EventRecord or an existing .lhe path.")
        from memzoo.simulation.lhe import read_lhe

        record = read_lhe(path)  # its errors name the file and the event
    else:
        raise TypeError(f"shower() takes an EventRecord or an LHE file path, got {type(record_or_lhe_path).__name__}.")
    incoming = ((record.status == -1) & record.mask).sum(1)
    if len(record) and not bool((incoming == 2).all()):
        row = int((incoming != 2).nonzero()[0])
        raise ValueError(f"Event {row} of the record has {int(incoming[row])} incoming partons; Pythia needs 2.")
    if not bool(torch.isfinite(record.p).all()):
        raise ValueError("The record has non-finite momenta; remove those events before the shower.")
    return record


def _collect(results: list[tuple | None], config: PythiaConfig) -> TruthObjects:
    """Pad per-event objects into TruthObjects; report failed rows."""
    failed = [row for row, r in enumerate(results) if r is None]
    if failed:
        shown = ", ".join(map(str, failed[:10])) + (", ..." if len(failed) > 10 else "")
        message = f"Pythia failed on {len(failed)} of {len(results)} events (rows {shown})."
        if len(failed) > config.max_failure_fraction * len(results):
            raise RuntimeError(f"{message} That exceeds max_failure_fraction = {config.max_failure_fraction}.")
        warnings.warn(PythiaFailureWarning(f"{message} They are kept as empty rows.", failed), stacklevel=3)
    empty = (np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    results = [empty if r is None else r for r in results]
    pad = torch.nn.utils.rnn.pad_sequence
    p = pad([torch.from_numpy(r[0]) for r in results], batch_first=True)
    label = pad([torch.from_numpy(r[1]) for r in results], batch_first=True)
    mask = pad([torch.ones(len(r[1]), dtype=torch.bool) for r in results], batch_first=True)
    return TruthObjects(p=p, label=label, mask=mask)


def shower(
    record_or_lhe_path: EventRecord | str | os.PathLike, config: PythiaConfig | None = None, seed: int = 0
) -> TruthObjects:
    """Shower, hadronise and cluster hard events in this process.

    Args:
        record_or_lhe_path: B hard (decayed) events as an EventRecord, or an LHE v3 file path
            (read with :func:`memzoo.simulation.lhe.read_lhe`).
        config: shower and object settings; defaults to ``PythiaConfig()``.
        seed: base seed; event row r is showered with a Pythia seed derived from (seed, r).

    Returns:
        TruthObjects with ``p (B, N, 4)`` float64 GeV, ``label (B, N)`` (±11, ±13 isolated
        leptons, 22 isolated photons, 1/4/5 light/c/b jets sorted by pT, 12 summed invisible
        momentum when there is any) and ``mask (B, N)``. Rows align with the input; rows where
        Pythia failed are empty (see :class:`PythiaFailureWarning`).

    Raises:
        FileNotFoundError, ValueError, TypeError: missing or invalid input.
        RuntimeError: Pythia could not initialise, or failed on too many events.
    """
    config = PythiaConfig() if config is None else config
    record = _as_record(record_or_lhe_path)
    return _collect(_Showerer(config).run(_record_arrays(record), range(len(record)), seed), config)


_WORKERS: dict[PythiaConfig, _Showerer] = {}  # in a worker process: one Pythia per config


def _run_chunk(config: PythiaConfig, arrays: dict[str, np.ndarray], start: int, seed: int) -> list[tuple | None]:
    if config not in _WORKERS:
        _WORKERS[config] = _Showerer(config)
    return _WORKERS[config].run(arrays, range(start, start + len(arrays["mask"])), seed)


def shower_parallel(
    record_or_lhe_path: EventRecord | str | os.PathLike,
    config: PythiaConfig | None = None,
    seed: int = 0,
    workers: int | None = None,
    chunk_size: int = 200,
) -> TruthObjects:
    """:func:`shower` spread over worker processes; returns exactly what ``shower(...)`` returns.

    Events are cut into chunks of ``chunk_size`` rows, each handled by one of ``workers``
    processes (forkserver or spawn context; Pythia objects cannot be pickled, so each worker
    builds its own Pythia once). Seeds are per event row, hence independent of ``workers``
    and ``chunk_size``.

    Args:
        workers: number of processes; defaults to the CPU count. 1 runs in this process.
        chunk_size: events per task (smaller balances load, larger costs less pickling).
    """
    config = PythiaConfig() if config is None else config
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1 or chunk_size < 1:
        raise ValueError(f"workers and chunk_size must be >= 1, got {workers} and {chunk_size}.")
    record = _as_record(record_or_lhe_path)
    if workers == 1 or len(record) <= chunk_size:
        return shower(record, config, seed)
    starts = range(0, len(record), chunk_size)
    # forkserver pays the imports once; plain fork would copy this process's Pythia/torch threads
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(starts)), mp_context=context) as pool:
        futures = [pool.submit(_run_chunk, config, _record_arrays(record[s : s + chunk_size]), s, seed) for s in starts]
        results = [r for future in futures for r in future.result()]
    return _collect(results, config)


def events_per_second(record: EventRecord, config: PythiaConfig | None = None, seed: int = 0) -> float:
    """Single-core shower + clustering throughput on ``record`` (Pythia initialisation excluded)."""
    showerer = _Showerer(PythiaConfig() if config is None else config)
    arrays = _record_arrays(_as_record(record))
    start = time.perf_counter()
    showerer.run(arrays, range(len(record)), seed)
    return len(record) / (time.perf_counter() - start)
