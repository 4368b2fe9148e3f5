"""benchmarks/transfer_study.py on a tiny Drell-Yan sample with the analytic ``gaussian`` transfer."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from memzoo.simulation.simulate import SimulationConfig, simulate
from memzoo.validation import ClassifierConfig

ROOT = Path(__file__).parents[1]
EXACT = str(ROOT / "registry" / "drell-yan" / "gaussian.toml")


def _load_study():
    spec = importlib.util.spec_from_file_location("transfer_study", ROOT / "benchmarks" / "transfer_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _load_study()


@pytest.fixture(scope="module")
def dy_sm(tmp_path_factory):
    """1800 Drell-Yan events at sin²θ_eff = 0.2315 (≈ 650 accepted), parametric detector."""
    path = tmp_path_factory.mktemp("transfer_study") / "dy.h5"
    config = SimulationConfig("drell-yan", n_events=1800, chunk_size=1800, seed=11, theta={"sin2theta_eff": 0.2315})
    return simulate(config, path, progress=False)


@pytest.fixture(scope="module")
def smeared_card(tmp_path_factory):
    """The exact card with a 15 % muon pT resolution instead of 1–2.5 %: a wrong transfer."""
    text = (
        Path(EXACT)
        .read_text()
        .replace("conditional = true", "conditional = true\nmuon_pt_resolution = [[2.5, 0.15, 0.0]]")
    )
    path = tmp_path_factory.mktemp("cards") / "smeared.toml"
    path.write_text(text)
    return str(path)


def test_exact_transfer_is_indistinguishable_and_a_wrong_one_is_not(dy_sm, smeared_card, tmp_path):
    models = {"exact": EXACT, "smeared": smeared_card}
    summary = study.run_study(dy_sm, models, tmp_path, events=None, held_out="all", plots=False)
    exact, smeared = summary["backends"]["exact"], summary["backends"]["smeared"]
    n = summary["data"]["events"]
    assert n > 500 and summary["layout"] == {"13": 2, "12": 1}  # the gaussian transfer also gives missing pT
    ts = exact["two_sample"]
    assert abs(ts["auc"] - 0.5) < 3 * ts["auc_error"]  # the exact model: AUC ≈ 0.5 within 3σ
    assert smeared["two_sample"]["auc"] > 0.5 + 3 * smeared["two_sample"]["auc_error"]
    response = exact["two_sample_response"]
    assert abs(response["auc"] - 0.5) < 3 * response["auc_error"] and "Δη(μ1)" in response["features"]
    assert smeared["two_sample_response"]["auc"] > smeared["two_sample"]["auc"]  # the response shows it more
    assert exact["chi2"]["sum"] < 1.5 * exact["chi2"]["ndf"] < smeared["chi2"]["sum"]
    # Gibbs: the true transfer has the largest expected log p; a 6–15× wider pT response loses ≈ 2 × 2 nats
    gap = exact["log_prob"]["mean"] - smeared["log_prob"]["mean"]
    assert gap > 2.5 and exact["log_prob"]["n_nonfinite"] == 0
    assert (tmp_path / "held_out.h5").is_file()
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["backends"]["exact"]["two_sample"]["auc"] == ts["auc"]
    table = (tmp_path / "table.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| exact | gaussian | " + str(n) + " | ")


def test_held_out_split_and_written_events_round_trip(dy_sm, tmp_path):
    from memzoo.data import read_dataset

    test = study.held_out_events(dy_sm, "test", split_seed=0)
    everything = read_dataset(dy_sm)
    expected = everything.split(0, (0.8, 0.1, 0.1))[2]
    assert len(test) == int(expected.accepted.sum()) and bool(test.accepted.all())
    path = study.write_events(test, tmp_path / "h.h5", {"split": "test"})
    back = read_dataset(path)
    assert torch.equal(back.hard_coords, test.hard_coords) and torch.equal(back.reco.mask, test.reco.mask)
    assert back.info["settings"]["held_out"] == {"split": "test"}
    with pytest.raises(ValueError, match="'test' or 'all'"):
        study.held_out_events(dy_sm, "train")
    with pytest.raises(ValueError, match="needs >= 20"):
        study.held_out_events(dy_sm, "all", n=5)


def test_integrate_and_calibrate_give_an_estimate_per_backend(dy_sm, tmp_path):
    integrate = {
        "grid": study.parse_grid("sin2theta_eff=0.1:0.4:5"),
        "events": 24,
        "set_size": 12,
        "options": {"n_points": 400, "min_iterations": 2, "max_iterations": 2, "sigma_fid_points": 5000},
    }
    summary = study.run_study(
        dy_sm, {"exact": EXACT}, tmp_path, events=200, held_out="all", plots=False,
        classifier=ClassifierConfig(epochs=3), integrate=integrate,
    )  # fmt: skip
    mem = summary["backends"]["exact"]["mem"]
    assert mem["events"] == 24 and mem["n_sets"] == 2 and mem["truth"] == pytest.approx(0.2315)
    assert 0.1 <= mem["estimate"] <= 0.4 and mem["err_high"] >= 0
    table = study.markdown_table(summary)
    assert "sin2theta_eff (all events)" in table.splitlines()[0] and f"| {mem['closed_sets']}/2 |" in table
    # a later, shorter study of the same file compares the first events only
    shorter = study.calibration_numbers(Path(mem["results"]), "sin2theta_eff", 6, n_events=12)
    assert shorter["events"] == 12 and shorter["n_sets"] == 2


def test_small_helpers():
    assert study.parse_model("cinn=models:/memzoo-drell-yan-cinn@champion") == (
        "cinn",
        "models:/memzoo-drell-yan-cinn@champion",
    )
    assert study.parse_model("registry/drell-yan/gaussian.toml") == ("gaussian", "registry/drell-yan/gaussian.toml")
    assert study.parse_model("models:/memzoo-thj-cinn@champion")[0] == "memzoo-thj-cinn"
    grid = study.parse_grid("alpha=-90:90:7,beta=0:1:3")
    assert grid["alpha"] == [-90.0, -60.0, -30.0, 0.0, 30.0, 60.0, 90.0] and len(grid["beta"]) == 3
    with pytest.raises(ValueError, match="NAME=START:STOP:N"):
        study.parse_grid("alpha=0:1")
    with pytest.raises(ValueError, match="at least 3 points"):
        study.parse_grid("alpha=0:1:2")
    s = study.log_prob_summary(torch.tensor([1.0, 2.0, 3.0, -math.inf], dtype=torch.float64))
    assert s == {"mean": 2.0, "error": pytest.approx(1 / math.sqrt(3)), "n": 3, "n_nonfinite": 1}
    with pytest.raises(ValueError, match="at least one model"):
        study.run_study("x.h5", {}, "out")


class _RandomJets:
    """A transfer whose number of jets (kind 1) is 1, 2 or 3 at random; every jet carries its event's
    hard value in p[..., 0], so that a row that ends up in the wrong place is seen."""

    def sample(self, hard, generator=None):
        from memzoo.events import Particles

        b = len(hard)
        n = torch.randint(1, 4, (b,), generator=generator)
        mask = torch.arange(3)[None] < n[:, None]
        p = torch.zeros(b, 3, 4, dtype=torch.float64)
        p[..., 0] = hard[:, :1].double()
        return Particles(p, torch.ones(b, 3, dtype=torch.long), mask, validate=False)


def test_generate_can_match_the_true_multiplicities():
    from memzoo.events import Particles

    hard = torch.arange(200, dtype=torch.float64)[:, None]
    want = torch.arange(200) % 3 + 1  # 1, 2, 3 jets, and a missing pT (kind 12) the transfer never makes
    kind = torch.cat([torch.ones(200, 3, dtype=torch.long), torch.full((200, 1), 12)], 1)
    mask = torch.cat([torch.arange(3)[None] < want[:, None], torch.ones(200, 1, dtype=torch.bool)], 1)
    truth = Particles(torch.zeros(200, 4, 4, dtype=torch.float64), kind, mask, validate=False)
    free, unmatched = study.generate(_RandomJets(), hard, seed=1)
    assert unmatched == 0 and not torch.equal(free.count(1), want)  # a third match by chance
    matched, unmatched = study.generate(_RandomJets(), hard, seed=1, match=truth)
    assert unmatched == 0 and torch.equal(matched.count(1), want)
    assert torch.equal(matched.p[:, 0, 0], hard[:, 0])  # rows stay with their hard event
    _, unmatched = study.generate(_RandomJets(), hard, seed=1, match=truth, max_rounds=1)
    assert 80 < unmatched < 160  # 2/3 of 200 miss in one draw
