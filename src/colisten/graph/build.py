"""Build the item-item co-listening graph (PAPER.md §1) from the history window, with DuckDB.

Two items are linked when at least one user interacted with both (the paper's rule); the opt-in
extras of `GraphConfig` (event filter, per-user cap, time window, minimum co-count, top-k) are
applied in the same query, so the Spark backend (`colisten.graph.spark`) can reproduce it exactly.
The pair counting runs inside DuckDB, which spills to disk past `memory_limit`; only the final CSR
arrays are held in numpy.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colisten import artifacts
from colisten.config import GraphConfig
from colisten.errors import ColistenError
from colisten.graph.sql import SECONDS_PER_DAY, association_keep, association_sql, type_of
from colisten.graph.store import CSR, CoListeningGraph, relation_name

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

HISTORY_COLUMNS = ("user_id", "item_id", "event", "timestamp")
INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "HUGEINT",
}

Progress = Callable[[str], None]


class GraphInputError(ColistenError):
    """History or items that cannot make a co-listening graph (empty window, bad catalogue...)."""


@dataclass
class GraphBuild:
    """What a build produces: the CSR graph, the node table, the edge list on disk, and counts."""

    graph: CoListeningGraph
    nodes: pa.Table  # item_id, item_type, global_index, type_index (data/items order)
    edges_path: Path  # Parquet: src, dst (item ids), relation, weight; each unordered pair once
    stats: dict[str, Any] = field(default_factory=dict)

    def edges(self) -> pa.Table:
        """The edge list as an Arrow table (reads `edges_path`)."""
        return pq.ParquetFile(self.edges_path).read()


# --- inputs --------------------------------------------------------------------------------------
def node_table(items: pa.Table | pd.DataFrame, source: str = "items") -> pa.Table:
    """Nodes in the global item order: item_id, item_type, global_index, type_index.

    The contract sorts `data/items.parquet` by (item_type, item_id) and every per-item array relies
    on that order, so an unsorted or duplicated catalogue is refused rather than silently re-sorted.
    """
    import pyarrow.compute as pc

    if not isinstance(items, pa.Table):
        items = pa.Table.from_pandas(items, preserve_index=False)
    for col in ("item_id", "item_type"):
        if col not in items.column_names:
            raise GraphInputError(f"{source}: column '{col}' is missing (has {items.column_names})")
    ids = items.column("item_id").cast(pa.string()).combine_chunks()
    types = items.column("item_type").cast(pa.string()).combine_chunks()
    if len(ids) == 0:
        raise GraphInputError(f"{source}: the item catalogue is empty; the graph needs items as nodes")
    empty = pc.or_(pc.is_null(ids), pc.is_null(types)).to_numpy(zero_copy_only=False)
    if empty.any():
        raise GraphInputError(f"{source}: row {int(np.argmax(empty)) + 1} has an empty item_id or item_type")
    table = pa.table({"item_type": types, "item_id": ids})
    order = pc.sort_indices(table, sort_keys=[("item_type", "ascending"), ("item_id", "ascending")])
    out_of_place = order.to_numpy() != np.arange(len(ids))
    if out_of_place.any():
        row = int(np.argmax(out_of_place))
        raise GraphInputError(
            f"{source}: row {row + 1} (item_id {ids[row].as_py()!r}) is out of order: data/items.parquet "
            "must be sorted by (item_type, item_id)"
        )
    if pc.count_distinct(ids).as_py() != len(ids):
        row = int(np.argmax(ids.to_pandas().duplicated().to_numpy()))
        raise GraphInputError(f"{source}: row {row + 1}: duplicate item_id {ids[row].as_py()!r}")
    global_index = np.arange(len(ids), dtype=np.int64)
    # Rows of a type are contiguous; a type's first row is where its type index restarts at 0.
    first = np.r_[True, pc.not_equal(types[1:], types[:-1]).to_numpy(zero_copy_only=False)]
    type_start = np.maximum.accumulate(np.where(first, global_index, 0))
    return pa.table(
        {
            "item_id": ids,
            "item_type": types,
            "global_index": pa.array(global_index),
            "type_index": pa.array(global_index - type_start),
        }
    )


def _history_relation(
    con: duckdb.DuckDBPyConnection, history: str | Path | pa.Table | pd.DataFrame, source: str
) -> int:
    """Expose the history as view `history_src`; returns its row count. Checks the columns."""
    if isinstance(history, (str, Path)):
        path = Path(history)
        if not path.exists():
            raise GraphInputError(f"{path} is missing: run `colisten split` first")
        pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        literal = pattern.replace("'", "''")
        con.execute(f"CREATE VIEW history_src AS SELECT * FROM read_parquet('{literal}')")
    else:
        table = (
            history if isinstance(history, pa.Table) else pa.Table.from_pandas(history, preserve_index=False)
        )
        con.register("history_arrow", table)
        con.execute("CREATE VIEW history_src AS SELECT * FROM history_arrow")
    described = con.execute("DESCRIBE history_src").fetchall()
    columns, column_types = [r[0] for r in described], [r[1] for r in described]
    missing = [c for c in HISTORY_COLUMNS if c not in columns]
    if missing:
        raise GraphInputError(f"{source}: column(s) {missing} missing (has {columns})")
    ts_type = dict(zip(columns, column_types, strict=True))["timestamp"]
    if ts_type not in INTEGER_TYPES:
        raise GraphInputError(
            f"{source}: column 'timestamp' is {ts_type}, expected integer epoch seconds (the split writes "
            "int64); run `colisten validate` and `colisten split` on the raw data"
        )
    n = con.execute("SELECT count(*) FROM history_src").fetchall()[0][0]
    if n == 0:
        raise GraphInputError(
            f"{source}: the history window is empty (0 events), so no item can be linked; check the "
            "input interactions and the split's history_days"
        )
    return int(n)


def _connect(settings: GraphConfig, work_dir: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    spill = work_dir / "duckdb-spill"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": settings.memory_limit,
        "temp_directory": str(spill),
        # Row order inside a table is irrelevant here; dropping it lets operators stream and spill.
        "preserve_insertion_order": False,
    }
    if settings.threads:
        config["threads"] = settings.threads
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as e:
        raise GraphInputError(f"graph settings: DuckDB refused them ({e}); check [graph] memory_limit") from e
    con.execute("SET enable_progress_bar = false")  # the CLI shows its own progress
    return con


def _sql_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


# --- the edge rule (DuckDB) -----------------------------------------------------------------------
def duckdb_pairs(
    con: duckdb.DuckDBPyConnection, settings: GraphConfig, cut: int | None, type_starts: list[int]
) -> dict[str, int]:
    """Create table `pairs(src, dst, cocount)` (global item indices, src < dst, so each unordered
    pair once) from view `history_src` and table `nodes`. `type_starts` = first global index of
    each item type (types are contiguous in the global order), used by `top_k`.

    Steps (the same in the Spark backend): keep edge events before the cut and of known items;
    one row per (user, item) with its latest timestamp (duplicates count once); keep each user's
    most recent `max_items_per_user` items; self-join on user; count users per pair; apply
    `min_cocount`, then `top_k`.
    """
    where = ["h.user_id IS NOT NULL"]
    if settings.edge_events is not None:
        where.append(f"h.event IN ({_sql_list(settings.edge_events)})")
    if cut is not None:
        where.append(f"h.timestamp < {int(cut)}")
    con.execute(
        f"""
        CREATE TEMP TABLE user_items AS
        SELECT h.user_id, n.global_index::INTEGER AS item, max(h.timestamp)::BIGINT AS ts
        FROM history_src h JOIN nodes n ON n.item_id = h.item_id
        WHERE {" AND ".join(where)}
        GROUP BY h.user_id, n.global_index
        """
    )
    counts = {"user_item_pairs": _count(con, "user_items")}
    cap = settings.max_items_per_user
    if cap is not None:
        # Rank only the heavy users' items: a window over every user would sort the whole table.
        con.execute(
            "CREATE TEMP TABLE heavy_users AS "
            f"SELECT user_id FROM user_items GROUP BY user_id HAVING count(*) > {cap}"
        )
        counts["users_capped"] = _count(con, "heavy_users")
    if cap is not None and counts["users_capped"] > 0:
        con.execute(
            f"""
            CREATE TEMP TABLE kept_items AS
            SELECT * FROM user_items ANTI JOIN heavy_users USING (user_id)
            UNION ALL
            SELECT * FROM (
                SELECT user_id, item, ts FROM user_items SEMI JOIN heavy_users USING (user_id)
                QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, item) <= {cap}
            )
            """
        )
        counts["user_item_pairs_after_cap"] = _count(con, "kept_items")
    else:
        con.execute("CREATE TEMP VIEW kept_items AS SELECT * FROM user_items")
        counts["user_item_pairs_after_cap"] = counts["user_item_pairs"]
    window = ""
    if settings.window_days is not None:
        window = f"AND abs(a.ts - b.ts) <= {settings.window_days * SECONDS_PER_DAY}"
    having = f"HAVING count(*) >= {settings.min_cocount}" if settings.min_cocount > 1 else ""
    pairs = "pairs" if settings.top_k is None else "pairs_all"
    con.execute(
        "CREATE TEMP TABLE item_users AS SELECT item, count(*)::DOUBLE AS n FROM kept_items GROUP BY item"
    )
    (n_users,) = con.execute("SELECT count(DISTINCT user_id) FROM kept_items").fetchone()
    ends = (settings.association, "c.cocount", "ns.n", "nd.n", n_users)
    weight, keep = association_sql(*ends, settings.shrinkage), association_keep(*ends)
    con.execute(
        f"""
        CREATE TEMP TABLE {pairs} AS
        WITH counted AS (
            SELECT a.item AS src, b.item AS dst, count(*)::INTEGER AS cocount
            FROM kept_items a JOIN kept_items b ON a.user_id = b.user_id AND a.item < b.item {window}
            GROUP BY a.item, b.item
            {having}
        )
        SELECT c.src, c.dst, c.cocount, ({weight})::DOUBLE AS weight
        FROM counted c JOIN item_users ns ON ns.item = c.src JOIN item_users nd ON nd.item = c.dst
        WHERE {keep}
        """
    )
    con.execute("DROP TABLE item_users")
    if settings.top_k is not None:
        counts["edges_before_top_k"] = _count(con, "pairs_all")
        con.execute(
            f"""
            CREATE TEMP TABLE pairs AS
            WITH ends AS (
                SELECT src AS node, dst AS other, src, dst, weight FROM pairs_all
                UNION ALL
                SELECT dst, src, src, dst, weight FROM pairs_all
            ), ranked AS (
                SELECT src, dst FROM ends
                QUALIFY row_number() OVER (
                    PARTITION BY node, {type_of("other", type_starts)} ORDER BY weight DESC, other
                ) <= {settings.top_k}
            )
            SELECT p.* FROM pairs_all p SEMI JOIN ranked r ON p.src = r.src AND p.dst = r.dst
            """
        )
        con.execute("DROP TABLE pairs_all")
    # Only `pairs` is needed from here on: free DuckDB's memory for the CSR arrays.
    kept_kind = "TABLE" if cap is not None and counts["users_capped"] > 0 else "VIEW"
    con.execute(f"DROP {kept_kind} kept_items")
    con.execute("DROP TABLE IF EXISTS heavy_users")
    con.execute("DROP TABLE user_items")
    return counts


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


# --- public entry point ---------------------------------------------------------------------------
def build_co_listening_graph(
    history: str | Path | pa.Table | pd.DataFrame,
    items: pa.Table | pd.DataFrame,
    settings: GraphConfig,
    work_dir: str | Path,
    *,
    cut: int | None = None,
    progress: Progress | None = None,
    history_name: str | None = None,
) -> GraphBuild:
    """Build the co-listening graph of `items` from `history` (the history window only).

    `history` is a Parquet path (file or folder of parts) or a table with user_id, item_id, event,
    timestamp (epoch s). `items` is `data/items.parquet`'s content (sorted by item_type, item_id);
    every item becomes a node, interacted with or not. Events at or after `cut` (the hold-out) are
    ignored. Intermediate files and the output edge list go to `work_dir`.
    """
    timer = _StepTimer(progress)
    say = timer.step
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    source = history_name or (str(history) if isinstance(history, (str, Path)) else "history")
    say("reading items")
    nodes = node_table(items)
    type_names = nodes.column("item_type").to_numpy(zero_copy_only=False)
    types, per_type = np.unique(type_names, return_counts=True)
    types = [str(t) for t in types]
    num_nodes = {t: int(n) for t, n in zip(types, per_type, strict=True)}
    type_starts = np.r_[0, np.cumsum(per_type)[:-1]].astype(int).tolist()

    import duckdb

    con = _connect(settings, work)
    try:
        events_in = _history_relation(con, history, source)
        type_ord = pa.array(np.searchsorted(types, type_names).astype(np.int16))
        con.register("nodes_arrow", nodes.append_column("type_ord", type_ord))
        con.execute("CREATE TEMP TABLE nodes AS SELECT * FROM nodes_arrow")
        con.unregister("nodes_arrow")

        say("checking history")
        stats = _input_counts(con, settings, cut, source, events_in)
        stats["engine"] = settings.engine
        say("pairing items")
        if settings.engine == "spark":
            from colisten.graph.spark import spark_pairs

            history_path = _history_for_spark(history, work)
            stats.update(spark_pairs(history_path, nodes, type_starts, settings, work, cut))
            pairs_glob = str(work / "spark-pairs" / "*.parquet").replace("'", "''")
            con.execute(f"CREATE TEMP TABLE pairs AS SELECT * FROM read_parquet('{pairs_glob}')")
        else:
            stats.update(duckdb_pairs(con, settings, cut, type_starts))

        say("building CSR arrays and the edge list")
        edges_path = artifacts.GRAPH_EDGES.within(work)
        graph = _csr_and_edge_list(con, nodes, types, num_nodes, settings.keep_weights, edges_path)
    except duckdb.OutOfMemoryException as e:
        raise GraphInputError(
            f"DuckDB ran out of memory even with spilling to {work / 'duckdb-spill'} ([graph] "
            f"memory_limit = {settings.memory_limit!r}); raise memory_limit or free disk space there. "
            f"DuckDB said: {str(e).splitlines()[0]}"
        ) from e
    finally:
        con.close()
        shutil.rmtree(work / "duckdb-spill", ignore_errors=True)
    stats["step_seconds"] = timer.finish()

    stats["nodes_per_type"] = dict(num_nodes)
    stats["edges_per_relation"] = {rel: graph.num_undirected_edges(rel) for rel in graph.relations()}
    stats["edges"] = sum(stats["edges_per_relation"].values())
    stats["isolated_nodes_per_type"] = isolated_nodes_per_type(graph)
    stats["warnings"] = _warnings(stats, types)
    return GraphBuild(graph=graph, nodes=nodes, edges_path=edges_path, stats=stats)


class _StepTimer:
    """Reports each step to `progress` and times it (graph.json keeps the timings)."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self.current: str | None = None
        self.started = time.perf_counter()

    def step(self, name: str) -> None:
        self._close()
        self.current = name
        if self.progress is not None:
            self.progress(name)

    def _close(self) -> None:
        now = time.perf_counter()
        if self.current is not None:
            self.seconds[self.current] = round(now - self.started, 3)
        self.current, self.started = None, now

    def finish(self) -> dict[str, float]:
        self._close()
        return self.seconds


def _input_counts(
    con: duckdb.DuckDBPyConnection, settings: GraphConfig, cut: int | None, source: str, events_in: int
) -> dict[str, Any]:
    """Count what the filters keep and stop with a clear message when nothing is left."""
    event_filter = (
        "TRUE" if settings.edge_events is None else f"h.event IN ({_sql_list(settings.edge_events)})"
    )
    cut_filter = "TRUE" if cut is None else f"h.timestamp < {int(cut)}"
    row = con.execute(
        f"""
        SELECT count(*) FILTER (WHERE {event_filter}),
               count(*) FILTER (WHERE {event_filter} AND {cut_filter}),
               count(*) FILTER (WHERE {event_filter} AND {cut_filter} AND n.item_id IS NOT NULL
                                AND h.user_id IS NOT NULL),
               count(DISTINCT n.type_ord) FILTER (WHERE {event_filter} AND {cut_filter})
        FROM history_src h LEFT JOIN nodes n ON n.item_id = h.item_id
        """
    ).fetchall()[0]
    of_events, before_cut, used, types_seen = (int(x) for x in row)
    if of_events == 0:
        present = [r[0] for r in con.execute("SELECT DISTINCT event FROM history_src ORDER BY 1").fetchall()]
        raise GraphInputError(
            f"{source}: none of the {events_in} history events is one of [graph] edge_events "
            f"{settings.edge_events} (events present: {present})"
        )
    if before_cut == 0:
        raise GraphInputError(f"{source}: every history event is at or after the hold-out cut ({cut})")
    if used == 0:
        raise GraphInputError(
            f"{source}: none of the history's items is in the item catalogue (data/items.parquet); "
            "were they built from different inputs?"
        )
    return {
        "events_in": events_in,
        "events_not_edge_events": events_in - of_events,
        "events_at_or_after_cut": of_events - before_cut,
        "events_unknown_item": before_cut - used,
        "events_used": used,
        "item_types_in_history": types_seen,
    }


def _history_for_spark(history: str | Path | pa.Table | pd.DataFrame, work: Path) -> Path:
    if isinstance(history, (str, Path)):
        return Path(history)
    table = history if isinstance(history, pa.Table) else pa.Table.from_pandas(history, preserve_index=False)
    path = work / "history-for-spark.parquet"
    pq.write_table(table, path)
    return path


EDGE_LIST_BATCH = 1 << 21  # rows per edges.parquet row group


def _csr_and_edge_list(
    con: duckdb.DuckDBPyConnection,
    nodes: pa.Table,
    types: list[str],
    num_nodes: dict[str, int],
    keep_weights: bool,
    path: Path,
) -> CoListeningGraph:
    """Turn table `pairs` into one CSR per directed (SRC, DST) type pair and into edges.parquet.

    One relation at a time (bounded memory). CSR rows come from a linear-time counting sort
    (scipy's COO -> CSR) rather than a global sort, so the CSR is identical whatever order the
    engine produced the pairs in. edges.parquet is grouped by relation; within a relation its row
    order is unspecified (sorting 10M+ string pairs would cost more than the whole join). It is
    written by a background thread while the CSR arrays are built. Every pair of types in the
    catalogue gets its relation, even with no edges, so the HGNN sees a fixed schema.
    """
    from concurrent.futures import ThreadPoolExecutor

    starts = np.r_[0, np.cumsum([num_nodes[t] for t in types])].astype(int).tolist()
    ids = nodes.column("item_id").combine_chunks()
    csr: dict[tuple[str, str], CSR] = {}
    tmp = path.with_name(f".{path.name}.tmp")
    # src/dst are written as dictionary arrays over the item ids (no string copies); without the
    # stored Arrow schema, readers see plain string columns, as the contract says.
    with (
        pq.ParquetWriter(tmp, EDGE_LIST_SCHEMA, compression="zstd", store_schema=False) as writer,
        ThreadPoolExecutor(max_workers=1) as background,
    ):
        pending = []
        for i, a in enumerate(types):
            for j in range(i, len(types)):
                b = types[j]
                u, v, w = _relation_pairs(con, (starts[i], starts[i + 1]), (starts[j], starts[j + 1]))
                if not keep_weights:
                    w = np.ones_like(w)
                batch = _edge_list_batch(
                    u, v, w, ids[starts[i] : starts[i + 1]], ids[starts[j] : starts[j + 1]]
                )
                pending.append(background.submit(_write_edge_batch, writer, batch, relation_name(a, b)))
                if a == b:
                    csr[(a, a)] = _counting_sort_csr(
                        np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([w, w]), num_nodes[a]
                    )
                else:
                    csr[(a, b)] = _counting_sort_csr(u, v, w, num_nodes[a])
                    csr[(b, a)] = _counting_sort_csr(v, u, w, num_nodes[b])
                del u, v, w, batch
        for job in pending:
            job.result()  # re-raises a failed write here
    os.replace(tmp, path)
    return CoListeningGraph(num_nodes=dict(num_nodes), csr=csr)


EDGE_LIST_SCHEMA = pa.schema(
    [
        ("src", pa.dictionary(pa.int32(), pa.string())),
        ("dst", pa.dictionary(pa.int32(), pa.string())),
        ("relation", pa.dictionary(pa.int8(), pa.string())),
        ("weight", pa.float32()),
    ]
)


def _edge_list_batch(
    u: np.ndarray, v: np.ndarray, w: np.ndarray, src_ids: pa.Array, dst_ids: pa.Array
) -> tuple[pa.Array, pa.Array, pa.Array]:
    return (
        pa.DictionaryArray.from_arrays(pa.array(u), src_ids),
        pa.DictionaryArray.from_arrays(pa.array(v), dst_ids),
        pa.array(w),
    )


def _write_edge_batch(
    writer: pq.ParquetWriter, batch: tuple[pa.Array, pa.Array, pa.Array], relation: str
) -> None:
    src, dst, weight = batch
    name = pa.array([relation], pa.string())
    for lo in range(0, len(src), EDGE_LIST_BATCH):
        n = len(src[lo : lo + EDGE_LIST_BATCH])
        table = pa.table(
            {
                "src": src[lo : lo + n],
                "dst": dst[lo : lo + n],
                "relation": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)), name),
                "weight": weight[lo : lo + n],
            },
            schema=EDGE_LIST_SCHEMA,
        )
        writer.write_table(table, row_group_size=EDGE_LIST_BATCH)


def _relation_pairs(
    con: duckdb.DuckDBPyConnection, src_range: tuple[int, int], dst_range: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(type index of src, type index of dst, weight as float32) of the pairs between two
    global-index ranges (two item types)."""
    (s0, s1), (d0, d1) = src_range, dst_range
    table = con.sql(
        f"""SELECT (src - {s0})::INTEGER AS u, (dst - {d0})::INTEGER AS v, weight::FLOAT AS w FROM pairs
            WHERE src >= {s0} AND src < {s1} AND dst >= {d0} AND dst < {d1}"""
    ).to_arrow_table()
    return _column(table, "u", np.int32), _column(table, "v", np.int32), _column(table, "w", np.float32)


def _counting_sort_csr(rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, num_rows: int) -> CSR:
    """CSR with sorted neighbour lists in O(E + n): scipy's COO -> CSR scatter plus per-row sorts."""
    import scipy.sparse as sp

    if rows.size == 0:
        return CSR(np.zeros(num_rows + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    n_cols = int(cols.max()) + 1
    m = sp.csr_matrix((weight, (rows, cols)), shape=(num_rows, n_cols))
    m.sort_indices()
    return CSR(
        indptr=m.indptr.astype(np.int64),
        indices=m.indices.astype(np.int64),
        weight=m.data.astype(np.float32, copy=False),
    )


def _column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    col = table.column(name)
    if col.num_chunks == 0:
        return np.zeros(0, dtype=dtype)
    return np.ascontiguousarray(col.combine_chunks().to_numpy(), dtype=dtype)


def isolated_nodes_per_type(graph: CoListeningGraph) -> dict[str, int]:
    """Items with no co-listening edge of any relation (the HGNN embeds them from text alone)."""
    out = {}
    for t, n in graph.num_nodes.items():
        degree = np.zeros(n, dtype=np.int64)
        for (s, _d), c in graph.csr.items():
            if s == t:
                degree += c.degrees()
        out[t] = int((degree == 0).sum())
    return out


def _warnings(stats: dict[str, Any], types: list[str]) -> list[str]:
    out = []
    if len(types) == 1:
        out.append(
            f"only one item type ({types[0]!r}) in the catalogue: the graph has a single relation and no "
            "cross-type signal for the HGNN"
        )
    elif stats["item_types_in_history"] < len(types):
        out.append(
            f"the history touches {stats['item_types_in_history']} of {len(types)} item types: the others "
            "are all isolated nodes (embedded from text only)"
        )
    for rel, n in stats["edges_per_relation"].items():
        if n == 0 and len(types) > 1:
            out.append(f"relation {rel} has no edges")
    if stats["events_unknown_item"]:
        out.append(f"{stats['events_unknown_item']} history events name items not in the catalogue (ignored)")
    if stats["events_at_or_after_cut"]:
        out.append(f"{stats['events_at_or_after_cut']} history events at or after the cut were ignored")
    capped = stats.get("user_item_pairs", 0) - stats.get("user_item_pairs_after_cap", 0)
    if capped:
        out.append(f"per-user cap dropped {capped} older (user, item) pairs of heavy users")
    return out


__all__ = [
    "GraphBuild",
    "GraphInputError",
    "build_co_listening_graph",
    "duckdb_pairs",
    "isolated_nodes_per_type",
    "node_table",
    "relation_name",
    "type_of",
]
