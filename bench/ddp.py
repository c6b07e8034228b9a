"""Epoch time with 1 process and with N DDP ranks (`train-2t --nproc N`, `train-hgnn --nproc N`)
on one machine.

Copies the stage's inputs (the run itself is only read) into a temporary folder per setting,
trains for --epochs (train-2t: one model, ensemble 1; train-hgnn: no early stop), and reports the
seconds per epoch (training plus rank 0's validation, from curve.json), the whole stage's wall time
(data loading and process start included) and the validation loss (train-2t) or metric
(train-hgnn), which should agree across N.

    python bench/ddp.py --run RUN [--stage train-2t|train-hgnn] [--setups 1:2 1:1 2:1] [--epochs 1]

A setup is NPROC:THREADS (torch intra-op threads per process); 1:cores is the stage as it runs
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
from typing import Any

import torch

from colisten.io import read_json
from colisten.rundir import RunDir


class TwoTower:
    """train-2t: one model (ensemble 1); its record gives the training pairs and validation loss."""

    title, folder = "Two-tower", "twotower"
    inputs = ("data", "split", "content", "hgnn", "manifest.json")

    def configure(self, settings: Any, epochs: int, threads: int) -> None:
        settings.twotower.ensemble = 1
        settings.twotower.epochs = epochs

    def run(self, run: RunDir, settings: Any, nproc: int) -> dict[str, Any]:
        from colisten.twotower import stage
        from colisten.twotower.distributed import launch

        return stage.run(run, settings) if nproc == 1 else launch(run.root, settings, nproc, progress=False)

    def epochs(self, run: RunDir) -> list[dict[str, Any]]:
        return read_json(run / self.folder / "curve.json")

    def examples(self, info: dict[str, Any]) -> int:
        return int(info["n_train_pairs"])

    def quality(self, info: dict[str, Any]) -> str:
        return f"val loss {info['best_val_loss']:.4f}"


class HGNN:
    """train-hgnn: every epoch runs (no early stop); hgnn.threads is each process's intra-op
    threads (train-hgnn sets them itself); its record gives the supervision edges per epoch and
    the best validation metric."""

    title, folder = "HGNN", "hgnn"
    inputs = ("data", "graph", "content", "manifest.json")

    def configure(self, settings: Any, epochs: int, threads: int) -> None:
        settings.hgnn.epochs = settings.hgnn.patience = epochs
        settings.hgnn.threads = threads

    def run(self, run: RunDir, settings: Any, nproc: int) -> dict[str, Any]:
        from colisten.hgnn import stage
        from colisten.hgnn.distributed import launch

        return stage.run(run, settings) if nproc == 1 else launch(run.root, settings, nproc, progress=False)

    def epochs(self, run: RunDir) -> list[dict[str, Any]]:
        return read_json(run / self.folder / "curve.json")["epochs"]

    def examples(self, info: dict[str, Any]) -> int:
        return sum(info["edges_per_epoch"].values())

    def quality(self, info: dict[str, Any]) -> str:
        return f"val {info['metric']} {info['best_metric'] or 0:.4f}"


STAGES: dict[str, TwoTower | HGNN] = {"train-2t": TwoTower(), "train-hgnn": HGNN()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run directory after the stages before it")
    ap.add_argument("--stage", choices=sorted(STAGES), default="train-2t")
    ap.add_argument("--setups", nargs="+", default=[f"1:{os.cpu_count()}", "1:1", "2:1"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()

    stage = STAGES[args.stage]
    rows = []
    for setup in args.setups:
        n, threads = map(int, setup.split(":"))
        settings = RunDir(args.run).settings()
        stage.configure(settings, args.epochs, threads)
        with tempfile.TemporaryDirectory() as tmp:
            run = RunDir(Path(tmp) / "run")
            for name in stage.inputs:
                src = args.run / name
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, run.root / name)
            if n == 1:
                torch.set_num_threads(threads)
            else:
                os.environ["OMP_NUM_THREADS"] = str(threads)  # the workers' intra-op threads
            t0 = time.perf_counter()
            info = stage.run(run, settings, n)
            wall = time.perf_counter() - t0
            epochs = stage.epochs(run)
        per_epoch = sum(r["seconds"] for r in epochs) / len(epochs)
        rows.append((n, threads, per_epoch, wall, stage.quality(info), stage.examples(info)))
        print(f"{setup}: {per_epoch:.2f} s/epoch, stage {wall:.1f} s", file=sys.stderr)

    base = rows[0][2]
    lines = [
        "| nproc | threads each | examples / epoch | s/epoch | vs first row | stage wall s | validation |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, threads, sec, wall, quality, examples in rows:
        lines.append(
            f"| {n} | {threads} | {examples:,} | {sec:.2f} | {base / sec:.2f}x | {wall:.1f} | {quality} |"
        )
    table = "\n".join(lines)
    print(table)
    section = (
        f"\n## {stage.title} epoch time, 1 process vs DDP ranks (bench/ddp.py --stage {args.stage})\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}, gloo; "
        "shared with other jobs (load average above the core count), so the ratio is noisy\n"
        f"- command: `python bench/ddp.py {' '.join(sys.argv[1:])}`\n\n{table}\n"
    )
    with args.results.open("a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
