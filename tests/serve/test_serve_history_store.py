"""UserStore.build: the served users' histories as CSR, from an Arrow table or a DataFrame; and
KnownHistories, what a recommendation reads of them, worked out once per load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from colisten.serve.catalogue import ItemCatalogue
from colisten.serve.explain import distinct_recent_first
from colisten.serve.history import KnownHistories, UserStore


def _inputs() -> tuple[pd.DataFrame, pd.DataFrame, ItemCatalogue]:
    catalogue = ItemCatalogue.from_columns(
        ["a1", "a2", "p1", "p2"], ["audiobook", "audiobook", "podcast", "podcast"], ["A1", "A2", "P1", "P2"]
    )
    users = pd.DataFrame(
        {"user_id": ["u2", "u1", "u3"], "age": [30, None, 41], "country": ["SE", None, "DE"]}
    )
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u1", "ghost", "u2", "u1", "u2"],
            "item_id": ["p2", "a1", "a2", "a1", "unknown", "p1", "p1"],
            "event": ["stream", "stream", "follow", "stream", "stream", "stream", "follow"],
            "timestamp": [30, 10, 20, 5, 15, 20, 10],
        }
    )
    return users, events, catalogue


def test_user_store_drops_unknown_users_and_items_and_orders_each_user_by_time() -> None:
    users, events, catalogue = _inputs()
    store = UserStore.build(users, events, catalogue)

    assert list(store.user_ids) == ["u1", "u2", "u3"]  # sorted, with their demographics
    assert store.demographics(0) == (None, None) and store.demographics(1) == (30, "SE")
    assert list(store.event_names) == ["follow", "stream"]
    u1 = store.events_of(0)  # (timestamp, item) order; the ghost user and unknown item are gone
    assert list(u1.timestamps) == [20, 20, 30]
    assert list(catalogue.item_ids[u1.items]) == ["a2", "p1", "p2"]
    assert list(store.event_names[u1.event_codes]) == ["follow", "stream", "stream"]
    u2 = store.events_of(1)
    assert list(catalogue.item_ids[u2.items]) == ["a1", "p1"]
    assert list(store.event_names[u2.event_codes]) == ["stream", "follow"]
    assert store.events_of(2).items.size == 0
    assert list(store.indptr) == [0, 3, 5, 5]


def test_user_store_from_arrow_equals_from_pandas() -> None:
    """load_bundle passes the Parquet file's Arrow table (mapped without the GIL); other callers a
    DataFrame. Both give the same store, chunked or not."""
    users, events, catalogue = _inputs()
    from_pandas = UserStore.build(users, events, catalogue)
    table = pa.Table.from_pandas(events, preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 3), table.slice(3)])
    for events_table in (table, chunked):
        from_arrow = UserStore.build(users, events_table, catalogue)
        for name in ("user_ids", "indptr", "items", "event_codes", "event_names", "timestamps", "age"):
            a, b = getattr(from_pandas, name), getattr(from_arrow, name)
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_known_histories_are_each_users_recent_first_and_consumed_items() -> None:
    """Per user, the distinct items most recently touched first (ties: lower index) and the
    distinct consumed items, sorted: what recommend computed per request from the events."""
    users, events, catalogue = _inputs()
    events = pd.concat(  # a repeat, a tie in time, a user with only unconsumed events
        [
            events,
            pd.DataFrame(
                {
                    "user_id": ["u1", "u1", "u3", "u3"],
                    "item_id": ["p2", "a1", "a2", "a2"],
                    "event": ["follow", "stream", "follow", "follow"],
                    "timestamp": [5, 30, 1, 2],
                }
            ),
        ]
    )
    store = UserStore.build(users, events, catalogue)
    consumed_of_code = np.asarray([name == "stream" for name in store.event_names])
    known = KnownHistories.build(store, consumed_of_code)
    names = lambda idx: list(catalogue.item_ids[idx])  # noqa: E731
    assert names(known.recent(0)) == ["a1", "p2", "a2", "p1"]  # u1: a1 and p2 at 30, a2 and p1 at 20
    assert names(known.consumed(0)) == ["a1", "p1", "p2"]
    assert names(known.recent(1)) == ["a1", "p1"] and names(known.consumed(1)) == ["a1"]
    assert names(known.recent(2)) == ["a2"] and known.consumed(2).size == 0
    for u in range(len(store)):
        ev = store.events_of(u)
        assert np.array_equal(known.recent(u), distinct_recent_first(ev.items, ev.timestamps))
        assert np.array_equal(known.consumed(u), np.unique(ev.items[consumed_of_code[ev.event_codes]]))
