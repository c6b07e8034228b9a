"""CLI: `colisten evaluate` (all models, metrics.json + report.html) and `colisten report`."""

from __future__ import annotations

from pathlib import Path

import typer

from colisten import artifacts


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
    app.command("report")(report_command)


def evaluate_command(
    run: Path = typer.Option(
        ..., "--run", help="Run directory (after `split`; models' stages as available)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
    models: str | None = typer.Option(
        None,
        "--models",
        help="Comma-separated models (Popularity, LLM-KNN, HGNN, HGNN-w-users, 2T, 2T-HGNN, ALS, "
        "EASE, ItemKNN, LightGCN); default: [evaluate] baselines.",
    ),
    bootstrap: int | None = typer.Option(
        None, "--bootstrap", min=0, help="Bootstrap resamples for 95% CIs (0 = none; default from config)."
    ),
    ablations: bool = typer.Option(
        False,
        "--ablations",
        help="Also run the paper's Table 1 ablations (retrains HGNN + 2T per variant in "
        "RUN/ablations/) and add them to the report.",
    ),
    only: str | None = typer.Option(
        None, "--only", help="With --ablations: comma-separated subset of ablation names."
    ),
) -> None:
    """Evaluate every model on the hold-out: full-catalogue HR, MRR, coverage with 95% CIs.

    Per item type and segment (warm, cold, all). Writes RUN/eval/metrics.json, meta.json and a
    self-contained report.html, and prints the paper's tables with our numbers beside them.
    """
    from rich.console import Console

    from colisten.evaluate import stage
    from colisten.evaluate.report import print_paper_tables
    from colisten.rundir import RunDir

    console = Console()
    rd = RunDir(run)
    settings = rd.settings(config)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    metrics = stage.run(rd, settings, models=names, bootstrap=bootstrap, console=console, log=console.print)
    cfg = settings.evaluate
    print_paper_tables(
        metrics,
        console,
        settings.data.target_type,
        next(iter(settings.data.established_types), None),
        cfg.k_hit,
        cfg.k_list,
    )
    if ablations:
        from colisten.evaluate.ablations import print_ablations, run_ablations
        from colisten.evaluate.report import write_report

        subset = [a.strip() for a in only.split(",") if a.strip()] if only else None
        results = run_ablations(run, settings, subset, log=console.print)
        print_ablations(results, console)
        write_report(run, settings.data.target_type, next(iter(settings.data.established_types), None))
    console.print(f"wrote {artifacts.METRICS.at(run)} and {artifacts.REPORT.at(run)}")


def report_command(
    run: Path = typer.Option(..., "--run", help="Run directory with eval/metrics.json."),
) -> None:
    """Re-render RUN/eval/report.html from metrics.json (e.g. after ablations.json was added)."""
    from colisten.evaluate.report import write_report
    from colisten.rundir import RunDir

    rd = RunDir(run)
    rd.require(artifacts.METRICS)
    settings = rd.settings()
    out = write_report(run, settings.data.target_type, next(iter(settings.data.established_types), None))
    typer.echo(f"wrote {out}")
