"""Les Houches event files: write an :class:`EventRecord` as LHE v3 and read LHE files back.

Format: Boos et al., "Generic user process interface for event generators", hep-ph/0109068
(the ``<init>`` and ``<event>`` blocks), and Andersen et al., arXiv:1405.1067 (LHE v3). Both
directions use ``pylhe``: its ``LesHouchesEvents.tofile`` writes complete files, with the
momentum columns widened to 17 significant digits so that a write → read round trip is exact
in float64; reading streams events lazily. Weighting strategy 3 (unweighted events, XWGTUP
as given) is what Pythia 8 expects for ``Beams:frameType = 4`` with unit weights.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from memzoo.physics.constants import SM
from memzoo.simulation.record import EventRecord

__all__ = ["read_lhe", "write_lhe"]

_PROTON = 2212
#: LHE SPINUP for "unknown or unpolarised".
_SPIN_UNKNOWN = 9.0
_PARTICLE_FORMAT = (
    "{id:9d} {status:3d} {mother1:4d} {mother2:4d} {color1:4d} {color2:4d} "
    "{px: .16e} {py: .16e} {pz: .16e} {e: .16e} {m: .16e} {lifetime: .4e} {spin: .4e}"
)
_EVENTINFO_FORMAT = "{nparticles:3d} {pid:6d} {weight: .16e} {scale: .16e} {aqed: .10e} {aqcd: .10e}"


def _lhe_format():
    import pylhe

    return pylhe.LHEXMLFormat(particle=_PARTICLE_FORMAT, eventinfo=_EVENTINFO_FORMAT)


def _events(record: EventRecord, process_id: int, alpha_qed: float, alpha_s: float) -> Iterator:
    """pylhe events of ``record``, one at a time (masked rows dropped, mothers renumbered)."""
    import pylhe

    mask = record.mask.cpu().numpy()
    p = record.p.detach().cpu().to(torch.float64).numpy()
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    # slightly space-like numerical momenta keep their sign, as in memzoo.events.mass; massless
    # particles get exactly 0 instead of the ~1e-8 E rounding noise of E² - |p|²
    mass = np.sign(m2) * np.sqrt(np.abs(m2))
    mass[np.abs(m2) <= 1e-12 * p[..., 0] ** 2] = 0.0
    pdg, status = record.pdg.cpu().numpy(), record.status.cpu().numpy()
    mothers, colour = record.mothers.cpu().numpy(), record.colour.cpu().numpy()
    weight, scale = record.weight.cpu().numpy(), record.scale.cpu().numpy()
    # 1-based row numbers after dropping padding; padding may sit between real rows
    new_row = np.cumsum(mask, axis=1)
    for i in range(len(record)):
        rows = np.flatnonzero(mask[i])
        renumber = np.concatenate([[0], new_row[i]])
        particles = [
            pylhe.LHEParticle(
                id=int(pdg[i, r]),
                status=int(status[i, r]),
                mother1=int(renumber[mothers[i, r, 0]]),
                mother2=int(renumber[mothers[i, r, 1]]),
                color1=int(colour[i, r, 0]),
                color2=int(colour[i, r, 1]),
                px=float(p[i, r, 1]),
                py=float(p[i, r, 2]),
                pz=float(p[i, r, 3]),
                e=float(p[i, r, 0]),
                m=float(mass[i, r]),
                lifetime=0.0,
                spin=_SPIN_UNKNOWN,
            )
            for r in rows
        ]
        info = pylhe.LHEEventInfo(len(particles), process_id, float(weight[i]), float(scale[i]), alpha_qed, alpha_s)
        yield pylhe.LHEEvent(eventinfo=info, particles=particles)


def write_lhe(
    record: EventRecord,
    path: str | PathLike,
    *,
    beam_energy: float = 6500.0,
    pdf_id: int = 0,
    cross_section_pb: float = 1.0,
    error_pb: float = 0.0,
    process_id: int = 1,
    alpha_qed: float = SM.alpha_ew,
    alpha_s: float = 0.118,
) -> Path:
    """Write ``record`` as an LHE v3 file (gzip-compressed when ``path`` ends in ``.gz``).

    Args:
        record: B events; masked rows are left out and mother indices renumbered.
        path: output file.
        beam_energy: energy of each proton beam in GeV (√S/2).
        pdf_id: LHAPDF set id of both beams (PDFSUP; 0 = not specified, the reader's default).
        cross_section_pb: total cross section XSECUP in pb.
        error_pb: its uncertainty XERRUP in pb.
        process_id: LPRUP of the single process line and IDPRUP of every event.
        alpha_qed, alpha_s: AQEDUP and AQCDUP written with every event (not read back).

    Returns:
        The path written.
    """
    import pylhe

    if not isinstance(record, EventRecord):
        raise TypeError(f"write_lhe needs a memzoo EventRecord, got {type(record).__name__}.")
    if not (beam_energy > 0 and math.isfinite(cross_section_pb) and cross_section_pb >= 0 and error_pb >= 0):
        raise ValueError(
            f"write_lhe needs beam_energy > 0 GeV and a finite cross_section_pb >= 0 with error_pb >= 0, got "
            f"beam_energy={beam_energy}, cross_section_pb={cross_section_pb}, error_pb={error_pb}."
        )
    init = pylhe.LHEInit(
        initInfo=pylhe.LHEInitInfo(
            beamA=_PROTON,
            beamB=_PROTON,
            energyA=float(beam_energy),
            energyB=float(beam_energy),
            PDFgroupA=0,
            PDFgroupB=0,
            PDFsetA=int(pdf_id),
            PDFsetB=int(pdf_id),
            weightingStrategy=3,
            numProcesses=1,
        ),
        procInfo=[pylhe.LHEProcInfo(float(cross_section_pb), float(error_pb), 1.0, int(process_id))],
        generators=[],
    )
    lhe = pylhe.LesHouchesEvents(
        init=init,
        events=_events(record, int(process_id), float(alpha_qed), float(alpha_s)),
        comment=f"written by memzoo: {len(record)} events",
    )
    path = Path(path)
    fmt = _lhe_format()
    if path.suffix == ".gz":
        import dataclasses

        fmt = dataclasses.replace(fmt, compress=True)
    lhe.tofile(path, lheformat=fmt)
    return path


def _read_events(path: Path, max_events: int | None) -> Iterator[tuple[int, object]]:
    """Yield (1-based event number, pylhe event); parse problems become ValueErrors naming both."""
    import pylhe

    number = 0
    try:
        with warnings.catch_warnings():
            # pylhe reports XML errors as a RuntimeWarning and stops; make them loud
            warnings.filterwarnings("error", message="Parse Error", category=RuntimeWarning)
            lhe = pylhe.LesHouchesEvents.fromfile(path)
            for number, event in enumerate(lhe.events, start=1):
                if max_events is not None and number > max_events:
                    return
                yield number, event
    except (ValueError, IndexError, RuntimeWarning, AttributeError) as err:
        where = "in the header/init block" if number == 0 else f"at or after event {number}"
        raise ValueError(f"Malformed LHE file {path} {where}: {err}") from err


def read_lhe(path: str | PathLike, max_events: int | None = None) -> EventRecord:
    """Read an LHE file (plain or gzipped) into an :class:`EventRecord`, events streamed lazily.

    Args:
        path: the LHE file.
        max_events: stop after this many events (all when None).

    Returns:
        A record padded to the largest particle count of the file; weights are XWGTUP and the
        scale is SCALUP. Mass, lifetime and spin columns are not kept (p holds E, px, py, pz).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not valid LHE; the message names the file and the event.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LHE file {path} does not exist.")
    ints: list[np.ndarray] = []
    moms: list[np.ndarray] = []
    weight: list[float] = []
    scale: list[float] = []
    for number, event in _read_events(path, max_events):
        n = event.eventinfo.nparticles
        if n != len(event.particles) or n == 0:
            raise ValueError(
                f"Malformed LHE file {path}, event {number}: the event line announces {n} particles "
                f"but {len(event.particles)} particle lines follow."
            )
        rows = [(q.id, q.status, q.mother1, q.mother2, q.color1, q.color2) for q in event.particles]
        table = np.asarray(rows, dtype=np.int64)
        if (table[:, 2:4] < 0).any() or (table[:, 2:4] > n).any():
            raise ValueError(f"Malformed LHE file {path}, event {number}: mother index outside 0..{n}.")
        ints.append(table)
        moms.append(np.asarray([(q.e, q.px, q.py, q.pz) for q in event.particles], dtype=np.float64))
        weight.append(event.eventinfo.weight)
        scale.append(event.eventinfo.scale)
    if not ints:
        raise ValueError(f"LHE file {path} holds no events.")
    b, m = len(ints), max(len(t) for t in ints)
    table = np.zeros((b, m, 6), dtype=np.int64)
    p = np.zeros((b, m, 4), dtype=np.float64)
    mask = np.zeros((b, m), dtype=bool)
    for i, (t, q) in enumerate(zip(ints, moms, strict=True)):
        table[i, : len(t)], p[i, : len(t)], mask[i, : len(t)] = t, q, True
    table = torch.from_numpy(table)
    return EventRecord(
        p=torch.from_numpy(p),
        pdg=table[..., 0],
        status=table[..., 1],
        mothers=table[..., 2:4].contiguous(),
        colour=table[..., 4:6].contiguous(),
        mask=torch.from_numpy(mask),
        weight=torch.tensor(weight, dtype=torch.float64),
        scale=torch.tensor(scale, dtype=torch.float64),
    )
