"""Ranking metrics of PAPER.md 'How it was evaluated', computed per user from ranked hit lists.

Ranking rule (deterministic, so results never depend on batch size or thread count): items are
ordered by score descending, ties by type index ascending; items excluded for a user (already
consumed) have score -inf and never appear in the list.

Per-user arrays come first (`hit_rate_at_k`, `reciprocal_rank_at_k`, ...); the reported metric
is their mean over the evaluated users, and the bootstrap resamples those arrays (no re-ranking).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def deterministic_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row by (score desc, column asc). Returns (indices, scores) [rows, k]; index -1
    where fewer than k items have a finite score (-inf = excluded, NaN treated as -inf)."""
    scores = torch.nan_to_num(scores, nan=-math.inf, posinf=math.inf, neginf=-math.inf)
    n_rows, n = scores.shape
    k_eff = min(k, n)
    # One extra place tells whether a tie straddles position k (then item order decides who is in).
    vals, idx = torch.topk(scores, min(k_eff + 1, n), dim=1, largest=True, sorted=True)
    if vals.shape[1] > k_eff:
        straddle = (vals[:, k_eff] == vals[:, k_eff - 1]) & (vals[:, k_eff - 1] > -math.inf)
    else:
        straddle = torch.zeros(n_rows, dtype=torch.bool)
    vals, idx = vals[:, :k_eff], idx[:, :k_eff]
    # torch.topk orders ties arbitrarily: re-sort the k winners by column, then stably by score.
    idx, perm = idx.sort(dim=1)
    vals = vals.gather(1, perm)
    vals, perm = vals.sort(dim=1, descending=True, stable=True)
    idx = idx.gather(1, perm)
    if bool(straddle.any()):
        rows = torch.nonzero(straddle).squeeze(1)
        s, p = scores[rows].sort(dim=1, descending=True, stable=True)
        vals[rows] = s[:, :k_eff]
        idx[rows] = p[:, :k_eff]
    idx = torch.where(vals > -math.inf, idx, torch.full_like(idx, -1))
    if k_eff < k:
        pad = torch.full((n_rows, k - k_eff), -1, dtype=idx.dtype)
        idx = torch.cat([idx, pad], dim=1)
        vals = torch.cat([vals, torch.full((n_rows, k - k_eff), -math.inf, dtype=vals.dtype)], dim=1)
    return idx, vals


def hit_rate_at_k(ranked_hits: np.ndarray, k: int) -> np.ndarray:
    """1.0 where at least one held-out item is among the first k (paper's HR@k), per user."""
    return ranked_hits[:, :k].any(axis=1).astype(np.float64)


def reciprocal_rank_at_k(ranked_hits: np.ndarray, k: int) -> np.ndarray:
    """1 / rank of the first held-out item within the first k, 0 if none (paper's MRR over top k)."""
    top = ranked_hits[:, :k]
    first = top.argmax(axis=1)
    found = top.any(axis=1)
    return np.where(found, 1.0 / (first + 1.0), 0.0)


def recall_at_k(ranked_hits: np.ndarray, n_positives: np.ndarray, k: int) -> np.ndarray:
    """Held-out items in the first k / min(#held-out, k), so a perfect list scores 1."""
    hits = ranked_hits[:, :k].sum(axis=1)
    return hits / np.maximum(np.minimum(n_positives, k), 1)


def ndcg_at_k(ranked_hits: np.ndarray, n_positives: np.ndarray, k: int) -> np.ndarray:
    """Binary-relevance NDCG@k: DCG of the list / DCG of the ideal list (min(#held-out, k) hits)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = ranked_hits[:, :k]
    dcg = (top * discounts[: top.shape[1]]).sum(axis=1)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_positives, k)]
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def catalogue_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one user's list (entries -1 = empty)."""
    seen = np.unique(top_items[top_items >= 0])
    return float(seen.size) / n_items if n_items else 0.0


def bootstrap_means(
    values: dict[str, np.ndarray], resamples: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Mean of each per-user array over every resample of users ([B, n] row indices).

    With weights[name] (a 0/1 per-user mask, e.g. 'has a long-tail positive'), the mean is taken
    over the resampled users in the mask only (NaN when none)."""
    out: dict[str, np.ndarray] = {}
    for name, v in values.items():
        w = None if weights is None else weights.get(name)
        if w is None:
            out[name] = v[resamples].mean(axis=1)
        else:
            den = w[resamples].sum(axis=1)
            num = (v * w)[resamples].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    return out


def percentile_interval(samples: np.ndarray) -> list[float] | None:
    """95% percentile interval of bootstrap samples (NaNs ignored); None if there are none."""
    s = samples[~np.isnan(samples)]
    if s.size == 0:
        return None
    lo, hi = np.percentile(s, [2.5, 97.5])
    return [float(lo), float(hi)]
