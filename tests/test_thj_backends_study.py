"""The one-command tHj Pythia-chain backend study (benchmarks/thj_backends_study.py) end to end at tiny size.

The four-backend tiny run takes ≈ 5 min on a loaded 2-core box (the CFM densities and four
trainings), so CI runs ``cinn`` and ``transfermer``: the fixed-layout and the variable-multiplicity
transfer, which between them exercise every step (Pythia simulation, derived cards, training with
extra jets, both studies, the MEM and the calibration).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import thj_backends_study as study  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("thj-pythia")
    argv = ["--out", str(out), "--tiny", "--workers", "1", "--backends", "cinn,transfermer"]
    summary = study.main(argv)
    return out, argv, summary


def test_summary_has_every_backend_with_finite_numbers(tiny_run):
    out, _, summary = tiny_run
    assert json.loads((out / "summary.json").read_text())["layouts"] == summary["layouts"]
    for name in ("study", "study-mem"):
        rows = summary["studies"][name]["backends"]
        assert set(rows) == {"cinn", "transfermer"}
        for row in rows.values():
            for test in ("two_sample", "two_sample_response"):
                assert 0.0 <= row[test]["auc"] <= 1.0
            assert math.isfinite(row["log_prob"]["mean"])
    mem = summary["studies"]["study-mem"]["backends"]
    for row in mem.values():
        assert row["log_prob"]["n_nonfinite"] == 0  # the common-layout events are inside every layout
        assert row["mem"]["truth"] == pytest.approx(45.0)
        assert row["mem"]["n_sets"] >= 1 and "pull_mean" in row["mem"]
        assert math.isfinite(row["mem"]["estimate"])
    table = (out / "table.md").read_text()
    assert "| cinn |" in table and "| transfermer |" in table


def test_layout_counts_follow_each_backends_rule(tiny_run):
    """The cINN counts exactly 3 light jets, the Transfermer 3 to 5; its −∞ count in the study agrees."""
    from memzoo.data import read_dataset

    out, _, summary = tiny_run
    held = summary["layouts"]["held_out"]
    jets = {int(n): c for n, c in held["light_jets"].items()}
    assert sum(jets.values()) == held["accepted"]
    accepted = held["accepted"]
    assert held["cinn_in_layout"] <= held["transfermer_in_layout"] < 1.0  # extra jets are present
    assert held["transfermer_in_layout"] * accepted <= sum(jets.get(n, 0) for n in (3, 4, 5)) + 1e-9
    rows = summary["studies"]["study"]["backends"]
    n = rows["transfermer"]["log_prob"]["n"] + rows["transfermer"]["log_prob"]["n_nonfinite"]
    assert rows["transfermer"]["log_prob"]["n"] == round(held["transfermer_in_layout"] * n)
    assert rows["cinn"]["log_prob"]["n"] == round(held["cinn_in_layout"] * n)
    common = read_dataset(out / "held_out_common_layout.h5")
    assert len(common) == held["common_layout_events"]
    light = (common.reco.mask & (common.reco.kind == 1)).sum(1)
    assert torch.all(light == 3)


def test_rerun_skips_finished_steps(tiny_run, capsys):
    out, argv, summary = tiny_run
    timings = (out / "timings.json").read_text()
    again = study.main(argv)
    printed = capsys.readouterr().out
    assert "+ (cd" not in printed  # no command ran
    for step in ("simulation of thj-pythia-train.h5", "training of memzoo-thj-cinn-pythia", "transfer study"):
        assert f"skip {step}" in printed
    assert (out / "timings.json").read_text() == timings
    assert again["studies"] == summary["studies"]


def test_backends_share_the_cinn_sampler_and_acceptance(tiny_run, monkeypatch):
    """The Transfermer bundle holds the cINN bundle's sampler and acceptance, weight for weight, and
    its own transfer: the MEM comparison differs in the transfer only."""
    import mlflow

    import memzoo
    from memzoo import tracking

    out, _, _ = tiny_run
    before = dict(tracking._STATE)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.configure_tracking(out / "memzoo-runs")  # the study's store
    try:
        cinn = memzoo.load("models:/memzoo-thj-cinn-pythia@champion").components()
        transfermer = memzoo.load("models:/memzoo-thj-transfermer-pythia@champion").components()
    finally:  # back to the store the other tests use
        tracking._STATE.clear()
        tracking._STATE.update(before)
        mlflow.set_tracking_uri(before.get("configured"))
        mlflow.set_registry_uri(before.get("configured"))
    for role in ("sampler", "acceptance"):
        a, b = cinn[role].state_dict(), transfermer[role].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert transfermer["transfer"].name == "transfermer" and cinn["transfer"].name == "cinn"
