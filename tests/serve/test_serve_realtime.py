"""The server's fast real-time user features equal the two-tower feature function, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from colisten.serve.realtime import RealtimeUserFeatures
from colisten.twotower.features import build_feature_space, user_features


@pytest.mark.parametrize(
    "use_weak_signals, weak_signals_own_mean, recency_half_life, recency_means",
    [
        (True, True, 0.0, False),
        (True, False, 0.0, False),
        (False, True, 0.0, False),
        (True, True, 3.0, False),
        (True, True, 3.0, True),
    ],
)
def test_fast_features_equal_the_reference_for_every_user(
    toy_run, use_weak_signals, weak_signals_own_mean, recency_half_life, recency_means
):
    items = pq.read_table(toy_run / "data/items.parquet").to_pandas()
    users = pq.read_table(toy_run / "data/users.parquet").to_pandas()
    events = pq.read_table(toy_run / "split/history.parquet").to_pandas()
    emb = np.load(toy_run / "hgnn/item_embeddings.npy")
    space = build_feature_space(
        items,
        users,
        emb,
        strong_events=["stream"],
        weak_events=["follow", "preview", "intent_to_pay"],
        use_weak_signals=use_weak_signals,
        weak_signals_own_mean=weak_signals_own_mean,
        age_buckets=[18, 25, 35, 45, 55, 65],
        use_taste_vector=True,
        history_embedding_source="hgnn",
        recency_half_life=recency_half_life,
        recency_means=recency_means,
    )
    assert space.user_dense_dim == user_features(events.iloc[:0], users, ["x"], space).dense.shape[1]
    # an unknown item and an unknown event must be ignored the same way
    extra = pd.DataFrame(
        {
            "user_id": [users.user_id[0]] * 2,
            "item_id": ["nope", items.item_id[0]],
            "event": ["stream", "wink"],
            "timestamp": [0, 0],
        }
    )
    events = pd.concat([events, extra], ignore_index=True)
    ids = users["user_id"].to_numpy(dtype=object)
    reference = user_features(events, users, ids, space)
    fast = RealtimeUserFeatures(space)
    grouped = dict(tuple(events.groupby("user_id", sort=False)))
    for row, user_id in enumerate(ids):
        ev = grouped.get(user_id, events.iloc[:0])
        u = users.iloc[row]
        age = None if pd.isna(u["age"]) else int(u["age"])
        country = None if u["country"] is None else str(u["country"])
        f = fast.compute(
            space.item_index.get_indexer(ev["item_id"].to_numpy(dtype=object)),
            fast.event_kinds(ev["event"].to_numpy(dtype=object)),
            fast.categorical(age, country),
            fast.taste(u["taste_vector"]),
            ev["timestamp"].to_numpy(),
        )
        assert np.array_equal(f.dense[0], reference.dense[row]), user_id
        assert np.array_equal(f.categorical[0], reference.categorical[row]), user_id
        indptr, *aligned = reference.history  # the learned item vectors' input (twotower.id_dim)
        assert len(f.history) == 1 + len(aligned)  # items[, recency weights]
        for got, want in zip(f.history[1:], aligned, strict=True):
            assert np.array_equal(got, want[indptr[row] : indptr[row + 1]]), user_id


def test_a_fast_path_that_drifts_is_caught_at_load_and_replaced(toy_run, monkeypatch, toy_bundle):
    from colisten.serve import realtime
    from colisten.serve.state import load_bundle

    original = realtime.RealtimeUserFeatures.compute

    def drifted(self, *args):
        f = original(self, *args)
        f.dense[0, 0] += 1e-6
        return f

    monkeypatch.setattr(realtime.RealtimeUserFeatures, "compute", drifted)
    bundle = load_bundle(toy_run)
    assert bundle.realtime is None  # falls back to the reference feature path
    for u in (3, 17):
        q = bundle.known_user_query(u)
        a = bundle.recommend(q, "audiobook", 10, with_reasons=False)
        b = toy_bundle.recommend(toy_bundle.known_user_query(u), "audiobook", 10, with_reasons=False)
        assert a.items.tolist() == b.items.tolist()
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
