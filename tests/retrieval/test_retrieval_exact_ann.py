"""Exact top-k is correct for any batching and exclusion format; the Voyager index finds it back."""

import numpy as np
import pytest
import scipy.sparse as sp

from colisten.errors import ColistenError
from colisten.retrieval.ann import AnnIndex
from colisten.retrieval.exact import RetrievalError, exact_top_k
from colisten.retrieval.indexing import recall_at_k


def _clustered(n, d, n_clusters, rng):
    centers = rng.standard_normal((n_clusters, d))
    x = centers[rng.integers(0, n_clusters, n)] + 0.5 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(queries, items, k, exclude=None):
    scores = queries @ items.T
    if exclude is not None:
        for i, ex in enumerate(exclude):
            scores[i, list(ex)] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def test_exact_top_k_matches_brute_force_for_any_batch_size():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((500, 16)).astype(np.float32)
    queries = rng.standard_normal((37, 16)).astype(np.float32)
    want_idx, want_scores = _brute(queries, items, 10)
    for batch in (1, 5, 1000, None):
        idx, scores = exact_top_k(queries, items, 10, batch_size=batch)
        assert idx.shape == (37, 10) and idx.dtype == np.int64 and scores.dtype == np.float32
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5)
        assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_exclusions_in_every_format_remove_items_and_pad_when_too_few_are_left():
    rng = np.random.default_rng(1)
    items = rng.standard_normal((20, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    sets = [{0, 1, 2}, set(), set(range(15))]  # last query: only 5 items left
    indptr = np.array([0, 3, 3, 18])
    indices = np.r_[[0, 1, 2], np.arange(15)]
    matrix = sp.csr_matrix((np.ones(18), indices, indptr), shape=(3, 20))
    want, _ = _brute(queries, items, 8, exclude=sets)
    for fmt in (sets, [list(s) for s in sets], (indptr, indices), matrix):
        idx, scores = exact_top_k(queries, items, 8, exclude=fmt)
        for row, banned in zip(idx, sets, strict=True):
            assert not set(row[row >= 0].tolist()) & banned
        np.testing.assert_array_equal(idx[:2], want[:2])
        assert list(idx[2, 5:]) == [-1, -1, -1] and np.all(np.isneginf(scores[2, 5:]))
        np.testing.assert_array_equal(idx[2, :5], want[2, :5])


def test_single_query_and_bad_k_are_clear():
    rng = np.random.default_rng(2)
    items = _clustered(10, 4, 10, rng)
    idx, scores = exact_top_k(items[3], items, 3)
    assert idx.shape == (3,) and idx[0] == 3
    for k in (0, -1):
        with pytest.raises(RetrievalError, match="at least 1"):
            exact_top_k(items, items, k)
    with pytest.raises(RetrievalError, match="above the catalogue size"):
        exact_top_k(items, items, 11)
    with pytest.raises(ColistenError, match="dimension"):
        exact_top_k(np.zeros((2, 5), np.float32), items, 3)


def test_ann_recall_save_load_and_exclusions(tmp_path):
    rng = np.random.default_rng(3)
    items = _clustered(3000, 32, 50, rng)
    queries = _clustered(200, 32, 50, rng)
    index = AnnIndex.build(items, M=16, ef_construction=200, ef=100, seed=0)
    exact, exact_scores = exact_top_k(queries, items, 10)
    approx, scores = index.query(queries, 10)
    assert recall_at_k(approx, exact) >= 0.95
    np.testing.assert_allclose(scores[:, 0], exact_scores[:, 0], atol=1e-4)  # scores are inner products

    path = index.save(tmp_path / "items.voy")
    loaded = AnnIndex.load(path, ef=100)
    assert len(loaded) == 3000 and loaded.num_dimensions == 32
    again, _ = loaded.query(queries, 10)
    assert recall_at_k(again, exact) >= 0.95

    banned = [set(exact[i, :5].tolist()) for i in range(len(queries))]
    filtered, _ = loaded.query(queries, 10, exclude=banned)
    assert all(not set(r.tolist()) & b for r, b in zip(filtered, banned, strict=True))
    want, _ = exact_top_k(queries, items, 10, exclude=banned)
    assert recall_at_k(filtered, want) >= 0.95


def test_ann_falls_back_to_exact_when_most_of_a_small_index_is_requested(tmp_path):
    rng = np.random.default_rng(4)
    items = rng.standard_normal((12, 6)).astype(np.float32)
    index = AnnIndex.load(AnnIndex.build(items).save(tmp_path / "small.voy"))
    idx, _ = index.query(items[:4], 10, exclude=[{0}, set(), set(), set()])
    want, _ = exact_top_k(items[:4], items, 10, exclude=[{0}, set(), set(), set()])
    np.testing.assert_array_equal(idx, want)
    with pytest.raises(RetrievalError, match="above the index size"):
        index.query(items[:1], 13)


def test_recall_at_k_counts_overlap():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    approx = np.array([[4, 3, 2, 1], [5, 9, 10, -1]])
    assert recall_at_k(approx, exact) == pytest.approx((1.0 + 0.25) / 2)
