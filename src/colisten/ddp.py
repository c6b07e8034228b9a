"""Data-parallel training plumbing shared by the stages that train as DDP ranks (`train-hgnn
--nproc N`, `train-2t --nproc N`): the ranks' process group, the local launcher, torchrun's entry
point, and the checks and test hook every rank runs.

A stage describes itself once (`Stage`: its name, settings section, worker and checkpoint).
`Stage.launch` starts N workers on this machine through torch's elastic launcher (c10d
rendezvous on 127.0.0.1, a free port); on a cluster torchrun starts the same workers through
`Stage.torchrun_main` (`-m colisten.hgnn.distributed RUN`, `-m colisten.twotower.distributed
RUN`). A worker joins the process group with `process_group` (gloo on CPU, nccl on CUDA: one
GPU per rank, cuda:LOCAL_RANK) and runs its stage; rank 0 alone writes. How a rank shares a
batch is each training loop's own business (hgnn/train.py, twotower/train.py).

Foundation layer: the stages import it, it imports no stage (each passes its worker in).
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
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from colisten.device import resolve_device
from colisten.errors import ColistenError


class DistributedError(ColistenError):
    """A bad --nproc, ranks that disagree, or a rank that failed."""


@dataclass(frozen=True)
class Stage:
    """A stage that trains as DDP ranks. `worker(run, settings as JSON, resume, progress)` is one
    rank (it joins the process group); `section` is the settings section whose device and epochs
    apply; `checkpoint` (an artifacts.Artifact) and `checkpoint_epoch` say what a failed launch
    leaves to --resume from; `done(run, rank 0's result)` is torchrun's last line."""

    name: str
    section: str
    module: str
    worker: Callable[..., Any]
    checkpoint: Any
    checkpoint_epoch: Callable[[dict[str, Any]], int]
    done: Callable[[str, Any], str]

    def launch(
        self,
        run: str | Path,
        settings: Any,
        nproc: int,
        *,
        resume: bool = False,
        progress: bool = True,
        worker: Callable[..., Any] | None = None,
    ) -> Any:
        """Run the stage on `nproc` local ranks started by torch's elastic launcher; returns rank 0's
        result. A failed rank is a DistributedError naming it, ending with what the last checkpoint
        holds (`--resume` continues). `worker` replaces self.worker (tests wrap it)."""
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

        setting = f"{self.section}.device"
        check_nproc(nproc, resolve_device(getattr(settings, self.section).device, setting), setting)
        config = LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            nproc_per_node=nproc,
            run_id=f"colisten-{self.name}-{uuid.uuid4().hex[:8]}",
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
                results = elastic_launch(config, worker or self.worker)(*args)
        except ChildFailedError as e:
            raise DistributedError(failure_message(e, self.name, checkpoint_note(self, run))) from None
        return results[0]

    def torchrun_main(self, argv: list[str] | None, worker: Callable[..., Any] | None = None) -> None:
        """torchrun's entry point of a stage (`python -m MODULE RUN [--config] [--epochs] [--resume]`):
        one rank of it (`worker`, default self.worker); rank 0 prints `self.done(run, result)`."""
        from colisten.rundir import RunDir

        p = argparse.ArgumentParser(
            prog=f"python -m {self.module}", description=f"torchrun's entry point: one rank of {self.name}."
        )
        # RUN is positional: torchrun would take an option `--run` for its own `--run-path`
        p.add_argument("run", help="run directory (on storage every node reads)")
        p.add_argument("--config", help="TOML settings (default: the run's)")
        p.add_argument("--epochs", type=int, help=f"override {self.section}.epochs")
        p.add_argument(
            "--resume", action="store_true", help=f"continue from RUN/{self.section}/checkpoint.pt"
        )
        a = p.parse_args(argv)
        if "RANK" not in os.environ:
            p.error(f"start it with torchrun (or use `colisten {self.name} --nproc N` on one machine)")
        try:
            settings = RunDir(a.run).settings(a.config)
            if a.epochs is not None:
                getattr(settings, self.section).epochs = a.epochs
            result = (worker or self.worker)(a.run, settings.model_dump(mode="json"), a.resume, False)
        except ColistenError as e:
            print(f"error: rank {os.environ['RANK']}: {e}", file=sys.stderr)
            sys.exit(2)
        if os.environ["RANK"] == "0":
            print(self.done(a.run, result))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one (plain single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_device(device: str) -> str:
    """A rank's own device: cuda:LOCAL_RANK under DDP on CUDA (one GPU per rank), else `device`."""
    if rank_and_world()[1] > 1 and device.startswith("cuda"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def check_nproc(nproc: int, device: str, setting: str) -> None:
    """More ranks than cores (CPU) or GPUs (CUDA) only oversubscribes them: refuse up front.
    `setting` names the device field in the message (e.g. "hgnn.device")."""
    import torch

    if nproc < 1:
        raise DistributedError(f"--nproc must be at least 1 (got {nproc})")
    if device.startswith("cuda"):
        have, what = torch.cuda.device_count(), "CUDA device(s)"
    else:
        have, what = os.cpu_count() or 1, "CPU core(s)"
    if nproc > have:
        raise DistributedError(f"--nproc {nproc} but this machine has {have} {what} ({setting} {device})")


def check_same_data(fingerprint: dict[str, Any], data: np.ndarray) -> None:
    """Every rank must train on the same data: compare the settings and a checksum of `data`."""
    import torch.distributed as dist

    mine = (sorted(fingerprint.items()), zlib.crc32(np.ascontiguousarray(data).tobytes()))
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    if any(other != every[0] for other in every):
        bad = [r for r, other in enumerate(every) if other != every[0]]
        raise DistributedError(f"rank(s) {bad} built other training data or settings than rank 0")


def from_rank_0(flag: bool, device: Any) -> bool:
    """Rank 0's `flag` on every rank (the others pass anything): rank 0 alone validates, so it
    decides for all whether training goes on, and every rank leaves the loop together."""
    import torch

    t = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    torch.distributed.broadcast(t, 0)
    return bool(t.item())


def fail_here(env: str, rank: int, epoch: int, batch: int, n_batches: int) -> None:
    """Test hook: the environment variable `env` = "RANK:EPOCH" (EPOCH 1-based) makes that rank exit
    (os._exit) halfway through that epoch, the way a killed or crashed process would."""
    at = os.environ.get(env)
    if at and at == f"{rank}:{epoch}" and batch == n_batches // 2:
        os._exit(1)


@contextlib.contextmanager
def process_group(device: str) -> Iterator[int]:
    """Join the process group (env:// variables from the elastic launcher or torchrun) as one rank
    on `device`; yields the rank and leaves the group at the end."""
    import torch
    import torch.distributed as dist

    # the launcher stops the other ranks with SIGTERM when one fails: exit through `finally`
    # blocks, so an atomic write in progress removes its temporary file
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if "OMP_NUM_THREADS" not in os.environ:  # share the node's cores between its ranks
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend_for(device))
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def checkpoint_note(stage: Stage, run: str | Path) -> str:
    """What a failed launch leaves: the epoch the stage's checkpoint holds, or none."""
    import torch

    ckpt = stage.checkpoint.at(run)
    if ckpt.exists():
        epoch = stage.checkpoint_epoch(torch.load(ckpt, map_location="cpu", weights_only=False))
        return f"{ckpt} holds epoch {epoch}: rerun with --resume to continue"
    return "no checkpoint was written yet"


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


def failure_message(e: Any, stage: str, after: str) -> str:
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
    return f"{stage} rank {first} failed: {cause(e.failures[first])}{others}; {after}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
