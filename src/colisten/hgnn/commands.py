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
    ) -> None:
        """Train the heterogeneous GraphSAGE on the co-listening graph and embed every item.

        Writes RUN/hgnn/item_embeddings.npy (L2-normalised, global item order, isolated and
        never-streamed items included), checkpoint.pt (every epoch), best.pt and curve.json.
        """
        from rich.console import Console

        from colisten.hgnn import stage
        from colisten.rundir import RunDir

        console = Console(stderr=True)
        checkpoint = artifacts.HGNN_CHECKPOINT.at(run)
        if resume and not checkpoint.exists():
            console.print(f"no {checkpoint} to resume from: training from the start")
        rd = RunDir(run)
        summary = stage.run(rd, rd.settings(config), resume=resume, device=device, progress=not quiet)
        s = summary
        console.print(
            f"train-hgnn: {s['n_items']} items embedded ({s['dim']}-d) on {s['device']}; best validation "
            f"{s['metric']} {s['best_metric'] or 0:.4f} at epoch {s['best_epoch']} "
            f"(untrained {s['initial_metric'] or 0:.4f}) -> {Path(run) / 'hgnn'}",
            highlight=False,
        )
