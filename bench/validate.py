"""Benchmark: `validate_dataset` throughput (rows/s) and peak memory at 1M and 10M interactions.

Synthetic input with ~1% rows of each bad kind (empty id, unknown item, bad timestamp, unknown
event, exact duplicate), as Parquet and as CSV. Baseline, measured in the same run on the same
file: a bare DuckDB `COPY (SELECT * FROM read_parquet|read_csv(...)) TO out.parquet`.
Generation and each measurement run in their own processes, so peak RSS (ru_maxrss, which a
child inherits from its parent at fork) is that measurement's own.

    .venv/bin/python bench/validate.py [--quick] [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
N_ITEMS = 50_000
N_USERS_PER_ROW = 10  # users = rows / 10


def generate(directory: Path, n: int) -> None:
    """items.parquet + interactions.{parquet,csv} with ~1% bad rows of each kind."""
    import duckdb

    directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT CASE WHEN i % 10 = 0 THEN 'a' ELSE 'p' END || i AS item_id,
                         CASE WHEN i % 10 = 0 THEN 'audiobook' ELSE 'podcast' END AS item_type,
                         'Title ' || i AS title, 'About item ' || i AS description
                  FROM range({N_ITEMS}) t(i))
            TO '{directory / "items.parquet"}' (FORMAT parquet)"""
    )
    base = n - n // 100  # the last 1% are duplicates of earlier rows
    n_users = max(1, n // N_USERS_PER_ROW)
    con.execute(
        f"""CREATE TABLE inter AS
        WITH g AS (SELECT i, CAST(hash(i) >> 1 AS BIGINT) AS h FROM range({base}) t(i)),
        r AS (SELECT i,
            CASE WHEN h % 100 = 0 THEN '' ELSE 'u' || (h // 7 % {n_users}) END AS user_id,
            CASE WHEN h % 100 = 1 THEN 'missing' || i
                 ELSE (CASE WHEN h // 3 % 10 = 0 THEN 'a' ELSE 'p' END)
                      || (h // 3 % {N_ITEMS // 10} * 10 + CASE WHEN h // 3 % 10 = 0 THEN 0 ELSE 1 END)
            END AS item_id,
            CASE WHEN h % 100 = 2 THEN 'listen'
                 ELSE ['stream', 'stream', 'stream', 'follow', 'preview', 'intent_to_pay'][h // 11 % 6 + 1]
            END AS event,
            CASE WHEN h % 100 = 3 THEN 'not a time'
                 WHEN h % 2 = 0 THEN CAST(1704067200 + h // 13 % 10368000 AS VARCHAR)
                 ELSE strftime(to_timestamp(1704067200 + h // 13 % 10368000), '%Y-%m-%dT%H:%M:%SZ')
            END AS "timestamp",
            CASE WHEN h % 5 = 0 THEN NULL ELSE round((h // 17 % 36000) / 10.0, 1) END AS duration_s
            FROM g)
        SELECT * EXCLUDE (i) FROM (SELECT * FROM r
              UNION ALL SELECT * FROM r WHERE i < {n - base}) ORDER BY i"""
    )
    con.execute(f"COPY inter TO '{directory / 'interactions.parquet'}' (FORMAT parquet)")
    csv_dir = directory / "csv"
    csv_dir.mkdir(exist_ok=True)
    (csv_dir / "items.parquet").symlink_to(directory / "items.parquet")
    con.execute(f"COPY inter TO '{csv_dir / 'interactions.csv'}' (HEADER)")


def child(mode: str, data: Path, out: Path, memory_limit: str) -> None:
    """One measurement; prints JSON with seconds and this process's peak RSS."""
    t0 = time.perf_counter()
    if mode == "ours":
        from colisten.config import Settings
        from colisten.data.contract import validate_dataset

        settings = Settings.model_validate({"data": {"memory_limit": memory_limit}})
        report = validate_dataset(data, settings, out_dir=out)
        rows = report.tables["interactions"].rows_in
        extra = {"accepted": report.tables["interactions"].accepted, "quarantined": report.quarantined}
    else:
        import duckdb

        src = (
            f"read_csv('{data / 'interactions.csv'}')"
            if (data / "interactions.csv").exists()
            else f"read_parquet('{data / 'interactions.parquet'}')"
        )
        con = duckdb.connect()
        out.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(
            f"COPY (SELECT * FROM {src}) TO '{out / 'copy.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
        )
        rows = con.execute(f"SELECT count(*) FROM '{out / 'copy.parquet'}'").fetchone()[0]
        extra = {}
    seconds = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_mib": peak_mib, **extra}))


def measure(mode: str, data: Path, work: Path, memory_limit: str) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--data", str(data), "--out", str(out)]
        + ["--memory-limit", memory_limit],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1M rows only")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--child", choices=["ours", "bare", "generate"])
    ap.add_argument("--rows", type=int)
    ap.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit for both (default 4GB)")
    ap.add_argument("--formats", nargs="+", default=["parquet", "csv"], choices=["parquet", "csv"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child == "generate":
        generate(args.data, args.rows)
        return
    if args.child:
        child(args.child, args.data, args.out, args.memory_limit)
        return
    sizes = args.sizes or ([1_000_000] if args.quick else [1_000_000, 10_000_000])

    header = (
        "| rows | input | ours s | ours rows/s | ours peak RSS MiB | bare COPY s | bare peak RSS MiB "
        "| ours/bare time |"
    )
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    print(header)
    with tempfile.TemporaryDirectory(prefix="colisten-bench-") as tmp:
        work = Path(tmp)
        for n in sizes:
            data = work / f"n{n}"
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, __file__, "--child", "generate", "--rows", str(n), "--data", str(data)],
                check=True,
            )
            print(f"(generated {n:,} rows in {time.perf_counter() - t0:.1f}s)", file=sys.stderr)
            for fmt in args.formats:
                path = data if fmt == "parquet" else data / "csv"
                bare = measure("bare", path, work, args.memory_limit)
                ours = measure("ours", path, work, args.memory_limit)
                assert ours["rows"] == bare["rows"] == n, (ours, bare, n)
                line = (
                    f"| {n:,} | {fmt} | {ours['seconds']:.1f} | {n / ours['seconds']:,.0f} | "
                    f"{ours['peak_mib']:,.0f} | {bare['seconds']:.1f} | {bare['peak_mib']:,.0f} | "
                    f"{ours['seconds'] / bare['seconds']:.1f}x |"
                )
                print(line, flush=True)
                lines.append(line)
                print(f"  (quarantined {ours['quarantined']:,} of {n:,})", file=sys.stderr)

    command = "bench/validate.py " + " ".join(sys.argv[1:])
    section = [
        "",
        "## validate: rows/s and peak memory (colisten validate_dataset vs bare DuckDB COPY)",
        "",
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM (CPU shared with other jobs while measured)",
        f"- command: `.venv/bin/python {command.strip()}`",
        "- input: synthetic interactions, ~1% rows of each bad kind (empty id, unknown item, bad "
        "timestamp, unknown event, duplicate); timestamps half ISO-8601, half epoch strings; "
        f"{N_ITEMS:,} items. DuckDB memory_limit {args.memory_limit} (both), all cores.",
        "- ours = full validation (type checks, 5 row reasons, dedup, sorted outputs, quarantine, "
        "invariant check); bare = `COPY (SELECT * FROM read_parquet|read_csv(file)) TO out.parquet`.",
        "",
        *lines,
        "",
    ]
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write("\n".join(section))


if __name__ == "__main__":
    main()
