"""Benchmark: `colisten serve` under load on loopback — throughput, p50/p99 latency, errors.

The server runs as its own process (`python -m colisten serve`, one uvicorn worker, torch on one
thread); the load generator is an asyncio HTTP/1.1 keep-alive client in this process, so both
share the machine's cores, as they would on a 2-core box. Every request is
`GET /v1/users/{user}/recommendations?type=audiobook&k=10` (explanations on) for users cycled in
a shuffled order.

Two load shapes, 32 connections each:
- closed loop: 32 clients send back to back for `--duration` s: the server's capacity (latency then
  follows Little's law, 32 / throughput).
- open loop: requests arrive at a fixed `--rate` (300/s, the goal) whatever the answers, queued for
  one of the 32 connections; latency counts from the scheduled send time, so a stalled server is
  not hidden (no coordinated omission). Goal: p99 <= 25 ms at >= 300 requests/s, 0 errors.

Baselines measured in the same run: the same endpoint with `serve.user_features = "reference"`
(the two-tower pandas feature function per request, what a naive server would call), and
`/healthz` (the HTTP stack alone). Repeated on a run with a 250k-item audiobook catalogue served
through its Voyager index.

Runs: `--run DIR` serves an existing run (e.g. the demo's); without it a demo-scale run is built
once under bench/_work/serve from the two-tower toy world (20k users, 2k audiobooks, 4k
podcasts, ~1M events; graph, 1-epoch two-tower with the paper's 512-256-128 towers, index).

    .venv/bin/python bench/serve.py [--quick] [--run DEMO_RUN] [--duration 30] [--rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "serve"


# --- runs ----------------------------------------------------------------------------------------
def build_run(
    root: Path,
    *,
    n_users: int,
    n_audiobooks: int,
    n_podcasts: int,
    events_per_user: float,
    tower_dims: list[int],
) -> Path:
    """A complete small run (data, split, content, hgnn, graph, two-tower, index), built once."""
    sys.path.append(str(HERE.parent / "tests"))  # the toy run is a test fixture: tests/toy_run.py
    from toy_run import write_toy_run

    from colisten.config import Settings
    from colisten.graph import stage as graph_stage
    from colisten.retrieval import stage as index_stage
    from colisten.twotower import stage as twotower_stage

    if (root / "index" / "index.json").exists():
        return root
    settings = Settings()
    settings.twotower.epochs = 1  # latency does not depend on how well the model is trained
    settings.twotower.tower_dims = tower_dims
    settings.retrieval.recall_queries = 200
    t0 = time.perf_counter()
    print(f"building {root.name}: {n_users} users, {n_audiobooks} audiobooks, {n_podcasts} podcasts ...")
    run = write_toy_run(
        root,
        n_users=n_users,
        n_audiobooks=n_audiobooks,
        n_podcasts=n_podcasts,
        events_per_user=events_per_user,
        text_dim=64,
        hgnn_dim=64,
        settings=settings,
    )
    _widen_item_ids(root)
    graph_stage.run(run, settings, describe=False)
    twotower_stage.run(run, settings)
    index_stage.run(run, settings)
    print(f"  built in {time.perf_counter() - t0:.0f} s")
    return root


def _widen_item_ids(run: Path) -> None:
    """The toy world numbers items 'a00000'..: past 100k items of a type the ids stop sorting in
    index order, which the run contract needs; zero-pad them wider (same order, same arrays)."""
    import pandas as pd

    from colisten.io import write_parquet_atomic

    items = pd.read_parquet(run / "data/items.parquet")
    width = max(len(i) for i in items["item_id"]) - 1
    if (items["item_id"].str.len() == width + 1).all():
        return

    def widen(ids: pd.Series) -> pd.Series:
        return ids.str[0] + ids.str[1:].str.zfill(width)

    for name in (
        "data/items.parquet",
        "data/interactions.parquet",
        "split/history.parquet",
        "split/holdout.parquet",
    ):
        table = pd.read_parquet(run / name)
        table["item_id"] = widen(table["item_id"])
        write_parquet_atomic(run / name, table)


def run_summary(run: Path) -> dict:
    import pyarrow.parquet as pq

    items = pq.read_table(run / "data/items.parquet", columns=["item_type"]).column("item_type").to_pylist()
    users = pq.read_table(run / "data/users.parquet", columns=["user_id"]).column("user_id").to_pylist()
    history = pq.read_metadata(run / "split/history.parquet").num_rows
    return {
        "users": users,
        "audiobooks": items.count("audiobook"),
        "podcasts": items.count("podcast"),
        "history_events": history,
    }


# --- server ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, port: int, user_features: str) -> subprocess.Popen:
    from colisten.config import settings_as_toml
    from colisten.rundir import RunDir

    settings = RunDir(run).settings()
    settings.serve.user_features = user_features
    config = WORK / f"serve-{user_features}.toml"
    config.write_text(settings_as_toml(settings))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "colisten",
        "serve",
        "--run",
        str(run),
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError("server did not start in 10 minutes")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- load generator --------------------------------------------------------------------------------
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


class Connection:
    """One HTTP/1.1 keep-alive connection speaking just enough HTTP for GET + Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            head = await self.reader.readuntil(b"\r\n\r\n")
            m = _LENGTH.search(head)
            if m:
                await self.reader.readexactly(int(m.group(1)))
            return int(head[9:12])
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.writer.close()
            self.writer = None
            raise


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: np.ndarray
    server_cpu_s: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


async def _closed_loop(
    port: int, paths: list[str], concurrency: int, duration: float
) -> tuple[list, int, float]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    counter = iter(range(10**9))

    async def client() -> None:
        nonlocal errors
        conn = Connection(port)
        while time.perf_counter() < stop_at:
            path = paths[next(counter) % len(paths)]
            t0 = time.perf_counter()
            try:
                ok = await conn.get(path) == 200
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                ok = False
            latencies.append((time.perf_counter() - t0) * 1e3)
            errors += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - t0


async def _open_loop(
    port: int, paths: list[str], concurrency: int, duration: float, rate: float
) -> tuple[list, int, float]:
    latencies: list[float] = []
    errors = 0
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Connection(port))

    async def one(path: str, scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            ok = await conn.get(path) == 200
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            ok = False
        finally:
            pool.put_nowait(conn)
        latencies.append((time.perf_counter() - scheduled) * 1e3)
        errors += not ok

    n = int(duration * rate)
    tasks = []
    t0 = time.perf_counter()
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], scheduled)))
    await asyncio.gather(*tasks)
    return latencies, errors, time.perf_counter() - t0


def load(
    proc: subprocess.Popen,
    port: int,
    paths: list[str],
    *,
    concurrency: int,
    duration: float,
    rate: float | None,
    warmup: float,
) -> LoadResult:
    """Warm up, then measure one load shape; server CPU time comes from its process counters."""
    asyncio.run(_closed_loop(port, paths, concurrency, warmup))
    ps = psutil.Process(proc.pid)
    cpu0 = sum(ps.cpu_times()[:2])
    if rate is None:
        lat, errors, seconds = asyncio.run(_closed_loop(port, paths, concurrency, duration))
    else:
        lat, errors, seconds = asyncio.run(_open_loop(port, paths, concurrency, duration, rate))
    cpu = sum(ps.cpu_times()[:2]) - cpu0
    return LoadResult(len(lat), errors, seconds, np.asarray(lat), cpu)


# --- main ------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small runs, 5 s per measurement")
    ap.add_argument("--run", type=Path, help="serve this run (e.g. the demo run) instead of building one")
    ap.add_argument("--big-run", type=Path, help="the 250k-audiobook run (default: built under bench/_work)")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 30; quick 5)")
    ap.add_argument("--rate", type=float, default=300.0, help="open-loop arrival rate, requests/s (300)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    duration = args.duration or (5.0 if args.quick else 30.0)
    warmup = 2.0 if args.quick else 5.0
    WORK.mkdir(parents=True, exist_ok=True)

    if args.quick:
        demo = args.run or build_run(
            WORK / "quick-demo",
            n_users=2000,
            n_audiobooks=300,
            n_podcasts=600,
            events_per_user=40,
            tower_dims=[512, 256, 128],
        )
        big = args.big_run or build_run(
            WORK / "quick-big",
            n_users=1000,
            n_audiobooks=50_000,
            n_podcasts=600,
            events_per_user=40,
            tower_dims=[512, 256, 128],
        )
        big_label = "50k audiobooks (quick)"
    else:
        demo = args.run or build_run(
            WORK / "demo",
            n_users=20_000,
            n_audiobooks=2_000,
            n_podcasts=4_000,
            events_per_user=50,
            tower_dims=[512, 256, 128],
        )
        big = args.big_run or build_run(
            WORK / "big-250k",
            n_users=5_000,
            n_audiobooks=250_000,
            n_podcasts=4_000,
            events_per_user=50,
            tower_dims=[512, 256, 128],
        )
        big_label = "250k audiobooks"

    rng = np.random.default_rng(0)
    rows = []
    for run_label, run in (("demo", demo), (big_label, big)):
        summary = run_summary(run)
        users = rng.permutation(np.asarray(summary["users"], dtype=object))
        rec_paths = [f"/v1/users/{u}/recommendations?type=audiobook&k=10" for u in users]
        plan = [("fast", rec_paths, None), ("fast", rec_paths, args.rate)]
        if run is demo:
            plan += [("reference", rec_paths, None), ("fast", ["/healthz"], None)]
        for user_features in ("fast", "reference"):
            todo = [(paths, rate) for uf, paths, rate in plan if uf == user_features]
            if not todo:
                continue
            port = free_port()
            t0 = time.perf_counter()
            proc = start_server(run, port, user_features)
            startup = time.perf_counter() - t0
            try:
                for paths, rate in todo:
                    endpoint = "/healthz" if paths[0] == "/healthz" else "user recs"
                    shape = f"open {rate:.0f}/s" if rate else f"closed c={args.concurrency}"
                    r = load(
                        proc,
                        port,
                        paths,
                        concurrency=args.concurrency,
                        duration=duration,
                        rate=rate,
                        warmup=warmup,
                    )
                    row = {
                        "run": run_label,
                        "catalogue": f"{summary['audiobooks']:,} ab / {summary['podcasts']:,} pod",
                        "endpoint": endpoint,
                        "features": user_features if endpoint != "/healthz" else "-",
                        "load": shape,
                        "requests": r.requests,
                        "rps": r.throughput,
                        "p50": r.pct(50),
                        "p99": r.pct(99),
                        "errors": r.errors,
                        "cpu_ms": r.server_cpu_s / max(r.requests, 1) * 1e3,
                        "startup": startup,
                    }
                    rows.append(row)
                    print(
                        f"{run_label:>24} {endpoint:>9} {row['features']:>9} {shape:>12}: "
                        f"{r.throughput:7.0f} req/s  p50 {row['p50']:7.1f} ms  p99 {row['p99']:7.1f} ms  "
                        f"errors {r.errors}  server CPU {row['cpu_ms']:.2f} ms/req",
                        flush=True,
                    )
            finally:
                stop_server(proc)

    ref = next((r for r in rows if r["features"] == "reference"), None)
    header = [
        "run",
        "catalogue",
        "endpoint",
        "user features",
        "load",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server CPU ms/req",
        "req/s vs reference",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        same = ref is not None and (r["run"], r["load"]) == (ref["run"], ref["load"])
        ratio = f"{r['rps'] / ref['rps']:.1f}x" if same else ""
        cells = [
            r["run"],
            r["catalogue"],
            r["endpoint"],
            r["features"],
            r["load"],
            f"{r['requests']:,}",
            f"{r['rps']:.0f}",
            f"{r['p50']:.1f}",
            f"{r['p99']:.1f}",
            str(r["errors"]),
            f"{r['cpu_ms']:.2f}",
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print()
    print(table)

    verdicts = []
    for r in rows:
        if r["load"].startswith("open") and r["endpoint"] == "user recs":
            met = r["p99"] <= 25 and r["rps"] >= 0.97 * args.rate and r["errors"] == 0
            verdicts.append(
                f"{r['run']}: p99 {r['p99']:.1f} ms at {r['rps']:.0f} req/s (offered {args.rate:.0f}/s), "
                f"{r['errors']} errors -> {'meets' if met else 'misses'} the goal "
                "(p99 <= 25 ms at >= 300 req/s, 0 errors)"
            )
    for v in verdicts:
        print(v)
    if args.no_results:
        return
    load_avg = os.getloadavg()
    mem = psutil.virtual_memory().total / 2**30
    cmd = " ".join([".venv/bin/python", "bench/serve.py", *sys.argv[1:]])
    runs = (
        (f"`{args.run}`" if args.run else "a demo-scale toy run built by the script")
        + " and "
        + (f"`{args.big_run}`" if args.big_run else f"a {big_label} toy run built by the script")
    )
    notes = [
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem:.1f} GiB RAM; "
        "server = 1 uvicorn worker (torch 1 thread); load generator = asyncio keep-alive client "
        "in another process on the same cores",
        f"- note: the CPU was shared with other jobs while measured (load average {load_avg[0]:.1f} / "
        f"{load_avg[1]:.1f} / {load_avg[2]:.1f} over 1/5/15 min at the end, on {os.cpu_count()} CPUs); "
        "treat absolute numbers as a floor",
        f"- command: `{cmd}`",
        f"- runs: {runs} (1-epoch two-tower with 512-256-128 towers; catalogues at or above "
        "retrieval.exact_below = 50k are searched through the run's Voyager index)",
        "- request: `GET /v1/users/{user}/recommendations?type=audiobook&k=10` with explanations. closed = "
        f"{args.concurrency} clients back to back for {duration:.0f} s; open = {args.rate:.0f} requests/s "
        f"arriving on schedule over {args.concurrency} connections, latency counted from the scheduled time. "
        'reference = `serve.user_features = "reference"` (two-tower pandas feature function per request).',
    ]
    section = (
        "\n## serve: load test of `colisten serve` on loopback (user recommendations endpoint)\n\n"
        + "\n".join(notes)
        + "\n\n"
        + table
        + "\n\n"
        + "\n".join("- " + v for v in verdicts)
        + "\n"
    )
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)
    print(f"appended to {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
