"""Every known user's stored history, held as CSR arrays so one user's events are a slice.

Built once per model load from a Parquet interactions file; a request then reads its user's
events without touching a DataFrame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from colisten.serve.catalogue import ItemCatalogue
from colisten.twotower.features import distinct_csr


@dataclass(frozen=True)
class UserEvents:
    """One user's events in time order (global item indices)."""

    items: np.ndarray  # int64
    event_codes: np.ndarray  # int16 into UserStore.event_names
    timestamps: np.ndarray  # int64 epoch seconds


@dataclass(frozen=True)
class UserStore:
    """Users (sorted ids, demographics) and their events as CSR over users."""

    user_ids: np.ndarray  # object[str], sorted
    index: dict[str, int]
    age: np.ndarray  # float64, NaN = unknown
    country: np.ndarray  # object[str | None]
    indptr: np.ndarray  # int64 [n_users + 1]
    items: np.ndarray  # int64 global item index
    event_codes: np.ndarray  # int16 into event_names
    event_names: np.ndarray  # object[str]
    timestamps: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.user_ids.shape[0])

    def events_of(self, user: int) -> UserEvents:
        lo, hi = int(self.indptr[user]), int(self.indptr[user + 1])
        return UserEvents(
            items=self.items[lo:hi],
            event_codes=self.event_codes[lo:hi],
            timestamps=self.timestamps[lo:hi],
        )

    def demographics(self, user: int) -> tuple[int | None, str | None]:
        age = self.age[user]
        return (None if np.isnan(age) else int(age)), self.country[user]

    def search(self, prefix: str, limit: int) -> tuple[list[str], int]:
        """User ids starting with `prefix` (sorted), at most `limit`, and how many match in all."""
        lo = int(np.searchsorted(self.user_ids, prefix, side="left"))
        hi = int(np.searchsorted(self.user_ids, prefix + "\U0010ffff", side="left")) if prefix else len(self)
        return [str(u) for u in self.user_ids[lo : min(hi, lo + limit)]], hi - lo

    @classmethod
    def build(cls, users: Any, events: Any, catalogue: ItemCatalogue) -> UserStore:
        """Users (DataFrame: user_id, age, country) and their events (Arrow table or DataFrame:
        user_id, item_id, event, timestamp). Events of unknown users or items are dropped; users
        keep their order if already sorted by id (the contract's order), else they are sorted."""
        user_ids = users["user_id"].astype(str).to_numpy(dtype=object)
        order_users = np.argsort(user_ids, kind="stable")
        if not np.array_equal(order_users, np.arange(len(user_ids))):
            users = users.iloc[order_users].reset_index(drop=True)
            user_ids = user_ids[order_users]
        index = {u: i for i, u in enumerate(user_ids)}
        # Arrow compute maps the per-event strings in C++ with the GIL released: a model built
        # in the server's reload thread must not stall the requests being answered meanwhile
        table = events if isinstance(events, pa.Table) else pa.Table.from_pandas(events, preserve_index=False)
        user_pos = pc.index_in(_strings(table["user_id"]), value_set=pa.array(user_ids, pa.string()))
        items = pa.array(catalogue.item_ids, pa.string())
        item_pos = pc.index_in(_strings(table["item_id"]), value_set=items)
        keep = pc.and_(pc.is_valid(user_pos), pc.is_valid(item_pos))
        u = pc.filter(user_pos, keep).to_numpy().astype(np.int64)
        it = pc.filter(item_pos, keep).to_numpy().astype(np.int64)
        ts = pc.filter(table["timestamp"], keep).to_numpy().astype(np.int64)
        event = _strings(pc.filter(table["event"], keep))
        names = np.asarray(pc.unique(event).sort().to_pylist(), dtype=object)
        codes = pc.index_in(event, value_set=pa.array(names, pa.string())).to_numpy().astype(np.int16)
        order = np.lexsort((it, ts, u))
        indptr = _indptr(u, len(user_ids))
        age = (
            users["age"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "age" in users.columns
            else np.full(len(user_ids), np.nan)
        )
        raw_country = (
            users["country"].to_numpy(dtype=object) if "country" in users.columns else [None] * len(age)
        )
        country = np.asarray([None if pd.isna(c) else str(c) for c in raw_country], dtype=object)
        return cls(
            user_ids=user_ids,
            index=index,
            age=age,
            country=country,
            indptr=indptr,
            items=it[order],
            event_codes=codes[order],
            event_names=names,
            timestamps=ts[order],
        )


@dataclass(frozen=True)
class KnownHistories:
    """Per known user, what a recommendation reads of the stored history, worked out once per
    model load instead of per request: the distinct items most recently touched first (the
    order explanations are tie-broken in, `explain.distinct_recent_first`) and the consumed items
    (sorted, distinct), both as CSR over users. At most the history's size."""

    recent_indptr: np.ndarray  # int64 [n_users + 1]
    recent_items: np.ndarray  # int64
    consumed_indptr: np.ndarray  # int64 [n_users + 1]
    consumed_items: np.ndarray  # int64

    def recent(self, user: int) -> np.ndarray:
        return self.recent_items[self.recent_indptr[user] : self.recent_indptr[user + 1]]

    def consumed(self, user: int) -> np.ndarray:
        return self.consumed_items[self.consumed_indptr[user] : self.consumed_indptr[user + 1]]

    @classmethod
    def build(cls, users: UserStore, consumed_of_code: np.ndarray) -> KnownHistories:
        """From the store and which event codes mark an item consumed."""
        n_users = len(users)
        user = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(users.indptr))
        items = users.items
        # most recent first, ties by item index (distinct_recent_first's order), within each user
        order = np.lexsort((items, -users.timestamps, user))
        recent_user, recent = _first_per_user(user[order], items[order])
        consumed = consumed_of_code[users.event_codes]
        n_items = int(items.max()) + 1 if items.size else 0
        consumed_indptr, consumed_items = distinct_csr(user[consumed], items[consumed], n_users, n_items)
        return cls(
            recent_indptr=_indptr(recent_user, n_users),
            recent_items=recent,
            consumed_indptr=consumed_indptr,
            consumed_items=consumed_items,
        )


def _first_per_user(user: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (user, item) pair's first row, in the rows' order (rows grouped by user)."""
    if not user.size:
        return user, items
    _, first = np.unique(user * (int(items.max()) + 1) + items, return_index=True)
    first.sort()
    return user[first], items[first]


def _indptr(user: np.ndarray, n_users: int) -> np.ndarray:
    """CSR row pointers of entries grouped by user (user ascending)."""
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user, minlength=n_users), out=indptr[1:])
    return indptr


def _strings(column: Any) -> pa.Array:
    """One contiguous Arrow string array of a (chunked) column."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column if column.type == pa.string() else pc.cast(column, pa.string())
