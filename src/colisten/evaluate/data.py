"""What evaluation needs from a run, as sparse user x item matrices in the global item order.

Built once per evaluation from `data/items.parquet` and `split/{history,holdout,segments}.parquet`;
every model and metric reads the same object, so all models see the same users, the same
already-consumed filter and the same held-out positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from colisten import artifacts
from colisten.config import Settings
from colisten.errors import ColistenError

SEGMENTS = ("warm", "cold", "all")


class EvaluationDataError(ColistenError):
    """Split artifacts that do not line up (unknown item, missing segment row...)."""


@dataclass
class TypeTargets:
    """Ranking targets of one item type: exclusions, held-out positives, popularity tiers."""

    item_type: str
    start: int  # global index of the type's first item; type index = global - start
    n_items: int
    consumed: sp.csr_matrix  # users x type items, 1.0: excluded from the ranking
    positives: sp.csr_matrix  # users x type items, 1.0: NEW held-out strong items
    popularity: np.ndarray  # float64 [n_items]: strong events in history
    tier: np.ndarray  # int8 [n_items]: 1 = most popular ... tiers
    segment: np.ndarray  # str [n_users]: "warm" | "cold" | "" (no row in segments.parquet)
    eligible_users: int = 0  # users with a held-out positive, before [evaluate] max_users

    @property
    def evaluated_users(self) -> np.ndarray:
        """Users with at least one held-out positive of this type (row indices, ascending; a
        seeded sample of them with [evaluate] max_users)."""
        return np.flatnonzero(np.diff(self.positives.indptr) > 0)


@dataclass
class EvalData:
    """Users, items and the split as sparse matrices (rows = users, columns = global item index)."""

    user_ids: np.ndarray  # str [n_users], sorted
    item_ids: np.ndarray  # str [n_items], global order
    item_types: np.ndarray  # str [n_items]
    history_strong: sp.csr_matrix  # float32 event counts
    history_weak: sp.csr_matrix  # float32 event counts
    holdout_strong: sp.csr_matrix  # float32 event counts
    segments: pd.DataFrame  # user_id, item_type, segment
    settings: Settings
    targets: dict[str, TypeTargets] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    def type_slice(self, item_type: str) -> slice:
        idx = np.flatnonzero(self.item_types == item_type)
        if idx.size == 0:
            raise EvaluationDataError(f"data/items.parquet has no item of type {item_type!r}")
        return slice(int(idx[0]), int(idx[-1]) + 1)

    def history_touched(self) -> sp.csr_matrix:
        """Users x items, 1 where the user had any (strong or weak) event in history."""
        m = (self.history_strong + self.history_weak).tocsr()
        m.data[:] = 1.0
        m.eliminate_zeros()
        return m

    @classmethod
    def from_frames(
        cls,
        items: pd.DataFrame,
        history: pd.DataFrame,
        holdout: pd.DataFrame,
        segments: pd.DataFrame,
        settings: Settings,
    ) -> EvalData:
        """Build from the run's tables (items in the global order: sorted by item_type, item_id)."""
        items = items.reset_index(drop=True)
        item_ids = items["item_id"].astype(str).to_numpy()
        item_types = items["item_type"].astype(str).to_numpy()
        order = np.lexsort((item_ids, item_types))
        if not np.array_equal(order, np.arange(len(items))):
            raise EvaluationDataError("data/items.parquet is not sorted by (item_type, item_id)")
        users = pd.Index(
            pd.concat(
                [history["user_id"], holdout["user_id"], segments["user_id"]], ignore_index=True
            ).astype(str)
        ).unique()
        user_ids = np.sort(users.to_numpy().astype(str))
        user_index = pd.Index(user_ids)
        item_index = pd.Index(item_ids)
        strong = set(settings.data.strong_events)
        weak = set(settings.data.weak_events)

        def matrix(df: pd.DataFrame, events: set[str], name: str) -> sp.csr_matrix:
            df = df[df["event"].astype(str).isin(events)]
            rows = user_index.get_indexer(df["user_id"].astype(str))
            cols = item_index.get_indexer(df["item_id"].astype(str))
            bad = np.flatnonzero(cols < 0)
            if bad.size:
                raise EvaluationDataError(
                    f"split/{name}.parquet: item_id {df['item_id'].iloc[bad[0]]!r} (row {bad[0] + 1} of "
                    f"its {sorted(events)} events) is not in data/items.parquet"
                )
            m = sp.csr_matrix(
                (np.ones(rows.size, np.float32), (rows, cols)), shape=(user_ids.size, item_ids.size)
            )
            m.sum_duplicates()
            return m

        data = cls(
            user_ids=user_ids,
            item_ids=item_ids,
            item_types=item_types,
            history_strong=matrix(history, strong, "history"),
            history_weak=matrix(history, weak, "history"),
            holdout_strong=matrix(holdout, strong, "holdout"),
            segments=segments[["user_id", "item_type", "segment"]].astype(str),
            settings=settings,
        )
        for t in settings.data.item_types:
            data.targets[t] = build_targets(data, t)
        return data


def build_targets(data: EvalData, item_type: str) -> TypeTargets:
    """Exclusions, NEW held-out positives, popularity tiers and segments for one item type."""
    cfg = data.settings.evaluate
    sl = data.type_slice(item_type)
    strong = data.history_strong[:, sl]
    consumed = strong if cfg.consumed == "strong" else (strong + data.history_weak[:, sl])
    consumed = _binary(consumed)
    held = _binary(data.holdout_strong[:, sl])
    # A positive must be new: held out and not already consumed (consumed items are never ranked).
    positives = _binary(held - held.multiply(consumed))
    eligible = int(np.count_nonzero(np.diff(positives.indptr)))
    if cfg.max_users and eligible > cfg.max_users:
        positives = _sample_users(positives, cfg.max_users, cfg.seed, item_type)
    popularity = np.asarray(strong.sum(axis=0)).ravel().astype(np.float64)
    n = sl.stop - sl.start
    tier = popularity_tiers(popularity, cfg.tiers)

    seg = np.full(data.n_users, "", dtype=object)
    rows = data.segments[data.segments["item_type"] == item_type]
    idx = pd.Index(data.user_ids).get_indexer(rows["user_id"])
    seg[idx[idx >= 0]] = rows["segment"].to_numpy()[idx >= 0]
    bad = set(np.unique(seg[np.diff(positives.indptr) > 0])) - {"warm", "cold"}
    if bad:
        u = np.flatnonzero((np.diff(positives.indptr) > 0) & ~np.isin(seg, ["warm", "cold"]))[0]
        raise EvaluationDataError(
            f"split/segments.parquet: user {data.user_ids[u]!r} has held-out {item_type} streams but "
            f"segment {seg[u]!r} for {item_type} (expected 'warm' or 'cold')"
        )
    return TypeTargets(
        item_type=item_type,
        start=sl.start,
        n_items=n,
        consumed=consumed,
        positives=positives,
        popularity=popularity,
        tier=tier,
        segment=seg.astype(str),
        eligible_users=eligible,
    )


def _sample_users(positives: sp.csr_matrix, n: int, seed: int, item_type: str) -> sp.csr_matrix:
    """`positives` with the rows of all but `n` users (seeded, uniform, per item type) emptied."""
    users = np.flatnonzero(np.diff(positives.indptr) > 0)
    rng = np.random.default_rng([seed, sum(map(ord, item_type))])
    keep = np.zeros(positives.shape[0], dtype=bool)
    keep[rng.choice(users, size=n, replace=False)] = True
    kept = sp.diags(keep.astype(np.float32)) @ positives
    return _binary(kept)


def _binary(m: sp.spmatrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    m.eliminate_zeros()
    m.data[:] = 1.0
    m.sort_indices()
    return m


def popularity_tiers(popularity: np.ndarray, tiers: int) -> np.ndarray:
    """Equal-count tiers by popularity, 1 = most popular; ties broken by item index (ascending)."""
    order = np.lexsort((np.arange(popularity.size), -popularity))
    tier = np.empty(popularity.size, np.int8)
    for t, chunk in enumerate(np.array_split(order, tiers), start=1):
        tier[chunk] = t
    return tier


def load_eval_data(run: str | Path, settings: Settings) -> EvalData:
    """Read the run's items and split artifacts."""
    from colisten.rundir import RunDir

    rd = RunDir(run)
    cols = ["user_id", "item_id", "event"]
    items = pd.read_parquet(rd.require(artifacts.ITEMS), columns=["item_id", "item_type"])
    history = pd.read_parquet(rd.require(artifacts.HISTORY), columns=cols)
    holdout = pd.read_parquet(rd.require(artifacts.HOLDOUT), columns=cols)
    segments = pd.read_parquet(rd.require(artifacts.SEGMENTS))
    return EvalData.from_frames(items, history, holdout, segments, settings)
