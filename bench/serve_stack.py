"""User recommendations and /healthz under uvicorn's two HTTP stacks: pure Python (h11 parser,
asyncio loop) and C (httptools, uvloop), alternated in one run on one machine.

Each round starts `create_app(RUN)` under uvicorn with one stack, measures both endpoints in
closed loops (bench/serve.py's load generator, 32 connections), and stops it; the next round
starts with the other stack. Prints medians over the rounds; appends to bench/RESULTS.md.

    .venv/bin/python bench/serve_stack.py --run DEMO_RUN [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import serve as bench  # noqa: E402

STACKS = {"h11 + asyncio": ("h11", "asyncio"), "httptools + uvloop": ("httptools", "uvloop")}
SERVER = """
import sys, torch, uvicorn
from pathlib import Path
from colisten.serve.app import create_app
torch.set_num_threads(1)
uvicorn.run(create_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False, http=sys.argv[3], loop=sys.argv[4])
"""


def start(run: Path, port: int, http: str, loop: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-c", SERVER, str(run), str(port), http, loop]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return bench.wait_listening(proc, port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="the run to serve (e.g. the demo run)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per stack (3)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement (10)")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args()
    users = np.random.default_rng(0).permutation(
        np.asarray(bench.run_summary(args.run)["users"], dtype=object)
    )
    recs = [f"/v1/users/{u}/recommendations?type=audiobook&k=10" for u in users]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in STACKS}
    for r in range(args.rounds):
        order = list(STACKS.items()) if r % 2 == 0 else list(STACKS.items())[::-1]
        for name, (http, loop) in order:
            port = bench.free_port()
            proc = start(args.run, port, http, loop)
            try:
                a = bench.load(proc, port, recs, concurrency=32, duration=args.duration, rate=None, warmup=3)
                h = bench.load(
                    proc, port, ["/healthz"], concurrency=32, duration=args.duration, rate=None, warmup=2
                )
            finally:
                bench.stop_server(proc)
            row = {
                "recs": a.throughput,
                "healthz": h.throughput,
                "ratio": a.throughput / h.throughput,
                "cpu_recs": a.server_cpu_s / a.requests * 1e3,
                "cpu_healthz": h.server_cpu_s / h.requests * 1e3,
                "p99": a.pct(99),
                "errors": a.errors + h.errors,
            }
            rows[name].append(row)
            print(
                f"round {r + 1} {name}: recs {row['recs']:,.0f}/s, healthz {row['healthz']:,.0f}/s, "
                f"ratio {row['ratio']:.3f}",
                flush=True,
            )
    lines = [
        "| stack | user recs, req/s | /healthz, req/s | ratio | server CPU, ms/request "
        "(recs / healthz) | recs p99, ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in rows.items():
        m = {k: float(np.median([x[k] for x in rs])) for k in rs[0]}
        lines.append(
            f"| {name} | {m['recs']:,.0f} | {m['healthz']:,.0f} | {m['ratio']:.3f} | "
            f"{m['cpu_recs']:.2f} / {m['cpu_healthz']:.2f} | {m['p99']:.1f} | "
            f"{int(sum(x['errors'] for x in rs))} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_results:
        notes = bench.machine_notes()[:2] + [
            f"- command: `.venv/bin/python bench/serve_stack.py {' '.join(sys.argv[1:])}`",
            f"- medians of {args.rounds} rounds per stack, alternated; closed loops, 32 connections, "
            f"{args.duration:.0f} s each",
        ]
        bench.append_results("serve: uvicorn's HTTP stacks (bench/serve_stack.py)", notes, table)


if __name__ == "__main__":
    main()
