"""Data-parallel two-tower training: one DistributedDataParallel rank per process.

`colisten train-2t --nproc N` starts N workers on this machine through torch's elastic launcher
(colisten.ddp.Stage.launch: c10d rendezvous on 127.0.0.1, a free port); on a cluster torchrun starts
the same worker:

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m colisten.twotower.distributed RUN [--resume]

Every rank builds the training data itself (deterministic, checked across ranks) and runs the
train-2t stage; rank 0 alone writes artifacts and the manifest. Backend: gloo on CPU, nccl on
CUDA (one GPU per rank: cuda:LOCAL_RANK). How a batch is shared: _Tensors.sharded_batch_loss.
"""

from __future__ import annotations

import warnings
from typing import Any

from colisten import artifacts, ddp


def run_worker(run: str, settings: dict[str, Any] | None, resume: bool, progress: bool) -> dict[str, Any]:
    """One rank (env:// rendezvous variables from the elastic launcher or torchrun): join the
    process group, run the train-2t stage, leave. Rank 0 logs and writes; the others are quiet."""
    import typer

    from colisten.config import Settings
    from colisten.console import quiet
    from colisten.device import resolve_device
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


def _done(run: str, info: dict[str, Any]) -> str:
    from colisten.twotower.stage import summary_line

    return summary_line(info, run)


STAGE = ddp.Stage(
    name="train-2t",
    section="twotower",
    module="colisten.twotower.distributed",
    worker=run_worker,
    checkpoint=artifacts.TWOTOWER_CHECKPOINT,
    checkpoint_epoch=lambda checkpoint: checkpoint["epoch"],
    done=_done,
)


# Run the stage on N local ranks (ddp.Stage.launch): returns rank 0's stage record
launch = STAGE.launch


def main(argv: list[str] | None = None) -> None:
    """torchrun's entry point (`-m colisten.twotower.distributed`): one rank of the stage."""
    STAGE.torchrun_main(argv)


if __name__ == "__main__":
    main()
