"""CLI: `colisten abtest --run RUN --arms control=MODEL,treatment=MODEL[,...]`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("abtest")(abtest_command)


def abtest_command(
    run: Path = typer.Option(..., "--run", help="A run built from a synthetic world (`colisten world`)."),
    arms: str | None = typer.Option(
        None,
        "--arms",
        help="NAME=MODEL,... control first. MODEL: any model of `colisten evaluate` (Popularity, 2T, "
        "2T-HGNN, ALS, ...), Oracle (the world's true taste), or MODEL@OTHER_RUN (same world).",
    ),
    aa: str | None = typer.Option(None, "--aa", help="An A/A test: this model in two arms (a1, a2)."),
    oracle: bool = typer.Option(False, "--oracle", help="Add an arm 'oracle' ranking by true taste."),
    days: int = typer.Option(14, "--days", help="Days simulated after the split's cut."),
    shelf: int = typer.Option(10, "--shelf", help="Audiobooks on the home shelf."),
    users: int | None = typer.Option(None, "--users", help="Users in the test (default: all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the assignment salt and the simulation."),
    name: str | None = typer.Option(
        None, "--name", help="Results go to RUN/abtest/NAME/ (default: arm names)."
    ),
    salience: float = typer.Option(
        10.0, "--salience", help="Shelf exposure strength (world.simulate.ShelfResponse.salience)."
    ),
) -> None:
    """Simulate an online A/B test on the home shelf: each day, each visiting user's arm model
    fills the shelf from their history so far and the world's own choice model decides what they
    start and stream. Prints per-arm start rate, stream rate, shelf vs organic starts and
    long-tail share, with lifts against control (95% CI, p-value); writes RUN/abtest/NAME/results.json.
    """
    from colisten.abtest import stage
    from colisten.abtest.arms import AbTestError, parse_arms
    from colisten.abtest.stage import format_results
    from colisten.console import console
    from colisten.rundir import RunDir
    from colisten.world.simulate import ShelfResponse

    if aa and arms:
        raise typer.BadParameter("give --arms or --aa, not both", param_hint="--aa")
    if not (aa or arms):
        raise typer.BadParameter(
            "give --arms control=MODEL,treatment=MODEL (or --aa MODEL)", param_hint="--arms"
        )
    if not salience >= 0:
        raise typer.BadParameter(f"must be >= 0 (got {salience})", param_hint="--salience")
    try:
        specs = parse_arms(f"a1={aa},a2={aa}" if aa else arms)
        if oracle:
            specs += parse_arms("control=Popularity,oracle=Oracle")[1:]
        rd = RunDir(run)
        results = stage.run(
            rd,
            rd.settings(),
            arms=specs,
            days=days,
            shelf=shelf,
            users=users,
            seed=seed,
            name=name,
            response=ShelfResponse(salience=salience),
            log=lambda m: console.print(m, highlight=False),
        )
    except AbTestError as e:
        console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from e
    for line in format_results(results):
        console.print(line, highlight=False, markup=False)
    console.print(f"wrote {results['path']}", highlight=False)
    if "report" in results:
        console.print(f"updated {results['report']}", highlight=False)
