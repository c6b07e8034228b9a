"""Property: on random messy tables, every input row is either accepted or quarantined exactly
once, with the reason a plain-Python reference of the contract gives."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from colisten.config import Settings
from colisten.data.contract import validate_dataset

# raw timestamp -> epoch seconds it must normalise to (None = bad_timestamp)
TIMESTAMPS = {
    "2024-01-01": 1704067200,
    "2024-01-01T00:00:00Z": 1704067200,
    "1704067200": 1704067200,
    "1704070800.5": 1704070800,
    "2024-01-01T02:00:00+01:00": 1704070800,
    "2024-01-01 01:00:00": 1704070800,
    "garbage": None,
    "": None,
    None: None,
    "99999999999999": None,
}
DURATIONS = {"": None, None: None, "1.5": 1.5, "2": 2.0}
IDS = ["a", "b", "c", "", " ", None]
item_rows = st.lists(
    st.tuples(st.sampled_from(IDS), st.sampled_from(["audiobook", "podcast", "", None]), st.text(max_size=5)),
    min_size=1,
    max_size=8,
)
interaction_rows = st.lists(
    st.tuples(
        st.sampled_from(["u1", "u2", "", None]),
        st.sampled_from(["a", "b", "c", "zz", "", None]),
        st.sampled_from(["stream", "STREAM", " follow", "listen", "", None]),
        st.sampled_from(list(TIMESTAMPS)),
        st.sampled_from(list(DURATIONS)),
    ),
    min_size=0,
    max_size=25,
)


def _empty(v: str | None) -> bool:
    return v is None or v.strip() == ""


def reference(items, parts):
    """Expected {(table, source_file, row): reason} and accepted counts, straight from the contract."""
    expected, accepted_items, n_items = {}, set(), 0
    for row, (item_id, item_type, _title) in enumerate(items, 1):
        key = ("items", "items.csv", row)
        if _empty(item_id):
            expected[key] = "empty_id"
        elif _empty(item_type):
            expected[key] = "empty_item_type"
        elif item_id in accepted_items:
            expected[key] = "duplicate_item_id"
        else:
            accepted_items.add(item_id)
            n_items += 1
    seen, n_inter = set(), 0
    events = set(Settings().data.events)
    for name, rows in parts:
        for row, (user, item, event, ts, dur) in enumerate(rows, 1):
            key = ("interactions", name, row)
            norm = None if event is None else event.strip().lower()
            dedup = (user, item, norm, TIMESTAMPS[ts], DURATIONS[dur])
            if _empty(user) or _empty(item):
                expected[key] = "empty_id"
            elif TIMESTAMPS[ts] is None:
                expected[key] = "bad_timestamp"
            elif norm not in events:
                expected[key] = "unknown_event"
            elif item not in accepted_items:
                expected[key] = "unknown_item"
            elif dedup in seen:
                expected[key] = "duplicate"
            else:
                seen.add(dedup)
                n_inter += 1
    return expected, n_items, n_inter


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=item_rows,
    parts=st.lists(interaction_rows, min_size=1, max_size=2),
    fmt=st.sampled_from(["csv", "parquet"]),
)
def test_accepted_plus_quarantined_equals_input(items, parts, fmt):
    header = ["user_id", "item_id", "event", "timestamp", "duration_s"]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "in"
        (data / "interactions").mkdir(parents=True)
        _write_csv(data / "items.csv", ["item_id", "item_type", "title"], items)
        names = []
        for i, rows in enumerate(parts):
            name = f"interactions/part-{i}.{fmt}"
            names.append(name)
            if fmt == "csv":
                _write_csv(data / name, header, rows)
            else:
                cols = {h: pa.array([r[j] for r in rows], pa.string()) for j, h in enumerate(header)}
                pq.write_table(pa.table(cols), data / name)
        out = Path(tmp) / "out"
        report = validate_dataset(data, Settings(), out_dir=out)

        expected, n_items, n_inter = reference(items, list(zip(names, parts, strict=True)))
        q = pd.read_parquet(out / "quarantine.parquet")
        got = {
            (t, f, int(r)): reason
            for t, f, r, reason in zip(q.table, q.source_file, q.row, q.reason, strict=True)
        }
        assert len(got) == len(q)  # no input row quarantined twice
        assert got == expected
        n_in = sum(len(p) for p in parts)
        assert len(pd.read_parquet(out / "interactions.parquet")) == n_inter
        assert len(pd.read_parquet(out / "items.parquet")) == n_items
        for name, rows_in, table_rows in (("interactions", n_in, n_inter), ("items", len(items), n_items)):
            c = report.tables[name]
            assert c.rows_in == rows_in and c.accepted == table_rows
            assert c.accepted + c.quarantined == c.rows_in
