"""Find the input tables of the data contract and expose each file to DuckDB with its row numbers.

A table is `NAME.parquet`, `NAME.csv` (or `.csv.gz`) or a folder `NAME/` of such parts. Every
file keeps its own 1-based data row numbers, so errors and quarantined rows point at a line a
user can open.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colisten.errors import ColistenError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
# Files at or under this size are content-hashed for the fingerprint; larger ones use size + mtime.
CONTENT_HASH_MAX_BYTES = 64 * 2**20


class DataContractError(ColistenError):
    """Input that breaks the data contract at file level: the run stops."""


@dataclass
class SourceFile:
    """One input file: where it is, how to read it, and its columns as DuckDB types."""

    path: Path
    name: str  # path relative to the data directory, used in messages and the quarantine
    format: str  # "csv" | "parquet"
    columns: dict[str, str] = field(default_factory=dict)
    relation: str = ""  # SQL relation exposing `_row` (1-based data row) and the file's columns


def _file_format(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def find_table(data_dir: Path, table: str, required: bool = True) -> list[SourceFile]:
    """The files of one contract table, in name order; [] for an absent optional table."""
    candidates = [data_dir / f"{table}{s}" for s in (*PARQUET_SUFFIXES, *CSV_SUFFIXES)]
    candidates = [p for p in candidates if p.is_file()]
    folder = data_dir / table
    if folder.is_dir():
        candidates.append(folder)
    if len(candidates) > 1:
        found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in candidates)
        raise DataContractError(
            f"{data_dir}: table '{table}' is ambiguous ({found}); keep exactly one of "
            f"{table}.parquet, {table}.csv or a folder {table}/"
        )
    if not candidates:
        if required:
            raise DataContractError(
                f"{data_dir}: table '{table}' not found; expected {table}.parquet, {table}.csv "
                f"or a folder {table}/ of .parquet/.csv parts"
            )
        return []
    if candidates[0].is_dir():
        # Hidden files and Spark/Hadoop markers (_SUCCESS, _committed_...) are not parts.
        parts = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file()
            and not any(s.startswith((".", "_")) for s in p.relative_to(folder).parts)
            and _file_format(p)
        )
        if not parts:
            raise DataContractError(f"{folder}: folder has no .parquet or .csv parts")
        files = parts
    else:
        files = candidates
    return [
        SourceFile(path=p, name=p.relative_to(data_dir).as_posix(), format=_file_format(p) or "")
        for p in files
    ]


def fingerprint(files: list[SourceFile]) -> str:
    """sha256 over each file's relative name and size, plus its content hash when it is at most
    64 MiB, else its mtime (cheap for big logs; changes whenever the data does)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        st = f.path.stat()
        h.update(f"{f.name}\0{st.st_size}\0".encode())
        if st.st_size <= CONTENT_HASH_MAX_BYTES:
            with open(f.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        else:
            h.update(str(st.st_mtime_ns).encode())
    return "sha256:" + h.hexdigest()


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def csv_header(path: Path) -> list[str]:
    """Column names from a CSV's first line (UTF-8, optional BOM)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            first = raw.readline().decode("utf-8-sig")
        header = next(csv.reader(io.StringIO(first)), None)
    except (UnicodeDecodeError, OSError, csv.Error) as e:
        raise DataContractError(f"{path}: cannot read the CSV header: {e}") from e
    if not header or all(not c.strip() for c in header):
        raise DataContractError(f"{path}: empty file: a CSV needs a header line naming its columns")
    return header


def _duckdb_message(e: Exception) -> str:
    """The informative head of a DuckDB error (it appends long 'possible fixes' lists)."""
    lines = []
    for line in str(e).splitlines():
        if line.startswith(("Possible", "* ", "  file =")) or (lines and not line.strip()):
            break
        lines.append(line.strip())
    return " ".join(lines)


def _all_but_row(columns: dict[str, str]) -> str:
    """`*`, minus an input column that would shadow our `_row` (it is not a contract column)."""
    return "* EXCLUDE (_row)" if "_row" in columns else "*"


def open_source(con: Any, f: SourceFile, stage_table: str) -> SourceFile:
    """Make `f.relation` a DuckDB relation with `_row` and the file's columns.

    CSV files are loaded into a staging table (all columns VARCHAR, so we do the type checks
    ourselves); with insertion order preserved, its rowid is the file's data row - 1. Parquet is
    read in place with its file_row_number.
    """
    import duckdb

    if f.format == "csv":
        header = csv_header(f.path)
        dupes = sorted({c for c in header if header.count(c) > 1})
        if dupes:
            raise DataContractError(f"{f.path}: duplicate column name(s) {dupes} in the header")
        cols = "{" + ", ".join(f"{sql_str(c)}: 'VARCHAR'" for c in header) + "}"
        try:
            con.execute(
                f"CREATE OR REPLACE TABLE {stage_table} AS SELECT * FROM read_csv({sql_str(str(f.path))}, "
                f"header=true, auto_detect=false, columns={cols}, delim=',', quote='\"', escape='\"', "
                f"encoding='utf-8')"
            )
        except duckdb.Error as e:
            raise DataContractError(f"{f.path}: unreadable CSV: {_duckdb_message(e)}") from e
        f.columns = dict.fromkeys(header, "VARCHAR")
        f.relation = f"(SELECT rowid + 1 AS _row, {_all_but_row(f.columns)} FROM {stage_table})"
    else:
        src = f"read_parquet({sql_str(str(f.path))}, file_row_number=true)"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_str(str(f.path))})").fetchall()
        except duckdb.Error as e:
            raise DataContractError(f"{f.path}: unreadable Parquet: {_duckdb_message(e)}") from e
        f.columns = {row[0]: row[1] for row in described}
        f.relation = f"(SELECT file_row_number + 1 AS _row, {_all_but_row(f.columns)} FROM {src})"
    return f


def count_rows(con: Any, f: SourceFile) -> int:
    """Input rows of a file, counted straight from the source (the invariant's left-hand side)."""
    import duckdb

    try:
        return int(con.execute(f"SELECT count(*) FROM {f.relation}").fetchone()[0])
    except duckdb.Error as e:
        raise DataContractError(f"{f.path}: unreadable: {_duckdb_message(e)}") from e
