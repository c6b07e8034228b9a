"""Benchmark of the simulated A/B test (issue 14): wall time of `colisten abtest` on a run of the
demo world and the lifts it measures; appends a section to bench/RESULTS.md.

    .venv/bin/python bench/abtest.py --run RUN [--arms control=Popularity,2T=2T,2T-HGNN=2T-HGNN]
        [--arms2 control=Popularity,ALS=ALS] [--days 14] [--note TEXT]

RUN: a run of the demo world (`colisten demo`, or `colisten world` + the stages up to train-2t).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

from colisten.abtest import stage
from colisten.abtest.arms import parse_arms
from colisten.abtest.stage import format_results
from colisten.rundir import RunDir

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--arms", action="append", help="one test per --arms (default: 3 arms + ALS test)")
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--shelf", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", default="", help="conditions to record (e.g. another job was running)")
    ap.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    args = ap.parse_args()
    tests = args.arms or ["control=Popularity,2T=2T,2T-HGNN=2T-HGNN", "control=Popularity,ALS=ALS"]
    sections = []
    for spec in tests:
        t0 = time.perf_counter()
        rd = RunDir(args.run)
        r = stage.run(
            rd,
            rd.settings(),
            arms=parse_arms(spec),
            days=args.days,
            shelf=args.shelf,
            seed=args.seed,
            log=lambda m: print(m, flush=True),
        )
        wall = time.perf_counter() - t0
        lines = format_results(r)
        print("\n".join(lines), f"\nwall {wall:.1f} s", flush=True)
        sections.append((spec, wall, r, lines))
    if args.no_write:
        return
    cmd = " ".join([".venv/bin/python", *sys.argv])
    out = [
        "",
        f"## Simulated A/B test (bench/abtest.py), {dt.date.today().isoformat()}",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}",
        f"- command: `{cmd}`",
        f"- run: {args.run} (world {sections[0][2]['world']})",
    ]
    if args.note:
        out.append(f"- note: {args.note}")
    for spec, wall, r, lines in sections:
        out += [
            "",
            f"`--arms {spec}`: {r['users']:,} users x {r['days']} days x {len(r['models'])} arms, "
            f"wall {wall:.1f} s (simulation {r['seconds']['simulation']:.1f} s)",
            "",
            "```",
            *lines,
            "```",
        ]
    with RESULTS.open("a") as f:
        f.write("\n".join(out) + "\n")
    print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
