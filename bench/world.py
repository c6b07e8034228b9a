"""Benchmark: synthetic world generation speed (events/s) and peak memory at 1M and 10M events.

Baseline, measured in the same run: writing the same number of random rows (same schema, same
part size) to Parquet with pyarrow and nothing else, so the ratio is the simulator's own cost.
Each measurement runs in a fresh subprocess so its peak RSS is its own.

    .venv/bin/python bench/world.py [--quick]      # --quick: 1M events only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
# sizes whose default-behaviour worlds have about 1M / 10M events (about 80 events per user)
SIZES = {
    "1M": {"users": 12_500, "podcasts": 5_000, "audiobooks": 1_000},
    "10M": {"users": 125_000, "podcasts": 20_000, "audiobooks": 4_000},
}

_WORLD = """
import json, resource, sys, time
from colisten.world.simulate import generate_world
size = json.loads(sys.argv[1])
t = time.perf_counter()
s = generate_world(sys.argv[2], seed=0, **size)
print(json.dumps({"seconds": time.perf_counter() - t, "events": s.events, "parts": s.parts,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_BASELINE = """
import json, resource, sys, time
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, users, items, part_rows = (int(a) for a in sys.argv[1:5])
out = Path(sys.argv[5])
out.mkdir(parents=True, exist_ok=True)
t = time.perf_counter()
rng = np.random.default_rng(0)
user_ids = pa.array([f"u{i:07d}" for i in range(users)])
item_ids = pa.array([f"p{i:06d}" for i in range(items)])
events = pa.array(["stream", "follow", "preview", "intent_to_pay"])
for p, lo in enumerate(range(0, n, part_rows)):
    m = min(part_rows, n - lo)
    table = pa.table({
        "user_id": user_ids.take(pa.array(rng.integers(0, users, m))),
        "item_id": item_ids.take(pa.array(rng.integers(0, items, m))),
        "event": events.take(pa.array(rng.integers(0, 4, m))),
        "timestamp": pa.array(np.sort(rng.integers(1_704_067_200, 1_713_052_800, m))),
        "duration_s": pa.array(np.round(rng.exponential(1800.0, m), 1)),
    })
    pq.write_table(table, out / f"part-{p:05d}.parquet", compression="zstd")
print(json.dumps({"seconds": time.perf_counter() - t, "events": n,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M events only")
    args = ap.parse_args()
    labels = ["1M"] if args.quick else ["1M", "10M"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-world-") as tmp:
        for label in labels:
            size = SIZES[label]
            world = _run(_WORLD, json.dumps(size), f"{tmp}/world-{label}")
            part_rows = -(-world["events"] // world["parts"])
            base = _run(
                _BASELINE, str(world["events"]), str(size["users"]), str(size["podcasts"]),
                str(part_rows), f"{tmp}/base-{label}",
            )  # fmt: skip
            rows.append((label, size, world, base))
            print(f"{label}: world {world['seconds']:.1f} s, baseline {base['seconds']:.1f} s", flush=True)

    header = (
        "| target | users / podcasts / audiobooks | events | parts | world s | world events/s "
        "| world peak RSS MB | pyarrow-only s | pyarrow-only peak RSS MB | time ratio world / pyarrow-only |"
    )
    lines = [header, "|" + "---|" * 10]
    for label, size, w, b in rows:
        sizes = f"{size['users']:,} / {size['podcasts']:,} / {size['audiobooks']:,}"
        lines.append(
            f"| {label} | {sizes} | {w['events']:,} | {w['parts']} | {w['seconds']:.1f} "
            f"| {w['events'] / w['seconds']:,.0f} | {w['peak_rss_mb']:.0f} | {b['seconds']:.1f} "
            f"| {b['peak_rss_mb']:.0f} | {w['seconds'] / b['seconds']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)

    ram_gb = psutil.virtual_memory().total / 2**30
    cmd = "python bench/world.py" + (" --quick" if args.quick else "")
    section = (
        f"\n## World generation (bench/world.py)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {ram_gb:.0f} GB RAM "
        f"(CPU shared with other jobs while measured)\n"
        f"- command: `{cmd}`\n"
        f"- baseline: the same number of random rows with the same schema and part size written with "
        f"pyarrow only (no simulation); each run in its own process, peak RSS = its ru_maxrss\n\n"
        f"{table}\n"
    )
    with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
