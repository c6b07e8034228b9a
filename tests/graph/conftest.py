"""Fabricated run directories for the graph tests (the contract's files, written by hand)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colisten.config import GraphConfig
from colisten.io import write_json_atomic

DAY = 86_400


def items_table(items: list[tuple[str, str]]) -> pa.Table:
    """(item_id, item_type) pairs -> data/items.parquet content, sorted as the contract says."""
    rows = sorted(items, key=lambda r: (r[1], r[0]))
    return pa.table(
        {
            "item_id": [r[0] for r in rows],
            "item_type": [r[1] for r in rows],
            "title": [f"title {r[0]}" for r in rows],
            "description": ["" for _ in rows],
        }
    )


def history_table(events: list[tuple]) -> pa.Table:
    """(user_id, item_id, timestamp[, event]) tuples -> history rows (event defaults to stream)."""
    return pa.table(
        {
            "user_id": pa.array([e[0] for e in events], pa.string()),
            "item_id": pa.array([e[1] for e in events], pa.string()),
            "event": pa.array([e[3] if len(e) > 3 else "stream" for e in events], pa.string()),
            "timestamp": pa.array([int(e[2]) for e in events], pa.int64()),
            "duration_s": pa.array([60.0 for _ in events], pa.float64()),
        }
    )


def write_run(
    root: Path,
    items: list[tuple[str, str]],
    history: list[tuple],
    holdout: list[tuple] = (),
    cut: int | None = None,
) -> Path:
    """A run directory holding data/items.parquet and split/{history,holdout}.parquet (+ split.json)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "split").mkdir(parents=True, exist_ok=True)
    pq.write_table(items_table(items), root / "data" / "items.parquet")
    pq.write_table(history_table(list(history)), root / "split" / "history.parquet")
    pq.write_table(history_table(list(holdout)), root / "split" / "holdout.parquet")
    if cut is not None:
        write_json_atomic(
            root / "split" / "split.json", {"history_start": 0, "cut": cut, "end": cut + 14 * DAY}
        )
    return root


def reference_edges(
    items: list[tuple[str, str]], history: list[tuple], settings: GraphConfig, cut: int | None = None
) -> dict[tuple[str, str], int]:
    """The edge rule written the slow, obvious way: {(src_id, dst_id): weight}, src before dst; the
    weight is the co-count, or its normalisation by the items' user counts (settings.association)."""
    order = sorted(items, key=lambda r: (r[1], r[0]))
    gidx = {item_id: i for i, (item_id, _t) in enumerate(order)}
    itype = dict(items)
    latest: dict[str, dict[str, int]] = defaultdict(dict)
    for e in history:
        user, item, ts = e[0], e[1], int(e[2])
        event = e[3] if len(e) > 3 else "stream"
        if settings.edge_events is not None and event not in settings.edge_events:
            continue
        if (cut is not None and ts >= cut) or item not in gidx:
            continue
        latest[user][item] = max(ts, latest[user].get(item, ts))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    users_of: dict[str, int] = defaultdict(int)  # users per item, after the per-user cap
    for per_item in latest.values():
        kept = sorted(per_item.items(), key=lambda kv: (-kv[1], gidx[kv[0]]))
        if settings.max_items_per_user is not None:
            kept = kept[: settings.max_items_per_user]
        for i, _ in kept:
            users_of[i] += 1
        for (i, ti), (j, tj) in itertools.combinations(kept, 2):
            if settings.window_days is not None and abs(ti - tj) > settings.window_days * DAY:
                continue
            a, b = sorted((i, j), key=gidx.get)
            counts[(a, b)] += 1
    n_users = sum(1 for per_item in latest.values() if per_item)

    def weight(pair: tuple[str, str], c: int) -> float:
        na, nb = users_of[pair[0]], users_of[pair[1]]
        if settings.association == "cosine":
            return c / (math.sqrt(na * nb) + settings.shrinkage)
        if settings.association == "jaccard":
            return c / (na + nb - c + settings.shrinkage)
        if settings.association == "ppmi":
            return math.log(c * n_users / (na * nb))
        return float(c)

    edges = {k: weight(k, v) for k, v in counts.items() if v >= settings.min_cocount}
    if settings.association == "ppmi":
        edges = {
            (a, b): w for (a, b), w in edges.items() if counts[(a, b)] * n_users > users_of[a] * users_of[b]
        }
    if settings.top_k is not None:
        by_end: dict[tuple[str, str], list] = defaultdict(list)
        for (a, b), c in edges.items():
            by_end[(a, itype[b])].append((-c, gidx[b], (a, b)))
            by_end[(b, itype[a])].append((-c, gidx[a], (a, b)))
        keep = set()
        for ranked in by_end.values():
            keep.update(e for _c, _g, e in sorted(ranked)[: settings.top_k])
        edges = {k: v for k, v in edges.items() if k in keep}
    return edges


@pytest.fixture
def graph_helpers() -> SimpleNamespace:
    """The helpers above, for tests (importlib mode cannot import conftest directly)."""
    return SimpleNamespace(
        items_table=items_table,
        history_table=history_table,
        write_run=write_run,
        reference_edges=reference_edges,
        DAY=DAY,
    )
