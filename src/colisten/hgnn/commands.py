"""CLI: `colisten train-hgnn`."""

from __future__ import annotations

from pathlib import Path

import typer

from colisten import artifacts


def register(app: typer.Typer) -> None:
    @app.command("train-hgnn")
    def train_hgnn_command(
        run: Path = typer.Option(..., "--run", help="Run directory (needs graph/ and content/)."),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="TOML settings to use instead of the run's saved config."
        ),
        resume: bool = typer.Option(
            False, "--resume", help="Continue from RUN/hgnn/checkpoint.pt (same result as an unbroken run)."
        ),
        device: str | None = typer.Option(
            None,
            "--device",
            help="cpu, cuda, cuda:N or auto (default: hgnn.device; auto = cuda if present).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        nproc: int = typer.Option(
            1,
            "--nproc",
            help="Data-parallel processes (DDP ranks, started by torch's elastic launcher; gloo on CPU, "
            "nccl on CUDA). Each takes a slice of every global batch and samples its own neighbours; "
            "1 = one plain process.",
        ),
    ) -> None:
        """Train the heterogeneous GraphSAGE on the co-listening graph and embed every item.

        Writes RUN/hgnn/item_embeddings.npy (L2-normalised, global item order, isolated and
        never-streamed items included), checkpoint.pt (every epoch), best.pt and curve.json.
        With --nproc N, N processes share every batch of hgnn.batch_size edges (the same global
        batches, learning rate and checkpoints as one process); rank 0 validates and writes.
        """
        from rich.console import Console

        from colisten.hgnn import stage
        from colisten.rundir import RunDir

        console = Console(stderr=True)
        checkpoint = artifacts.HGNN_CHECKPOINT.at(run)
        if resume and not checkpoint.exists():
            console.print(f"no {checkpoint} to resume from: training from the start")
        rd = RunDir(run)
        settings = rd.settings(config)
        if nproc != 1:
            from colisten.hgnn.distributed import launch

            if device is not None:
                settings.hgnn.device = device
            summary = launch(rd.root, settings, nproc, resume=resume, progress=not quiet)
        else:
            summary = stage.run(rd, settings, resume=resume, device=device, progress=not quiet)
        console.print(stage.summary_line(summary, run), highlight=False)
