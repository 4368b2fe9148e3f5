"""Likelihood result files: chunked writing, resuming, refusal of other settings."""

from __future__ import annotations

import h5py
import pytest
import torch

from memzoo.protocols import Likelihood
from memzoo.results import ResultsWriter, read_results

THETA = torch.tensor([[0.1], [0.2], [0.3]], dtype=torch.float64)


def _chunk(start, n, replicas=0):
    logp = -torch.arange(start, start + n, dtype=torch.float64)[:, None] - THETA.T
    diag = {"n_points": torch.full((n,), 1000), "n_nonfinite": torch.arange(n)}
    if replicas:
        diag["logp_replicas"] = logp[..., None].expand(-1, -1, replicas) + 0.01
    return torch.arange(start, start + n) * 2, Likelihood(logp, 0.1 * torch.ones_like(logp), THETA, diag)


def test_write_read_and_resume(tmp_path):
    path = tmp_path / "r.h5"
    with ResultsWriter(path, THETA, {"model": "m"}, n_replicas=2) as w:
        w.append(*_chunk(0, 4, 2))
        w.append(*_chunk(4, 3, 2))
    # an interrupted chunk: rows written, n_events not advanced
    with h5py.File(path, "r+") as f:
        f["logp"].resize(9, axis=0)
    with ResultsWriter(path, THETA, {"model": "m"}, n_replicas=2) as w:
        assert w.n_done == 7
        w.append(*_chunk(7, 2, 2))
    r = read_results(path)
    assert r.logp.shape == (9, 3) and r.event.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    torch.testing.assert_close(r.logp, _chunk(0, 9)[1].logp)
    assert r.logp_replicas.shape == (9, 3, 2) and r.n_nonfinite.tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1]
    torch.testing.assert_close(r.total(), r.logp.sum(0))


def test_other_settings_or_grid_refused(tmp_path):
    path = tmp_path / "r.h5"
    with ResultsWriter(path, THETA, {"model": "m", "n": 1}) as w:
        w.append(*_chunk(0, 2))
    with pytest.raises(ValueError, match=r"differing: \['n'\]"):
        ResultsWriter(path, THETA, {"model": "m", "n": 2})
    with pytest.raises(ValueError, match="another θ grid"):
        ResultsWriter(path, THETA * 2, {"model": "m", "n": 1})
    with pytest.raises(ValueError, match="another seeding scheme.*read but not continued"):
        ResultsWriter(path, THETA, {"model": "m", "n": 1, "seeding": "per-chunk"})
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "something-else"
    with pytest.raises(ValueError, match="not a memzoo likelihood-results file"):
        ResultsWriter(other, THETA, {})
    with pytest.raises(ValueError, match="not a memzoo likelihood-results file"):
        read_results(other)


def test_a_chunk_is_written_once_and_without_gaps(tmp_path):
    """``start`` guards exactly-once writing: a repeated or skipped chunk is refused, nothing changes."""
    path = tmp_path / "r.h5"
    with ResultsWriter(path, THETA, {"model": "m"}) as w:
        w.append(*_chunk(0, 3), start=0)
        with pytest.raises(ValueError, match="does not continue the file, which holds 3"):
            w.append(*_chunk(0, 3), start=0)  # the same chunk again
        with pytest.raises(ValueError, match="does not continue"):
            w.append(*_chunk(6, 3), start=6)  # a gap
        with pytest.raises(ValueError, match=r"logp of shape \(2, 3\) for 3 events"):
            w.append(torch.arange(3), _chunk(3, 2)[1])
        w.append(*_chunk(3, 2), start=3)
    r = read_results(path)
    assert r.event.tolist() == [0, 2, 4, 6, 8]
    torch.testing.assert_close(r.logp, _chunk(0, 5)[1].logp)
