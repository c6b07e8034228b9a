"""User/item features: per-type means of streamed and weak-signal items, counts, demographics."""

import numpy as np
import pandas as pd
import pytest

from colisten.twotower.features import (
    age_bucket,
    build_feature_space,
    consumed_items,
    item_features,
    user_features,
)

ITEMS = pd.DataFrame(
    {
        "item_id": ["a1", "a2", "a3", "p1", "p2"],
        "item_type": ["audiobook"] * 3 + ["podcast"] * 2,
        "title": list("abcde"),
        "genre": ["FIC", None, "BIO", "NEWS", "NEWS"],
        "language": ["en", "sv", None, "en", "en"],
    }
)
EMB = np.eye(5, 4, dtype=np.float32) + 0.1  # distinct 4-d vectors
USERS = pd.DataFrame(
    {
        "user_id": ["u1", "u2"],
        "age": pd.array([30, None], dtype="Int32"),
        "country": ["SE", None],
        "taste_vector": [[1.0, 2.0], None],
    }
)


def space(**kw):
    opts = dict(
        strong_events=["stream"],
        weak_events=["follow", "preview", "intent_to_pay"],
        use_weak_signals=True,
        weak_signals_own_mean=True,
        age_buckets=[18, 25, 35],
        use_taste_vector=True,
        history_embedding_source="hgnn",
    )
    opts.update(kw)
    return build_feature_space(ITEMS, USERS, EMB, **opts)


def events(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event", "timestamp"])


EV = events(
    [
        ("u1", "a1", "stream", 10),
        ("u1", "a1", "stream", 11),  # same item again: counts, but the mean is over distinct items
        ("u1", "a2", "stream", 12),
        ("u1", "p1", "preview", 13),
        ("u1", "zz", "stream", 14),  # unknown item: ignored and counted
        ("u1", "p2", "skip", 15),  # unknown event: ignored
        ("u2", "p2", "stream", 16),
    ]
)


def test_means_per_type_and_kind_counts_and_taste():
    s = space()
    f = user_features(EV, USERS, ["u1", "u2", "u3"], s)
    d = 4
    # layout: [audiobook strong, audiobook weak, podcast strong, podcast weak] means, then counts
    means = f.dense[:, : 4 * d].reshape(3, 4, d)
    np.testing.assert_allclose(means[0, 0], EMB[[0, 1]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(means[0, 1], 0)
    np.testing.assert_allclose(means[0, 3], EMB[3])  # previewed podcast: its own weak mean
    np.testing.assert_allclose(means[1, 2], EMB[4])
    counts = f.dense[:, 4 * d : 4 * d + 4]
    np.testing.assert_allclose(counts[0], np.log1p([3, 0, 0, 1]), rtol=1e-6)
    np.testing.assert_allclose(f.dense[2], 0)  # unknown user without events: cold start, all zeros
    assert f.unknown_items == 1
    taste = f.dense[:, -3:]
    np.testing.assert_allclose(taste, [[1, 2, 1], [0, 0, 0], [0, 0, 0]])
    assert f.dense.shape[1] == s.user_dense_dim


def test_demographics_with_gaps_use_the_out_of_vocabulary_slot():
    s = space()
    f = user_features(EV.iloc[:0], USERS, ["u1", "u2", "nobody"], s)
    # age 30 is in [25, 35) -> bucket 3; missing -> 0; country SE -> 1; missing / unknown -> 0
    assert f.categorical.tolist() == [[3, 1], [0, 0], [0, 0]]
    assert age_bucket(np.array([10, 18, 35, 99, np.nan]), s).tolist() == [1, 2, 4, 4, 0]
    assert s.user_categorical_sizes == [5, 2]


def test_weak_signal_settings_change_the_features_as_documented():
    without = space(use_weak_signals=False)
    f = user_features(EV, USERS, ["u1"], without)
    stream_only = user_features(EV[EV.event == "stream"], USERS, ["u1"], without)
    np.testing.assert_array_equal(f.dense, stream_only.dense)  # weak events are dropped entirely
    assert f.dense.shape[1] == 2 * 4 + 2 + 3

    merged = space(weak_signals_own_mean=False)
    g = user_features(EV, USERS, ["u1"], merged)
    means = g.dense[0, : 2 * 4].reshape(2, 4)
    np.testing.assert_allclose(means[1], EMB[3])  # the preview joins the podcast mean
    np.testing.assert_allclose(g.dense[0, 8:12], np.log1p([3, 0, 0, 1]), rtol=1e-6)  # counts still split


def test_time_window_bounds_are_start_inclusive_as_of_exclusive():
    s = space()
    a = user_features(EV, USERS, ["u1"], s, start=12, as_of=14)
    b = user_features(EV[(EV.timestamp >= 12) & (EV.timestamp < 14)], USERS, ["u1"], s)
    np.testing.assert_array_equal(a.dense, b.dense)
    assert not np.array_equal(a.dense, user_features(EV, USERS, ["u1"], s).dense)


def test_consumed_items_strong_or_any():
    s = space()
    indptr, idx = consumed_items(EV, ["u1", "u2"], s)
    assert idx[indptr[0] : indptr[1]].tolist() == [0, 1] and idx[indptr[1] : indptr[2]].tolist() == [4]
    indptr, idx = consumed_items(EV, ["u1"], s, which="any")
    assert idx.tolist() == [0, 1, 3]


def test_item_features_vocabularies_and_baseline_without_hgnn():
    s = space()
    text = np.ones((5, 3), np.float32)
    f = item_features(ITEMS, text, EMB, s)
    assert f.dense.shape == (5, 7)
    assert s.languages == ["en", "sv"] and s.genres == ["BIO", "FIC", "NEWS"]
    assert f.categorical.tolist() == [[1, 2, 0], [2, 0, 0], [0, 1, 0], [1, 3, 1], [1, 3, 1]]
    assert item_features(ITEMS, text, None, s).dense.shape == (5, 3)
    assert s.type_range("podcast") == (3, 5)


@pytest.mark.parametrize("own_mean, weak, width", [(True, True, 4), (False, True, 2), (True, False, 2)])
def test_dense_width_follows_the_settings(own_mean, weak, width):
    s = space(weak_signals_own_mean=own_mean, use_weak_signals=weak)
    counts = 4 if weak else 2
    assert s.user_dense_dim == width * 4 + counts + 2 + 1


def test_recency_weights_halve_every_half_life_items_from_the_last_streamed():
    """rank 0 = the item streamed last (a re-stream makes an item recent again), ties: larger item
    index first; weights aligned with the history CSR (items ascending); weak signals not ranked."""
    s = space(recency_half_life=1.0)
    ev = events(
        [
            ("u1", "a1", "stream", 10),
            ("u1", "a2", "stream", 12),
            ("u1", "a1", "stream", 13),  # a1 again: now the newest
            ("u1", "p1", "stream", 11),
            ("u1", "p2", "preview", 20),  # weak: not in the history CSR
            ("u2", "a3", "stream", 5),
            ("u2", "p2", "stream", 5),  # a tie with a3: p2 (larger index) counts as newer
        ]
    )
    f = user_features(ev, USERS, ["u1", "u2"], s)
    indptr, items, weights = f.history
    assert indptr.tolist() == [0, 3, 5]
    assert items.tolist() == [0, 1, 3, 2, 4]  # a1, a2, p1 | a3, p2
    assert weights.dtype == np.float32
    assert weights.tolist() == [1.0, 0.5, 0.25, 0.5, 1.0]
    # without timestamps, the events' order is their time order: p1 (4th row) is the newest
    no_time = user_features(ev.drop(columns="timestamp"), USERS, ["u1"], s)
    assert no_time.history[2].tolist() == [0.5, 0.25, 1.0]
    assert len(user_features(ev, USERS, ["u1"], space()).history) == 2  # off: no weights


def test_csr_helpers_carry_aligned_arrays():
    from colisten.twotower.features import csr_concat, csr_rows

    a = (np.array([0, 2, 3]), np.array([4, 5, 6]), np.array([0.5, 1.0, 0.25], np.float32))
    b = (np.array([0, 1]), np.array([7]), np.array([1.0], np.float32))
    indptr, idx, w = csr_concat([a, b])
    assert (
        indptr.tolist() == [0, 2, 3, 4] and idx.tolist() == [4, 5, 6, 7] and w.tolist() == [0.5, 1, 0.25, 1]
    )
    indptr, idx, w = csr_rows((indptr, idx, w), [2, 0])
    assert indptr.tolist() == [0, 1, 3] and idx.tolist() == [7, 4, 5] and w.tolist() == [1, 0.5, 1]


def test_recency_means_weigh_each_types_streamed_items_by_recency():
    """recency_means: per type, sum(w * emb) / sum(w) over the streamed items (weights of the whole
    history's ranks), placed after the plain means; zeros for a type with no stream."""
    s = space(recency_half_life=1.0, recency_means=True)
    ev = events([("u1", "a1", "stream", 10), ("u1", "p1", "stream", 11), ("u1", "a2", "stream", 12)])
    f = user_features(ev, USERS, ["u1"], s)
    assert f.dense.shape[1] == s.user_dense_dim == space().user_dense_dim + 2 * 4
    plain = 2 * 2 * 4  # 2 types x (strong, weak) x d
    recent = f.dense[0, plain : plain + 8]
    # ranks: a2 0 (w 1), p1 1 (0.5), a1 2 (0.25)
    np.testing.assert_allclose(recent[:4], (EMB[1] + 0.25 * EMB[0]) / 1.25, rtol=1e-6)
    np.testing.assert_allclose(recent[4:], EMB[3], rtol=1e-6)
    assert not space(recency_means=True).recency_means  # needs a half-life


def test_lazy_dense_rows_equal_the_materialised_table_bit_for_bit():
    """UserDense computes a row only when indexed; every row, by any index, is the table's."""
    from colisten.twotower.features import UserDense

    s = space(recency_half_life=1.0, recency_means=True)
    table = user_features(EV, USERS, ["u2", "u1", "u3"], s)
    lazy = user_features(EV, USERS, ["u2", "u1", "u3"], s, lazy=True).dense
    assert isinstance(lazy, UserDense) and isinstance(table.dense, np.ndarray)
    assert lazy.shape == table.dense.shape and len(lazy) == 3 and lazy.nbytes == table.dense.nbytes
    assert np.array_equal(lazy.materialise(), table.dense)
    assert np.array_equal(lazy[np.array([2, 0, 2])], table.dense[[2, 0, 2]])
    assert np.array_equal(lazy[1], table.dense[1]) and np.array_equal(lazy[1:], table.dense[1:])
    both = UserDense.concat([lazy, user_features(EV, USERS, ["u1"], s, lazy=True).dense])
    assert np.array_equal(both.materialise(), np.concatenate([table.dense, table.dense[[1]]]))


@pytest.mark.parametrize("weak", [True, False])
def test_event_kinds_of_categorical_events_equal_those_of_strings(weak):
    """The serving and training histories carry events as categoricals: their kinds come from the
    distinct names, and equal the per-event lookup of the same strings (missing and unknown: -1)."""
    from colisten.twotower.features import _event_kind

    names = ["stream", "preview", "follow", "skip", None, "stream", "intent_to_pay", None]
    sp = space(use_weak_signals=weak)
    plain = _event_kind(pd.Series(names, dtype=object), sp)
    coded = _event_kind(pd.Series(names, dtype="category"), sp)
    assert plain.tolist() == coded.tolist()
    assert plain.tolist()[:5] == [0, 1 if weak else -1, 1 if weak else -1, -1, -1]
