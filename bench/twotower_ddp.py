"""Two-tower epoch time with 1 process and with N DDP ranks (`train-2t --nproc N`) on one machine.

Copies the run's inputs (data, split, content, hgnn; the run itself is only read) into a temporary
folder per setting, trains one model (ensemble 1) for --epochs, and reports the seconds per epoch
(training plus rank 0's validation, from curve.json), the whole stage's wall time (feature
building and process start included) and the validation loss, which should agree across N.

    python bench/twotower_ddp.py --run RUN [--setups 1:2 1:1 2:1] [--epochs 1]

A setup is NPROC:THREADS (torch intra-op threads per process); 1:cores is `train-2t` as it runs
by default, 1:1 one core's worth, N:1 the ranks `--nproc N` starts on N cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from colisten.io import read_json
from colisten.rundir import RunDir
from colisten.twotower import stage
from colisten.twotower.distributed import launch

INPUTS = ("data", "split", "content", "hgnn", "manifest.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run directory after `colisten train-hgnn`")
    ap.add_argument("--setups", nargs="+", default=[f"1:{os.cpu_count()}", "1:1", "2:1"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()

    settings = RunDir(args.run).settings()
    settings.twotower.ensemble = 1
    settings.twotower.epochs = args.epochs
    rows = []
    for setup in args.setups:
        n, threads = map(int, setup.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            run = RunDir(Path(tmp) / "run")
            for name in INPUTS:
                src = args.run / name
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, run.root / name)
            t0 = time.perf_counter()
            if n == 1:
                torch.set_num_threads(threads)
                info = stage.run(run, settings)
            else:
                os.environ["OMP_NUM_THREADS"] = str(threads)  # the workers' intra-op threads
                info = launch(run.root, settings, n, progress=False)
            wall = time.perf_counter() - t0
            curve = read_json(run / "twotower/curve.json")
        per_epoch = sum(r["seconds"] for r in curve) / len(curve)
        rows.append((n, threads, per_epoch, wall, info["best_val_loss"], info["n_train_pairs"]))
        print(f"{setup}: {per_epoch:.1f} s/epoch, stage {wall:.1f} s", file=sys.stderr)

    base = rows[0][2]
    lines = [
        "| nproc | threads each | train pairs | s/epoch | vs first row | stage wall s | val loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, threads, sec, wall, loss, pairs in rows:
        lines.append(
            f"| {n} | {threads} | {pairs:,} | {sec:.1f} | {base / sec:.2f}x | {wall:.1f} | {loss:.4f} |"
        )
    table = "\n".join(lines)
    print(table)
    section = (
        "\n## Two-tower epoch time, 1 process vs DDP ranks (bench/twotower_ddp.py)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, gloo; "
        "shared with other jobs (load average above the core count), so the ratio is noisy\n"
        f"- command: `python bench/twotower_ddp.py {' '.join(sys.argv[1:])}`\n\n{table}\n"
    )
    with args.results.open("a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
