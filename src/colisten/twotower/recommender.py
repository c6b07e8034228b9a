"""Serving a trained two-tower model: user vectors (batch and real time) and top-k retrieval.

Item vectors are precomputed per type (RUN/twotower/item_vectors.npy); a user vector is
computed on request from the user's raw history by the same `user_features` used in
training, so brand-new users work. One model recommends every item type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from colisten import artifacts
from colisten.config import RetrievalConfig, Settings
from colisten.errors import ColistenError
from colisten.io import atomic_path, read_json
from colisten.retrieval.exact import check_k, exact_top_k
from colisten.rundir import RunDir
from colisten.twotower.features import (
    SECONDS_PER_DAY,
    FeatureSpace,
    consumed_items,
    taste_matrix,
    to_epoch_seconds,
    user_features,
)

REALTIME_USER = "\x00realtime"  # placeholder id of a history passed in by the caller


class RecommendError(ColistenError):
    """A recommendation request that cannot be answered (unknown user or item type, bad history)."""


class TwoTowerRecommender:
    """A trained two-tower model with implicit-style verbs: user vectors, item vectors, recommend."""

    def __init__(
        self,
        run: RunDir,
        space: FeatureSpace,
        model: Any,
        item_vectors: np.ndarray,
        items: pd.DataFrame,
        users: pd.DataFrame,
        meta: dict[str, Any],
        retrieval: RetrievalConfig,
    ) -> None:
        self.run = run
        self.space = space
        self.model = model
        self._item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.items = items
        self.users = users
        self.meta = meta
        self.retrieval = retrieval
        self.history_days = int(meta["history_days"])
        self._user_index = pd.Index(users["user_id"].to_numpy(dtype=object))
        self._history: Any = None  # pyarrow.Table of the run's history, sorted by user
        self._history_users: pd.Index | None = None
        self._history_bounds: np.ndarray | None = None
        self._ann: dict[str, Any] = {}

    # --- loading ----------------------------------------------------------------------------
    @classmethod
    def load(cls, run: str | Path | RunDir, settings: Settings | None = None) -> TwoTowerRecommender:
        """Load RUN/twotower (model, features.json, item vectors) and the run's items and users."""
        import pyarrow.parquet as pq

        from colisten.twotower.model import load_model

        run = run if isinstance(run, RunDir) else RunDir(run)
        settings = settings or run.settings()
        meta = read_json(run.require(artifacts.TWOTOWER_FEATURES))
        items = pq.read_table(run.require(artifacts.ITEMS)).to_pandas()
        users = pq.read_table(run.require(artifacts.USERS)).to_pandas()
        source = meta["history_embedding_source"]
        embeddings = artifacts.HGNN_EMBEDDINGS if source == "hgnn" else artifacts.TEXT_EMBEDDINGS
        history_embedding = np.load(run.require(embeddings))
        if len(items) != meta["n_items"] or history_embedding.shape[0] != len(items):
            raise RecommendError(
                f"{run.require(artifacts.ITEMS)} has {len(items)} items but the two-tower model was trained "
                f"on {meta['n_items']}: rerun `colisten train-2t --run {run.root}`"
            )
        space = FeatureSpace.from_json(meta, items, history_embedding)
        model = load_model(run.require(artifacts.TWOTOWER_MODEL))
        vectors = np.load(run.require(artifacts.TWOTOWER_ITEM_VECTORS))
        return cls(run, space, model, vectors, items, users, meta, settings.retrieval)

    # --- items ------------------------------------------------------------------------------
    @property
    def item_types(self) -> list[str]:
        return list(self.space.item_types)

    def _type_range(self, item_type: str) -> tuple[int, int]:
        if item_type not in self.space.item_types:
            raise RecommendError(
                f"unknown item type {item_type!r}; known: {', '.join(self.space.item_types)}"
            )
        return self.space.type_range(item_type)

    def item_vectors(self, item_type: str) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, float32 [n_type, d]) of one type, in type-index order."""
        lo, hi = self._type_range(item_type)
        return self.space.item_ids[lo:hi], self._item_vectors[lo:hi]

    # --- users: batch path ------------------------------------------------------------------
    def known_users(self) -> np.ndarray:
        """Every user of RUN/data/users.parquet (sorted)."""
        return self._user_index.to_numpy(dtype=object)

    def is_known(self, user_id: str) -> bool:
        """Is the user in RUN/data/users.parquet?"""
        return bool(self._user_index.get_indexer([user_id])[0] >= 0)

    def check_users(self, user_ids: Iterable[str]) -> np.ndarray:
        """The ids as an array; RecommendError naming the unknown ones."""
        ids = np.asarray(list(user_ids), dtype=object)
        missing = ids[self._user_index.get_indexer(ids) < 0]
        if len(missing):
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise RecommendError(
                f"{len(missing)} unknown user(s) not in {artifacts.USERS.at(self.run)}: {shown} "
                "(pass their history to recommend from it: cold start)"
            )
        return ids

    def user_features(self, user_ids: Iterable[str], as_of: int | None = None, lazy: bool = False):
        """User-tower inputs of known users from the run's history (whole window up to `cut`);
        `lazy`: dense rows computed when indexed (features.UserDense)."""
        ids = self.check_users(user_ids)
        start = None if as_of is None else as_of - self.history_days * SECONDS_PER_DAY
        users = self.users.iloc[self._user_index.get_indexer(ids)]
        return user_features(
            self._events_of(ids), users, ids, self.space, start=start, as_of=as_of, lazy=lazy
        )

    def user_vectors(self, user_ids: Iterable[str], as_of: int | None = None) -> np.ndarray:
        """float32 [n, d] for known users. as_of=None: the whole history window (evaluation).
        The dense inputs are computed block by block, never all at once."""
        from colisten.twotower.model import user_vectors

        return user_vectors(self.model, self.user_features(user_ids, as_of, lazy=True))

    def consumed(self, user_ids: Iterable[str], as_of: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Items each known user consumed in the history window (retrieval.exclude_events), as
        CSR (indptr, global item indices)."""
        ids = np.asarray(list(user_ids), dtype=object)
        start = None if as_of is None else as_of - self.history_days * SECONDS_PER_DAY
        return consumed_items(
            self._events_of(ids),
            ids,
            self.space,
            which=self.retrieval.exclude_events,
            start=start,
            as_of=as_of,
        )

    # --- users: real time -------------------------------------------------------------------
    def history_frame(self, history: Any) -> pd.DataFrame:
        """Normalise a raw history (list of {item_id, event, timestamp} or a DataFrame).

        `event` defaults to the first strong event (a plain list of played items);
        `timestamp` (epoch seconds or ISO-8601) is only needed with `as_of`. Passing the
        returned frame back in is free, so a request normalises its history once.
        """
        if isinstance(history, pd.DataFrame) and history.attrs.get("normalised"):
            return history
        if isinstance(history, pd.DataFrame):
            columns = {c: history[c].to_numpy(dtype=object) for c in history.columns}
        else:
            records = list(history)
            if any(not isinstance(r, Mapping) for r in records):
                raise RecommendError("a history is a list of records with item_id, event and timestamp")
            names = {k for r in records for k in r}
            columns = {c: np.array([r.get(c) for r in records], dtype=object) for c in names}
        n = len(next(iter(columns.values()))) if columns else 0
        if n and "item_id" not in columns:
            raise RecommendError(f"history records need an item_id (got fields {sorted(columns)})")
        out = {
            "user_id": np.full(n, REALTIME_USER, dtype=object),
            "item_id": np.array([str(v) for v in columns.get("item_id", [])], dtype=object),
            "event": (
                np.array([str(v) for v in columns["event"]], dtype=object)
                if "event" in columns
                else np.full(n, self.space.strong_events[0], dtype=object)
            ),
        }
        if "timestamp" in columns or n == 0:
            missing = [i for i, v in enumerate(columns.get("timestamp", [])) if v is None or v != v]
            if missing:
                raise RecommendError(f"history record {missing[0] + 1} has no timestamp (give all or none)")
            try:
                out["timestamp"] = to_epoch_seconds(pd.Series(columns.get("timestamp", []), dtype=object))
            except (ValueError, TypeError) as e:
                raise RecommendError(f"history timestamps must be epoch seconds or ISO-8601: {e}") from e
        df = pd.DataFrame(out)
        df.attrs["normalised"] = True
        return df

    def unknown_item_ids(self, history: Any) -> list[str]:
        """Item ids of a history that are not in the catalogue (they are ignored)."""
        df = self.history_frame(history)
        ids = df["item_id"].to_numpy(dtype=object)
        return sorted(set(ids[self.space.item_index.get_indexer(ids) < 0].tolist()))

    def user_vector_from_history(
        self,
        history: Any,
        age: int | None = None,
        country: str | None = None,
        taste_vector: Sequence[float] | None = None,
        as_of: int | None = None,
    ) -> np.ndarray:
        """The user vector (float32 [d]) from a raw recent history and demographics: real time.

        Works for users never seen in training. Unknown item ids and unknown events are ignored
        (see `unknown_item_ids`). as_of=None uses every given event; otherwise the history window
        before `as_of`. Equals the batch path for a known user given the same events.
        """
        from colisten.twotower.model import user_vectors

        df = self.history_frame(history)
        if as_of is not None and "timestamp" not in df.columns and len(df):
            raise RecommendError("history records need a timestamp when as_of is given")
        users = pd.DataFrame(
            {
                "user_id": [REALTIME_USER],
                "age": [np.nan if age is None else float(age)],
                "country": [country],
                "taste_vector": [None if taste_vector is None else list(taste_vector)],
            }
        )
        start = None if as_of is None else as_of - self.history_days * SECONDS_PER_DAY
        feats = user_features(df, users, [REALTIME_USER], self.space, start=start, as_of=as_of)
        return user_vectors(self.model, feats)[0]

    def consumed_in_history(self, history: Any, as_of: int | None = None) -> set[str]:
        """Item ids of a raw history that count as consumed (retrieval.exclude_events)."""
        df = self.history_frame(history)
        if as_of is not None and "timestamp" in df.columns:
            ts = df["timestamp"].to_numpy(dtype=np.int64)
            df = df[(ts >= as_of - self.history_days * SECONDS_PER_DAY) & (ts < as_of)]
        events = list(self.space.strong_events)
        if self.retrieval.exclude_events == "any":
            events += self.space.weak_events
        return set(df.loc[df["event"].isin(events), "item_id"].tolist())

    def recommend_from_history(
        self,
        history: Any,
        item_type: str,
        k: int = 10,
        *,
        age: int | None = None,
        country: str | None = None,
        taste_vector: Sequence[float] | None = None,
        as_of: int | None = None,
        exclude_consumed: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """One real-time request: (item ids [k], scores [k], the history's unknown item ids).

        The user vector comes from the given history and demographics (new users work); items
        the history consumed are filtered unless exclude_consumed=False.
        """
        df = self.history_frame(history)
        vector = self.user_vector_from_history(df, age, country, taste_vector, as_of)
        consumed = [self.consumed_in_history(df, as_of)] if exclude_consumed else None
        ids, scores = self.recommend(
            vector[None, :], item_type, k, exclude_consumed=exclude_consumed, consumed=consumed
        )
        return ids[0], scores[0], self.unknown_item_ids(df)

    def demographics(self, user_id: str) -> dict[str, Any]:
        """age, country, taste_vector of a known user (None where missing)."""
        at = self._user_index.get_indexer([user_id])[0]
        if at < 0:
            return {"age": None, "country": None, "taste_vector": None}
        row = self.users.iloc[at]
        age = row.get("age")
        country = row.get("country")
        taste = None
        if self.space.taste_dim and "taste_vector" in self.users.columns:
            t = taste_matrix(self.users["taste_vector"].iloc[[at]], self.space.taste_dim)[0]
            taste = t[:-1].tolist() if t[-1] else None
        return {
            "age": None if pd.isna(age) else int(age),
            "country": None if pd.isna(country) else str(country),
            "taste_vector": taste,
        }

    # --- retrieval --------------------------------------------------------------------------
    def recommend(
        self,
        users: Iterable[str] | np.ndarray,
        item_type: str,
        k: int = 10,
        exclude_consumed: bool = True,
        consumed: Sequence[Iterable[str]] | None = None,
        as_of: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items of `item_type` for user ids (batch path) or user vectors (float [n, d]).

        With ids and exclude_consumed, items consumed in the history window are filtered; with
        vectors, pass `consumed` (item ids per user) to filter. Returns (item ids object [n, k],
        scores float32 [n, k]), best first; None / -inf pad rows with fewer than k candidates.
        """
        lo, hi = self._type_range(item_type)
        check_k(k, hi - lo, what=f"{item_type} catalogue")
        arr = users if isinstance(users, np.ndarray) else np.asarray(list(users), dtype=object)
        if arr.dtype.kind == "f":
            vectors = np.atleast_2d(arr).astype(np.float32)
            excl = None
            if exclude_consumed and consumed is not None:
                excl = self._exclusions_from_ids(consumed, lo, hi)
        else:
            vectors = self.user_vectors(arr, as_of)
            excl = restrict_csr(self.consumed(arr, as_of), lo, hi) if exclude_consumed else None
        return self.top_k(vectors, item_type, k, excl)

    def _exclusions_from_ids(self, consumed: Sequence[Iterable[str]], lo: int, hi: int) -> list[np.ndarray]:
        out = []
        for items in consumed:
            g = self.space.item_index.get_indexer(np.asarray(list(items), dtype=object))
            out.append(g[(g >= lo) & (g < hi)] - lo)
        return out

    def top_k(
        self, vectors: np.ndarray, item_type: str, k: int, exclude=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of one type for user vectors, exclusions given as type indices (any format of
        `exact_top_k`). Exact search, or the run's Voyager index once the type has at least
        `retrieval.exact_below` items and `colisten index` built it. Returns (item ids, scores)."""
        lo, hi = self._type_range(item_type)
        check_k(k, hi - lo, what=f"{item_type} catalogue")
        ann = self.ann_index(item_type) if hi - lo >= self.retrieval.exact_below else None
        if ann is not None:
            idx, scores = ann.query(vectors, k, exclude=exclude)
        else:
            idx, scores = exact_top_k(vectors, self._item_vectors[lo:hi], k, exclude=exclude)
        ids = np.where(idx >= 0, self.space.item_ids[lo:hi][np.maximum(idx, 0)], None)
        return ids.astype(object), scores

    _top_k = top_k  # earlier name, used by colisten.serve

    def ann_index(self, item_type: str):
        """The run's Voyager index (AnnIndex) of that type, or None if `colisten index` did not build one."""
        from colisten.retrieval.ann import AnnIndex

        if item_type not in self._ann:
            path = artifacts.INDEX.at(self.run, item_type=item_type)
            self._ann[item_type] = AnnIndex.load(path, ef=self.retrieval.ann_ef) if path.exists() else None
        return self._ann[item_type]

    _ann_index = ann_index  # earlier name, used by colisten.serve

    # --- history access ---------------------------------------------------------------------
    def use_history(self, events: Any) -> None:
        """Take the users' history from `events` (Arrow table or DataFrame: user_id, item_id,
        event, timestamp) instead of RUN/split/history.parquet. The Spark export hands each batch
        of users their own events, grouped on Spark; every user-vector and consumed-item
        computation is then the same code."""
        import pyarrow as pa
        import pyarrow.compute as pc

        text = pa.string()
        schema = pa.schema([("user_id", text), ("item_id", text), ("event", text), ("timestamp", pa.int64())])
        if isinstance(events, pa.Table):
            table = events.select(schema.names).cast(schema)
        else:
            table = pa.Table.from_pandas(events[schema.names], schema=schema, preserve_index=False)
        # sorted and cut into users by Arrow (C++, GIL released: the server builds this in its
        # reload thread while it answers requests); only the rows asked for become pandas
        table = table.take(pc.sort_indices(table, sort_keys=[("user_id", "ascending")]))
        runs = pc.run_end_encode(table["user_id"].combine_chunks())
        ends = runs.run_ends.to_numpy().astype(np.int64)
        self._history_users = pd.Index(runs.values.to_numpy(zero_copy_only=False).astype(object))
        self._history_bounds = np.r_[0, ends].astype(np.int64)
        # the ids and events as dictionaries: their slices become pandas categoricals, whose id
        # lookups read each distinct id once (as train-2t's read_coded_history, the same arrays);
        # per-event string lookups held the GIL for up to 84 ms at a time in the server's reload
        for name in ("user_id", "item_id", "event"):
            column = pc.dictionary_encode(table[name].combine_chunks())
            table = table.set_column(table.schema.get_field_index(name), name, column)
        self._history = table

    def _events_of(self, user_ids: np.ndarray) -> pd.DataFrame:
        """Run-history events of these users (history sorted by user once, then sliced)."""
        if self._history is None:
            import pyarrow.parquet as pq

            self.use_history(pq.read_table(self.run.require(artifacts.HISTORY)))
        at = self._history_users.get_indexer(np.asarray(user_ids, dtype=object))
        at = at[at >= 0]
        lo, hi = self._history_bounds[at], self._history_bounds[at + 1]
        rows = np.repeat(hi - np.cumsum(hi - lo), hi - lo) + np.arange(int((hi - lo).sum()))
        return self._history.take(rows).to_pandas()


def restrict_csr(csr: tuple[np.ndarray, np.ndarray], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep a CSR's entries in [lo, hi) and shift them to 0.. (global -> type index)."""
    indptr, indices = csr
    keep = (indices >= lo) & (indices < hi)
    row = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    counts = np.bincount(row[keep], minlength=len(indptr) - 1)
    new_ptr = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    return new_ptr, indices[keep] - lo


def export_schema():
    """Columns of a recommendation export (local file and Spark parts alike)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("user_id", pa.string()),
            ("item_type", pa.string()),
            ("item_id", pa.string()),
            ("rank", pa.int32()),
            ("score", pa.float32()),
        ]
    )


def check_export(recommender: TwoTowerRecommender, item_types: Sequence[str], k: int) -> None:
    """RecommendError / RetrievalError for an unknown type or a k the catalogue cannot fill."""
    for t in item_types:
        lo, hi = recommender._type_range(t)
        check_k(k, hi - lo, what=f"{t} catalogue")


def recommendation_rows(
    recommender: TwoTowerRecommender, user_ids: np.ndarray, item_types: Sequence[str], k: int
):
    """One batch of an export as a pyarrow Table (export_schema): for each type, the top k of
    every user, best first, consumed items filtered. The local and the Spark export both call it."""
    import pyarrow as pa

    schema = export_schema()
    vectors = recommender.user_vectors(user_ids)
    consumed = recommender.consumed(user_ids)
    parts = []
    for t in item_types:
        lo, hi = recommender._type_range(t)
        rec, scores = recommender.top_k(vectors, t, k, restrict_csr(consumed, lo, hi))
        ok = rec != None  # noqa: E711 (object array: padding is None)
        n_ok = int(ok.sum())
        parts.append(
            pa.table(
                {
                    "user_id": pa.array(np.repeat(user_ids, k).reshape(len(user_ids), k)[ok], pa.string()),
                    "item_type": pa.array([t] * n_ok, pa.string()),
                    "item_id": pa.array(rec[ok], pa.string()),
                    "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), (len(user_ids), 1))[ok]),
                    "score": pa.array(scores[ok], pa.float32()),
                },
                schema=schema,
            )
        )
    return pa.concat_tables(parts) if parts else schema.empty_table()


def write_recommendations(
    recommender: TwoTowerRecommender,
    user_ids: Sequence[str],
    item_types: Sequence[str],
    k: int,
    path: str | Path,
    *,
    batch_users: int = 2048,
    progress: bool = True,
) -> int:
    """Write top-k per user and type to Parquet (user_id, item_type, item_id, rank, score).

    Users are scored `batch_users` at a time and each batch is appended with a ParquetWriter,
    so memory is bounded by one batch; the file appears only when complete. Returns row count.
    (`colisten.twotower.spark_export` does the same on Spark, batch by batch with the same code.)
    """
    import pyarrow.parquet as pq
    from tqdm import tqdm

    ids = recommender.check_users(dict.fromkeys(user_ids))  # de-duplicated, order kept
    check_export(recommender, item_types, k)
    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, export_schema(), compression="zstd") as writer:
        bar = tqdm(total=len(ids), desc="recommend", unit="user", disable=not progress)
        for s in range(0, len(ids), batch_users):
            batch = ids[s : s + batch_users]
            table = recommendation_rows(recommender, batch, item_types, k)
            writer.write_table(table)
            rows += table.num_rows
            bar.update(len(batch))
        bar.close()
    return rows
