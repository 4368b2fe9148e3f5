"""Validating transfer models: generated against true reco events, object by object and as a whole.

A transfer model p(x_reco|x_hard) sampled at the true hard events of a dataset must reproduce
the true reco events. Two checks, after Heimel, PhD thesis 2024, Secs. 3.1.3 and 4.4:

* **distributions**: per object (pT-ordered slots of each kind) pT, η, φ and m (jets), the
  multiplicities and invariant masses of object pairs, generated against true, as normalised
  histograms with ratio panels and a two-sample χ² (Gagunashvili, NIM A 614 (2010) 287);
* **classifier two-sample test**: an MLP trained to tell generated from true events on a train
  split; by eq. 3.19 it learns p_gen/(p_gen + p_true), so its ROC area on a held-out split is
  0.5 when the two distributions agree and grows with any difference in the joint distribution,
  correlations included. The error is Hanley & McNeil's (:func:`memzoo.inference.auc_error`),
  the spread over test events; retraining noise is not included.

Example:
    >>> layout = feature_layout(true_reco, generated_reco)            # doctest: +SKIP
    >>> result = classifier_two_sample_test(event_features(true_reco, layout),
    ...                                     event_features(generated_reco, layout))  # doctest: +SKIP
    >>> print(f"AUC = {result.auc:.3f} ± {result.auc_error:.3f}")     # doctest: +SKIP
"""

# ORDER and SYMBOL: module constants of the former memzoo/validation.py, still reachable here
from memzoo.validation.features import ORDER as ORDER
from memzoo.validation.features import SYMBOL as SYMBOL
from memzoo.validation.features import FeatureSet, event_features, feature_layout, response_features
from memzoo.validation.histograms import (
    HistogramComparison,
    compare_histograms,
    distribution_comparisons,
    plot_distributions,
)
from memzoo.validation.two_sample import ClassifierConfig, TwoSampleResult, classifier_two_sample_test

__all__ = [
    "ClassifierConfig",
    "FeatureSet",
    "HistogramComparison",
    "TwoSampleResult",
    "classifier_two_sample_test",
    "compare_histograms",
    "distribution_comparisons",
    "event_features",
    "feature_layout",
    "plot_distributions",
    "response_features",
]
