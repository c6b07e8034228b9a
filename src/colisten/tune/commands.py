"""CLI: `colisten tune` (choose every model's settings on a history-only validation split)."""

from __future__ import annotations

from pathlib import Path

import typer

from colisten import artifacts


def register(app: typer.Typer) -> None:
    app.command("tune")(tune_command)


def tune_command(
    run: Path = typer.Option(..., "--run", help="Run directory (after `split` and `embed`)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated models to tune (default: [tune] models)."
    ),
    trials: int | None = typer.Option(
        None, "--trials", min=1, help="Trials per model (default: [tune] trials)."
    ),
    reuse: Path | None = typer.Option(
        None,
        "--reuse",
        help="Take the settings another run chose (its folder or tune/tuning.json), e.g. another seed of "
        "the same data; refused if its validation window reaches this run's hold-out.",
    ),
) -> None:
    """Choose each model's settings on a validation split carved from history.

    The validation truth is the last holdout_days of history, the inputs the days before; every
    model gets the same number of trials from its documented grid (colisten/tune/spaces.py) and
    the best by [tune] metric wins. Writes RUN/tune/tuning.json; 2T-HGNN's choice becomes the
    run's config (rerun graph, train-hgnn, train-2t), the others are used by `colisten evaluate`.
    """
    from rich.console import Console
    from rich.table import Table

    from colisten.rundir import RunDir
    from colisten.tune import stage

    console = Console()
    rd = RunDir(run)
    settings = rd.settings(config)
    update = {}
    if models:
        update["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if trials:
        update["trials"] = trials
    if update:
        settings = settings.model_copy(update={"tune": settings.tune.model_copy(update=update)})
    stage.run(rd, settings, reuse=reuse, log=console.print)
    from colisten.tune.choice import load_tuning

    tuning = load_tuning(rd.root) or {}
    metric = tuning.get("metric", "")
    table = Table(title=f"Settings chosen on validation ({metric}, {tuning.get('segment')} users)")
    for col in ("model", metric, "chosen settings"):
        table.add_column(col, overflow="fold")
    for name, m in tuning.get("models", {}).items():
        score = m["validation"].get(tuning["segment"], {}).get(metric)
        chosen = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in m["chosen"].items())
        table.add_row(name, "n/a" if score is None else f"{score:.3f}", chosen)
    console.print(table)
    console.print(f"wrote {artifacts.TUNING.at(rd)}")
