"""Transfer-validation tools: reco-event features, the classifier two-sample AUC, histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, norm

from memzoo.events import Particles, from_ptetaphim, invariant_mass
from memzoo.inference import auc
from memzoo.validation import (
    ClassifierConfig,
    classifier_two_sample_test,
    compare_histograms,
    distribution_comparisons,
    event_features,
    feature_layout,
    plot_distributions,
    response_features,
)


def _event(objects):
    """One reco event from (kind, pT, η, φ, m) tuples, padded to 8 slots."""
    x = torch.tensor([o[1:] for o in objects], dtype=torch.float64)
    p = torch.zeros(1, 8, 4, dtype=torch.float64)
    p[0, : len(objects)] = from_ptetaphim(x)
    kind = torch.zeros(1, 8, dtype=torch.long)
    kind[0, : len(objects)] = torch.tensor([o[0] for o in objects])
    return Particles(p, kind, kind != 0)


THJ_LIKE = [
    (1, 30.0, 0.1, 0.2, 5.0),
    (22, 40.0, -0.5, 1.0, 0.0),
    (1, 90.0, 1.2, -2.0, 9.0),
    (5, 60.0, 0.3, 2.5, 8.0),
    (22, 70.0, 0.7, -1.0, 0.0),
    (12, 25.0, 0.0, 0.4, 0.0),
]


def test_features_of_a_known_event_follow_the_pt_order_and_mark_absent_slots():
    reco = _event(THJ_LIKE)
    layout = feature_layout(reco, max_per_kind=3)
    assert layout == {22: 2, 5: 1, 1: 2, 12: 1}
    f = event_features(reco, layout)
    v = dict(zip(f.names, f.values[0].tolist()))
    assert v["pT(γ1)"] == pytest.approx(70.0) and v["pT(γ2)"] == pytest.approx(40.0)
    assert v["pT(j1)"] == pytest.approx(90.0) and v["m(j1)"] == pytest.approx(9.0) and v["η(j2)"] == pytest.approx(0.1)
    assert v["pT(miss)"] == pytest.approx(25.0) and "η(miss)" not in v and "m(γ1)" not in v
    assert v["n(j)"] == 2 and v["n(γ)"] == 2 and v["H_T"] == pytest.approx(290.0)
    p = reco.p[0]
    assert v["m(γ1,γ2)"] == pytest.approx(float(invariant_mass(p[4], p[1])), rel=1e-12)
    assert v["m(b1,j2)"] == pytest.approx(float(invariant_mass(p[3], p[0])), rel=1e-12)
    # a layout with more jet slots than this event has jets: the third slot is absent
    wide = event_features(reco, {1: 3})
    j3 = [i for i, n in enumerate(wide.names) if n.endswith("(j3)")]
    assert len(j3) == 4 and not wide.present[0, j3].any() and (wide.values[0, j3] == 0).all()
    assert not wide.present[0, wide.names.index("m(j1,j3)")]


def test_response_features_relate_each_object_to_the_nearest_hard_particle():
    reco = _event([(13, 44.0, 0.3, 1.0, 0.0), (13, 25.0, -1.2, -2.1, 0.0), (12, 9.0, 0.0, 0.5, 0.0)])
    hard = from_ptetaphim(torch.tensor([[[30.0, -1.0, -2.0, 0.0], [40.0, 0.31, 1.0 - 2e-3, 0.0]]], dtype=torch.float64))
    f = response_features(reco, hard, feature_layout(reco))
    v = dict(zip(f.names, f.values[0].tolist()))
    assert sorted(v) == sorted(f"{q}(μ{i})" for q in ("log pT/pT_hard", "Δη", "Δφ") for i in (1, 2))  # no missing pT
    assert v["log pT/pT_hard(μ1)"] == pytest.approx(math.log(44 / 40)) and v["Δη(μ1)"] == pytest.approx(-0.01)
    assert v["Δφ(μ1)"] == pytest.approx(2e-3) and v["log pT/pT_hard(μ2)"] == pytest.approx(math.log(25 / 30))
    joined = event_features(reco, feature_layout(reco)).join(f)
    assert joined.names[-6:] == f.names and joined.values.shape == (1, len(joined.names))
    with pytest.raises(ValueError, match="hard_momenta must be"):
        response_features(reco, hard[0], feature_layout(reco))


def test_layout_keeps_the_kinds_every_sample_has_and_explains_bad_input():
    with_met, without = _event(THJ_LIKE), _event([o for o in THJ_LIKE if o[0] != 12])
    assert 12 not in feature_layout(with_met, without)
    assert feature_layout(with_met, without, kinds=[12]) == {12: 1}
    with pytest.raises(ValueError, match="Unknown object kind"):
        feature_layout(with_met, kinds=[7])
    with pytest.raises(ValueError, match="share no object kind"):
        feature_layout(_event([(22, 50.0, 0.0, 0.0, 0.0)]), _event([(13, 50.0, 0.0, 0.0, 0.0)]))
    a, b = event_features(with_met, feature_layout(with_met)), event_features(without, feature_layout(without))
    with pytest.raises(ValueError, match=r"different features \(only in the first: \['n\(miss\)', 'pT\(miss\)'"):
        distribution_comparisons(a, {"gen": b})


def _gaussians(n: int, shift: float, dim: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, dim, generator=g, dtype=torch.float64)
    b = torch.randn(n, dim, generator=g, dtype=torch.float64)
    b[:, 0] += shift
    return a, b


def test_one_distribution_gives_auc_one_half_within_its_error():
    a, b = _gaussians(1500, 0.0)
    result = classifier_two_sample_test(a, b, ClassifierConfig(seed=3))
    n_a, n_b = result.n_test
    # Hanley–McNeil at A = 1/2 is the Mann–Whitney null width sqrt((n_a + n_b + 1) / (12 n_a n_b))
    assert result.auc_error == pytest.approx(math.sqrt((n_a + n_b + 1) / (12 * n_a * n_b)), rel=0.01)
    assert abs(result.auc - 0.5) < 3 * result.auc_error
    assert result.n_test == (750, 750) and sum(result.n_train) == 1500


@pytest.mark.parametrize("shift", [0.5, 1.0])
def test_shifted_gaussians_approach_the_optimal_auc(shift):
    """Unit Gaussians shifted by Δ along one axis: the likelihood ratio is monotonic in x₀, so the
    optimal AUC is P(x₀ᵇ > x₀ᵃ) = Φ(Δ/√2). Tolerance: the trained classifier lies within 0.015
    (about 1.5 Hanley–McNeil σ at 1500 test events each) of the optimal score's AUC on the same
    test events, which itself lies within 3σ of Φ(Δ/√2)."""
    a, b = _gaussians(3000, shift, seed=1)
    result = classifier_two_sample_test(a, b, ClassifierConfig(seed=0))
    rows_a, rows_b = result.test_rows
    optimal = auc(b[rows_b, 0], a[rows_a, 0])
    assert abs(optimal - norm.cdf(shift / math.sqrt(2))) < 3 * result.auc_error
    assert abs(result.auc - optimal) < 0.015
    assert result.auc < optimal + 0.005  # no classifier beats the likelihood ratio (up to ties)


def test_classifier_refuses_bad_samples():
    a, b = _gaussians(50, 0.0)
    b[7, 1] = math.nan
    with pytest.raises(ValueError, match="generated sample has 1 events with non-finite features.*row 7"):
        classifier_two_sample_test(a, b)
    with pytest.raises(ValueError, match="3 and 2 features"):
        classifier_two_sample_test(a, a[:, :2])
    with pytest.raises(ValueError, match="at least 10"):
        classifier_two_sample_test(a[:5], a[5:])
    with pytest.raises(ValueError, match="test_fraction"):
        ClassifierConfig(test_fraction=1.0)


def test_histogram_comparison_of_known_inputs():
    h = compare_histograms(torch.tensor([0.5, 1.5, 1.5, 2.5]), torch.tensor([0.5, 0.5, 1.5, 5.0]), torch.arange(4.0))
    assert h.counts_true.tolist() == [1, 2, 1] and h.counts_generated.tolist() == [2, 1, 0]
    assert (h.n_true, h.n_generated) == (4, 4)  # the generated 5.0 is overflow but counts in N
    assert h.density_true.tolist() == [0.25, 0.5, 0.25] and h.density_generated.tolist() == [0.5, 0.25, 0.0]
    assert h.ratio.tolist() == [2.0, 0.5, 0.0]
    assert h.ratio_error[0] == pytest.approx(2.0 * math.sqrt(1 / 2 + 1 / 1))
    # Σ (n_t − n_g)²/(n_t + n_g) for N_t = N_g over bins 1–3 and the overflow: 1/3 + 1/3 + 1 + 1
    assert h.chi2 == pytest.approx(8 / 3) and h.ndf == 3
    same = compare_histograms(torch.arange(10.0), torch.arange(10.0), torch.tensor([0.0, 5.0, 10.0]))
    assert same.chi2 == 0.0 and same.ratio.tolist() == [1.0, 1.0]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=1, max_size=60),
    st.lists(st.floats(-3, 3), min_size=1, max_size=60),
    st.integers(1, 6),
)
def test_histogram_chi2_is_pearsons_homogeneity_test(true, generated, bins):
    t, g = torch.tensor(true, dtype=torch.float64), torch.tensor(generated, dtype=torch.float64)
    edges = torch.linspace(-2.0, 2.0, bins + 1, dtype=torch.float64)
    h = compare_histograms(t, g, edges)
    width = edges.diff()
    inside_t = float((h.density_true * width).sum())
    assert inside_t == pytest.approx(float(((t >= -2) & (t <= 2)).double().mean()))
    lo, hi = float(edges[0]), float(edges[-1])  # numpy's convention: the last bin includes its upper edge
    table = np.array(
        [
            [*np.histogram(v, edges.numpy())[0], np.sum(np.less(v, lo)), np.sum(np.greater(v, hi))]
            for v in (true, generated)
        ]
    )
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        assert h.chi2 == pytest.approx(0.0, abs=1e-12) and h.ndf == 0
    else:
        reference = chi2_contingency(table, correction=False)
        assert h.chi2 == pytest.approx(reference.statistic, rel=1e-9, abs=1e-12)
        assert h.ndf == reference.dof


def test_plots_one_figure_per_object_group(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 200
    x = torch.stack(
        [
            20 + 30 * torch.rand(n, generator=g),
            torch.randn(n, generator=g),
            torch.rand(n, generator=g) * 6 - 3,
            torch.zeros(n),
        ],
        -1,
    )
    reco = Particles(
        from_ptetaphim(x.double())[:, None].expand(-1, 2, -1).clone(),
        torch.full((n, 2), 13),
        torch.ones(n, 2, dtype=torch.bool),
    )
    layout = feature_layout(reco)
    true = event_features(reco, layout)
    gen = event_features(reco[torch.randperm(n, generator=g)], layout)
    paths = plot_distributions(true, {"same events": gen}, tmp_path, title="test")
    assert sorted(p.name for p in paths) == [
        "event.png",
        "multiplicity.png",
        "muon_1.png",
        "muon_2.png",
        "pair_masses.png",
    ]
    assert all(p.stat().st_size > 1000 for p in paths)
    comparisons = distribution_comparisons(true, {"same events": gen})
    assert all(row["same events"].chi2 == pytest.approx(0.0, abs=1e-9) for row in comparisons.values())
    with pytest.raises(ValueError, match="at least one generated sample"):
        plot_distributions(true, {}, tmp_path)
