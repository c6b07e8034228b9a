"""CLI: `colisten datasets ...` (real-data converters into the data contract)."""

from __future__ import annotations

from pathlib import Path

import typer

from colisten.datasets.movielens import DEFAULT_RATING_EVENTS, DEFAULT_TARGET_GENRES

datasets_app = typer.Typer(
    help="Convert public real-behaviour datasets into the data contract.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")


@datasets_app.command("movielens-100k")
def movielens_100k(
    out: Path = typer.Option(..., "--out", help="Folder to write interactions/items/users.parquet into."),
    target_genres: str = typer.Option(
        ",".join(DEFAULT_TARGET_GENRES),
        "--target-genres",
        help="Comma-separated genres: films with any of them become the sparse target type (~16% of films).",
    ),
    target_type: str = typer.Option("audiobook", "--target-type", help="Item type of those films."),
    other_type: str = typer.Option("podcast", "--other-type", help="Item type of all other films."),
    rating_events: str = typer.Option(
        DEFAULT_RATING_EVENTS,
        "--rating-events",
        help="Rating → event rule, e.g. '4-5=stream,3=preview'; ratings left out become no event (counted).",
    ),
    holdout_days: int = typer.Option(
        14, "--holdout-days", min=1, help="Only for the printed count of evaluable users (data.holdout_days)."
    ),
    source: Path | None = typer.Option(
        None, "--source", help="Folder with ml-100k.{inter,item,user}; default: the installed recbole wheel."
    ),
) -> None:
    """Convert MovieLens-100K (from the recbole==1.2.1 wheel) into the data contract.

    MovieLens has one item type: films with any of --target-genres become --target-type, the rest
    --other-type, so the cross-type pipeline runs on real behaviour. Ratings map to events by
    --rating-events; the others produce no event and are counted in the summary. The data stays
    in --out (MovieLens may not be redistributed); run `colisten validate` on that folder next.
    """
    from rich.console import Console
    from rich.table import Table

    from colisten.datasets.movielens import (
        ItemTypeRule,
        convert_movielens_100k,
        find_movielens_100k,
        parse_rating_events,
        read_movielens_100k,
        write_contract,
    )

    genres = tuple(g.strip() for g in target_genres.split(",") if g.strip())
    rule = ItemTypeRule(target_genres=genres, target_type=target_type, other_type=other_type)
    mapping = parse_rating_events(rating_events)
    raw = read_movielens_100k(find_movielens_100k(source))
    converted = convert_movielens_100k(raw, rule, mapping, holdout_days=holdout_days)
    write_contract(converted, out)

    s = converted.summary
    console = Console()
    table = Table(title=f"MovieLens-100K → {out}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("users", str(s["users"]))
    for item_type, n in s["items_per_type"].items():
        table.add_row(f"items: {item_type}", str(n))
    table.add_row("ratings read", str(s["rows_in"]["interactions"]))
    for event, n in s["events"].items():
        table.add_row(f"  → event {event}", str(n))
    no_event_ratings = ",".join(s["no_event_by_rating"]) or "-"
    table.add_row(f"  → no event (ratings {no_event_ratings})", str(s["no_event"]))
    for item_type, n in s["interactions_per_type"].items():
        table.add_row(f"events on {item_type}", str(n))
    table.add_row(f"users with {target_type} events", str(s["users_with_target_events"]))
    table.add_row(
        f"users streaming {target_type} in last {holdout_days} days",
        str(s[f"users_with_target_stream_in_last_{holdout_days}_days"]),
    )
    console.print(table)
