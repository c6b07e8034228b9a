"""CLI: `colisten index` (stage), and the stage itself: the run's two-tower vectors handed to
`retrieval.indexing`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from colisten.config import Settings
    from colisten.run import RunDir


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
    from colisten.run import RunDir

    rd = RunDir(run)
    settings = rd.settings(config)
    with rd.stage("index") as info:
        report = build_run_indexes(rd, settings, log=typer.echo)
        info["recall@10"] = {t: v["recall@10"] for t, v in report["types"].items()}


def build_run_indexes(run: RunDir, settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build RUN/index/TYPE.voy for each item type and write RUN/index/index.json.

    The two-tower model gives the vectors (retrieval itself never imports it): its item vectors,
    and as recall@10 queries the user vectors of up to `retrieval.recall_queries` users of the
    run, drawn with `retrieval.seed`.
    """
    from colisten.retrieval.indexing import build_indexes, recall_query_users
    from colisten.twotower.recommender import TwoTowerRecommender

    out_dir = run.stage_dir("index")
    rec = TwoTowerRecommender.load(run, settings)
    queries = rec.user_vectors(recall_query_users(rec.known_users(), settings.retrieval))
    item_vectors = {item_type: rec.item_vectors(item_type)[1] for item_type in rec.item_types}
    return build_indexes(out_dir, queries, item_vectors, settings.retrieval, log)
