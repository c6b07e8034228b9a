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
and `serve.known_user_vectors = 0` (the two-tower pandas feature function and the tower per
request, what a naive server would call), and
`/healthz` (the HTTP stack alone). Repeated on a run with a 250k-item audiobook catalogue served
through its Voyager index.

Runs: `--run DIR` serves an existing run (e.g. the demo's); without it a demo-scale run is built
once under bench/_work/serve from the two-tower toy world (20k users, 2k audiobooks, 4k
podcasts, ~1M events; graph, 1-epoch two-tower with the paper's 512-256-128 towers, index).

Soak under hot swap (`--soak`): one open loop at `--rate` for `--soak-seconds` (300) while a
separate connection sends `POST /admin/reload?wait=true` every `--reload-every` s (60),
alternating `--run-b`, `--run`, `--run-b`, ... (run B defaults to a copy of run A in a temporary
folder, so every swap loads another directory); the server's RSS is sampled once a second. Bars: 0
failed requests, p99 <= 25 ms, RSS at the end within 10% of RSS after the first reload. Appended
to RESULTS.md at full length (>= 300 s) or with `--record`.

    .venv/bin/python bench/serve.py [--quick] [--run DEMO_RUN] [--duration 30] [--rate 300]
    .venv/bin/python bench/serve.py --soak --run DEMO_RUN [--run-b OTHER_RUN] [--soak-seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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


def start_server(run: Path, port: int, user_features: str, work: Path = WORK) -> subprocess.Popen:
    """`colisten serve` on `run` as its own process, its config written under `work`."""
    from colisten.config import settings_as_toml
    from colisten.rundir import RunDir

    settings = RunDir(run).settings()
    settings.serve.user_features = user_features
    if user_features == "reference":  # the naive server: features and tower on every request
        settings.serve.known_user_vectors = 0
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"serve-{user_features}.toml"
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
    return wait_listening(proc, port)


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 600.0) -> subprocess.Popen:
    """`proc` once it accepts connections on `port`; its stderr if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"server did not start in {timeout:.0f} s")


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
    port: int,
    paths: list[str],
    concurrency: int,
    duration: float,
    rate: float,
    trace: list[tuple[float, float, int]] | None = None,
) -> tuple[list, int, float]:
    """`trace`, if given, gets (scheduled perf_counter time, latency ms, HTTP status or 0 for a
    transport error) for every request, in completion order."""
    latencies: list[float] = []
    errors = 0
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Connection(port))

    async def one(path: str, scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status = await conn.get(path)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status = 0
        finally:
            pool.put_nowait(conn)
        latency = (time.perf_counter() - scheduled) * 1e3
        latencies.append(latency)
        errors += status != 200
        if trace is not None:
            trace.append((scheduled, latency, status))

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


@contextlib.contextmanager
def _client_gc_paused():
    """The load generator's own garbage collector off while it measures. Its trace grows by a
    tuple per request, and a full collection walks all of them: in a 300 s soak the client
    stalled 45-133 ms every ~60 s, and the requests it was about to send counted those stalls as
    server latency (the soaks' "unexplained" 0.1-1 s maxima outside the reload windows). The
    server's own collections are untouched."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
    with _client_gc_paused():
        cpu0 = sum(ps.cpu_times()[:2])
        if rate is None:
            lat, errors, seconds = asyncio.run(_closed_loop(port, paths, concurrency, duration))
        else:
            lat, errors, seconds = asyncio.run(_open_loop(port, paths, concurrency, duration, rate))
        cpu = sum(ps.cpu_times()[:2]) - cpu0
    return LoadResult(len(lat), errors, seconds, np.asarray(lat), cpu)


# --- soak under hot swap ---------------------------------------------------------------------------
SOAK_P99_MS = 25.0
SOAK_RSS_GROWTH = 0.10


async def _post_json(
    port: int, path: str, body: dict, token: str | None, timeout: float
) -> tuple[int, bytes]:
    """One POST with a JSON body on its own connection (Connection: close): (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n"
        )
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        writer.write(head.encode() + b"\r\n" + data)
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        m = _LENGTH.search(raw)
        payload = await (reader.readexactly(int(m.group(1))) if m else reader.read())
        return int(raw[9:12]), payload
    finally:
        writer.close()


def _rss(ps: psutil.Process) -> int:
    """Resident set size of the server process and any children, bytes."""
    total = ps.memory_info().rss
    for child in ps.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total


def _stats(lat: np.ndarray) -> dict:
    if not len(lat):
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "max": float(lat.max()),
    }


async def _soak_load(
    proc: subprocess.Popen,
    port: int,
    paths: list[str],
    runs: dict[str, Path],
    *,
    seconds: float,
    rate: float,
    reload_every: float,
    concurrency: int,
    token: str | None,
) -> tuple[float, list, list, list, float]:
    """The open loop at `rate` for `seconds`, with a reloader (B, A, B, ... every `reload_every` s,
    `wait=true`, one at a time) and a 1 s RSS sampler beside it in the same event loop."""
    trace: list[tuple[float, float, int]] = []
    reloads: list[dict] = []
    rss: list[tuple[float, int]] = []
    ps = psutil.Process(proc.pid)
    done = asyncio.Event()
    t0 = time.perf_counter()

    async def requests() -> float:
        return (await _open_loop(port, paths, concurrency, seconds, rate, trace))[2]

    async def reloader() -> None:
        k = 1
        while k * reload_every < seconds:
            await asyncio.sleep(max(0.0, t0 + k * reload_every - time.perf_counter()))
            sent = time.perf_counter()
            if sent - t0 >= seconds:  # a slow reload pushed this one past the last request's schedule
                break
            label = "B" if k % 2 else "A"
            version = error = None
            try:
                status, payload = await _post_json(
                    port, "/admin/reload?wait=true", {"run": str(runs[label])}, token, timeout=600
                )
                body = json.loads(payload) if payload else {}
                version = body.get("version")
                error = None if status == 200 else str(body.get("detail", payload[:200]))
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                status, error = 0, repr(e)
            reloads.append(
                {
                    "n": k,
                    "run": label,
                    "sent": sent - t0,
                    "done": time.perf_counter() - t0,
                    "status": status,
                    "version": version,
                    "error": error,
                }
            )
            k += 1

    async def sampler() -> None:
        n = 0
        while not done.is_set():
            rss.append((time.perf_counter() - t0, _rss(ps)))
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), max(0.0, t0 + n - time.perf_counter()))
        rss.append((time.perf_counter() - t0, _rss(ps)))

    async def load_and_reload() -> float:
        try:
            return (await asyncio.gather(requests(), reloader()))[0]
        finally:
            done.set()  # the last RSS sample comes after the last answer and the last reload

    elapsed, _ = await asyncio.gather(load_and_reload(), sampler())
    return t0, trace, reloads, rss, elapsed


def soak(
    run_a: Path,
    run_b: Path | None = None,
    *,
    seconds: float = 300.0,
    rate: float = 300.0,
    reload_every: float = 60.0,
    concurrency: int = 32,
    warmup: float = 5.0,
    window: float = 5.0,
    work: Path = WORK,
) -> dict:
    """Serve `run_a`, warm up, then load at a fixed `rate` for `seconds` while `POST
    /admin/reload?wait=true` alternates run B, A, B, ... every `reload_every` s (B defaults to a
    copy of A in a temporary folder under `work`, so every swap loads another directory). Returns
    the numbers and the bars; `format_soak` prints them."""
    from colisten.rundir import RunDir

    run_a = Path(run_a).resolve()
    work.mkdir(parents=True, exist_ok=True)
    copy_dir = None
    if run_b is None:
        copy_dir = Path(tempfile.mkdtemp(prefix="soak-", dir=work))
        run_b = copy_dir / run_a.name
        t = time.perf_counter()
        shutil.copytree(run_a, run_b, symlinks=True)
        print(f"run B = a copy of run A at {run_b} ({time.perf_counter() - t:.1f} s)", flush=True)
    run_b = Path(run_b).resolve()
    try:
        users_b = set(run_summary(run_b)["users"])
        users = [u for u in run_summary(run_a)["users"] if u in users_b]  # answerable by both
        users = list(np.random.default_rng(0).permutation(np.asarray(users, dtype=object)))
        paths = [f"/v1/users/{u}/recommendations?type=audiobook&k=10" for u in users]
        token = os.environ.get("COLISTEN_ADMIN_TOKEN") or RunDir(run_a).settings().serve.admin_token
        port = free_port()
        proc = start_server(run_a, port, "fast", work=work)
        try:
            if warmup > 0:
                asyncio.run(_closed_loop(port, paths, concurrency, warmup))
            with _client_gc_paused():
                t0, trace, reloads, rss, elapsed = asyncio.run(
                    _soak_load(
                        proc,
                        port,
                        paths,
                        {"A": run_a, "B": run_b},
                        seconds=seconds,
                        rate=rate,
                        reload_every=reload_every,
                        concurrency=concurrency,
                        token=token,
                    )
                )
        finally:
            stop_server(proc)
    finally:
        if copy_dir is not None:
            shutil.rmtree(copy_dir, ignore_errors=True)

    sched = np.asarray([s - t0 for s, _, _ in trace])
    lat = np.asarray([x for _, x, _ in trace])
    status = np.asarray([c for _, _, c in trace], dtype=int)
    ok = (status >= 200) & (status < 300)
    quiet = np.ones(len(sched), dtype=bool)
    for r in reloads:
        inside = (sched >= r["sent"]) & (sched < r["done"] + window)
        quiet &= ~inside
        r.update(requests=int(inside.sum()), failed=int((~ok & inside).sum()), **_stats(lat[inside]))

    rss_start = rss[0][1]
    rss_end = rss[-1][1]
    first = next((r for r in reloads if r["status"] == 200), None)
    rss_after_first = next((b for t, b in rss if t >= first["done"]), rss_end) if first else None
    growth = rss_end / rss_after_first - 1 if rss_after_first else None
    report = {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "run_b_copied": copy_dir is not None,
        "seconds": seconds,
        "rate": rate,
        "reload_every": reload_every,
        "concurrency": concurrency,
        "window": window,
        "elapsed": elapsed,
        "requests": len(trace),
        "failed": int((~ok).sum()),
        "non_2xx": int(((status != 0) & ~ok).sum()),
        "transport": int((status == 0).sum()),
        **_stats(lat),
        "quiet": {"requests": int(quiet.sum()), **_stats(lat[quiet])},  # outside every reload window
        "reloads": reloads,
        "rss_samples": rss,
        "rss_start": rss_start,
        "rss_after_first_reload": rss_after_first,
        "rss_end": rss_end,
        "rss_max": max(b for _, b in rss),
        "rss_growth": growth,
    }
    report["bars"] = [
        ("0 failed requests", report["failed"] == 0, f"{report['failed']:,} failed"),
        (
            f"p99 <= {SOAK_P99_MS:.0f} ms",
            report["p99"] <= SOAK_P99_MS,
            f"p99 {report['p99']:.1f} ms",
        ),
        (
            f"RSS growth after the 1st reload <= {SOAK_RSS_GROWTH:.0%}",
            growth is not None and growth <= SOAK_RSS_GROWTH,
            f"{growth:+.1%}" if growth is not None else "no reload succeeded",
        ),
        (
            "every reload answered 200",
            bool(reloads) and all(r["status"] == 200 for r in reloads),
            f"{sum(r['status'] == 200 for r in reloads)} of {len(reloads)}",
        ),
    ]
    report["passed"] = all(met for _, met, _ in report["bars"])
    return report


def format_soak(r: dict) -> str:
    """The soak report, 80 columns wide but for the two run paths."""
    mib = 2**20
    lines = [
        f"soak: {r['seconds']:.0f} s at {r['rate']:.0f} req/s over {r['concurrency']} connections,",
        f"  POST /admin/reload?wait=true every {r['reload_every']:.0f} s alternating B, A, B, ...",
        f"  A = {r['run_a']}",
        f"  B = {r['run_b']}",
        *(["      (a temporary copy of A, removed afterwards)"] if r["run_b_copied"] else []),
        "",
        f"requests  {r['requests']:,} scheduled over {r['seconds']:.0f} s, last answered at "
        f"{r['elapsed']:.1f} s ({r['requests'] / r['elapsed']:.1f} req/s)",
        f"failed    {r['failed']:,} ({r['non_2xx']:,} non-2xx, {r['transport']:,} transport errors)",
        f"latency   p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms",
        "          (counted from each request's scheduled send time)",
        "",
        f"reloads (window = from the POST to {r['window']:.0f} s after its answer)",
        f"{'#':>2} {'run':>3} {'sent s':>7} {'status':>6} {'took s':>6} "
        f"{'win reqs':>8} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>8}",
    ]
    for x in r["reloads"]:
        lines.append(
            f"{x['n']:>2} {x['run']:>3} {x['sent']:>7.1f} {x['status']:>6} "
            f"{x['done'] - x['sent']:>6.2f} {x['requests']:>8,} {x['failed']:>6,} "
            f"{x['p50']:>7.1f} {x['p99']:>7.1f} {x['max']:>8.1f}"
        )
    q = r["quiet"]
    lines.append(
        f"{'outside the windows':>27} {q['requests']:>8,} {'':>6} "
        f"{q['p50']:>7.1f} {q['p99']:>7.1f} {q['max']:>8.1f}"
    )
    if not r["reloads"]:
        lines.append("   (none: the soak was shorter than one reload interval)")
    versions = {}
    for x in r["reloads"]:
        versions.setdefault(x["run"], set()).add(x["version"] or f"error: {x['error']}")
    for label, vs in sorted(versions.items()):
        lines.append(f"   {label} served as {', '.join(sorted(vs))}")
    after = r["rss_after_first_reload"]
    lines += [
        "",
        f"RSS MiB   start {r['rss_start'] / mib:.1f}, after the 1st reload "
        + (f"{after / mib:.1f}" if after else "n/a")
        + f", end {r['rss_end'] / mib:.1f}, max {r['rss_max'] / mib:.1f}",
        "          growth after the 1st reload (end vs after): "
        + (f"{r['rss_growth']:+.1%}" if r["rss_growth"] is not None else "n/a")
        + f" ({len(r['rss_samples'])} samples, 1/s)",
        "",
    ]
    lines += [f"{'PASS' if met else 'FAIL'}  {name} ({detail})" for name, met, detail in r["bars"]]
    return "\n".join(lines)


def demo_run(quick: bool) -> Path:
    """The demo-sized run both modes serve when no --run is given (built once under bench/_work)."""
    if quick:
        return build_run(
            WORK / "quick-demo",
            n_users=2000,
            n_audiobooks=300,
            n_podcasts=600,
            events_per_user=40,
            tower_dims=[512, 256, 128],
        )
    return build_run(
        WORK / "demo",
        n_users=20_000,
        n_audiobooks=2_000,
        n_podcasts=4_000,
        events_per_user=50,
        tower_dims=[512, 256, 128],
    )


def soak_main(args: argparse.Namespace) -> None:
    run_a = args.run or demo_run(args.quick)
    report = soak(
        run_a,
        args.run_b,
        seconds=args.soak_seconds,
        rate=args.rate,
        reload_every=args.reload_every,
        concurrency=args.concurrency,
        warmup=2.0 if args.quick else 5.0,
    )
    text = format_soak(report)
    print()
    print(text)
    if args.no_results or not (args.record or args.soak_seconds >= 300):
        return
    notes = [
        *machine_notes(),
        f"- runs: A = `{args.run or run_a}`, B = "
        + ("a copy of A in a temporary folder" if report["run_b_copied"] else f"`{args.run_b}`"),
        "- request: `GET /v1/users/{user}/recommendations?type=audiobook&k=10` (users both runs know), "
        f"open loop at {args.rate:.0f}/s over {args.concurrency} connections after a "
        f"{2 if args.quick else 5} s closed-loop warm-up; latency from the scheduled send time. "
        "Reloads: `POST /admin/reload?wait=true` from a separate connection; RSS of the server "
        "process sampled once a second (psutil).",
    ]
    append_results(
        f"serve soak: {args.soak_seconds:.0f} s at {args.rate:.0f} req/s with a hot swap every "
        f"{args.reload_every:.0f} s",
        notes,
        "```\n" + text + "\n```",
    )


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
    soak_opts = ap.add_argument_group("soak under hot swap (--soak)")
    soak_opts.add_argument(
        "--soak", action="store_true", help="one open loop at --rate, a reload every --reload-every s"
    )
    soak_opts.add_argument("--soak-seconds", type=float, default=300.0, help="soak length (300)")
    soak_opts.add_argument("--reload-every", type=float, default=60.0, help="seconds between reloads (60)")
    soak_opts.add_argument(
        "--run-b", type=Path, help="the run to alternate with --run (default: a copy of it in a temp dir)"
    )
    soak_opts.add_argument(
        "--record", action="store_true", help="append a soak shorter than 300 s to bench/RESULTS.md too"
    )
    args = ap.parse_args()
    if args.soak:
        soak_main(args)
        return
    duration = args.duration or (5.0 if args.quick else 30.0)
    warmup = 2.0 if args.quick else 5.0
    WORK.mkdir(parents=True, exist_ok=True)

    if args.quick:
        demo = args.run or demo_run(quick=True)
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
        demo = args.run or demo_run(quick=False)
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
    runs = (
        (f"`{args.run}`" if args.run else "a demo-scale toy run built by the script")
        + " and "
        + (f"`{args.big_run}`" if args.big_run else f"a {big_label} toy run built by the script")
    )
    notes = [
        *machine_notes(),
        f"- runs: {runs} (1-epoch two-tower with 512-256-128 towers; catalogues at or above "
        "retrieval.exact_below = 50k are searched through the run's Voyager index)",
        "- request: `GET /v1/users/{user}/recommendations?type=audiobook&k=10` with explanations. closed = "
        f"{args.concurrency} clients back to back for {duration:.0f} s; open = {args.rate:.0f} requests/s "
        f"arriving on schedule over {args.concurrency} connections, latency counted from the scheduled time. "
        'reference = `serve.user_features = "reference"` and `serve.known_user_vectors = 0` '
        "(two-tower pandas feature function and tower per request).",
    ]
    append_results(
        "serve: load test of `colisten serve` on loopback (user recommendations endpoint)",
        notes,
        table + "\n\n" + "\n".join("- " + v for v in verdicts),
    )


# --- RESULTS.md ------------------------------------------------------------------------------------
def machine_notes() -> list[str]:
    """The date, machine, load and command lines every section of this script records."""
    load_avg = os.getloadavg()
    mem = psutil.virtual_memory().total / 2**30
    cmd = " ".join([".venv/bin/python", "bench/serve.py", *sys.argv[1:]])
    return [
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem:.1f} GiB RAM; "
        "server = 1 uvicorn worker (torch 1 thread); load generator = asyncio keep-alive client "
        "in another process on the same cores",
        f"- note: the CPU was shared with other jobs while measured (load average {load_avg[0]:.1f} / "
        f"{load_avg[1]:.1f} / {load_avg[2]:.1f} over 1/5/15 min at the end, on {os.cpu_count()} CPUs); "
        "treat absolute numbers as a floor",
        f"- command: `{cmd}`",
    ]


def append_results(title: str, notes: list[str], body: str, path: Path = HERE / "RESULTS.md") -> None:
    section = f"\n## {title}\n\n" + "\n".join(notes) + "\n\n" + body + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(section)
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
