"""Tests of the multiplicity classifier p(n|x_hard) (thesis Sec. 6.5.2, Table A.8 right)."""

from __future__ import annotations

import pytest
import torch

from memzoo.builtin.multiplicity import MultiplicityClassifier


def test_normalised_and_out_of_range():
    clf = MultiplicityClassifier(MultiplicityClassifier.Config(n_features=3, n_classes=3, n_min=6, layers=2, hidden=8))
    x = torch.randn(10, 3)
    total = sum(clf.log_prob(x, torch.full((10,), n)).exp() for n in (6, 7, 8))
    torch.testing.assert_close(total, torch.ones(10))
    assert bool(torch.isneginf(clf.log_prob(x, torch.tensor([5, 9] * 5))).all())
    with pytest.raises(ValueError, match=r"\[6, 8\]"):
        clf.loss(x, torch.full((10,), 9))
    with pytest.raises(ValueError, match="features must be"):
        clf.logits(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="n_classes >= 2"):
        MultiplicityClassifier(MultiplicityClassifier.Config(n_features=3, n_classes=1))
    paper = MultiplicityClassifier(MultiplicityClassifier.Config(n_features=12))
    assert sum(p.numel() for p in paper.parameters()) == 12 * 256 + 256 + 4 * (256 * 256 + 256) + 256 * 3 + 3


def test_learns_known_probabilities():
    """Extra jets with p(n = 0, 1, 2 | x) = softmax(0, x, 2x): training recovers them and sampling
    reproduces them."""
    gen = torch.Generator().manual_seed(0)
    x = 40 + 20 * torch.randn(6000, 1, generator=gen)  # standardisation matters: raw scale ~ 40
    t = (x[:, 0] - 40) / 20
    truth = torch.softmax(torch.stack([0 * t, t, 2 * t], -1), -1)
    n = torch.multinomial(truth, 1, generator=gen)[:, 0]
    torch.manual_seed(0)
    clf = MultiplicityClassifier(MultiplicityClassifier.Config(n_features=1, n_classes=3, layers=2, hidden=16))
    clf.fit_standardisation(x)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(300):
        rows = torch.randint(0, len(x), (512,), generator=gen)
        loss = clf.loss(x[rows], n[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        probs = clf.log_probs(x).exp()
        drawn = clf.sample(x, torch.Generator().manual_seed(1))
    assert float((probs - truth).abs().mean()) < 0.03
    assert float(probs[:, 0].std()) > 0.2  # the dependence on x is learnt, not only the average
    freq = torch.bincount(drawn, minlength=3).double() / len(x)
    torch.testing.assert_close(freq, truth.double().mean(0), atol=0.02, rtol=0)
