"""Real-time user-tower inputs for one user, in plain numpy.

`colisten.twotower.features.user_features` is the one definition of the user features (training,
evaluation and `colisten recommend` use it). It is written for batches of users with pandas and
costs a few milliseconds per call whatever the batch size, which alone would blow the serving
latency budget. `RealtimeUserFeatures` computes the same arrays for a single user from integer
arrays in tens of microseconds, with the same float32 operations in the same order, so the
result is bit-identical. The server checks that on a sample of users at every model load
(`verify_against_reference`) and falls back to the reference function if they ever differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from colisten.twotower.features import (
    FeatureSpace,
    UserFeatures,
    age_bucket,
    recency_mean_weights,
    recency_weights,
)


def event_kind_map(space: FeatureSpace) -> dict[str, int]:
    """Event name -> the model's event kind: 0 strong, 1 weak (only if the model uses weak signals).
    Names missing from the map are ignored by the model (kind -1), as in the reference."""
    kinds = {e: 0 for e in space.strong_events}
    if space.use_weak_signals:
        kinds.update({e: 1 for e in space.weak_events})
    return kinds


class RealtimeUserFeatures:
    """One user's user-tower inputs from global item indices and event kinds."""

    def __init__(self, space: FeatureSpace) -> None:
        self.space = space
        self.n_types = len(space.item_types)
        self.n_items = space.n_items
        self.kinds = space.kinds
        self.n_kinds = len(space.kinds)
        self.n_count_kinds = len(space.count_kinds)
        self.embedding = space.history_embedding
        self._kind_of_event = event_kind_map(space)
        self._country_code = {c: i + 1 for i, c in enumerate(space.countries)}

    def event_kinds(self, events: np.ndarray | list[str]) -> np.ndarray:
        """0 = strong, 1 = weak (when the model uses weak signals), -1 = ignored by the model."""
        get = self._kind_of_event.get
        return np.fromiter((get(e, -1) for e in events), dtype=np.int64, count=len(events))

    def categorical(self, age: float | None, country: str | None) -> np.ndarray:
        """[age bucket, country code] as the reference computes them (0 = missing or unseen)."""
        bucket = age_bucket(np.array([np.nan if age is None else float(age)]), self.space)[0]
        code = 0 if country is None else self._country_code.get(str(country), 0)
        return np.array([bucket, code], dtype=np.int64)

    def taste(self, taste_vector: Any | None) -> np.ndarray:
        """[taste_dim + 1]: the vector and a 'present' flag (zeros when missing or malformed)."""
        dim = self.space.taste_dim
        out = np.zeros(dim + 1, dtype=np.float32)
        if taste_vector is None or not dim:
            return out
        arr = np.asarray(taste_vector, dtype=np.float32).ravel()
        if arr.shape[0] == dim and np.all(np.isfinite(arr)):
            out[:dim] = arr
            out[dim] = 1.0
        return out

    def _weighted_sums(
        self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_rows: int
    ) -> np.ndarray:
        """features.UserDense of one user's groups, rounded alike. The reference multiplies a
        CSR matrix by the embeddings: per output row it adds weight * embedding item by item in
        ascending item order, in float32. A cumulative sum over the same products in the same order
        rounds identically."""
        contributions = weights[:, None] * self.embedding[cols]
        out = np.zeros((n_rows, self.embedding.shape[1]), dtype=np.float32)
        bounds = np.searchsorted(rows, np.arange(n_rows + 1))
        for g in range(n_rows):
            lo, hi = bounds[g], bounds[g + 1]
            if hi > lo:
                out[g] = np.cumsum(contributions[lo:hi], axis=0)[-1]
        return out

    def compute(
        self,
        items: np.ndarray,
        kinds: np.ndarray,
        categorical: np.ndarray,
        taste: np.ndarray,
        timestamps: np.ndarray | None = None,
    ) -> UserFeatures:
        """UserFeatures of one user (rows of length 1). `items` are global indices (< 0 = unknown);
        `timestamps` (epoch seconds; None = the events' order) give the recency weights of a model
        with twotower.recency_half_life."""
        items = np.asarray(items, dtype=np.int64)
        kinds = np.asarray(kinds, dtype=np.int64)
        unknown = int(((items < 0) & (kinds >= 0)).sum())
        keep = (items >= 0) & (kinds >= 0)
        item, kind = items[keep], kinds[keep]
        item_type = self.space.item_type_codes[item]

        counts = np.bincount(
            item_type * self.n_count_kinds + kind, minlength=self.n_types * self.n_count_kinds
        )

        n_groups = self.n_types * self.n_kinds
        mean_kind = kind if self.kinds != ["all"] else np.zeros_like(kind)
        group = item_type * self.n_kinds + mean_kind
        key = np.unique(group.astype(np.int64) * self.n_items + item)
        rows, cols = key // self.n_items, key % self.n_items
        per_row = np.bincount(rows, minlength=n_groups).astype(np.float32)
        weights = (1.0 / np.maximum(per_row, 1.0))[rows].astype(np.float32)
        means = self._weighted_sums(rows, cols, weights, n_groups)

        strong = kind == 0
        streamed = np.unique(item[strong])
        history: tuple[np.ndarray, ...] = (np.array([0, streamed.size], dtype=np.int64), streamed)
        parts = [means.reshape(-1)]
        if self.space.recency_half_life > 0:
            stamps = np.arange(len(items)) if timestamps is None else np.asarray(timestamps, np.int64)
            zeros = np.zeros(int(strong.sum()), dtype=np.int64)
            history += (recency_weights(zeros, item[strong], stamps[keep][strong], 1, self.space),)
            if self.space.recency_means:
                zeros = np.zeros(streamed.size, dtype=np.int64)
                group, w = recency_mean_weights(zeros, streamed, history[2], 1, self.space)
                parts.append(self._weighted_sums(group, streamed, w, self.n_types).reshape(-1))
        dense = np.concatenate(
            [*parts, np.log1p(counts).astype(np.float32), np.asarray(taste, dtype=np.float32)]
        )
        return UserFeatures(
            user_ids=np.array(["\x00realtime"], dtype=object),
            dense=dense[None, :],
            categorical=np.asarray(categorical, dtype=np.int64)[None, :],
            unknown_items=unknown,
            history=history,
        )
