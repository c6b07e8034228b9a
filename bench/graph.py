"""Benchmark: co-listening graph build, events/s and peak RSS at 1M and 10M events of the synthetic world.

Input: `colisten.world.simulate.generate_world` (catalogue scaled with users), its first N events
used as the history window. Measured in the same run, each in its own process (so peak RSS is that
measurement's own):
- bare   : one DuckDB self-join SQL, the paper's rule and nothing else (distinct user-item pairs,
           join on user, count per item pair, write Parquet); DuckDB defaults.
- ours   : `colisten graph` stage (graph.stage.run) with default settings: per-user cap 500,
           typed relations, edges.parquet, nodes.parquet, CSR arrays saved, graph.json.
- lowmem : the stage with [graph] memory_limit = 512MB, at the largest size: DuckDB must spill to disk
           (peak size of its spill folder reported).
- spark  : the stage with engine = spark (local mode, fresh JVM included), at the smallest size.

    .venv/bin/python bench/graph.py [--quick] [--sizes 1000000 10000000] [--spark-size 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
LOW_MEMORY_LIMIT = "512MB"
EVENTS_PER_USER = 60  # the default world gives ~73 events per user over 104 days; aim a bit low


def prepare(root: Path, events: int) -> Path:
    """A run directory with data/items.parquet and split/history.parquet holding exactly `events` rows."""
    import duckdb

    from colisten.world.simulate import generate_world

    run = root / f"run-{events}"
    history = run / "split" / "history.parquet"
    if history.exists():
        return run
    users = math.ceil(events / EVENTS_PER_USER)
    while True:
        world = root / f"world-{events}"
        summary = generate_world(
            world, users=users, podcasts=max(users // 4, 500), audiobooks=max(users // 20, 100)
        )
        if summary.events >= events:
            break
        users = math.ceil(users * events / summary.events * 1.05)
    (run / "data").mkdir(parents=True, exist_ok=True)
    (run / "split").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""COPY (SELECT * FROM read_parquet('{world}/items.parquet') ORDER BY item_type, item_id)
            TO '{run}/data/items.parquet' (FORMAT parquet)"""
    )
    con.execute(
        f"""COPY (SELECT * FROM read_parquet('{world}/interactions/*.parquet') LIMIT {events})
            TO '{history}' (FORMAT parquet, COMPRESSION zstd)"""
    )
    con.close()
    return run


# --- one measurement, in a child process -----------------------------------------------------------
def measure(kind: str, run: Path) -> dict:
    peak_tree = _TreeRss(spill_dir=run / "graph" / ".work" / "duckdb-spill")
    peak_tree.start()
    t0 = time.perf_counter()
    if kind == "bare":
        import duckdb

        con = duckdb.connect()
        out = run / "bare-edges.parquet"
        con.execute(
            f"""COPY (
                WITH ui AS (SELECT DISTINCT user_id, item_id FROM read_parquet('{run}/split/history.parquet'))
                SELECT a.item_id AS src, b.item_id AS dst, count(*) AS cocount
                FROM ui a JOIN ui b ON a.user_id = b.user_id AND a.item_id < b.item_id
                GROUP BY a.item_id, b.item_id
            ) TO '{out}' (FORMAT parquet)"""
        )
        edges = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]
        con.close()
        out.unlink()
        capped = None
    else:
        from colisten.config import Settings
        from colisten.graph import stage as graph_stage

        settings = Settings()
        if kind == "lowmem":
            settings.graph.memory_limit = LOW_MEMORY_LIMIT
        from colisten.rundir import RunDir

        built = graph_stage.run(
            RunDir(run), settings, engine="spark" if kind == "spark" else "duckdb", describe=False
        )
        edges = built["edges"]
        capped = built.get("users_capped")
        if kind == "spark":
            from colisten.graph.spark import stop_spark

            stop_spark()
    seconds = time.perf_counter() - t0
    peak_tree.stop()
    self_peak = _own_peak_rss_mib()
    # Spark's JVM is a child process: count the whole tree (sampled); otherwise the exact own peak.
    peak = max(self_peak, peak_tree.peak_mib) if kind == "spark" else self_peak
    return {
        "seconds": seconds,
        "peak_rss_mib": peak,
        "edges": int(edges),
        "users_capped": capped,
        "peak_spill_mib": peak_tree.peak_spill_mib,
    }


def _own_peak_rss_mib() -> float:
    """VmHWM: this process's peak RSS. (ru_maxrss would include the parent's RSS at fork time.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TreeRss(threading.Thread):
    """Samples the RSS of this process and its children, and the spill folder's size, every 50 ms."""

    def __init__(self, spill_dir: Path) -> None:
        super().__init__(daemon=True)
        self.peak_mib = 0.0
        self.peak_spill_mib = 0.0
        self.spill_dir = spill_dir
        self._stop_flag = threading.Event()

    def run(self) -> None:
        me = psutil.Process()
        while not self._stop_flag.wait(0.05):
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak_mib = max(self.peak_mib, total / 2**20)
            with contextlib.suppress(OSError):
                spilled = sum(f.stat().st_size for f in self.spill_dir.glob("*") if f.is_file())
                self.peak_spill_mib = max(self.peak_spill_mib, spilled / 2**20)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join()


def child(kind: str, run: Path) -> dict:
    cmd = [sys.executable, __file__, "--_measure", kind, "--_run", str(run)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main ----------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200k events, Spark included: a smoke run")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--spark-size", type=int, default=None, help="size for the Spark run (default: smallest)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of bare and ours, alternated (best counts)")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--no-lowmem", action="store_true", help=f"skip the {LOW_MEMORY_LIMIT} spilling run")
    ap.add_argument("--workdir", type=Path, default=None, help="keep generated inputs here (default: temp)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--_measure", help=argparse.SUPPRESS)
    ap.add_argument("--_run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure, args._run)))
        return
    sizes = [200_000] if args.quick else sorted(args.sizes)
    spark_size = None if args.no_spark else (args.spark_size or sizes[0])

    with tempfile.TemporaryDirectory(prefix="colisten-bench-graph-") as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in sizes:
            print(f"preparing {n:,} events ...", flush=True)
            run = prepare(root, n)
            kinds = ["bare", "ours"] * args.repeat
            kinds += (["lowmem"] if n == sizes[-1] and not args.no_lowmem else []) + (
                ["spark"] if n == spark_size else []
            )
            results: dict[str, list[dict]] = {}
            for kind in kinds:  # alternated: the CPU is shared, the fastest run of each counts
                print(f"  {kind} ...", flush=True)
                results.setdefault(kind, []).append(child(kind, run))
            bare = min(results["bare"], key=lambda r: r["seconds"])
            for kind in ["bare", "ours", "lowmem", "spark"]:
                if kind not in results:
                    continue
                r = min(results[kind], key=lambda r: r["seconds"])
                rows.append(
                    {
                        "events": n,
                        "variant": kind,
                        "seconds": r["seconds"],
                        "events_per_s": n / r["seconds"],
                        "peak_rss_mib": r["peak_rss_mib"],
                        "edges": r["edges"],
                        "throughput_vs_bare": bare["seconds"] / r["seconds"],
                        "runs_s": [round(x["seconds"], 1) for x in results[kind]],
                        "users_capped": r["users_capped"],
                        "peak_spill_mib": r["peak_spill_mib"],
                    }
                )
    table = render(rows)
    print(table)
    if not args.no_results:
        append_results(table, args)


def render(rows: list[dict]) -> str:
    names = {
        "bare": "bare DuckDB self-join SQL",
        "ours": "colisten graph (defaults)",
        "lowmem": f"colisten graph, memory_limit {LOW_MEMORY_LIMIT}",
        "spark": "colisten graph --engine spark",
    }
    lines = [
        "| events | variant | runs (s) | best s | events/s | peak RSS MiB | spilled MiB | edges | vs bare |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['events']:,} | {names[r['variant']]} | {r['runs_s']} | {r['seconds']:.1f} | "
            f"{r['events_per_s']:,.0f} | "
            f"{r['peak_rss_mib']:,.0f} | {r['peak_spill_mib']:,.0f} | {r['edges']:,} | "
            f"{r['throughput_vs_bare']:.2f}x |"
        )
    capped = {r["events"]: r["users_capped"] for r in rows if r["variant"] == "ours"}
    lines.append("")
    lines.append(
        "users over the default per-user cap (500 items), i.e. where ours prunes edges that bare keeps: "
        + "; ".join(f"{n:,} events: {c}" for n, c in capped.items())
    )
    return "\n".join(lines)


def append_results(table: str, args: argparse.Namespace) -> None:
    ram = psutil.virtual_memory().total / 2**30
    command = "bench/graph.py " + " ".join(a for a in sys.argv[1:])
    load = os.getloadavg()[0]
    section = "\n".join(
        [
            "",
            "## Co-listening graph build: events/s and peak RSS (colisten graph vs bare DuckDB self-join)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {ram:.1f} GiB RAM",
            f"- note: the CPU was shared with other jobs (load average {load:.1f} at the end, on "
            f"{os.cpu_count()} cores); absolute times are a floor, ratios were measured back to back",
            f"- command: `.venv/bin/python {command.strip()}`",
            f"- input: synthetic world (`generate_world`, users = events/{EVENTS_PER_USER}, "
            "podcasts = users/4, audiobooks = users/20), its first N events as the history window",
            "- bare = `DISTINCT (user_id, item_id)`, self-join on user, `count(*)` per item pair, COPY to "
            "Parquet (DuckDB defaults). ours = the whole `colisten graph` stage in a fresh process, imports "
            "included (DuckDB memory_limit 2GB; edges.parquet, nodes.parquet, typed CSR arrays in both "
            "directions, graph.json). spark = the same stage with `--engine spark`, local mode, JVM start "
            "included; its peak RSS is python + JVM, sampled every 50 ms. lowmem = ours with memory_limit "
            f"{LOW_MEMORY_LIMIT} (spilled MiB = peak size of DuckDB's spill folder, sampled every 50 ms). "
            "vs bare = bare best time / variant best time (throughput ratio).",
            "",
            table,
            "",
        ]
    )
    path = HERE / "RESULTS.md"
    with open(path, "a", encoding="utf-8") as f:
        f.write(section)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
