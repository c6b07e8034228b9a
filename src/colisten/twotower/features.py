"""Inputs of the two towers, computed by one function per tower.

Training, evaluation and real-time serving all call `user_features` (only the time bounds
differ), so the user vector a server computes from a live history is the one the model was
trained and evaluated on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
OOV = 0  # slot 0 of every categorical vocabulary: missing or never seen in training


@dataclass
class FeatureSpace:
    """Vocabularies, event lists and item lookups that turn raw rows into tower inputs.

    The JSON part (`to_json`) is saved as RUN/twotower/features.json; the arrays come from
    the run's items table and embeddings when the model is loaded.
    """

    item_types: list[str]
    strong_events: list[str]
    weak_events: list[str]
    use_weak_signals: bool
    weak_signals_own_mean: bool
    age_buckets: list[int]
    countries: list[str]
    languages: list[str]
    genres: list[str]
    taste_dim: int
    history_embedding_source: str  # "hgnn" or "text": which item embedding user means are built from
    item_ids: np.ndarray = field(repr=False)  # global item order
    item_type_codes: np.ndarray = field(repr=False)  # int64 index into item_types per item
    history_embedding: np.ndarray = field(repr=False)  # float32 [n_items, d]
    # twotower.recency_half_life: > 0 gives each streamed item of the history CSR a weight
    # 0.5 ** (rank / half-life), rank 0 = the item streamed last (0 = no weights, as before)
    recency_half_life: float = 0.0
    # twotower.recency_means: the dense features also hold, per item type, the recency-weighted
    # mean history embedding of the streamed items (those weights, normalised within the type)
    recency_means: bool = False

    def __post_init__(self) -> None:
        self.item_index = pd.Index(self.item_ids)
        self._country_index = pd.Index(self.countries)
        self._language_index = pd.Index(self.languages)
        self._genre_index = pd.Index(self.genres)

    # --- sizes -----------------------------------------------------------------------------
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def kinds(self) -> list[str]:
        """Which interaction kinds get their own mean embedding per item type."""
        if not self.use_weak_signals:
            return ["strong"]
        return ["strong", "weak"] if self.weak_signals_own_mean else ["all"]

    @property
    def count_kinds(self) -> list[str]:
        return ["strong", "weak"] if self.use_weak_signals else ["strong"]

    @property
    def user_dense_dim(self) -> int:
        d = self.history_embedding.shape[1]
        n_types = len(self.item_types)
        recent = n_types * d if self.recency_means else 0
        return n_types * len(self.kinds) * d + recent + n_types * len(self.count_kinds) + self.taste_dim + 1

    @property
    def user_categorical_sizes(self) -> list[int]:
        """age bucket (missing, below first bound, ..., above last bound), country."""
        return [len(self.age_buckets) + 2, len(self.countries) + 1]

    @property
    def item_categorical_sizes(self) -> list[int]:
        """language, genre, item type."""
        return [len(self.languages) + 1, len(self.genres) + 1, len(self.item_types)]

    def type_range(self, item_type: str) -> tuple[int, int]:
        """Global indices [start, stop) of one type (items are sorted by type, then id)."""
        code = self.item_types.index(item_type)
        where = np.flatnonzero(self.item_type_codes == code)
        return int(where[0]), int(where[-1]) + 1

    # --- persistence -----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "item_types": self.item_types,
            "strong_events": self.strong_events,
            "weak_events": self.weak_events,
            "use_weak_signals": self.use_weak_signals,
            "weak_signals_own_mean": self.weak_signals_own_mean,
            "age_buckets": self.age_buckets,
            "countries": self.countries,
            "languages": self.languages,
            "genres": self.genres,
            "taste_dim": self.taste_dim,
            "history_embedding_source": self.history_embedding_source,
            "recency_half_life": self.recency_half_life,
            "recency_means": self.recency_means,
            "n_items": self.n_items,
            "history_embedding_dim": int(self.history_embedding.shape[1]),
        }

    @classmethod
    def from_json(
        cls, meta: dict[str, Any], items: pd.DataFrame, history_embedding: np.ndarray
    ) -> FeatureSpace:
        item_types = list(meta["item_types"])
        return cls(
            item_types=item_types,
            strong_events=list(meta["strong_events"]),
            weak_events=list(meta["weak_events"]),
            use_weak_signals=bool(meta["use_weak_signals"]),
            weak_signals_own_mean=bool(meta["weak_signals_own_mean"]),
            age_buckets=list(meta["age_buckets"]),
            countries=list(meta["countries"]),
            languages=list(meta["languages"]),
            genres=list(meta["genres"]),
            taste_dim=int(meta["taste_dim"]),
            history_embedding_source=meta["history_embedding_source"],
            item_ids=items["item_id"].to_numpy(dtype=object),
            item_type_codes=_codes(items["item_type"], item_types),
            history_embedding=np.asarray(history_embedding, dtype=np.float32),
            recency_half_life=float(meta.get("recency_half_life", 0.0)),
            recency_means=bool(meta.get("recency_means", False)),
        )


def build_feature_space(
    items: pd.DataFrame,
    users: pd.DataFrame,
    history_embedding: np.ndarray,
    *,
    strong_events: list[str],
    weak_events: list[str],
    use_weak_signals: bool,
    weak_signals_own_mean: bool,
    age_buckets: list[int],
    use_taste_vector: bool,
    history_embedding_source: str,
    recency_half_life: float = 0.0,
    recency_means: bool = False,
) -> FeatureSpace:
    """Vocabularies from the run's items and users tables (countries, languages, genres)."""
    item_types = sorted(items["item_type"].unique().tolist())
    taste_dim = 0
    if use_taste_vector and "taste_vector" in users.columns:
        taste_dim = _taste_dim(users["taste_vector"])
    return FeatureSpace(
        item_types=item_types,
        strong_events=list(strong_events),
        weak_events=list(weak_events),
        use_weak_signals=use_weak_signals,
        weak_signals_own_mean=weak_signals_own_mean,
        age_buckets=sorted(int(a) for a in age_buckets),
        countries=_vocabulary(users["country"]) if "country" in users.columns else [],
        languages=_vocabulary(items["language"]) if "language" in items.columns else [],
        genres=_vocabulary(items["genre"]) if "genre" in items.columns else [],
        taste_dim=taste_dim,
        history_embedding_source=history_embedding_source,
        item_ids=items["item_id"].to_numpy(dtype=object),
        item_type_codes=_codes(items["item_type"], item_types),
        history_embedding=np.asarray(history_embedding, dtype=np.float32),
        recency_half_life=float(recency_half_life),
        recency_means=bool(recency_means and recency_half_life > 0),
    )


# --- user tower inputs --------------------------------------------------------------------------
class UserDense:
    """The user tower's dense inputs, computed row by row when asked for.

    Most of a row is history means: per item type and kind, a weighted mean of the history
    embedding (773 float32 per row on the demo world). A training table repeats each user once
    per label window and fold, so materialised it grows as users x rows per user x 3 KB (~185 GB
    at the paper's 10M users; docs/scaling.md). Here each mean block is kept as its sparse
    weights [rows x entries, n_items] beside the embedding, which costs what the history costs,
    and `table[rows]` multiplies only the rows asked for. scipy multiplies each sparse row on its
    own, so a row equals the materialised table's bit for bit: a model trained on either is the same.
    """

    def __init__(
        self, blocks: list[Any], per_row: list[int], embedding: np.ndarray, rest: np.ndarray
    ) -> None:
        self.blocks = blocks  # scipy CSR [n * per_row[b], n_items] of weights, one per mean block
        self.per_row = per_row  # means per user row in each block
        self.embedding = embedding  # float32 [n_items, d]
        self.rest = rest  # float32 [n, r]: the columns after the means (counts, taste vector)

    @property
    def shape(self) -> tuple[int, int]:
        d = self.embedding.shape[1]
        return len(self.rest), sum(self.per_row) * d + self.rest.shape[1]

    @property
    def nbytes(self) -> int:
        """The bytes of the materialised table."""
        n, width = self.shape
        return n * width * 4

    def __len__(self) -> int:
        return len(self.rest)

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self[np.array([rows])][0]
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        blocks = []
        for block, k in zip(self.blocks, self.per_row, strict=True):
            blocks.append(block[(rows[:, None] * k + np.arange(k)).ravel()])
        return self._multiply(blocks, self.rest[rows])

    def materialise(self) -> np.ndarray:
        """Every row (the blocks multiplied as they are, not copied row by row first)."""
        return self._multiply(self.blocks, self.rest)

    def _multiply(self, blocks: list[Any], rest: np.ndarray) -> np.ndarray:
        d, n = self.embedding.shape[1], len(rest)
        parts = [
            np.asarray(block @ self.embedding, dtype=np.float32).reshape(n, k * d)
            for block, k in zip(blocks, self.per_row, strict=True)
        ]
        return np.concatenate([*parts, rest], axis=1)

    @staticmethod
    def concat(parts: list[UserDense]) -> UserDense:
        """The tables `parts` stacked row-wise (all built over the same embedding)."""
        import scipy.sparse as sp

        first = parts[0]
        blocks = [sp.vstack([p.blocks[b] for p in parts], format="csr") for b in range(len(first.blocks))]
        return UserDense(blocks, first.per_row, first.embedding, np.concatenate([p.rest for p in parts]))


@dataclass
class UserFeatures:
    """User-tower inputs, one row per requested user."""

    user_ids: np.ndarray  # object [n]
    # float32 [n, space.user_dense_dim]; a UserDense (rows computed when indexed) with lazy=True
    dense: np.ndarray | UserDense
    categorical: np.ndarray  # int64 [n, 2]: age bucket, country
    unknown_items: int = 0  # events dropped because their item is not in the catalogue
    # CSR (indptr [n + 1], global item indices ascending[, float32 recency weights]): the distinct
    # items each user streamed, the input of the user tower's learned item vectors (twotower.id_dim);
    # the weights are there when space.recency_half_life > 0 (recency_weights)
    history: tuple[np.ndarray, ...] | None = None


def user_features(
    events: pd.DataFrame,
    users: pd.DataFrame | None,
    user_ids: Any,
    space: FeatureSpace,
    *,
    start: int | None = None,
    as_of: int | None = None,
    equal_recency: bool = False,
    lazy: bool = False,
) -> UserFeatures:
    """User-tower inputs from raw events and demographics, for events with start <= ts < as_of.
    `equal_recency`: every recency weight 1 (training rows whose labels are from any time).
    `lazy`: `dense` is a UserDense whose rows are computed when indexed (the same values).

    Per item type: the mean history embedding (HGNN, or text for the no-HGNN baseline) of the
    distinct items streamed, and of those touched by weak signals (own mean, merged, or dropped
    per the settings); log1p event counts per type and kind; the optional taste vector. Users
    with no events or no demographics get zeros / the out-of-vocabulary slot (cold start).
    `events` needs user_id, item_id, event and (if a bound is given) timestamp in epoch seconds.
    """
    user_index = pd.Index(np.asarray(user_ids, dtype=object))
    n_users = len(user_index)
    n_types = len(space.item_types)
    ev = _window(events, start, as_of)
    kind = _event_kind(ev["event"], space)
    item = space.item_index.get_indexer(ev["item_id"])
    user = user_index.get_indexer(ev["user_id"])
    unknown_items = int(((item < 0) & (kind >= 0) & (user >= 0)).sum())
    keep = (item >= 0) & (kind >= 0) & (user >= 0)
    item, user, kind = item[keep], user[keep], kind[keep]
    item_type = space.item_type_codes[item]

    # log1p(event count) per (type, kind)
    n_count_kinds = len(space.count_kinds)
    counts = np.bincount(
        (user * n_types + item_type) * n_count_kinds + kind, minlength=n_users * n_types * n_count_kinds
    ).reshape(n_users, n_types * n_count_kinds)

    # mean embedding of distinct items per (type, mean-kind)
    n_kinds = len(space.kinds)
    mean_kind = kind if space.kinds != ["all"] else np.zeros_like(kind)
    group = (user * n_types + item_type) * n_kinds + mean_kind
    key = np.unique(group.astype(np.int64) * space.n_items + item)
    rows, cols = key // space.n_items, key % space.n_items
    per_row = np.bincount(rows, minlength=n_users * n_types * n_kinds).astype(np.float32)
    weights = (1.0 / np.maximum(per_row, 1.0))[rows].astype(np.float32)
    blocks = [_sparse_weights(rows, cols, weights, n_users * n_types * n_kinds, space.n_items)]

    taste = np.zeros((n_users, space.taste_dim + 1), dtype=np.float32)
    categorical = np.zeros((n_users, 2), dtype=np.int64)
    if users is not None and len(users):
        at = pd.Index(users["user_id"]).get_indexer(user_index)
        found = at >= 0
        rows_u = users.iloc[at[found]]
        if "age" in users.columns:
            categorical[found, 0] = age_bucket(
                rows_u["age"].to_numpy(dtype=np.float64, na_value=np.nan), space
            )
        if "country" in users.columns:
            categorical[found, 1] = _lookup(space._country_index, rows_u["country"])
        if space.taste_dim and "taste_vector" in users.columns:
            taste[found] = taste_matrix(rows_u["taste_vector"], space.taste_dim)

    strong = kind == 0
    history = distinct_csr(user[strong], item[strong], n_users, space.n_items)
    if space.recency_half_life > 0:  # without timestamps the events' order is their time order
        stamps = ev["timestamp"].to_numpy(dtype=np.int64) if "timestamp" in ev.columns else np.arange(len(ev))
        stamps = stamps[keep][strong]
        weights = recency_weights(user[strong], item[strong], stamps, n_users, space)
        history = (*history, np.ones_like(weights) if equal_recency else weights)
    per_user = [n_types * n_kinds]
    if space.recency_means:
        indptr, h_items, h_weights = history
        h_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(indptr))
        rows_t, weights_t = recency_mean_weights(h_rows, h_items, h_weights, n_users, space)
        blocks.append(_sparse_weights(rows_t, h_items, weights_t, n_users * n_types, space.n_items))
        per_user.append(n_types)
    rest = np.concatenate([np.log1p(counts).astype(np.float32), taste], axis=1)
    dense = UserDense(blocks, per_user, space.history_embedding, rest)
    return UserFeatures(
        user_ids=user_index.to_numpy(dtype=object),
        dense=dense if lazy else dense.materialise(),
        categorical=categorical,
        unknown_items=unknown_items,
        history=history,
    )


def recency_mean_weights(
    rows: np.ndarray, items: np.ndarray, weights: np.ndarray, n_rows: int, space: FeatureSpace
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, item type) group of each history entry and its weight in the group's recency-
    weighted mean: its recency weight over the group's total (float32)."""
    n_types = len(space.item_types)
    group = rows * n_types + space.item_type_codes[items]
    total = np.bincount(group, weights=weights.astype(np.float64), minlength=n_rows * n_types)
    return group, (weights / total[group]).astype(np.float32)


def recency_weights(
    rows: np.ndarray, items: np.ndarray, stamps: np.ndarray, n_rows: int, space: FeatureSpace
) -> np.ndarray:
    """float32 weight of each (row, distinct item) of distinct_csr(rows, items): 0.5 ** (rank / half-life),
    rank = the item's place among the row's distinct items by their last stream, 0 = the newest
    (ties: the larger item index first). A history's order carries what a mean of it loses: the
    next items follow the last ones (on the ML-100K validation split, EASE on recency-weighted
    user rows ranks the next two weeks' podcasts at HR@10 0.455 instead of 0.309; bench/RESULTS.md)."""
    n_items = space.n_items
    key = rows.astype(np.int64) * n_items + items
    order = np.lexsort((stamps, key))  # by key, then time: the last of a key is its newest stream
    key, stamps = key[order], stamps[order]
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    key, stamps = key[last], stamps[last]  # distinct (row, item), ascending: distinct_csr's order
    row = key // n_items
    newest_first = np.lexsort((-(key % n_items), -stamps, row))
    rank = np.empty(len(key), dtype=np.int64)
    starts = np.searchsorted(row[newest_first], row[newest_first], side="left")
    rank[newest_first] = np.arange(len(key)) - starts
    return (0.5 ** (rank / space.recency_half_life)).astype(np.float32)


def consumed_items(
    events: pd.DataFrame,
    user_ids: Any,
    space: FeatureSpace,
    *,
    which: str = "strong",
    start: int | None = None,
    as_of: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Items each user already consumed, as CSR (indptr, global item indices).

    `which` = "strong" (streams: the default notion of consumed) or "any" (weak signals too).
    Used to filter recommendations and to keep only new items as training labels.
    """
    user_index = pd.Index(np.asarray(user_ids, dtype=object))
    ev = _window(events, start, as_of)
    kind = _event_kind(ev["event"], space, all_weak=which == "any")
    item = space.item_index.get_indexer(ev["item_id"])
    user = user_index.get_indexer(ev["user_id"])
    ok = (item >= 0) & (user >= 0) & (kind == 0 if which == "strong" else kind >= 0)
    return distinct_csr(user[ok], item[ok], len(user_index), space.n_items)


# --- item tower inputs --------------------------------------------------------------------------
@dataclass
class ItemFeatures:
    """Item-tower inputs in global item order."""

    dense: np.ndarray  # float32 [n_items, d_text (+ d_hgnn)]
    categorical: np.ndarray  # int64 [n_items, 3]: language, genre, item type
    # float32 [n_items]: log(1 + users who streamed the item), for twotower.popularity_prior
    log_popularity: np.ndarray | None = None


def log_popularity(
    events: pd.DataFrame, space: FeatureSpace, *, start: int | None = None, as_of: int | None = None
) -> np.ndarray:
    """log(1 + distinct users who streamed each item) in [start, as_of), float32 [n_items].

    Distinct users, not stream counts: a podcast one user streams daily is not popular for it.
    """
    ev = _window(events, start, as_of)
    _, items = consumed_items(ev, ev["user_id"].unique(), space, which="strong")  # distinct pairs
    return np.log1p(np.bincount(items, minlength=space.n_items)).astype(np.float32)


def item_features(
    items: pd.DataFrame,
    text_embeddings: np.ndarray,
    hgnn_embeddings: np.ndarray | None,
    space: FeatureSpace,
) -> ItemFeatures:
    """Language, genre code, item type, text embedding and (unless the 2T baseline) HGNN embedding."""
    parts = [np.asarray(text_embeddings, dtype=np.float32)]
    if hgnn_embeddings is not None:
        parts.append(np.asarray(hgnn_embeddings, dtype=np.float32))
    categorical = np.zeros((len(items), 3), dtype=np.int64)
    if "language" in items.columns:
        categorical[:, 0] = _lookup(space._language_index, items["language"])
    if "genre" in items.columns:
        categorical[:, 1] = _lookup(space._genre_index, items["genre"])
    categorical[:, 2] = _codes(items["item_type"], space.item_types)
    return ItemFeatures(dense=np.concatenate(parts, axis=1), categorical=categorical)


# --- helpers ------------------------------------------------------------------------------------
def age_bucket(age: np.ndarray, space: FeatureSpace) -> np.ndarray:
    """0 = missing; 1 = below the first bound; i+1 = in [bound_{i-1}, bound_i); last = above all."""
    age = np.asarray(age, dtype=np.float64)
    out = np.searchsorted(np.asarray(space.age_buckets, dtype=np.float64), age, side="right") + 1
    out[~np.isfinite(age)] = OOV
    return out.astype(np.int64)


def taste_matrix(values: pd.Series, dim: int) -> np.ndarray:
    """[n, dim + 1]: the taste vector (zeros if missing or of the wrong length) and a 'present' flag."""
    out = np.zeros((len(values), dim + 1), dtype=np.float32)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        arr = np.asarray(v, dtype=np.float32).ravel()
        if arr.shape[0] == dim and np.all(np.isfinite(arr)):
            out[i, :dim] = arr
            out[i, dim] = 1.0
    return out


def to_epoch_seconds(values: pd.Series) -> np.ndarray:
    """Epoch seconds from ints/floats or ISO-8601 strings (the data contract allows both)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=True)
        return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64).astype(np.int64)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


def _window(events: pd.DataFrame, start: int | None, as_of: int | None) -> pd.DataFrame:
    if start is None and as_of is None:
        return events
    ts = events["timestamp"].to_numpy(dtype=np.int64)
    keep = np.ones(len(events), dtype=bool)
    if start is not None:
        keep &= ts >= start
    if as_of is not None:
        keep &= ts < as_of
    return events.loc[keep]


def _event_kind(events: pd.Series, space: FeatureSpace, all_weak: bool = False) -> np.ndarray:
    """0 = strong, 1 = weak (if used), -1 = ignored."""
    if isinstance(events.dtype, pd.CategoricalDtype):  # each distinct name once, then its codes
        names = pd.Series(np.asarray(events.cat.categories, dtype=object))
        return np.append(_event_kind(names, space, all_weak), -1)[events.cat.codes.to_numpy()]
    ev = events.to_numpy(dtype=object)
    kind = np.full(len(ev), -1, dtype=np.int64)
    kind[np.isin(ev, space.strong_events)] = 0
    if space.use_weak_signals or all_weak:
        kind[np.isin(ev, space.weak_events)] = 1
    return kind


def _sparse_weights(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, n_rows: int, n_items: int):
    """CSR [n_rows, n_items] of the entries' weights: times the embedding, row r = the sum of
    weights * emb[cols] over its entries."""
    import scipy.sparse as sp

    return sp.csr_matrix((weights, (rows, cols)), shape=(n_rows, n_items), dtype=np.float32)


def distinct_csr(
    rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the distinct columns of each row, ascending (entries as parallel arrays)."""
    key = np.unique(rows.astype(np.int64) * n_cols + cols)
    r, c = key // n_cols, key % n_cols
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
    return indptr, c.astype(np.int64)


def csr_rows(csr: tuple[np.ndarray, ...], rows: Any) -> tuple[np.ndarray, ...]:
    """The CSR of rows `rows` of `csr`, in that order; (indptr, indices, *values): arrays after
    indices are aligned with it (recency weights) and gathered alike."""
    indptr, *aligned = csr
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    out = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    at = np.arange(out[-1]) - np.repeat(out[:-1] - starts, lengths)
    return (out, *(a[at] for a in aligned))


def csr_concat(parts: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """The CSRs `parts` stacked row-wise (a part may have no rows); every part has the same
    arrays aligned with its indices."""
    indptrs, total = [np.zeros(1, dtype=np.int64)], 0
    for indptr, indices, *_ in parts:
        indptrs.append(indptr[1:] + total)
        total += len(indices)
    if not parts:
        return np.concatenate(indptrs), np.zeros(0, np.int64)
    aligned = [np.concatenate([p[j] for p in parts]) for j in range(1, len(parts[0]))]
    return (np.concatenate(indptrs), *aligned)


def _vocabulary(values: pd.Series) -> list[str]:
    return sorted(str(v) for v in values.dropna().unique() if str(v) != "")


def _lookup(vocab: pd.Index, values: pd.Series) -> np.ndarray:
    """1 + position in the vocabulary; 0 (OOV) when missing or unseen."""
    vals = np.array([None if pd.isna(v) else str(v) for v in values.to_numpy(dtype=object)], dtype=object)
    return (vocab.get_indexer(vals) + 1).astype(np.int64)


def _codes(values: pd.Series, vocab: list[str]) -> np.ndarray:
    return pd.Index(vocab).get_indexer(values.to_numpy(dtype=object)).astype(np.int64)


def _taste_dim(values: pd.Series) -> int:
    for v in values.to_numpy(dtype=object):
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            return int(np.asarray(v).ravel().shape[0])
    return 0
