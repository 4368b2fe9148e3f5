"""Tests of memzoo.simulation.lhe: LHE v3 writing, reading, pylhe and Pythia 8 compatibility."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pylhe
import pytest
import torch
from test_hard_record import ToyPDF

from memzoo.processes.drell_yan import DrellYan
from memzoo.processes.thj import THj
from memzoo.simulation.decays import decay
from memzoo.simulation.lhe import read_lhe, write_lhe
from memzoo.simulation.record import EventRecord

N = 40


def _record(process, seed: int) -> EventRecord:
    gen = torch.Generator().manual_seed(seed)
    coords, _ = process.from_unit(torch.rand(4 * N, process.hard_dim, generator=gen, dtype=torch.float64))
    coords = coords[process.dsigma(coords, process.theta())[:, 0] > 0][:N]
    return process.hard_record(coords, process.theta(), generator=gen)


@pytest.fixture(scope="module")
def records() -> dict[str, EventRecord]:
    dy = _record(DrellYan(DrellYan.Config()), 1)
    thj = decay(_record(THj(THj.Config(), pdf=ToyPDF()), 2), "hadronic", generator=torch.Generator().manual_seed(3))
    return {"dy": dy, "thj": thj}


def _assert_same(a: EventRecord, b: EventRecord) -> None:
    for name in ("pdg", "status", "mothers", "colour", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("p", "weight", "scale"):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.allclose(x, y, rtol=1e-9, atol=0), name


@pytest.mark.parametrize("name", ["dy", "thj"])
@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz"])
def test_round_trip_and_pylhe(records, tmp_path, name: str, suffix: str) -> None:
    rec = records[name]
    path = write_lhe(rec, tmp_path / f"{name}{suffix}", beam_energy=6500.0, pdf_id=247000, cross_section_pb=0.5)
    _assert_same(read_lhe(path), rec)
    lhe = pylhe.LesHouchesEvents.fromfile(path)
    info = lhe.init.initInfo
    assert (info.beamA, info.beamB, info.energyA, info.PDFsetA) == (2212, 2212, 6500.0, 247000)
    assert info.weightingStrategy == 3 and info.numProcesses == 1 and lhe.init.procInfo[0].xSection == 0.5
    events = list(lhe.events)
    assert len(events) == N and lhe.version == "3.0"
    assert [len(e.particles) for e in events] == rec.mask.sum(1).tolist()


def test_padding_rows_are_dropped_and_mothers_renumbered(records, tmp_path) -> None:
    rec = records["thj"]
    # insert a padding column after row 2: every 1-based reference beyond row 2 shifts by one
    insert = lambda x, fill: torch.cat([x[:, :2], torch.full_like(x[:, :1], fill), x[:, 2:]], 1)
    mothers = torch.where(rec.mothers > 2, rec.mothers + 1, rec.mothers)
    padded = EventRecord(
        insert(rec.p, 0.0),
        insert(rec.pdg, 0),
        insert(rec.status, 0),
        insert(mothers, 0),
        insert(rec.colour, 0),
        insert(rec.mask, False),
        rec.weight,
        rec.scale,
    )
    _assert_same(read_lhe(write_lhe(padded, tmp_path / "padded.lhe")), rec)


def test_malformed_files_raise_with_file_and_event(records, tmp_path) -> None:
    good = write_lhe(records["dy"], tmp_path / "good.lhe")
    text = good.read_text()
    truncated = tmp_path / "truncated.lhe"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"truncated\.lhe.*event"):
        read_lhe(truncated)
    # the second event announces 5 particles but lists 4
    blocks = text.split("<event>\n")
    head, rest = blocks[2].split("\n", 1)
    blocks[2] = head.replace(" 4 ", " 5 ", 1) + "\n" + rest
    wrong = tmp_path / "wrong_count.lhe"
    wrong.write_text("<event>\n".join(blocks))
    with pytest.raises(ValueError, match=r"wrong_count\.lhe, event 2: the event line announces 5"):
        read_lhe(wrong)
    garbage = tmp_path / "garbage.lhe"
    garbage.write_text(text.replace("2212   2212", "2212   proton", 1))
    with pytest.raises(ValueError, match=r"garbage\.lhe in the header/init block"):
        read_lhe(garbage)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_lhe(tmp_path / "missing.lhe")
    assert len(read_lhe(good, max_events=3)) == 3


_PYTHIA = textwrap.dedent(
    """
    import json, sys
    import pythia8mc
    pythia = pythia8mc.Pythia("", False)
    for s in ("Beams:frameType = 4", "Beams:LHEF = " + sys.argv[1], "PartonLevel:all = off",
              "HadronLevel:all = off", "Next:numberCount = 0", "Next:numberShowEvent = 0",
              "Next:numberShowProcess = 0", "Next:numberShowInfo = 0", "Next:numberShowLHA = 0"):
        pythia.readString(s)
    ok = pythia.init()
    n = 0
    while ok and pythia.next():
        n += 1
    print("MEMZOO-RESULT " + json.dumps({"init": ok, "events": n, "eof": pythia.infoPython().atEndOfFile()}))
    pythia.stat()
    """
)


@pytest.mark.parametrize("name", ["dy", "thj"])
def test_pythia_accepts_the_file(records, tmp_path, name: str) -> None:
    """Pythia 8 reads every event (process level only) and reports no error or warning."""
    path = write_lhe(records[name], tmp_path / f"{name}.lhe")
    # a subprocess: Pythia writes to the C++ stdout, and an abort must not take pytest down
    run = subprocess.run([sys.executable, "-c", _PYTHIA, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.split("MEMZOO-RESULT ")[1].splitlines()[0])
    assert result == {"init": True, "events": N, "eof": True}
    # Pythia's end-of-run statistics list every error and warning it issued, with a count
    stats = run.stdout.split("PYTHIA Error and Warning Messages Statistics")[1]
    entries = re.findall(r"^\s*\|\s+(\d+)\s+(\S.*?)\s*\|\s*$", stats, flags=re.MULTILINE)
    # the only message allowed is Pythia's note that the file has ended
    assert entries and all("reached end of Les Houches Events File" in text for _, text in entries), entries
