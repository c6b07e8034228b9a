"""CLI: `colisten index` (the stage is retrieval/stage.py)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("index")(index)


def index(
    run: Path = typer.Option(..., "--run", help="Run directory with a trained two-tower model."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
) -> None:
    """Build a Voyager HNSW index per item type over the two-tower item vectors.

    Writes RUN/index/TYPE.voy (ids = type index) and RUN/index/index.json with recall@10
    against exact search (queries: the run's user vectors) and single-query latency.
    """
    from colisten.retrieval import stage
    from colisten.rundir import RunDir

    rd = RunDir(run)
    stage.run(rd, rd.settings(config), log=typer.echo)
