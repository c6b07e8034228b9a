"""Data-parallel two-tower training: one DistributedDataParallel rank per process.

`colisten train-2t --nproc N` starts N workers on this machine through torch's elastic launcher
(colisten.ddp.launch: c10d rendezvous on 127.0.0.1, a free port); on a cluster torchrun starts
the same worker:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m colisten.twotower.distributed RUN [--resume]

Every rank builds the training data itself (deterministic, checked across ranks) and runs the
train-2t stage; rank 0 alone writes artifacts and the manifest. Backend: gloo on CPU, nccl on
CUDA (one GPU per rank: cuda:LOCAL_RANK). How a batch is shared: _Tensors.sharded_batch_loss.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from colisten import artifacts, ddp
from colisten.device import resolve_device


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
    rank 0's stage record. A failed rank is a DistributedError naming it (the last checkpoint
    stays: `--resume` continues). `worker` replaces run_worker (tests wrap it)."""
    device = resolve_device(settings.twotower.device, "twotower.device")
    args = (str(run), settings.model_dump(mode="json"), resume, progress)
    return ddp.launch(
        "train-2t",
        worker or run_worker,
        args,
        nproc,
        device,
        "twotower.device",
        lambda: _checkpoint_note(Path(run)),
    )


def run_worker(run: str, settings: dict[str, Any] | None, resume: bool, progress: bool) -> dict[str, Any]:
    """One rank (env:// rendezvous variables from the elastic launcher or torchrun): join the
    process group, run the train-2t stage, leave. Rank 0 logs and writes; the others are quiet."""
    import typer

    from colisten.config import Settings
    from colisten.console import quiet
    from colisten.rundir import RunDir
    from colisten.twotower import stage

    # deprecated for a private successor in torch 2.13, but the documented autograd all-gather
    warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather is deprecated")
    rd = RunDir(run)
    settings = Settings.model_validate(settings) if settings is not None else rd.settings()
    device = resolve_device(settings.twotower.device, "twotower.device")
    with ddp.process_group(device) as rank:
        primary = rank == 0
        return stage.run(
            rd,
            settings,
            resume=resume,
            progress=progress and primary,
            log=typer.echo if primary else quiet,
        )


def _checkpoint_note(run: Path) -> str:
    """What a failed launch leaves: the epoch the checkpoint holds, or none."""
    ckpt = artifacts.TWOTOWER_CHECKPOINT.within(run / artifacts.TWOTOWER_MODEL.folder)
    if ckpt.exists():
        epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
        return f"{ckpt} holds epoch {epoch}: rerun with --resume to continue"
    return "no checkpoint was written yet"


def _done(run: str, info: dict[str, Any]) -> str:
    best, loss = info["best_epoch"], info["best_val_loss"]
    return f"two-tower model: best epoch {best} (validation loss {loss:.4f}); wrote {run}/twotower"


def main(argv: list[str] | None = None) -> None:
    """torchrun's entry point (`-m colisten.twotower.distributed`): one rank of the stage."""
    ddp.torchrun_main(
        argv,
        module="colisten.twotower.distributed",
        stage="train-2t",
        section="twotower",
        worker=run_worker,
        done=_done,
    )


if __name__ == "__main__":
    main()
