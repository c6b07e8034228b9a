"""Data-parallel two-tower training: one DistributedDataParallel rank per process.

`colisten train-2t --nproc N` starts N workers on this machine through torch's elastic launcher
(c10d rendezvous on 127.0.0.1, a free port); on a cluster torchrun starts the same worker:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m colisten.twotower.distributed RUN [--resume]

Every rank builds the training data itself (deterministic, checked across ranks) and runs the
train-2t stage; rank 0 alone writes artifacts and the manifest. Backend: gloo on CPU, nccl on
CUDA (one GPU per rank: cuda:LOCAL_RANK). How a batch is shared: _Tensors.sharded_batch_loss.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from colisten import artifacts
from colisten.device import resolve_device
from colisten.twotower.data import TrainingError


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def check_nproc(nproc: int, device: str) -> None:
    """More ranks than cores (CPU) or GPUs (CUDA) only oversubscribes them: refuse up front."""
    if nproc < 1:
        raise TrainingError(f"--nproc must be at least 1 (got {nproc})")
    if device.startswith("cuda"):
        have, what = torch.cuda.device_count(), "CUDA device(s)"
    else:
        have, what = os.cpu_count() or 1, "CPU core(s)"
    if nproc > have:
        raise TrainingError(f"--nproc {nproc} but this machine has {have} {what} (twotower.device {device})")


def launch(
    run: str | Path,
    settings: Any,
    nproc: int,
    *,
    resume: bool = False,
    progress: bool = True,
    worker: Any = None,
) -> dict[str, Any]:
    """Run the train-2t stage on `nproc` local ranks started by torch's elastic launcher; returns
    rank 0's stage record. A failed rank is a TrainingError naming it (the last checkpoint stays:
    `--resume` continues). `worker` replaces run_worker (tests wrap it)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    device = resolve_device(settings.twotower.device, "twotower.device")
    check_nproc(nproc, device)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"colisten-2t-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{_free_port()}",
        max_restarts=0,  # a failed rank fails the stage; `--resume` is the restart
        monitor_interval=0.2,
        start_method="spawn",
        local_addr="127.0.0.1",
    )
    args = (str(run), settings.model_dump(mode="json"), resume, progress)
    try:
        with _launcher_logs_muted():
            results = elastic_launch(config, worker or run_worker)(*args)
    except ChildFailedError as e:
        raise TrainingError(failure_message(e, Path(run))) from None
    return results[0]


@contextlib.contextmanager
def _launcher_logs_muted() -> Iterator[None]:
    """The agent logs every worker failure as a traceback; failure_message says it in one line."""
    names = [n for n in logging.root.manager.loggerDict if n.startswith(("torch.distributed", "torch.multi"))]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run_worker(run: str, settings: dict[str, Any] | None, resume: bool, progress: bool) -> dict[str, Any]:
    """One rank (env:// rendezvous variables from the elastic launcher or torchrun): join the
    process group, run the train-2t stage, leave. Rank 0 logs and writes; the others are quiet."""
    import torch.distributed as dist
    import typer

    from colisten.config import Settings
    from colisten.console import quiet
    from colisten.rundir import RunDir
    from colisten.twotower import stage

    # the launcher stops the other ranks with SIGTERM when one fails: exit through `finally`
    # blocks, so an atomic write in progress removes its temporary file
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # deprecated for a private successor in torch 2.13, but the documented autograd all-gather
    warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather is deprecated")
    rd = RunDir(run)
    settings = Settings.model_validate(settings) if settings is not None else rd.settings()
    device = resolve_device(settings.twotower.device, "twotower.device")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if "OMP_NUM_THREADS" not in os.environ:  # share the node's cores between its ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device))
    try:
        primary = dist.get_rank() == 0
        return stage.run(
            rd,
            settings,
            resume=resume,
            progress=progress and primary,
            log=typer.echo if primary else quiet,
        )
    finally:
        dist.destroy_process_group()


def failure_message(e: Any, run: Path) -> str:
    """One line from the launcher's ChildFailedError: the rank that failed first on its own (a
    rank whose peer vanished fails too, with a connection error, or is stopped by SIGTERM)."""

    def cause(failure: Any) -> str:
        if isinstance(failure.message, dict):
            return str(failure.message.get("message", "")).splitlines()[0]
        if failure.exitcode < 0:
            return f"killed by {failure.signal_name()}"
        return f"exited with code {failure.exitcode}"

    def knock_on(failure: Any) -> bool:
        text = cause(failure)
        return failure.exitcode in (-signal.SIGTERM, 143) or any(
            s in text for s in ("DistBackendError", "Connection closed", "Connection reset", "gloo")
        )

    ranks = sorted(e.failures, key=lambda r: (knock_on(e.failures[r]), e.failures[r].timestamp, r))
    first = ranks[0]
    others = f" (then rank(s) {', '.join(map(str, sorted(ranks[1:])))} stopped)" if ranks[1:] else ""
    ckpt = artifacts.TWOTOWER_CHECKPOINT.within(run / artifacts.TWOTOWER_MODEL.folder)
    if ckpt.exists():
        epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
        after = f"{ckpt} holds epoch {epoch}: rerun with --resume to continue"
    else:
        after = "no checkpoint was written yet"
    return f"train-2t rank {first} failed: {cause(e.failures[first])}{others}; {after}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    """torchrun's entry point (`-m colisten.twotower.distributed`): one rank of the stage."""
    from colisten.errors import ColistenError
    from colisten.rundir import RunDir

    p = argparse.ArgumentParser(prog="python -m colisten.twotower.distributed", description=main.__doc__)
    # RUN is positional: torchrun would take an option `--run` for its own `--run-path`
    p.add_argument("run", help="run directory (on storage every node reads)")
    p.add_argument("--config", help="TOML settings (default: the run's)")
    p.add_argument("--epochs", type=int, help="override twotower.epochs")
    p.add_argument("--resume", action="store_true", help="continue from RUN/twotower/checkpoint.pt")
    a = p.parse_args(argv)
    if "RANK" not in os.environ:
        p.error("start it with torchrun (or use `colisten train-2t --nproc N` on one machine)")
    try:
        settings = RunDir(a.run).settings(a.config)
        if a.epochs is not None:
            settings.twotower.epochs = a.epochs
        info = run_worker(a.run, settings.model_dump(mode="json"), a.resume, False)
    except ColistenError as e:
        print(f"error: rank {os.environ['RANK']}: {e}", file=sys.stderr)
        sys.exit(2)
    if os.environ["RANK"] == "0":
        best, loss = info["best_epoch"], info["best_val_loss"]
        print(f"two-tower model: best epoch {best} (validation loss {loss:.4f}); wrote {a.run}/twotower")


if __name__ == "__main__":
    main()
