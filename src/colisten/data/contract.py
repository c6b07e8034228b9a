"""The data contract: check input tables, normalise them, and quarantine bad rows with a reason.

File-level problems (unreadable file, missing column, a column of the wrong type) stop the run
with a message naming file, column and first offending row. Row-level problems go to the
quarantine; accepted + quarantined = input rows for every table, checked on the written files.
All work happens in DuckDB (memory limit, spills to a scratch folder), so 10M+ rows fit in bounded
memory.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings
from colisten.data.sources import (
    DataContractError,
    SourceFile,
    count_rows,
    find_table,
    fingerprint,
    open_source,
    sql_ident,
    sql_str,
)
from colisten.io import write_json_atomic

# Timestamps outside [1970-01-01, 2100-01-01) are row errors: they are almost always epoch
# milliseconds/microseconds or sentinel values, never real listening events.
MIN_EPOCH_S = 0
MAX_EPOCH_S = 4_102_444_800

REASONS = {
    "interactions": ("empty_id", "bad_timestamp", "unknown_event", "unknown_item", "duplicate"),
    "items": ("empty_id", "empty_item_type", "duplicate_item_id"),
    "users": ("empty_id", "duplicate_user_id"),
}


@dataclass(frozen=True)
class Column:
    """One contract column: `kind` decides which physical types are accepted and how they parse."""

    name: str
    kind: str  # id | text | date_text | timestamp | float | int | vector
    required: bool


CONTRACT: dict[str, tuple[Column, ...]] = {
    "interactions": (
        Column("user_id", "id", True),
        Column("item_id", "id", True),
        Column("event", "text", True),
        Column("timestamp", "timestamp", True),
        Column("duration_s", "float", False),
    ),
    "items": (
        Column("item_id", "id", True),
        Column("item_type", "text", True),
        Column("title", "text", True),
        Column("description", "text", False),
        Column("genre", "text", False),
        Column("language", "text", False),
        Column("published_at", "date_text", False),
    ),
    "users": (
        Column("user_id", "id", True),
        Column("age", "int", False),
        Column("country", "text", False),
        Column("taste_vector", "vector", False),
    ),
}

_ALLOWED = {
    "id": ({"string", "integer"}, "a string (or integer) id"),
    "text": ({"string", "integer"}, "a string"),
    "date_text": ({"string", "integer", "temporal"}, "a string or a date"),
    "timestamp": (
        {"string", "integer", "float", "temporal"},
        "an ISO-8601 string, epoch seconds or a timestamp",
    ),
    "float": ({"string", "integer", "float"}, "a number"),
    "int": ({"string", "integer", "float"}, "an integer"),
    "vector": ({"string", "numeric_list"}, "a list of numbers"),
}
_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
RAW_KINDS = ("timestamp", "float", "int", "vector")  # parsed on read: keep the input text too
_NULL_OF_KIND = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "date_text": "VARCHAR",
    "timestamp": "DOUBLE",
    "float": "DOUBLE",
    "int": "INTEGER",
    "vector": "FLOAT[]",
}


def type_category(duckdb_type: str) -> str:
    """Group a DuckDB type name into the categories the contract reasons about."""
    t = duckdb_type.upper().strip()
    if t == "VARCHAR":
        return "string"
    if t in _INTEGER_TYPES:
        return "integer"
    if t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL"):
        return "float"
    if t.startswith("TIMESTAMP") or t == "DATE":
        return "temporal"
    if t.endswith("]"):
        inner = type_category(t[: t.rindex("[")])
        return "numeric_list" if inner in ("integer", "float") else "list"
    if t in ("NULL", '"NULL"'):
        return "null"
    return "other"


# --- report -------------------------------------------------------------------------------------
@dataclass
class TableCounts:
    """Rows in, accepted and quarantined for one input table (accepted + quarantined = rows_in)."""

    files: list[str] = field(default_factory=list)
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class ValidationReport:
    """What `validate` found; saved as RUN/data/validation.json and printed by the CLI."""

    data_dir: str
    fingerprint: str
    tables: dict[str, TableCounts]
    users: int  # rows of data/users.parquet (users table plus users only seen in interactions)
    items_per_type: dict[str, int]
    events: dict[str, int]  # accepted interactions per event
    time_min: int | None
    time_max: int | None
    taste_vector_dim: int | None = None
    warnings: list[str] = field(default_factory=list)
    out_dir: str | None = None
    quarantine_path: str | None = None

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        def iso(t: int | None) -> str | None:
            return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

        return {
            "data_dir": self.data_dir,
            "fingerprint": self.fingerprint,
            "tables": {name: vars(t) for name, t in self.tables.items()},
            "users": self.users,
            "items_per_type": self.items_per_type,
            "events": self.events,
            "time_range": {
                "min": self.time_min,
                "max": self.time_max,
                "min_iso": iso(self.time_min),
                "max_iso": iso(self.time_max),
            },
            "taste_vector_dim": self.taste_vector_dim,
            "warnings": self.warnings,
            "quarantine_path": self.quarantine_path,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ValidationReport:
        return cls(
            data_dir=obj["data_dir"],
            fingerprint=obj["fingerprint"],
            tables={k: TableCounts(**v) for k, v in obj["tables"].items()},
            users=obj["users"],
            items_per_type=obj["items_per_type"],
            events=obj["events"],
            time_min=obj["time_range"]["min"],
            time_max=obj["time_range"]["max"],
            taste_vector_dim=obj.get("taste_vector_dim"),
            warnings=obj.get("warnings", []),
            quarantine_path=obj.get("quarantine_path"),
        )


# --- per-column checks and normalisation ----------------------------------------------------------
def _first_offending(con: Any, f: SourceFile, column: str, condition: str) -> tuple[int, str] | None:
    row = con.execute(
        f"SELECT _row, CAST({sql_ident(column)} AS VARCHAR) FROM {f.relation} "
        f"WHERE {condition} ORDER BY _row LIMIT 1"
    ).fetchone()
    return None if row is None else (int(row[0]), row[1])


def _fail(f: SourceFile, column: str, what: str, first: tuple[int, str]) -> DataContractError:
    value = first[1] if first[1] is None or len(first[1]) <= 80 else first[1][:77] + "..."
    return DataContractError(
        f"{f.path}: column '{column}' {what}; first offending row {first[0]} (1-based data row): {value!r}"
    )


def _parsed(kind: str, category: str, c: str) -> str:
    """SQL for the parsed value of column `c` (before validity rules), by contract kind."""
    if kind in ("id", "text", "date_text"):
        return c if category == "string" else f"CAST({c} AS VARCHAR)"
    if kind == "timestamp":  # seconds since the epoch, DOUBLE; naive times are UTC (session TZ)
        if category == "string":
            return f"coalesce(try_cast(trim({c}) AS DOUBLE), epoch(try_cast(trim({c}) AS TIMESTAMPTZ)))"
        if category == "temporal":
            return f"epoch(CAST({c} AS TIMESTAMPTZ))"
        return f"CAST({c} AS DOUBLE)"
    if kind in ("float", "int"):
        return (
            f"try_cast(nullif(trim({c}), '') AS DOUBLE)" if category == "string" else f"CAST({c} AS DOUBLE)"
        )
    if kind == "vector":
        return (
            f"try_cast(nullif(trim({c}), '') AS DOUBLE[])"
            if category == "string"
            else f"CAST({c} AS DOUBLE[])"
        )
    raise ValueError(kind)


def _bad_value(kind: str, category: str, c: str) -> str | None:
    """SQL condition for a value that makes the whole column unusable (file-level error)."""
    present = f"nullif(trim({c}), '') IS NOT NULL" if category == "string" else f"{c} IS NOT NULL"
    p = _parsed(kind, category, c)
    if kind == "float" and category == "string":
        return f"{present} AND {p} IS NULL"
    if kind == "int" and category != "integer":
        return (
            f"{present} AND ({p} IS NULL OR (NOT isnan({p}) AND "
            f"(NOT isfinite({p}) OR {p} <> floor({p}) OR abs({p}) > 2147483647)))"
        )
    if kind == "int":
        return f"{present} AND abs(CAST({c} AS DOUBLE)) > 2147483647"
    if kind == "vector":
        # a null element (list_count skips nulls) or a non-finite one (the sum is not finite)
        return (
            f"{present} AND ({p} IS NULL OR list_count({p}) < len({p}) "
            f"OR NOT isfinite(coalesce(list_sum({p}), 0)))"
        )
    return None


def _normalised(kind: str, p: str) -> str:
    """SQL for the stored value given the parsed one."""
    if kind == "float":
        return f"CASE WHEN isfinite({p}) THEN {p} END"  # NaN (pandas' missing) -> null
    if kind == "int":
        return f"CASE WHEN isfinite({p}) THEN CAST({p} AS INTEGER) END"
    if kind == "vector":
        return f"CAST({p} AS FLOAT[])"
    return p


def _column_sql(con: Any, f: SourceFile, col: Column) -> tuple[str, str]:
    """(normalised SQL, raw-as-text SQL) for one contract column of one file, after the
    file-level checks; a missing optional column is NULL. Text kinds are stored unchanged (cast to
    VARCHAR), so only the parsed kinds (RAW_KINDS) need a separate raw column."""
    if col.name not in f.columns:
        if col.required:
            found = ", ".join(f.columns) or "none"
            raise DataContractError(
                f"{f.path}: missing required column '{col.name}' (columns found: {found})"
            )
        return f"CAST(NULL AS {_NULL_OF_KIND[col.kind]})", "CAST(NULL AS VARCHAR)"
    c = sql_ident(col.name)
    category = type_category(f.columns[col.name])
    allowed, description = _ALLOWED[col.kind]
    if category not in allowed:
        first = _first_offending(con, f, col.name, f"{c} IS NOT NULL")
        if first is not None:
            raise _fail(f, col.name, f"has type {f.columns[col.name]}, expected {description}", first)
        return f"CAST(NULL AS {_NULL_OF_KIND[col.kind]})", "CAST(NULL AS VARCHAR)"  # all null
    bad = _bad_value(col.kind, category, c)
    if bad is not None:
        first = _first_offending(con, f, col.name, bad)
        if first is not None:
            raise _fail(f, col.name, f"must be {description}", first)
    return _normalised(col.kind, _parsed(col.kind, category, c)), f"CAST({c} AS VARCHAR)"


def _file_select(con: Any, table: str, index: int, f: SourceFile) -> str:
    """One file's rows as `_file, _row, <col>[, <col>__raw], ...` in the contract's column order."""
    parts = [f"{index} AS _file", "_row"]
    for col in CONTRACT[table]:
        value, raw = _column_sql(con, f, col)
        parts.append(f"{value} AS {sql_ident(col.name)}")
        if col.kind in RAW_KINDS:
            parts.append(f"{raw} AS {sql_ident(col.name + '__raw')}")
    return f"SELECT {', '.join(parts)} FROM {f.relation}"


def _raw_json(table: str) -> str:
    """The quarantine's `raw`: the row's contract columns as the input had them (as text)."""
    values = [
        f"'{c.name}', {sql_ident(c.name + '__raw') if c.kind in RAW_KINDS else sql_ident(c.name)}"
        for c in CONTRACT[table]
    ]
    return "json_object(" + ", ".join(values) + ")"


def _empty(c: str) -> str:
    return f"({c} IS NULL OR trim({c}) = '')"


# --- the validation ------------------------------------------------------------------------------
def connect(settings: Settings, work_dir: Path) -> Any:
    """An in-memory DuckDB connection with the data section's limits; past memory_limit its
    tables and operators spill to `work_dir`, so memory stays bounded."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {sql_str(settings.data.memory_limit)}")
    if settings.data.threads:
        con.execute(f"SET threads = {int(settings.data.threads)}")
    con.execute(f"SET temp_directory = {sql_str(str(work_dir / 'spill'))}")
    con.execute("SET preserve_insertion_order = true")  # CSV rowid = file row - 1
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC
    return con


def validate_dataset(
    data_dir: str | Path,
    settings: Settings,
    out_dir: str | Path | None = None,
    *,
    quarantine_path: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Check and normalise an input directory.

    With `out_dir` (normally RUN/data) the `data/` artifacts of docs/architecture.md are written
    there (temp name + rename). `quarantine_path` overrides where the quarantine goes; without
    either, only the report is kept. Raises DataContractError for file-level problems.
    """
    import duckdb

    say = progress or (lambda _msg: None)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataContractError(f"data directory not found: {data_dir}")
    sources = {
        "interactions": find_table(data_dir, "interactions"),
        "items": find_table(data_dir, "items"),
        "users": find_table(data_dir, "users", required=False),
    }
    fp = fingerprint([f for files in sources.values() for f in files])
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=".validate-", dir=out) as tmp:
        work = Path(tmp)
        con = connect(settings, work)
        try:
            try:
                report, written = _validate(con, sources, settings, work, say)
            except duckdb.Error as e:  # e.g. a Parquet page that is corrupt past its footer
                raise DataContractError(f"{data_dir}: cannot read the input: {e}") from e
        finally:
            con.close()
        report.data_dir = str(data_dir)
        report.fingerprint = fp
        if out is not None:
            for name, path in written.items():
                os.replace(path, out / name)
            report.out_dir = str(out)
            report.quarantine_path = str(artifacts.QUARANTINE.within(out))
        if quarantine_path is not None:
            target = Path(quarantine_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = artifacts.QUARANTINE.within(out) if out is not None else written[artifacts.QUARANTINE.name]
            _copy_atomic(src, target)
            report.quarantine_path = str(target)
        if out is not None:
            write_json_atomic(artifacts.VALIDATION.within(out), report.to_json())
    return report


def _copy_atomic(src: Path, dst: Path) -> None:
    import shutil

    from colisten.io import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _validate(
    con: Any, sources: dict[str, list[SourceFile]], settings: Settings, work: Path, say: Callable[[str], None]
) -> tuple[ValidationReport, dict[str, Path]]:
    counts = {name: TableCounts(files=[f.name for f in files]) for name, files in sources.items()}
    con.execute('CREATE TABLE files ("table" VARCHAR, idx INTEGER, name VARCHAR)')
    for name, files in sources.items():
        for i, f in enumerate(files):
            con.execute("INSERT INTO files VALUES (?, ?, ?)", [name, i, f.name])

    selects: dict[str, list[str]] = {}
    for name, files in sources.items():
        selects[name] = []
        for i, f in enumerate(files):
            say(f"reading {f.name}")
            open_source(con, f, f"stage_{name}_{i}")
            counts[name].rows_in += count_rows(con, f)
            selects[name].append(_file_select(con, name, i, f))

    # Items: one row per item id; the first occurrence wins.
    say("checking items")
    con.execute(
        f"""CREATE TABLE items_checked AS
        WITH u AS ({" UNION ALL ".join(selects["items"])}),
        p AS (SELECT *, CASE WHEN {_empty("item_id")} THEN 'empty_id'
                             WHEN {_empty("item_type")} THEN 'empty_item_type' END AS pre FROM u)
        SELECT *, CASE WHEN pre IS NULL AND row_number() OVER (
                    PARTITION BY pre IS NULL, item_id ORDER BY _file, _row) > 1
                  THEN 'duplicate_item_id' ELSE pre END AS reason
        FROM p"""
    )

    # Users (optional table): one row per user id; the first occurrence wins.
    has_users = bool(sources["users"])
    has_taste = has_users and any("taste_vector" in f.columns for f in sources["users"])
    if has_users:
        say("checking users")
        con.execute(
            f"""CREATE TABLE users_checked AS
            WITH u AS ({" UNION ALL ".join(selects["users"])}),
            p AS (SELECT *, CASE WHEN {_empty("user_id")} THEN 'empty_id' END AS pre FROM u)
            SELECT *, CASE WHEN pre IS NULL AND row_number() OVER (
                        PARTITION BY pre IS NULL, user_id ORDER BY _file, _row) > 1
                      THEN 'duplicate_user_id' ELSE pre END AS reason
            FROM p"""
        )
    taste_dim = _check_taste_dims(con, sources["users"]) if has_taste else None

    # Interactions: reasons in a fixed order, so each rejected row has exactly one.
    say("checking interactions")
    events = {e.strip().lower(): e for e in settings.data.events}
    con.execute("CREATE TABLE events (norm VARCHAR, name VARCHAR)")
    con.executemany("INSERT INTO events VALUES (?, ?)", list(events.items()))
    con.execute(
        f"""CREATE TABLE interactions_p AS
        WITH u AS ({" UNION ALL ".join(selects["interactions"])}),
        t AS (SELECT * REPLACE (CASE WHEN isfinite("timestamp") AND "timestamp" >= {MIN_EPOCH_S}
                                     AND "timestamp" < {MAX_EPOCH_S}
                                     THEN CAST(floor("timestamp") AS BIGINT) END AS "timestamp")
              FROM u)
        SELECT t.*, (CAST(t._file AS BIGINT) << 40) + t._row AS _pos, e.name AS event_name,
                CASE WHEN {_empty("t.user_id")} OR {_empty("t.item_id")} THEN 'empty_id'
                     WHEN t."timestamp" IS NULL THEN 'bad_timestamp'
                     WHEN e.name IS NULL THEN 'unknown_event'
                     WHEN k.item_id IS NULL THEN 'unknown_item' END AS pre
              FROM t
              LEFT JOIN events e ON lower(trim(t.event)) = e.norm
              LEFT JOIN (SELECT item_id FROM items_checked WHERE reason IS NULL) k
                ON t.item_id = k.item_id"""
    )
    # Exact duplicates of an earlier accepted-so-far row; the window runs on the key columns and
    # positions only (carrying every column through it was ~2x slower at 1M rows).
    con.execute(
        """CREATE TABLE interactions_dup AS
        SELECT _pos FROM (
            SELECT _pos, row_number() OVER (
                PARTITION BY user_id, item_id, event_name, "timestamp", duration_s ORDER BY _pos) AS rn
            FROM interactions_p WHERE pre IS NULL)
        WHERE rn > 1"""
    )
    con.execute(
        """CREATE VIEW interactions_checked AS
        SELECT p.*, coalesce(p.pre, CASE WHEN d._pos IS NOT NULL THEN 'duplicate' END) AS reason
        FROM interactions_p p LEFT JOIN interactions_dup d ON p._pos = d._pos"""
    )

    say("writing accepted rows and quarantine")
    written = {a.name: work / a.name for a in (artifacts.ITEMS, artifacts.USERS, artifacts.INTERACTIONS)}
    written[artifacts.QUARANTINE.name] = artifacts.QUARANTINE.within(work)
    parquet = "(FORMAT parquet, COMPRESSION zstd)"
    con.execute(
        f"""COPY (SELECT item_id, trim(item_type) AS item_type, coalesce(title, '') AS title,
                        coalesce(description, '') AS description, nullif(trim(genre), '') AS genre,
                        nullif(trim(language), '') AS language,
                        nullif(trim(published_at), '') AS published_at
                 FROM items_checked WHERE reason IS NULL ORDER BY trim(item_type), item_id)
            TO {sql_str(str(written[artifacts.ITEMS.name]))} {parquet}"""
    )
    con.execute(
        f"""COPY (SELECT user_id, item_id, event_name AS event, "timestamp", duration_s
                 FROM interactions_checked WHERE reason IS NULL
                 ORDER BY "timestamp", user_id, item_id, event_name)
            TO {sql_str(str(written[artifacts.INTERACTIONS.name]))} {parquet}"""
    )
    seen = "SELECT DISTINCT user_id FROM interactions_checked WHERE reason IS NULL"
    if has_users:
        taste = ", t.taste_vector" if has_taste else ""
        users_sql = f"""SELECT coalesce(t.user_id, s.user_id) AS user_id, t.age,
                               nullif(trim(t.country), '') AS country{taste}
                        FROM (SELECT * FROM users_checked WHERE reason IS NULL) t
                        FULL OUTER JOIN ({seen}) s ON t.user_id = s.user_id"""
    else:
        users_sql = (
            f"SELECT user_id, CAST(NULL AS INTEGER) AS age, CAST(NULL AS VARCHAR) AS country FROM ({seen})"
        )
    users_file = sql_str(str(written[artifacts.USERS.name]))
    con.execute(f"COPY (SELECT * FROM ({users_sql}) ORDER BY user_id) TO {users_file} {parquet}")

    rejected = []
    for name in sources:
        if name == "users" and not has_users:
            continue
        rejected.append(
            f"""SELECT '{name}' AS "table", f.name AS source_file, c._row AS "row", c.reason,
                       {_raw_json(name)}::VARCHAR AS raw, c._file AS _file
                FROM {name}_checked c JOIN files f ON f."table" = '{name}' AND f.idx = c._file
                WHERE c.reason IS NOT NULL"""
        )
    con.execute(
        f"""COPY (SELECT "table", source_file, "row", reason, raw FROM ({" UNION ALL ".join(rejected)})
                 ORDER BY "table", _file, "row")
            TO {sql_str(str(written[artifacts.QUARANTINE.name]))} {parquet}"""
    )

    # Counts come from the written files, so the invariant checks what later stages will read.
    quarantine = sql_str(str(written[artifacts.QUARANTINE.name]))
    q = {}
    for table, reason, n in con.execute(
        f'SELECT "table", reason, count(*) FROM read_parquet({quarantine}) GROUP BY ALL ORDER BY ALL'
    ).fetchall():
        q.setdefault(table, {})[reason] = int(n)
    accepted = {
        "items": _parquet_rows(con, written[artifacts.ITEMS.name]),
        "interactions": _parquet_rows(con, written[artifacts.INTERACTIONS.name]),
        "users": (
            int(con.execute("SELECT count(*) FROM users_checked WHERE reason IS NULL").fetchone()[0])
            if has_users
            else 0
        ),
    }
    for name, c in counts.items():
        c.reasons = {r: q.get(name, {}).get(r, 0) for r in REASONS[name]}
        c.quarantined = sum(q.get(name, {}).values())
        c.accepted = accepted[name]
        if c.accepted + c.quarantined != c.rows_in:
            raise AssertionError(
                f"validation invariant broken for {name}: accepted {c.accepted} + quarantined "
                f"{c.quarantined} != input rows {c.rows_in}"
            )

    inter = sql_str(str(written[artifacts.INTERACTIONS.name]))
    items_per_type = dict(
        con.execute(
            f"SELECT item_type, count(*) FROM read_parquet({sql_str(str(written[artifacts.ITEMS.name]))}) "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    )
    per_event = dict(con.execute(f"SELECT event, count(*) FROM read_parquet({inter}) GROUP BY 1").fetchall())
    t_min, t_max = con.execute(
        f'SELECT min("timestamp"), max("timestamp") FROM read_parquet({inter})'
    ).fetchone()
    n_users = _parquet_rows(con, written[artifacts.USERS.name])

    report = ValidationReport(
        data_dir="",
        fingerprint="",
        tables=counts,
        users=n_users,
        items_per_type={k: int(v) for k, v in items_per_type.items()},
        events={e: int(per_event.get(e, 0)) for e in settings.data.events},
        time_min=None if t_min is None else int(t_min),
        time_max=None if t_max is None else int(t_max),
        taste_vector_dim=taste_dim,
    )
    report.warnings = _warnings(report, settings)
    return report, written


def _parquet_rows(con: Any, path: Path) -> int:
    return int(con.execute(f"SELECT count(*) FROM read_parquet({sql_str(str(path))})").fetchone()[0])


def _check_taste_dims(con: Any, files: list[SourceFile]) -> int | None:
    """All taste vectors must have one length (the user tower's input size)."""
    first = con.execute(
        "SELECT len(taste_vector) FROM users_checked WHERE reason IS NULL AND taste_vector IS NOT NULL "
        "ORDER BY _file, _row LIMIT 1"
    ).fetchone()
    if first is None:
        return None
    dim = int(first[0])
    odd = con.execute(
        "SELECT _file, _row, len(taste_vector) FROM users_checked WHERE reason IS NULL AND "
        f"taste_vector IS NOT NULL AND len(taste_vector) <> {dim} ORDER BY _file, _row LIMIT 1"
    ).fetchone()
    if odd is not None:
        raise DataContractError(
            f"{files[odd[0]].path}: column 'taste_vector' must have one length for all users; "
            f"first offending row {odd[1]} (1-based data row) has {odd[2]} values, earlier rows {dim}"
        )
    return dim


def _warnings(report: ValidationReport, settings: Settings) -> list[str]:
    out = []
    d = settings.data
    for t in d.item_types:
        if report.items_per_type.get(t, 0) == 0:
            role = "target" if t == d.target_type else "established"
            out.append(
                f"no accepted items of the {role} type '{t}' "
                f"(item types found: {sorted(report.items_per_type)})"
            )
    if report.tables["interactions"].accepted == 0:
        out.append("no interactions were accepted; see the quarantine reasons")
    elif sum(report.events.get(e, 0) for e in d.strong_events) == 0:
        out.append(f"no strong events ({', '.join(d.strong_events)}) were accepted")
    inter = report.tables["interactions"]
    if inter.rows_in and inter.quarantined / inter.rows_in > 0.1:
        top = max(inter.reasons, key=lambda r: inter.reasons[r])
        out.append(
            f"{inter.quarantined / inter.rows_in:.0%} of interactions were quarantined (mostly '{top}')"
        )
    if not report.tables["users"].files:
        out.append("no users table: users.parquet lists the users seen in interactions, without features")
    return out
