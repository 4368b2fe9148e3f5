"""The command plan of benchmarks/thj_study.py (the commands themselves are tested where they live)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import thj_study as study  # noqa: E402


def plan(monkeypatch, tmp_path, *argv):
    """The ``memzoo`` commands the study would run (datasets 'exist' with 5 % acceptance)."""
    commands = []
    monkeypatch.setattr(study, "run", lambda command: commands.append(command[3:]))  # drop python -m memzoo.cli
    monkeypatch.setattr(study, "accepted_fraction", lambda path: 0.05)
    monkeypatch.setattr(study, "n_rows", lambda path: 0)
    monkeypatch.setattr(study, "figure", lambda out, alphas, sizes: out / "thj_scans.png")
    study.main(["--out", str(tmp_path), "--alphas", "0,90", "--chunk", "1000", *map(str, argv)])
    return commands


def option(command, name):
    return command[command.index(name) + 1]


def test_batches_have_their_own_seeds_and_files_and_are_joined(monkeypatch, tmp_path):
    commands = plan(monkeypatch, tmp_path, "--sets", 5, "--set-size", 100, "--batch-sets", 2)
    sims = [c for c in commands if c[0] == "simulate"]
    ints = [c for c in commands if c[0] == "integrate"]
    # 3 batches (2 + 2 + 1 sets) per α, each with its own seed, dataset and results file
    assert [option(c, "--seed") for c in sims[1::2]] == ["100", "200", "300", "190", "290", "390"]
    assert [option(c, "--events") for c in ints] == ["200", "200", "100"] * 2
    names = ["mem-alpha0.h5", "mem-alpha0-b1.h5", "mem-alpha0-b2.h5"]
    assert [Path(option(c, "--out")).name for c in ints[:3]] == names
    # enough simulated events for the batch's accepted ones at 5 % (10 % margin, whole chunks)
    assert [option(c, "--events") for c in sims[1:6:2]] == ["5000", "5000", "3000"]
    joined = ",".join(str(tmp_path / n) for n in names)
    scans = [c for c in commands if c[0] == "scan"]
    assert [(c[1], option(c, "--events")) for c in scans[:2]] == [(joined, "400"), (joined, "500")]
    calibrate = commands[-1]
    assert calibrate[0] == "calibrate" and calibrate[1] == joined and calibrate[2].endswith("mem-alpha90-b2.h5")


def test_one_batch_by_default(monkeypatch, tmp_path):
    commands = plan(monkeypatch, tmp_path, "--sets", 3)
    ints = [c for c in commands if c[0] == "integrate"]
    assert [Path(option(c, "--out")).name for c in ints] == ["mem-alpha0.h5", "mem-alpha90.h5"]
    assert [option(c, "--events") for c in ints] == ["300", "300"]
    assert commands[-1][1:3] == [str(tmp_path / "mem-alpha0.h5"), str(tmp_path / "mem-alpha90.h5")]


def test_figure_of_the_scans(tmp_path):
    """The thesis-style panel figure from real ``memzoo scan`` summaries (toy von Mises likelihoods)."""
    from memzoo.cli import main
    from memzoo.protocols import Likelihood
    from memzoo.results import ResultsWriter

    grid = torch.arange(-180.0, 180.0, 10.0, dtype=torch.float64)[:, None]
    for alpha in (0, 90):
        for n in (400, 2000):
            # n events each contributing κ cos(α − α_true), κ = 0.02: σ ≈ 1/√(nκ) rad
            logp = 0.02 * torch.cos(torch.deg2rad(grid[:, 0] - alpha - 3)).repeat(n, 1)
            path = tmp_path / f"toy{alpha}-{n}.h5"
            with ResultsWriter(path, grid, {"model": "toy"}) as writer:
                writer.append(torch.arange(n), Likelihood(logp, torch.zeros_like(logp), grid, {}))
            out = tmp_path / f"scan-alpha{alpha}-{n}"
            argv = ["scan", str(path), "--names", "alpha", "--period", "alpha=360", "--truth", f"alpha={alpha}"]
            assert main([*argv, "--method", "spline", "--out", str(out)]) == 0
    png = study.figure(tmp_path, [0.0, 90.0], [400, 2000])
    assert png.stat().st_size > 30_000
    import matplotlib.image

    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > height  # two columns of α, two rows of sizes, laid out wider than tall
