"""Data-parallel HGNN training: one DistributedDataParallel rank per process.

`colisten train-hgnn --nproc N` starts N workers on this machine through torch's elastic launcher
(colisten.ddp.Stage.launch: c10d rendezvous on 127.0.0.1, a free port); on a cluster torchrun starts
the same worker:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m colisten.hgnn.distributed RUN [--resume]

Every rank loads the graph and features itself (checked across ranks) and runs the train-hgnn
stage; rank 0 alone validates and writes artifacts and the manifest. Backend: gloo on CPU, nccl
on CUDA (one GPU per rank: cuda:LOCAL_RANK). How a batch is shared: hgnn/train.py's _train_epoch.
"""

from __future__ import annotations

import functools
from typing import Any

from colisten import artifacts, ddp


def run_worker(
    run: str, settings: dict[str, Any] | None, resume: bool, progress: bool, epoch_lines: bool = False
) -> dict[str, Any]:
    """One rank (env:// rendezvous variables from the elastic launcher or torchrun): join the
    process group, run the train-hgnn stage, leave. Rank 0 shows progress (or, with `epoch_lines`,
    prints a line per epoch: torchrun's log) and writes; the others are quiet."""
    import typer

    from colisten.config import Settings
    from colisten.console import quiet
    from colisten.device import resolve_device
    from colisten.hgnn import stage
    from colisten.rundir import RunDir

    rd = RunDir(run)
    settings = Settings.model_validate(settings) if settings is not None else rd.settings()
    device = resolve_device(settings.hgnn.device, "hgnn.device")
    with ddp.process_group(device) as rank:
        primary = rank == 0
        log = typer.echo if primary and epoch_lines else quiet
        return stage.run(rd, settings, resume=resume, progress=progress and primary, log=log)


def _done(run: str, summary: dict[str, Any]) -> str:
    from colisten.hgnn.stage import summary_line

    return summary_line(summary, run)


STAGE = ddp.Stage(
    name="train-hgnn",
    section="hgnn",
    module="colisten.hgnn.distributed",
    worker=run_worker,
    checkpoint=artifacts.HGNN_CHECKPOINT,
    checkpoint_epoch=lambda checkpoint: checkpoint["state"]["epoch"],
    done=_done,
)


# Run the stage on N local ranks (ddp.Stage.launch): returns rank 0's stage summary
launch = STAGE.launch


def main(argv: list[str] | None = None) -> None:
    """torchrun's entry point (`-m colisten.hgnn.distributed`): one rank of the stage."""
    STAGE.torchrun_main(argv, worker=functools.partial(run_worker, epoch_lines=True))


if __name__ == "__main__":
    main()
