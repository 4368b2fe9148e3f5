"""The statistics layer: likelihood scans, fits, calibration, hard-level references, discriminants.

Works on per-event log-likelihoods from any :class:`~memzoo.protocols.LikelihoodModel` — the
MEM integrator's results files (:mod:`memzoo.results`) or a regression surrogate — following
Heimel, PhD thesis 2024, Secs. 6.3–6.5, and Bury & Delaere, arXiv:2007.09121, Sec. 4.4.

Example:
    >>> from memzoo.inference import load_event_likelihoods, fit_scan   # doctest: +SKIP
    >>> events, _ = load_event_likelihoods("thj_mem.h5")                  # doctest: +SKIP
    >>> fit_scan(events.combine(), "alpha")                               # doctest: +SKIP
"""

from __future__ import annotations

from memzoo.inference.calibration import Calibration, PullSummary, calibrate, fit_sets, pull, summarise_pulls
from memzoo.inference.discriminant import auc, auc_error, discriminant, roc_curve, theta_column
from memzoo.inference.fit import METHODS, Estimate, fit_curve, fit_scan
from memzoo.inference.hard_level import hard_level_likelihood, normalisation
from memzoo.inference.io import DatasetInfo, load_event_likelihoods, read_dataset_info
from memzoo.inference.parameters import ParameterInfo, parameter_infos, wrap
from memzoo.inference.profile import grid_axes, profile
from memzoo.inference.scan import EventLikelihoods, Scan

__all__ = [
    "METHODS",
    "Calibration",
    "DatasetInfo",
    "Estimate",
    "EventLikelihoods",
    "ParameterInfo",
    "PullSummary",
    "Scan",
    "auc",
    "auc_error",
    "calibrate",
    "discriminant",
    "fit_curve",
    "fit_scan",
    "fit_sets",
    "grid_axes",
    "hard_level_likelihood",
    "load_event_likelihoods",
    "normalisation",
    "parameter_infos",
    "profile",
    "pull",
    "read_dataset_info",
    "roc_curve",
    "summarise_pulls",
    "theta_column",
    "wrap",
]
