"""Paired dataset files: schema round trip, resumable writing, splits and validation on read."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from memzoo.data import COLUMNS, Dataset, DatasetChunk, DatasetWriter, read_dataset
from memzoo.events import Particles

N_HARD, HARD_DIM, NMAX = 2, 4, 5
PARAMETERS = [("sin2theta_eff", "")]


def make_chunk(seed: int, n: int = 8, slots: int = 4) -> DatasetChunk:
    """A random valid chunk with some rejected events (no reco objects) and padded slots."""
    g = torch.Generator().manual_seed(seed)
    p3 = torch.randn(n, slots, 3, generator=g, dtype=torch.float64) * 30
    energy = p3.norm(dim=-1) + torch.rand(n, slots, generator=g, dtype=torch.float64) * 5
    accepted = torch.rand(n, generator=g) > 0.25
    mask = (torch.rand(n, slots, generator=g) > 0.3) & accepted[:, None]
    kind = torch.where(mask, torch.tensor([1, 5, 13, 22])[torch.randint(0, 4, (n, slots), generator=g)], 0)
    charge = torch.where(mask & (kind == 13), 1 - 2 * torch.randint(0, 2, (n, slots), generator=g), 0).to(torch.int8)
    reco = Particles(torch.cat([energy[..., None], p3], -1).where(mask[..., None], 0.0), kind, mask)
    return DatasetChunk(
        theta=torch.rand(n, 1, generator=g, dtype=torch.float64) * 0.1 + 0.2,
        hard_momenta=torch.randn(n, N_HARD, 4, generator=g, dtype=torch.float64).abs(),
        hard_coords=torch.randn(n, HARD_DIM, generator=g, dtype=torch.float64),
        reco=reco,
        charge=charge,
        accepted=accepted,
    )


def writer(path, resume=True, **kw) -> DatasetWriter:
    options = dict(
        process="drell-yan",
        parameters=PARAMETERS,
        n_hard=N_HARD,
        hard_dim=HARD_DIM,
        n_reco_max=NMAX,
        settings={"seed": 1, "detector": {"jet_pt_min": 20.0}},
        chunk_size=8,
        resume=resume,
        reco_dtype=torch.float64,
    )
    options.update(kw)
    return DatasetWriter(path, **options)


def assert_same(a: DatasetChunk, b: DatasetChunk) -> None:
    for key in ("theta", "hard_momenta", "hard_coords", "charge", "accepted"):
        torch.testing.assert_close(getattr(a, key), getattr(b, key), rtol=0, atol=0, check_dtype=False)
    n = min(a.reco.n_objects, b.reco.n_objects)
    assert not a.reco.mask[:, n:].any() and not b.reco.mask[:, n:].any()
    torch.testing.assert_close(a.reco.p[:, :n], b.reco.p[:, :n], rtol=0, atol=0, check_dtype=False)
    assert torch.equal(a.reco.kind[:, :n].long(), b.reco.kind[:, :n].long())
    assert torch.equal(a.reco.mask[:, :n], b.reco.mask[:, :n])


def test_schema_round_trip(tmp_path):
    chunks = [make_chunk(0, slots=2), make_chunk(1, slots=5), make_chunk(2, n=3, slots=4)]
    with writer(tmp_path / "d.h5") as w:
        for c in chunks:
            w.append(c)
    data = read_dataset(tmp_path / "d.h5")
    assert isinstance(data, Dataset) and len(data) == 19 and data.reco.n_objects == NMAX
    expected = DatasetChunk(
        torch.cat([c.theta for c in chunks]),
        torch.cat([c.hard_momenta for c in chunks]),
        torch.cat([c.hard_coords for c in chunks]),
        Particles.cat([c.reco for c in chunks]),
        torch.cat([torch.nn.functional.pad(c.charge, (0, NMAX - c.charge.shape[1])) for c in chunks]),
        torch.cat([c.accepted for c in chunks]),
    )
    assert_same(data, expected)
    assert data.reco.p.dtype == torch.float64 and data.theta.dtype == torch.float64
    assert data.info["process"] == "drell-yan" and data.parameter_names == ["sin2theta_eff"]
    assert data.info["settings"]["detector"]["jet_pt_min"] == 20.0 and data.info["n_events"] == 19
    with h5py.File(tmp_path / "d.h5") as f:
        assert all(name in f for name in COLUMNS)
        assert f["reco/kind"].dtype == np.int16 and f["reco/charge"].dtype == np.int8 and f["reco/mask"].dtype == bool
        assert f.attrs["schema"] == "memzoo-paired-dataset" and f["reco/p"].compression == "gzip"
    rejected = data[~data.accepted]
    assert len(rejected) > 0 and not rejected.reco.mask.any()
    assert len(read_dataset(tmp_path / "d.h5", accepted_only=True)) == int(data.accepted.sum())
    assert len(data[3]) == 1 and len(data[2:5]) == 3


def test_float32_reco_storage(tmp_path):
    chunk = make_chunk(3)
    with writer(tmp_path / "f.h5", reco_dtype=torch.float32) as w:
        w.append(chunk)
    data = read_dataset(tmp_path / "f.h5")
    assert data.reco.p.dtype == torch.float32
    torch.testing.assert_close(data.reco.p[:, :4], chunk.reco.p.float())


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    chunks = [make_chunk(i) for i in range(4)]
    with writer(tmp_path / "ref.h5") as w:
        for c in chunks:
            w.append(c)
    with writer(tmp_path / "run.h5") as w:
        w.append(chunks[0])
        w.append(chunks[1])
    with h5py.File(tmp_path / "run.h5", "r+") as f:  # killed mid-third chunk: some columns grown, n_events not
        for name in ("theta", "hard/momenta", "reco/p"):
            f[name].resize(20, axis=0)
            f[name][16:20] = 7.0
    with writer(tmp_path / "run.h5") as w:
        assert (w.n_done, w.chunks_done) == (16, 2)
        assert all(w._file[name].shape[0] == 16 for name in COLUMNS)  # debris truncated
        for c in chunks[w.chunks_done :]:
            w.append(c)
    assert_same(read_dataset(tmp_path / "run.h5"), read_dataset(tmp_path / "ref.h5"))


def test_exception_inside_append_leaves_a_resumable_file(tmp_path, monkeypatch):
    chunks = [make_chunk(i) for i in range(3)]
    w = writer(tmp_path / "x.h5")
    w.append(chunks[0])
    original = DatasetWriter._write

    def interrupted(self, name, values, start, stop):
        if name == "reco/mask":
            raise KeyboardInterrupt
        original(self, name, values, start, stop)

    monkeypatch.setattr(DatasetWriter, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        w.append(chunks[1])
    w.close()
    monkeypatch.undo()
    assert len(read_dataset(tmp_path / "x.h5")) == 8  # the partial chunk is invisible
    with writer(tmp_path / "x.h5") as w:
        assert w.n_done == 8
        w.append(chunks[1])
        w.append(chunks[2])
    with writer(tmp_path / "y.h5") as w:
        for c in chunks:
            w.append(c)
    assert_same(read_dataset(tmp_path / "x.h5"), read_dataset(tmp_path / "y.h5"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"settings": {"seed": 2, "detector": {"jet_pt_min": 20.0}}}, "'settings.seed' is 1 in the file but 2"),
        ({"settings": {"seed": 1, "detector": {"jet_pt_min": 25.0}}}, "settings.detector.jet_pt_min"),
        ({"process": "thj"}, "'process'"),
        ({"chunk_size": 16}, "'chunk_size'"),
        ({"parameters": [("alpha", "deg")]}, "'parameters'"),
        ({"n_reco_max": 7}, "'reco/p'"),
        ({"reco_dtype": torch.float32}, "'reco/p'"),
    ],
)
def test_resume_mismatch_names_the_setting(tmp_path, change, named):
    with writer(tmp_path / "m.h5") as w:
        w.append(make_chunk(0))
    with pytest.raises(ValueError, match="Cannot resume") as err:
        writer(tmp_path / "m.h5", **change)
    assert named in str(err.value)
    with writer(tmp_path / "m.h5", resume=False, **change) as w:  # explicit overwrite
        assert w.n_done == 0


def test_append_checks_the_chunk_against_the_file(tmp_path):
    with writer(tmp_path / "c.h5", n_reco_max=3) as w:
        w.append(DatasetChunk(*_trim(make_chunk(0, slots=6), 3)))  # padding beyond Nmax is fine
        with pytest.raises(ValueError, match="n_reco_max = 3"):
            w.append(make_chunk(1, slots=6))
        bad = make_chunk(2)
        with pytest.raises(ValueError, match="hard_coords"):
            w.append(
                DatasetChunk(bad.theta, bad.hard_momenta, bad.hard_coords[:, :2], bad.reco, bad.charge, bad.accepted)
            )


def _trim(chunk: DatasetChunk, keep: int):
    """The chunk with objects beyond slot ``keep`` masked out (slots themselves kept)."""
    mask = chunk.reco.mask.clone()
    mask[:, keep:] = False
    reco = Particles(chunk.reco.p, torch.where(mask, chunk.reco.kind, 0), mask)
    return chunk.theta, chunk.hard_momenta, chunk.hard_coords, reco, chunk.charge, chunk.accepted


def test_chunk_validation_names_field_and_row():
    good = make_chunk(0)
    hard = good.hard_momenta.clone()
    hard[5, 1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"hard_momenta has a non-finite value nan at row 5, particle 1"):
        DatasetChunk(good.theta, hard, good.hard_coords, good.reco, good.charge, good.accepted)
    accepted = good.accepted.clone()
    row = int(good.reco.mask.any(-1).nonzero()[0, 0])
    accepted[row] = False
    with pytest.raises(ValueError, match=f"row {row} is rejected"):
        DatasetChunk(good.theta, good.hard_momenta, good.hard_coords, good.reco, good.charge, accepted)
    with pytest.raises(ValueError, match="theta must have 2 dimensions with 8 rows"):
        DatasetChunk(good.theta[:4], good.hard_momenta, good.hard_coords, good.reco)


def test_split_is_deterministic_and_disjoint(tmp_path):
    with writer(tmp_path / "s.h5") as w:
        for i in range(5):
            w.append(make_chunk(i))
    data = read_dataset(tmp_path / "s.h5")
    train, val, test = data.split(seed=3)
    assert (len(train), len(val), len(test)) == (32, 4, 4)
    again = data.split(seed=3)
    for a, b in zip((train, val, test), again):
        assert_same(a, b)
    # rows are identified by their unique hard coordinates
    keys = [set(map(tuple, part.hard_coords.tolist())) for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert set.union(*keys) == set(map(tuple, data.hard_coords.tolist()))
    assert not torch.equal(data.split(seed=4)[0].hard_coords, train.hard_coords)
    assert [len(p) for p in data.split(seed=0, fractions=(0.5, 0.5))] == [20, 20]
    with pytest.raises(ValueError, match="sum to 1"):
        data.split(seed=0, fractions=(0.5, 0.6))


def _damage(path, name, fn):
    with h5py.File(path, "r+") as f:
        fn(f, name)


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("reco/mask", lambda f, n: f.__delitem__(n), r"has no dataset 'reco/mask'"),
        ("reco/p", None, r"dataset 'reco/p' has a non-finite value nan at row 3, object 0"),
        ("reco/kind", None, r"dataset 'reco/kind' has an unknown object kind 7 .* at row 3, object 0"),
        ("hard/coords", None, r"dataset 'hard/coords' has a non-finite value inf at row 6, column 1"),
        ("theta", lambda f, n: (f.__delitem__(n), f.create_dataset(n, data=np.zeros((8, 3)))), r"'theta' has shape"),
        ("accepted", lambda f, n: f[n].resize(5, axis=0), r"'accepted' has only 5 rows but n_events = 8"),
    ],
)
def test_read_errors_name_file_dataset_and_row(tmp_path, name, damage, message):
    chunk = make_chunk(0)
    mask = chunk.reco.mask.clone()
    mask[3, 0] = chunk.accepted[3] = True
    reco = Particles(chunk.reco.p.where(mask[..., None], 1.0).abs() * 2, torch.where(mask, 13, 0), mask)
    path = tmp_path / "bad.h5"
    with writer(path) as w:
        w.append(DatasetChunk(chunk.theta, chunk.hard_momenta, chunk.hard_coords, reco, accepted=chunk.accepted))

    def poke(f, n):
        values = f[n][...]
        if n == "reco/p":
            values[3, 0, 1] = np.nan
        elif n == "reco/kind":
            values[3, 0] = 7
        else:
            values[6, 1] = np.inf
        f[n][...] = values

    _damage(path, name, damage or poke)
    with pytest.raises(ValueError, match=message) as err:
        read_dataset(path)
    assert str(path) in str(err.value)


def test_read_rejects_foreign_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="is not a memzoo-paired-dataset file"):
        read_dataset(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "missing.h5")
