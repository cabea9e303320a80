import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from palr_utils.core.metrics import (
    hit_rate_at_k,
    log_softmax,
    ndcg_at_k,
    ndcg_per_user,
    paired_bootstrap_ci,
    ranking_metrics,
    target_ranks,
)


def test_hand_computed_ranks_hr_and_ndcg():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.4, 0.6]])
    ranks = target_ranks(scores, torch.tensor([0, 3]))
    assert ranks.tolist() == [0, 1]
    assert ndcg_at_k(ranks, 10) == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert ndcg_at_k(np.array([2]), 10) == pytest.approx(1 / math.log2(4))  # rank 3 -> 1/log2(4)
    assert hit_rate_at_k(np.array([0, 9, 10, 50]), 10) == 0.5


def test_seen_items_are_masked_before_ranking():
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    seen = torch.tensor([[True, False, False]])
    assert target_ranks(scores, torch.tensor([1]), seen).item() == 0
    with pytest.raises(ValueError, match="target is marked as seen"):
        target_ranks(scores, torch.tensor([0]), seen)


def test_ties_count_against_the_target():
    scores = torch.zeros(1, 5)
    assert target_ranks(scores, torch.tensor([2])).item() == 4
    assert ranking_metrics(np.array([4]), ks=(1,)) == {"hr@1": 0.0, "ndcg@1": 0.0}


def test_ndcg_matches_scikit_learn_on_random_rankings():
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 30, generator=generator)
    targets = torch.randint(0, 30, (50,), generator=generator)
    ranks = target_ranks(scores, targets)
    relevance = np.zeros((50, 30))
    relevance[np.arange(50), targets.numpy()] = 1
    expected = ndcg_score(relevance, scores.numpy(), k=10)
    assert ndcg_at_k(ranks, 10) == pytest.approx(expected)


def test_ndcg_per_user_matches_the_mean():
    ranks = np.array([0, 2, 10, 1_000_000])
    per_user = ndcg_per_user(ranks)
    assert per_user.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert per_user.mean() == pytest.approx(ndcg_at_k(ranks))


def test_paired_bootstrap_interval_sees_a_consistent_gain_and_no_gain():
    rng = np.random.default_rng(0)
    baseline = rng.random(500)
    low, high = paired_bootstrap_ci(baseline + 0.02 + rng.normal(0, 0.01, 500), baseline)
    assert 0 < low < 0.02 < high < 0.03  # small, but the same for every user: surely above zero
    low, high = paired_bootstrap_ci(baseline + rng.normal(0, 0.2, 500), baseline)
    assert low < 0 < high  # noise only: the interval straddles zero
    assert paired_bootstrap_ci(baseline, baseline) == (0.0, 0.0)
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap_ci(baseline, baseline[:10])


def test_the_bootstrap_is_seeded():
    a, b = np.arange(50) / 50.0, np.zeros(50)
    assert paired_bootstrap_ci(a, b, seed=3) == paired_bootstrap_ci(a, b, seed=3)


def test_log_softmax_gives_log_probabilities_and_survives_large_scores():
    scores = np.array([2.0, 0.0, -1.0])
    expected = np.log(np.exp(scores) / np.exp(scores).sum())
    np.testing.assert_allclose(log_softmax(scores), expected)
    # a shift changes nothing; scores far beyond exp's range neither overflow nor lose their order
    np.testing.assert_allclose(log_softmax(scores + 1000.0), expected)
    assert np.isfinite(log_softmax([1e6, 0.0])).all() and np.exp(log_softmax([5.0, 5.0])).tolist() == [0.5, 0.5]
