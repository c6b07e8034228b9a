"""Benchmark: every stage on growing synthetic worlds, each stage's growth fitted and projected to the
paper's scale (10M users, 3.75M items, 800M events): which stages fit one machine, which need a cluster.

For each size (users; the catalogue grows with them at the paper's ratio, 0.35 podcasts and 0.025
audiobooks per user: 10M users -> 3.5M podcasts, 250k audiobooks) `colisten world` writes a world,
then every stage runs as the command a user types, each in its own process, so that its peak RSS is
its own (a small wrapper process starts it and reads wait4's ru_maxrss: the stage and its children):

    colisten world --out WORLD --users N --podcasts 0.35N --audiobooks 0.025N   (input, not fitted)
    colisten validate --data WORLD --run RUN --config WORKDIR/scale.toml
    colisten split --run RUN
    colisten embed --run RUN --no-progress
    colisten graph --run RUN
    colisten train-hgnn --run RUN --quiet
    colisten train-2t --run RUN --no-progress
    colisten index --run RUN
    colisten evaluate --run RUN --models Popularity,HGNN,2T-HGNN
    colisten recommend --run RUN --users all --k 100 --out RUN/recommend/recs.parquet

Bounded work (scale.toml, saved in the run by validate): tune off; HGNN and two-tower one epoch each
(two-tower ensemble 1), so the per-epoch cost is what grows; the HGNN epoch is the paper's whole
balanced epoch (the default cap of 4096 edges lifted: it would hold the epoch's training constant
whatever the graph's size); evaluate ranks the full catalogue with three models (no oracles, no 2T
baseline: it would train a second two-tower model); recommend exports the top 100 audiobooks of
every known user. Per stage: wall seconds, peak RSS, and the MiB of the folder it wrote (symlinks
not followed).

Fit: each stage is also run on a tiny "floor" world (--floor-users) whose cost is taken as the
stage's fixed cost (interpreter, imports, model load); the growth above it is fitted as a power law
y - floor = a * events^b (log-log least squares) and projected to 800M events as floor + a * n^b.
A plain y = a * n^b fit would take the fixed ~0.3 GB of every Python process for the growth and
project far too little memory. Verdict: "one machine" unless the projected peak RSS exceeds
--max-memory-gb (24) or the time --max-hours (24) on this machine; DuckDB stages (validate, split,
graph) spill to disk past their memory_limit, so their memory is not held against them.

Raw measurements go to WORKDIR/measurements.json (atomic writes): a rerun skips finished sizes
and stages (resume); a finished size's world and run are deleted unless --keep-runs. The plot
(log-log time and peak RSS per stage against events, projections dashed) goes to docs/scaling.png.

    .venv/bin/python bench/scale.py [--sizes 5000,20000,80000] [--workdir bench/_work/scale]
        [--floor-users 400] [--keep-runs] [--no-record] [--plot docs/scaling.png]
    .venv/bin/python bench/scale.py --sizes 1000,2000 --no-record      # a smoke run, a few minutes
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from colisten.artifacts import CATALOGUE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The paper's offline data (De Nadai, Fabbri et al., WWW '24): 10M users, 3.5M+ podcasts and
# 250k+ audiobooks, 800M interactions.
PAPER = {"users": 10_000_000, "podcasts": 3_500_000, "audiobooks": 250_000, "events": 800_000_000}
PODCASTS_PER_USER = PAPER["podcasts"] / PAPER["users"]  # 0.35
AUDIOBOOKS_PER_USER = PAPER["audiobooks"] / PAPER["users"]  # 0.025
MIN_PODCASTS, MIN_AUDIOBOOKS = 200, 100  # tiny worlds still have a catalogue to rank (k = 100)
DEFAULT_SIZES = (5_000, 20_000, 80_000)
DEFAULT_MODELS = "Popularity,HGNN,2T-HGNN"

# The settings every size runs with: bounded, comparable work per stage (see the docstring).
CONFIG_TOML = """\
# bench/scale.py: bounded work per stage, so that seconds per stage compare across sizes
[tune]
enabled = false

[hgnn]
epochs = 1
patience = 1
# the paper's balanced epoch: every relation undersampled to the smallest, not capped (the default
# cap, 4096 edges, would hold an epoch's training constant whatever the graph; TOML has no None)
max_edges_per_epoch = 1000000000

[twotower]
epochs = 1
ensemble = 1

[evaluate]
oracles = false
"""

# the stages in order; WRITES: the run folder(s) each writes (its disk size); SCALE_OUT: its path
# past one machine, where colisten has one
STAGES = (
    "validate",
    "split",
    "embed",
    "graph",
    "train-hgnn",
    "train-2t",
    "index",
    "evaluate",
    "recommend",
)
# recommend writes where --out says (stage_command puts it in RUN/recommend); the rest, the folders
# of their artifacts in the catalogue
WRITES = {stage: sorted({a.folder for a in CATALOGUE if a.stage == stage}) or [stage] for stage in STAGES}
# DuckDB stages: memory bounded by a setting, they spill to disk beyond it
SPILLS = {"validate": "[data] memory_limit", "split": "[data] memory_limit", "graph": "[graph] memory_limit"}
SCALE_OUT = {
    "validate": "none; DuckDB spills to disk past [data] memory_limit",
    "split": "none; DuckDB spills to disk past [data] memory_limit",
    "embed": 'none; [content] device = "cuda", a shared [content] cache_dir',
    "graph": '[graph] engine = "spark" (colisten graph --engine spark)',
    "train-hgnn": "train-hgnn --nproc N; torchrun -m colisten.hgnn.distributed",
    "train-2t": "train-2t --nproc N; torchrun -m colisten.twotower.distributed",
    "index": "none (Voyager HNSW, one index per item type, one machine)",
    "evaluate": "none (one process, users in batches)",
    "recommend": "recommend --engine spark [--spark-master URL]",
}

# The wrapper that measures one command: starts it in its own session, waits with wait4 (ru_maxrss of
# the command and of the children it waited for, in KiB), kills its group past the time limit or
# when the wrapper itself is interrupted (Ctrl-C, SIGTERM), so no stage outlives the benchmark.
# A process of its own, so the driver's own memory never enters ru_maxrss (fork / exec carry the
# parent's high-water mark into the child's).
_MEASURE = r"""
import json, os, signal, subprocess, sys, time
limit = float(sys.argv[1]) or None
log = open(sys.argv[2], "w")
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[3:], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

def stop(signum, frame):
    os.killpg(p.pid, signal.SIGKILL)
    os.wait4(p.pid, 0)
    sys.exit(128 + signum)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
timed_out = False
while True:
    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    if pid:
        break
    if limit and time.perf_counter() - t0 > limit and not timed_out:
        timed_out = True
        os.killpg(p.pid, signal.SIGKILL)
    time.sleep(0.05)
p.returncode = os.waitstatus_to_exitcode(status)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mib": ru.ru_maxrss / 1024,
                  "returncode": p.returncode, "timed_out": timed_out}))
"""


# --- sizes, commands and the measurement of one command ------------------------------------------
def world_size(users: int) -> dict[str, int]:
    """A world of `users` with the paper's catalogue per user (at least a small catalogue)."""
    return {
        "users": users,
        "podcasts": max(round(users * PODCASTS_PER_USER), MIN_PODCASTS),
        "audiobooks": max(round(users * AUDIOBOOKS_PER_USER), MIN_AUDIOBOOKS),
    }


def stage_command(stage: str, world: Path, run: Path, config: Path, models: str) -> list[str]:
    """The `colisten` arguments of one stage (what a user types)."""
    return {
        "validate": ["validate", "--data", str(world), "--run", str(run), "--config", str(config)],
        "split": ["split", "--run", str(run)],
        "embed": ["embed", "--run", str(run), "--no-progress"],
        "graph": ["graph", "--run", str(run)],
        "train-hgnn": ["train-hgnn", "--run", str(run), "--quiet"],
        "train-2t": ["train-2t", "--run", str(run), "--no-progress"],
        "index": ["index", "--run", str(run)],
        "evaluate": ["evaluate", "--run", str(run), "--models", models],
        "recommend": [
            "recommend",
            "--run",
            str(run),
            "--users",
            "all",
            "--k",
            "100",
            "--out",
            str(run / "recommend" / "recs.parquet"),
        ],
    }[stage]


def world_command(world: Path, size: dict[str, int], seed: int) -> list[str]:
    return [
        "world",
        "--out",
        str(world),
        "--users",
        str(size["users"]),
        "--podcasts",
        str(size["podcasts"]),
        "--audiobooks",
        str(size["audiobooks"]),
        "--seed",
        str(seed),
    ]


def measure(args: list[str], log: Path, timeout_s: float | None) -> dict:
    """Run `colisten ARGS` in a fresh process; wall seconds, peak RSS (MiB), return code."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _MEASURE, str(timeout_s or 0), str(log), sys.executable, "-m", "colisten"]
    done = subprocess.run(cmd + args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def disk_mib(paths: list[Path]) -> float:
    """MiB of the files under `paths` (symlinks not followed: shared folders count once)."""
    total = 0
    for path in paths:
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
            continue
        for folder, _, files in os.walk(path):
            for name in files:
                p = Path(folder) / name
                if not p.is_symlink():
                    total += p.stat().st_size
    return total / 2**20


def failure(result: dict, log: Path) -> str:
    """One line saying why a command failed, from its return code and the end of its log."""
    rc = result["returncode"]
    if result["timed_out"]:
        why = "killed past --stage-timeout"
    elif rc == -9:
        why = "killed by SIGKILL (out of memory?)"
    else:
        why = f"exit code {rc}"
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
    return why + (": " + " | ".join(tail) if tail else "")


# --- one size: the world and every stage, resumable ----------------------------------------------
class Store:
    """measurements.json: the setup and every measurement so far, rewritten atomically."""

    def __init__(self, path: Path, setup: dict, fresh: bool) -> None:
        from colisten.io import read_json

        self.path = path
        self.data = {"setup": setup, "sizes": {}}
        if path.exists() and not fresh:
            old = read_json(path)
            if old.get("setup") != setup:
                raise SystemExit(
                    f"{path} was measured with other settings:\n  {old.get('setup')}\nnow:\n  {setup}\n"
                    "rerun with --fresh (discards it) or give another --workdir"
                )
            self.data = old

    def size(self, users: int) -> dict:
        return self.data["sizes"].setdefault(str(users), {"stages": {}})

    def save(self) -> None:
        from colisten.io import write_json_atomic

        write_json_atomic(self.path, self.data)


def run_size(users: int, store: Store, args: argparse.Namespace, config: Path) -> dict:
    """The world and every stage at one size (skipping what the store already holds)."""
    from colisten.io import read_json

    rec = store.size(users)
    if rec.get("complete"):
        return rec
    rec.pop("failed", None)  # a stage that failed before is tried again (from where it stopped)
    base = args.workdir / f"users-{users}"
    world, run, logs = base / "world", base / "run", base / "logs"
    size = world_size(users)
    rec["size"] = size
    if "world" not in rec:
        if world.exists():  # an interrupted world: generate it again
            shutil.rmtree(world)
        what = f"{size['users']:,} users, {size['podcasts']:,} podcasts, {size['audiobooks']:,} audiobooks"
        print(f"  world ({what}) ...", flush=True)
        result = measure(world_command(world, size, args.seed), logs / "world.log", args.stage_timeout)
        if result["returncode"] != 0:
            rec["failed"] = {"stage": "world", "error": failure(result, logs / "world.log")}
            store.save()
            return rec
        summary = read_json(world / "world.json")
        result["disk_mib"] = disk_mib([world])
        rec["world"] = result
        rec["events"] = summary["events"]
        rec["items"] = size["podcasts"] + size["audiobooks"]
        store.save()
    for stage in STAGES:
        if stage in rec["stages"]:
            continue
        print(f"  {stage} ...", end=" ", flush=True)
        log = logs / f"{stage}.log"
        result = measure(stage_command(stage, world, run, config, args.models), log, args.stage_timeout)
        if result["returncode"] != 0:
            rec["failed"] = {"stage": stage, "error": failure(result, log), **result}
            store.save()
            print(f"FAILED ({rec['failed']['error']})", flush=True)
            return rec
        result["disk_mib"] = disk_mib([run / f for f in WRITES[stage]])
        rec["stages"][stage] = result
        store.save()
        print(f"{result['seconds']:.1f} s, {result['peak_rss_mib']:,.0f} MiB", flush=True)
    rec["context"] = run_context(run)
    rec["complete"] = True
    rec["load_after"] = os.getloadavg()[0]
    store.save()
    if not args.keep_runs:
        shutil.rmtree(base)
    return rec


def run_context(run: Path) -> dict:
    """What the run's manifest says about the data each stage saw (users, edges, label rows...)."""
    from colisten.io import read_json

    stages = read_json(run / "manifest.json").get("stages", {})
    keep = {
        "validate": ("users", "items_per_type"),
        "graph": ("edges", "edges_per_relation"),
        "train-hgnn": ("train_edges", "edges_per_epoch", "seconds_per_epoch"),
        "train-2t": ("n_train_pairs", "n_val_pairs", "epochs"),
        "evaluate": ("evaluated_users",),
    }
    return {s: {k: stages[s][k] for k in keys if k in stages.get(s, {})} for s, keys in keep.items()}


# --- fits and projections --------------------------------------------------------------------------
METRICS = ("seconds", "peak_rss_mib", "disk_mib")


def _power_law(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """a, b of y = a * x^b: least squares on log y against log x."""
    import numpy as np

    b, log_a = np.polyfit(np.log(xs), np.log(ys), 1)
    return math.exp(log_a), float(b)


def fit_growth(xs: list[float], ys: list[float], floor: float) -> dict:
    """y = floor + a * x^b, a and b by least squares on log(y - floor) against log(x).

    Points whose growth above the floor is under 10% of the floor (noise) are left out; with fewer
    than two left, or a fitted b <= 0, the stage counts as flat at these sizes (b = 0, not
    projected: measure larger sizes).
    """
    pts = [(x, y - floor) for x, y in zip(xs, ys, strict=True) if y - floor > 0.1 * max(floor, 1e-9)]
    if len(pts) >= 2:
        a, b = _power_law([x for x, _ in pts], [y for _, y in pts])
        if b > 0:  # growth above the floor that shrinks with size is noise, not a trend
            return {"a": a, "b": b, "floor": floor, "points": len(pts), "flat": False}
    return {"a": max(ys) - floor, "b": 0.0, "floor": floor, "points": len(pts), "flat": True}


def fit_plain(xs: list[float], ys: list[float]) -> float | None:
    """The exponent of a plain power law y = a * x^b (for the record; fixed costs bias it low)."""
    if len(xs) < 2 or min(ys) <= 0:
        return None
    return _power_law(xs, ys)[1]


def predict(fit: dict, x: float) -> float:
    return fit["floor"] + fit["a"] * x ** fit["b"]


def projections(measured: list[dict], floor: dict | None, target_events: float) -> dict:
    """Per stage and metric: the fit over the complete sizes and its value at `target_events`."""
    out: dict[str, dict] = {}
    for stage in STAGES:
        rows = [m for m in measured if stage in m["stages"]]
        if len(rows) < 2:
            continue
        xs = [float(m["events"]) for m in rows]
        out[stage] = {}
        for metric in METRICS:
            ys = [float(m["stages"][stage][metric]) for m in rows]
            base = float(floor["stages"][stage][metric]) if floor and stage in floor["stages"] else 0.0
            fit = fit_growth(xs, ys, min(base, min(ys)))
            fit["plain_b"] = fit_plain(xs, ys)
            fit["projected"] = None if fit["flat"] else predict(fit, target_events)
            out[stage][metric] = fit
    return out


def verdict(stage: str, proj: dict, max_memory_gb: float, max_hours: float) -> str:
    """ "one machine" or "cluster (why)"; "?" where time or memory was flat (not projected), "*" for
    a DuckDB stage whose unbounded memory would exceed the machine (it spills instead)."""
    t, m = proj["seconds"]["projected"], proj["peak_rss_mib"]["projected"]
    if t is None and m is None:
        return "n/a (flat)"
    too_long = t is not None and t / 3600 > max_hours
    too_big = m is not None and m / 1024 > max_memory_gb
    unsure = "?" if t is None or m is None else ""
    if too_big and stage not in SPILLS:
        return "cluster: t+mem" if too_long else "cluster: mem"
    if too_long:
        return "cluster: time"
    return "one machine" + ("*" if too_big else "") + unsure


# --- formatting --------------------------------------------------------------------------------------
def fmt_time(s: float) -> str:
    for unit, div in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= div * (2 if unit == "d" else 1):
            return f"{s / div:.1f} {unit}"
    return f"{s:.1f} s"


def fmt_mib(mib: float) -> str:
    for unit, div in (("TB", 1024**2), ("GB", 1024)):
        if mib >= div:
            v = mib / div
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}"
    return f"{mib:.0f} MB"


def fmt_count(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def measured_tables(measured: list[dict], floor: dict | None) -> str:
    """Seconds, peak RSS and disk per stage (rows) and size (columns), at most 80 columns wide."""
    cols = ([floor] if floor else []) + measured
    if not cols:
        return "(no size completed)"
    head = ["floor" if c is floor else f"{fmt_count(c['events'])} ev" for c in cols]
    lines = ["Sizes (the first column: the floor world, the stages' fixed cost):"]
    for c in cols:
        items = c["size"]["podcasts"] + c["size"]["audiobooks"]
        lines.append(f"- {c['size']['users']:,} users, {items:,} items, {c['events']:,} events")
    for metric, title, fmt in (
        ("seconds", "wall seconds", lambda v: f"{v:.1f}"),
        ("peak_rss_mib", "peak RSS, MiB", lambda v: f"{v:,.0f}"),
        ("disk_mib", "written on disk, MiB", lambda v: f"{v:,.1f}"),
    ):
        lines += ["", f"| {title:<20} | " + " | ".join(f"{h:>9}" for h in head) + " |"]
        lines.append("|" + "-" * 22 + "|" + "|".join("-" * 10 + ":" for _ in head) + "|")
        for stage in ("world", *STAGES):
            vals = []
            for c in cols:
                m = c.get("world") if stage == "world" else c["stages"].get(stage)
                vals.append(fmt(m[metric]) if m and metric in m else "-")
            name = "(world, input)" if stage == "world" else stage
            lines.append(f"| {name:<20} | " + " | ".join(f"{v:>9}" for v in vals) + " |")
        if metric == "seconds":
            total = [sum(c["stages"][s]["seconds"] for s in c["stages"]) for c in cols]
            lines.append(f"| {'total (stages)':<20} | " + " | ".join(f"{v:>9.1f}" for v in total) + " |")
    return "\n".join(lines)


def projection_table(proj: dict, args: argparse.Namespace) -> str:
    """Exponents and the projection to the paper's scale, with a verdict per stage (80 columns)."""
    items = (PAPER["podcasts"] + PAPER["audiobooks"]) / 1e6
    lines = [
        f"Projected to the paper's scale: {PAPER['users'] / 1e6:.0f}M users, {items:.2f}M items, "
        f"{PAPER['events'] / 1e6:.0f}M events.",
        "b (time, memory, disk): the exponent of the growth above the fixed cost, y =",
        "floor + a * events^b. Verdict: a cluster past "
        f"{args.max_memory_gb:g} GB peak RSS or {args.max_hours:g} h",
        "on this machine.",
        "",
        "| stage      | b t / m / d    |     time |  memory |    disk | verdict        |",
        "|------------|----------------|---------:|--------:|--------:|----------------|",
    ]

    def b(fit: dict) -> str:
        return "flat" if fit["flat"] else f"{fit['b']:.2f}"

    def value(fit: dict, fmt) -> str:
        return "n/a" if fit["projected"] is None else fmt(fit["projected"])

    for stage, p in proj.items():
        bs = " ".join(b(p[m]) for m in METRICS)
        lines.append(
            f"| {stage:<10} | {bs:<14} | {value(p['seconds'], fmt_time):>8} "
            f"| {value(p['peak_rss_mib'], fmt_mib):>7} | {value(p['disk_mib'], fmt_mib):>7} "
            f"| {verdict(stage, p, args.max_memory_gb, args.max_hours):<14} |"
        )
    timed = [p["seconds"]["projected"] for p in proj.values() if p["seconds"]["projected"] is not None]
    lines.append(f"\nAll stages with a projected time, one after another: {fmt_time(sum(timed))}.")
    if any(p[m]["flat"] for p in proj.values() for m in METRICS):
        lines.append(
            "flat, n/a: fewer than two sizes grew more than 10% above the fixed cost (the\n"
            "  floor world's), so not projected: measure larger sizes; ?: the verdict rests\n"
            "  on the other of time and memory."
        )
    if any(s in SPILLS for s in proj):
        lines.append(
            "*: validate, split and graph run in DuckDB, which spills to disk past its\n"
            "  memory_limit: their projected memory is what they would take unbounded, not\n"
            "  a limit (bench/validate.py, bench/graph.py)."
        )
    lines.append("\nscale-out path per stage:\n")
    lines += [f"- {s}: {SCALE_OUT[s]}" for s in proj]
    return "\n".join(lines)


# --- plot ---------------------------------------------------------------------------------------------
def plot(measured: list[dict], proj: dict, path: Path, args: argparse.Namespace) -> None:
    """Log-log time and peak RSS per stage against events; projections dashed to the paper's scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from colisten.io import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    target = float(PAPER["events"])
    colours = plt.get_cmap("tab10")
    for ax, metric, scale, ylabel, limit in (
        (axes[0], "seconds", 1.0, "wall seconds (log)", args.max_hours * 3600),
        (axes[1], "peak_rss_mib", 1 / 1024, "peak RSS, GiB (log)", args.max_memory_gb),
    ):
        for i, (stage, p) in enumerate(proj.items()):
            rows = [m for m in measured if stage in m["stages"]]
            xs = np.array([m["events"] for m in rows], dtype=float)
            ys = np.array([m["stages"][stage][metric] for m in rows], dtype=float) * scale
            c = colours(i % 10)
            spills = metric == "peak_rss_mib" and stage in SPILLS
            ax.plot(xs, ys, "o-", color=c, label=stage + (" (DuckDB: spills instead)" if spills else ""))
            fit = p[metric]
            grid = np.geomspace(xs.max(), target, 50)
            if not fit["flat"]:  # a flat stage is not projected
                curve = predict(fit, grid) * scale
                ax.plot(grid, curve, ":" if spills else "--", color=c, alpha=0.8)
                ax.plot([target], [fit["projected"] * scale], "x", color=c)
        ax.axvline(target, color="grey", lw=0.8)
        ax.axhline(limit, color="red", lw=0.8, ls=":")
        label = f"{args.max_hours:g} h" if metric == "seconds" else f"{limit:g} GB"
        ax.text(target, limit, f"one machine: {label} ", color="red", fontsize=8, va="bottom", ha="right")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events (log); grey line: the paper's 800M")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.25)
    axes[0].set_title("time per stage (dashed: projection)")
    axes[1].set_title("peak memory per stage (dashed: projection)")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle("colisten stages on growing synthetic worlds (bench/scale.py)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="users per world, comma-separated"
    )
    ap.add_argument("--floor-users", type=int, default=400, help="the tiny world that measures fixed costs")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / "_work" / "scale")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="models `colisten evaluate --models` ranks")
    ap.add_argument("--seed", type=int, default=0, help="world seed")
    ap.add_argument("--stage-timeout", type=float, default=None, help="kill a stage after this many s")
    ap.add_argument("--max-memory-gb", type=float, default=24.0, help="memory of 'one machine'")
    ap.add_argument("--max-hours", type=float, default=24.0, help="time a stage may take on one machine")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "scaling.png")
    ap.add_argument("--keep-runs", action="store_true", help="keep each size's world and run folders")
    ap.add_argument("--fresh", action="store_true", help="discard earlier measurements in --workdir")
    ap.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.floor_users >= sizes[0]:
        ap.error(f"--floor-users ({args.floor_users}) must be below the smallest size ({sizes[0]})")
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)

    config = args.workdir / "scale.toml"
    config.write_text(CONFIG_TOML, encoding="utf-8")
    setup = {
        "config": CONFIG_TOML,
        "models": args.models,
        "seed": args.seed,
        "catalogue_per_user": [PODCASTS_PER_USER, AUDIOBOOKS_PER_USER],
        "catalogue_min": [MIN_PODCASTS, MIN_AUDIOBOOKS],
        # measurements taken with other threads or on another machine must not mix with these
        "cpus": os.cpu_count(),
        "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    store = Store(args.workdir / "measurements.json", setup, args.fresh)

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    broke = None
    done: dict[int, dict] = {}
    for users in [args.floor_users, *sizes]:
        print(f"== {users:,} users" + (" (floor)" if users == args.floor_users else ""), flush=True)
        rec = run_size(users, store, args, config)
        if rec.get("failed"):
            broke = (users, rec["failed"])
            print(
                f"== {users:,} users: {rec['failed']['stage']} failed; larger sizes not attempted", flush=True
            )
            break
        done[users] = rec
    wall = time.perf_counter() - t0

    floor = done.get(args.floor_users)
    measured = [done[u] for u in sizes if u in done]
    text = measured_tables(measured, floor)
    if broke:
        text += f"\n\nbroke at {broke[0]:,} users: {broke[1]['stage']}: {broke[1]['error']}"
    proj = projections(measured, floor, PAPER["events"])
    store.data["projections"] = proj
    store.save()
    if proj:
        text += "\n\n" + projection_table(proj, args)
        plot(measured, proj, args.plot, args)
        text += f"\n\nplot: {args.plot}"
    else:
        text += "\n\n(fewer than two complete sizes: no fit)"
    print()
    print(text)
    print(f"\nwall: {wall / 60:.1f} min (this invocation; resumed measurements excluded)")
    if not args.no_record:
        record(text, args, load_before, wall)


def record(text: str, args: argparse.Namespace, load_before: float, wall: float) -> None:
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    threads = os.environ.get("OMP_NUM_THREADS")
    command = "bench/scale.py " + " ".join(sys.argv[1:])
    section = "\n".join(
        [
            "",
            "## Scale: every stage on growing synthetic worlds, projected to the paper's (bench/scale.py)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {ram:.1f} GiB RAM"
            + (f", OMP_NUM_THREADS={threads}" if threads else ""),
            f"- command: `.venv/bin/python {command.strip()}`",
            f"- load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; "
            f"wall of this invocation {wall / 60:.1f} min",
            f"- worlds: `colisten world`, {PODCASTS_PER_USER:g} podcasts and {AUDIOBOOKS_PER_USER:g} "
            "audiobooks per user (the paper's catalogue per user); every stage its own `colisten` "
            "process (peak RSS = wait4 ru_maxrss); "
            "tune off, HGNN and two-tower 1 epoch (ensemble 1; the HGNN epoch the paper's whole balanced "
            f"epoch, uncapped), evaluate `--models {args.models}`; disk = MiB of the folder the stage "
            f"wrote; fixed cost per stage = a {args.floor_users}-user floor world (docs/scaling.md)",
            "",
            text,
            "",
        ]
    )
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)
    print(f"appended to {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
