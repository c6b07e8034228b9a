"""`colisten world --out DIR` (generate a synthetic world) and `colisten world stats DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

world_app = typer.Typer(
    help="Synthetic world in the data contract, calibrated to the paper's observations.",
    invoke_without_command=True,
)


@world_app.callback()
def world(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder to write the world to."),
    users: int = typer.Option(20_000, help="Users."),
    podcasts: int = typer.Option(5_000, help="Podcasts (the established, freely streamed type)."),
    audiobooks: int = typer.Option(1_000, help="Audiobooks (the new, paid, sparse type)."),
    days: int = typer.Option(104, help="Days of logs (default 90 history + 14 hold-out)."),
    seed: int = typer.Option(0, help="Random seed: same seed and sizes give the same world."),
    segments: int = typer.Option(
        1,
        min=1,
        help="Hidden audience segments per topic: taste depends on them, the text and genre do not "
        "show them, only co-listening does (1 = the calibrated default: text shows the whole taste).",
    ),
    stats: bool = typer.Option(False, "--stats", help="Also compute and print `world stats`."),
) -> None:
    """Write a synthetic world to --out: items.parquet, users.parquet, interactions/ (Parquet
    parts), truth/ (latent tastes, not part of the data contract) and world.json.

    Users have topic tastes shifted by age and country; podcasts and audiobooks have topic
    mixtures, power-law appeal, a language, a genre code and generated titles; weak signals
    raise the odds of a later stream by the paper's figures. See `colisten world stats DIR`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise typer.BadParameter("give --out DIR (or use `colisten world stats DIR`)", param_hint="--out")
    from rich.progress import Progress

    from colisten.console import console
    from colisten.world.simulate import Behaviour, generate_world

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("simulating users", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = generate_world(
            out,
            users=users,
            podcasts=podcasts,
            audiobooks=audiobooks,
            days=days,
            seed=seed,
            behaviour=Behaviour(segments=segments),
            progress=progress,
        )
    by_type = ", ".join(f"{k} {v:,}" for k, v in summary.events_by_type.items())
    console.print(
        f"wrote {out}: {summary.users:,} users, {summary.podcasts:,} podcasts, {summary.audiobooks:,} "
        f"audiobooks, {summary.events:,} events ({by_type}) in {summary.parts} parts, "
        f"{summary.seconds:.1f} s",
        highlight=False,
    )
    if stats:
        _print_stats(out)


@world_app.command("stats")
def stats_command(
    world_dir: Path = typer.Argument(..., help="A folder written by `colisten world --out`."),
    seed: int = typer.Option(0, help="Seed of the pair/control sampling."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON instead of the table."),
) -> None:
    """Print the world's calibration statistics beside the paper's observations (also written to
    DIR/world_stats.json): listening concentration, podcast history of audiobook listeners,
    podcast-taste similarity of users sharing an audiobook, weak-signal odds ratios, cold start."""
    _print_stats(world_dir, seed=seed, as_json=as_json)


def _print_stats(world_dir: Path, seed: int = 0, as_json: bool = False) -> None:
    import json

    from rich.table import Table

    from colisten.console import console
    from colisten.world.stats import stats_rows, world_stats

    with console.status("computing world statistics"):
        stats = world_stats(world_dir, seed=seed)
    if as_json:
        typer.echo(json.dumps(stats, indent=2, sort_keys=True))
        return
    table = Table(title=f"world statistics: {world_dir}")
    table.add_column("statistic")
    table.add_column("ours", justify="right")
    table.add_column("paper")
    for row in stats_rows(stats):
        table.add_row(*row)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")
