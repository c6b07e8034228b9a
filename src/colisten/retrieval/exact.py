"""Exact top-k by batched matrix products, with per-query exclusions (already-consumed items).

Generic over models: any queries × items score matrix that is a dot product (two-tower users,
mean-embedding users of LLM-KNN / HGNN, ALS factors, popularity as a 1-d "vector").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from colisten.errors import ColistenError

# Score-matrix budget per batch (floats); bounds memory whatever the catalogue size.
SCORE_BUDGET = 1 << 25


class RetrievalError(ColistenError):
    """A retrieval request that cannot be answered (bad k, mismatched shapes)."""


Exclusions = Sequence[Iterable[int]] | tuple[np.ndarray, np.ndarray] | Any


def check_k(k: int, n_items: int, what: str = "catalogue") -> None:
    """k must be in 1..n_items: clear error otherwise."""
    if k <= 0:
        raise RetrievalError(f"k must be at least 1 (got k={k})")
    if k > n_items:
        raise RetrievalError(f"k={k} is above the {what} size ({n_items} items)")


def exclusion_csr(exclude: Exclusions | None, n_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise exclusions to CSR (indptr int64 [n+1], indices int64).

    Accepts a sequence of sets/lists of item indices (one per query), an (indptr, indices) pair,
    or a scipy.sparse matrix with one row per query.
    """
    if exclude is None:
        return None
    if hasattr(exclude, "tocsr"):
        m = exclude.tocsr()
        indptr, indices = np.asarray(m.indptr, np.int64), np.asarray(m.indices, np.int64)
    elif (
        isinstance(exclude, tuple)
        and len(exclude) == 2
        and isinstance(exclude[0], np.ndarray)
        and len(exclude[0]) == n_queries + 1
    ):
        indptr, indices = np.asarray(exclude[0], np.int64), np.asarray(exclude[1], np.int64)
    else:
        rows = [np.fromiter(s, dtype=np.int64) for s in exclude]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=indptr[1:])
        indices = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if len(indptr) != n_queries + 1:
        raise RetrievalError(f"exclusions have {len(indptr) - 1} rows for {n_queries} queries")
    return indptr, indices


def exact_top_k(
    queries: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: Exclusions | None = None,
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items by dot product for every query, best first.

    Returns (indices int64 [n, k], scores float32 [n, k]). Indices are rows of `items`; when
    exclusions leave fewer than k items, the tail is padded with index -1 and score -inf.
    Scores are computed `batch_size` queries at a time (default: what fits ~128 MB), so memory
    stays bounded for any number of queries.
    """
    import torch

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    items = np.ascontiguousarray(items, dtype=np.float32)
    single = queries.ndim == 1
    if single:
        queries = queries[None, :]
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise RetrievalError(f"queries {queries.shape} and items {items.shape} do not share a dimension")
    n, n_items = queries.shape[0], items.shape[0]
    check_k(k, n_items)
    excl = exclusion_csr(exclude, n)
    if batch_size is None:
        batch_size = max(1, min(4096, SCORE_BUDGET // max(n_items, 1)))

    out_idx = np.empty((n, k), dtype=np.int64)
    out_score = np.empty((n, k), dtype=np.float32)
    items_t = torch.from_numpy(items)
    with torch.inference_mode():
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            scores = torch.from_numpy(queries[s:e]) @ items_t.T
            if excl is not None:
                indptr, indices = excl
                lo, hi = indptr[s], indptr[e]
                if hi > lo:
                    rows = np.repeat(np.arange(e - s), np.diff(indptr[s : e + 1]))
                    cols = indices[lo:hi]
                    ok = (cols >= 0) & (cols < n_items)
                    scores[torch.from_numpy(rows[ok]), torch.from_numpy(cols[ok])] = float("-inf")
            top = torch.topk(scores, k, dim=1, largest=True, sorted=True)
            out_idx[s:e] = top.indices.numpy()
            out_score[s:e] = top.values.numpy()
    out_idx[~np.isfinite(out_score)] = -1
    if single:
        return out_idx[0], out_score[0]
    return out_idx, out_score
