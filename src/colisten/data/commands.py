"""CLI: `colisten validate` (data contract + quarantine) and `colisten split` (temporal split)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from colisten import artifacts

console = Console()


def _iso(t: int | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def print_validation(report: Any, settings: Any) -> None:
    """Rich tables: rows per table, rejected rows per reason, items per type, events, users."""
    tables = Table(title="Input tables")
    for col in ("table", "files", "rows in", "accepted", "quarantined"):
        tables.add_column(col, justify="left" if col in ("table", "files") else "right")
    for name, c in report.tables.items():
        files = ", ".join(c.files[:3]) + (f" (+{len(c.files) - 3})" if len(c.files) > 3 else "")
        tables.add_row(name, files or "(absent)", f"{c.rows_in:,}", f"{c.accepted:,}", f"{c.quarantined:,}")
    console.print(tables)

    rejected = [(n, r, k) for n, c in report.tables.items() for r, k in c.reasons.items() if k]
    if rejected:
        rej = Table(title="Rejected rows (quarantined)")
        rej.add_column("table")
        rej.add_column("reason")
        rej.add_column("rows", justify="right")
        for n, r, k in rejected:
            rej.add_row(n, r, f"{k:,}")
        console.print(rej)
    else:
        console.print("No rows rejected.")

    items = Table(title="Items per type")
    items.add_column("item type")
    items.add_column("items", justify="right")
    for t, n in report.items_per_type.items():
        role = " (target)" if t == settings.data.target_type else ""
        items.add_row(t + role, f"{n:,}")
    console.print(items)

    events = Table(title="Accepted interactions per event")
    events.add_column("event")
    events.add_column("signal")
    events.add_column("interactions", justify="right")
    for e, n in report.events.items():
        events.add_row(e, "strong" if e in settings.data.strong_events else "weak", f"{n:,}")
    console.print(events)

    console.print(f"Users: {report.users:,}")
    console.print(f"Time range: {_iso(report.time_min)} .. {_iso(report.time_max)}")
    if report.taste_vector_dim:
        console.print(f"Taste vectors: {report.taste_vector_dim} values per user")
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


def print_split(info: Any) -> None:
    """Bounds, events per window and users warm/cold per item type."""
    j = info.to_json()
    c = info.counts
    console.print(
        f"History  [{j['history_start_iso']}, {j['cut_iso']})  ({info.history_days} days)\n"
        f"Hold-out [{j['cut_iso']}, {j['end_iso']}]  ({info.holdout_days} days)"
    )
    win = Table(title="Events per window")
    win.add_column("window")
    win.add_column("events", justify="right")
    win.add_column("users", justify="right")
    win.add_row("history", f"{c['events']['history']:,}", f"{c['users']['history']:,}")
    win.add_row("hold-out", f"{c['events']['holdout']:,}", f"{c['users']['holdout']:,}")
    win.add_row("before history (excluded)", f"{c['events']['before_history_excluded']:,}", "")
    console.print(win)
    seg = Table(title="Users per segment")
    for col in ("item type", "warm", "cold", "hold-out users warm", "hold-out users cold"):
        seg.add_column(col, justify="left" if col == "item type" else "right")
    for t, s in c["segments"].items():
        h = c["holdout_users"].get(t, {})
        seg.add_row(t, f"{s['warm']:,}", f"{s['cold']:,}", f"{h.get('warm', 0):,}", f"{h.get('cold', 0):,}")
    console.print(seg)


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        data: Path = typer.Option(..., "--data", help="Input directory: interactions, items [, users]."),
        run: Path | None = typer.Option(None, "--run", help="Run directory; writes RUN/data/ artifacts."),
        config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings file."),
        quarantine: Path | None = typer.Option(
            None, "--quarantine", help="Also write the rejected rows here (Parquet)."
        ),
    ) -> None:
        """Check input data against the data contract and quarantine bad rows.

        Prints users, items per type, events per type, the time range and rejected rows per
        reason. Unreadable files, missing columns and wrong column types stop with exit code 2.
        With --run, writes RUN/data/{items,users,interactions,quarantine}.parquet and
        validation.json.
        """
        import tempfile

        from colisten.artifacts import load_validation
        from colisten.config import load_settings
        from colisten.data import stage
        from colisten.data.contract import ValidationReport, validate_dataset
        from colisten.errors import ColistenError
        from colisten.rundir import RunDir

        if run is None:
            settings = load_settings(config)
            target = quarantine or artifacts.QUARANTINE.within(
                tempfile.mkdtemp(prefix="colisten-quarantine-")
            )
            with console.status("validating") as status:
                report = validate_dataset(
                    data, settings, quarantine_path=target, progress=lambda m: status.update(m)
                )
        else:
            rd = RunDir(run)
            settings = rd.settings(config)
            with console.status("validating") as status:
                stage.validate(rd, settings, data=data, quarantine_path=quarantine, progress=status.update)
            report = ValidationReport.from_json(load_validation(rd))
        print_validation(report, settings)
        if report.quarantined:
            console.print(f"Quarantine: {report.quarantine_path}")
        if report.tables["interactions"].accepted == 0:
            raise ColistenError(f"{data}: no interactions were accepted; see the rejected rows above")

    @app.command("split")
    def split(
        run: Path = typer.Option(..., "--run", help="Run directory with RUN/data/ from `colisten validate`."),
        config: Path | None = typer.Option(
            None, "--config", "-c", help="TOML settings file (becomes the run's config)."
        ),
    ) -> None:
        """Global temporal split into history and hold-out, and warm/cold users per item type.

        The last holdout_days before the newest event are the hold-out, the history_days before
        them the history. Warm/cold comes from history only. Writes RUN/split/.
        """
        from colisten.artifacts import load_split_info
        from colisten.data import stage
        from colisten.data.split import SplitInfo
        from colisten.rundir import RunDir

        rd = RunDir(run)
        settings = rd.settings(config)
        if config is not None:
            rd.init(settings)
        with console.status("splitting") as status:
            stage.split(rd, settings, progress=status.update)
        print_split(SplitInfo.from_json(load_split_info(rd)))
