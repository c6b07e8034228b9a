"""Metric functions against hand-computed examples, and the deterministic ranking rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from colisten.evaluate.data import popularity_tiers
from colisten.evaluate.metrics import (
    bootstrap_means,
    catalogue_coverage,
    deterministic_top_k,
    hit_rate_at_k,
    ndcg_at_k,
    percentile_interval,
    recall_at_k,
    reciprocal_rank_at_k,
)


def ranked_hits(scores: list[float], positives: set[int], k: int) -> np.ndarray:
    idx, _ = deterministic_top_k(torch.tensor([scores], dtype=torch.float32), k)
    return np.array([[int(i) in positives for i in idx[0]]])


def test_hit_rate_counts_users_with_any_held_out_item_in_top_k():
    hits = np.array(
        [
            [0, 0, 1, 0],  # hit at rank 3
            [0, 0, 0, 1],  # hit at rank 4 only
            [1, 1, 0, 0],  # two hits
            [0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert hit_rate_at_k(hits, 3).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert hit_rate_at_k(hits, 3).mean() == 0.5


def test_mrr_uses_first_hit_within_cutoff_and_zero_beyond():
    hits = np.array([[0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
    assert reciprocal_rank_at_k(hits, 4).tolist() == [1 / 3, 1.0, 1 / 4, 0.0]
    assert reciprocal_rank_at_k(hits, 3).tolist() == [1 / 3, 1.0, 0.0, 0.0]


def test_mrr_with_tied_scores_ranks_lower_item_index_first():
    # items 1 and 2 tie at 0.9: item 1 is ranked first, item 2 second
    scores = [0.5, 0.9, 0.9, 0.1]
    assert reciprocal_rank_at_k(ranked_hits(scores, {2}, 100), 100)[0] == 0.5
    assert reciprocal_rank_at_k(ranked_hits(scores, {1}, 100), 100)[0] == 1.0
    # all tied: pure index order
    assert reciprocal_rank_at_k(ranked_hits([0.0] * 6, {4}, 100), 100)[0] == pytest.approx(1 / 5)
    # a tie straddling the cut-off: items 0..4 tie, k = 2 keeps items 0 and 1 only
    assert ranked_hits([1.0] * 5, {1}, 2).tolist() == [[False, True]]
    assert not ranked_hits([1.0] * 5, {3}, 2).any()


def test_deterministic_top_k_matches_a_reference_sort_with_many_ties():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(50, 37)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.2] = -math.inf  # excluded items
    idx, vals = deterministic_top_k(torch.from_numpy(scores), 10)
    for row, s in enumerate(scores):
        ref = [i for i in sorted(range(s.size), key=lambda i: (-s[i], i)) if s[i] > -math.inf][:10]
        got = [int(i) for i in idx[row] if i >= 0]
        assert got == ref
        assert (idx[row, len(ref) :] == -1).all()


def test_top_k_longer_than_catalogue_pads_with_empty_slots():
    idx, _ = deterministic_top_k(torch.tensor([[0.1, -math.inf, 0.3]]), 5)
    assert idx.tolist() == [[2, 0, -1, -1, -1]]


def test_recall_and_ndcg_hand_computed():
    hits = np.array([[1, 0, 1, 0], [0, 1, 0, 0]], dtype=bool)
    n_pos = np.array([3, 1])
    # user 0: 2 of min(3, 4) = 3 held-out items in top 4; user 1: 1 of 1
    assert recall_at_k(hits, n_pos, 4).tolist() == pytest.approx([2 / 3, 1.0])
    # user 0: DCG = 1 + 1/log2(4) = 1.5, IDCG = 1 + 1/log2(3) + 1/2; user 1: (1/log2(3)) / 1
    idcg0 = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(hits, n_pos, 4).tolist() == pytest.approx([1.5 / idcg0, 1 / math.log2(3)])
    # recall denominator is capped at k, so a perfect list scores 1 even with many positives
    assert recall_at_k(np.ones((1, 2), bool), np.array([5]), 2)[0] == 1.0


def test_coverage_is_share_of_catalogue_in_any_list():
    top = np.array([[0, 1, 2], [2, 3, -1], [1, 0, 3]])
    assert catalogue_coverage(top, 10) == pytest.approx(0.4)
    assert catalogue_coverage(np.full((2, 3), -1), 10) == 0.0


def test_bootstrap_means_and_masked_means():
    v = np.array([1.0, 0.0, 1.0, 0.0])
    w = np.array([1.0, 1.0, 0.0, 0.0])
    res = np.array([[0, 1, 2, 3], [0, 0, 2, 2], [3, 3, 3, 3]])
    out = bootstrap_means({"a": v, "b": v}, res, {"b": w})
    assert out["a"].tolist() == [0.5, 1.0, 0.0]
    assert out["b"][:2].tolist() == [0.5, 1.0] and math.isnan(out["b"][2])
    assert percentile_interval(np.array([np.nan])) is None


def test_popularity_tiers_equal_count_most_popular_first_ties_by_index():
    pop = np.array([5, 9, 0, 9, 1, 0, 3, 2, 0, 0], dtype=float)
    tiers = popularity_tiers(pop, 5)
    assert np.bincount(tiers)[1:].tolist() == [2, 2, 2, 2, 2]
    assert tiers[[1, 3]].tolist() == [1, 1]  # the two most popular
    assert tiers[[0, 6]].tolist() == [2, 2]
    assert tiers[[7, 4]].tolist() == [3, 3]
    # zero-popularity items 2, 5, 8, 9: the lower indices land in the more popular tier
    assert tiers[[2, 5, 8, 9]].tolist() == [4, 4, 5, 5]
