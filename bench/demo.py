"""Wall time of `colisten demo` per stage, against the 10-minute target on 2 CPU cores.

Runs the demo in a subprocess (fresh world, fresh run directory), reads the per-stage timings the
run's manifest records, and appends a table to bench/RESULTS.md. The load average before and after
is printed beside the numbers, since the machines are shared.

    .venv/bin/python bench/demo.py [--small] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="run `colisten demo --small`")
    parser.add_argument("--workdir", type=Path, default=Path("bench/_work/demo"))
    args = parser.parse_args()

    out = args.workdir / ("small" if args.small else "full")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "colisten", "demo", "--out", str(out)] + (["--small"] if args.small else [])
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]

    stages = json.loads((out / "manifest.json").read_text())["stages"]
    rows = [(name, info["seconds"]) for name, info in stages.items()]
    rows.sort(key=lambda r: -r[1])
    lines = ["| stage | seconds | share of wall |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.1f} | {sec / wall:.0%} |" for name, sec in rows]
    lines.append(f"| **total wall** | **{wall:.1f}** | vs 600 s target: {wall / TARGET_S:.2f}× |")
    table = "\n".join(lines)
    print(table)

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    section = (
        f"\n## Demo wall time (`colisten demo{' --small' if args.small else ''}`)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem_gb:.0f} GiB RAM\n"
        f"- command: `{' '.join(['.venv/bin/python', 'bench/demo.py', *sys.argv[1:]])}`\n"
        f"- load average (1 min) before / after: {load_before:.1f} / {load_after:.1f}\n\n{table}\n"
    )
    with open(Path(__file__).parent / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
