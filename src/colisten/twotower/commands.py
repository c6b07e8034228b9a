"""CLI: `colisten train-2t` (stage) and `colisten recommend` (one user, or an export for many)."""

from __future__ import annotations

from pathlib import Path

import typer

from colisten import artifacts
from colisten.errors import ColistenError


class InputFileError(ColistenError):
    """A user list or history file that cannot be read."""


def register(app: typer.Typer) -> None:
    app.command("train-2t")(train_2t)
    app.command("recommend")(recommend)


def train_2t(
    run: Path = typer.Option(..., "--run", help="Run directory (needs data, split, content, hgnn)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from RUN/twotower/checkpoint.pt."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override twotower.epochs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    nproc: int = typer.Option(
        1,
        "--nproc",
        help="Data-parallel processes (DDP ranks, started by torch's elastic launcher; gloo on CPU, "
        "nccl on CUDA). Each takes a slice of every batch; 1 = one plain process.",
    ),
) -> None:
    """Train the two-tower model (user and item towers) on the run's history.

    Labels are the last `twotower.label_days` of the history window, user features come from
    the events before them (no leakage; the hold-out is never read). Writes RUN/twotower:
    checkpoint.pt, best.pt, features.json, curve.json and item_vectors.npy. With --nproc N,
    N processes train the same model as one (same global batches); rank 0 writes.
    """
    from colisten.rundir import RunDir
    from colisten.twotower import stage as twotower_stage

    rd = RunDir(run)
    settings = rd.settings(config)
    if epochs is not None:
        if epochs < 1:
            raise InputFileError(f"--epochs must be at least 1 (got {epochs})")
        settings.twotower.epochs = epochs
    if nproc != 1:
        from colisten.twotower.distributed import launch

        info = launch(rd.root, settings, nproc, resume=resume, progress=progress)
    else:
        info = twotower_stage.run(rd, settings, resume=resume, progress=progress, log=typer.echo)
    typer.echo(twotower_stage.summary_line(info, rd.root))


def recommend(
    run: Path = typer.Option(..., "--run", help="Run directory with a trained two-tower model."),
    user: str | None = typer.Option(None, "--user", help="One user id: print the recommendations."),
    users: str | None = typer.Option(
        None,
        "--users",
        help="'all' or a file of user ids (.txt one per line, .csv or .parquet with user_id).",
    ),
    item_type: str | None = typer.Option(
        None, "--type", help="Item type to recommend (default: data.target_type); 'all' = every type."
    ),
    k: int = typer.Option(10, "--k", help="Recommendations per user and type."),
    out: Path | None = typer.Option(
        None, "--out", help="With --users: Parquet file to write (--engine spark: a folder of parts)."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="With --users: local (batches in this process) or spark (partitions on [graph] "
        "spark_master; the same rows).",
    ),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="With --engine spark: overrides [graph] spark_master."
    ),
    history: Path | None = typer.Option(
        None,
        "--history",
        help="With --user: a history file (.json list, .csv or .parquet with item_id, event, timestamp) "
        "to recommend from instead of the run's history; works for unknown users (cold start).",
    ),
    age: int | None = typer.Option(None, "--age", help="With --history: the user's age."),
    country: str | None = typer.Option(None, "--country", help="With --history: the user's country."),
    include_consumed: bool = typer.Option(
        False, "--include-consumed", help="Do not filter items the user already consumed."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings (default: the run's)."),
) -> None:
    """Recommend items with the two-tower model: print one user's top k, or export many users'.

    `--user U` prints titles, scores and types; `--users FILE|all --out recs.parquet` writes
    (user_id, item_type, item_id, rank, score) for every listed user exactly once, in batches.
    `--engine spark --out DIR` writes the same rows as Parquet parts in DIR, scored per Spark
    partition with the same code (the run directory must be readable by every executor).
    """
    from rich.console import Console
    from rich.table import Table

    from colisten.rundir import RunDir
    from colisten.twotower.recommender import RecommendError, TwoTowerRecommender, write_recommendations

    if (user is None) == (users is None):
        raise InputFileError("give exactly one of --user U or --users FILE|all")
    if users is not None and out is None:
        raise InputFileError("--users needs --out FILE.parquet")
    if history is not None and user is None:
        raise InputFileError("--history goes with --user")
    if engine not in ("local", "spark"):
        raise typer.BadParameter(f"{engine!r} is not one of 'local', 'spark'", param_hint="'--engine'")
    if (engine == "spark" or spark_master is not None) and users is None:
        raise InputFileError("--engine spark and --spark-master go with --users FILE|all")
    rd = RunDir(run)
    settings = rd.settings(config)
    rec = TwoTowerRecommender.load(rd, settings)
    if item_type is None:
        types = (
            [settings.data.target_type] if settings.data.target_type in rec.item_types else rec.item_types[:1]
        )
    elif item_type == "all":
        types = rec.item_types
    else:
        types = [item_type]

    if users is not None:
        ids = rec.known_users() if users == "all" else read_user_ids(Path(users))
        if engine == "spark":
            from colisten.spark import stop_spark
            from colisten.twotower.spark_export import write_recommendations_spark

            try:
                n = write_recommendations_spark(rec, list(ids), types, k, out, settings, master=spark_master)
            finally:
                stop_spark()
            typer.echo(f"wrote {n} recommendations for {len(dict.fromkeys(ids))} users to {out}/")
            return
        n = write_recommendations(
            rec,
            list(ids),
            types,
            k,
            out,
            batch_users=settings.retrieval.batch_users,
        )
        typer.echo(f"wrote {n} recommendations for {len(dict.fromkeys(ids))} users to {out}")
        return

    console = Console()
    if history is not None:
        records = read_history(history)
        unknown = rec.unknown_item_ids(records)
        demo = rec.demographics(user)
        vector = rec.user_vector_from_history(
            records,
            age=age if age is not None else demo["age"],
            country=country if country is not None else demo["country"],
            taste_vector=demo["taste_vector"],
        )
        consumed = [] if include_consumed else [rec.consumed_in_history(records)]
        console.print(f"user {user}: vector from {len(records)} given events (real time)")
        if unknown:
            shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
            console.print(f"[yellow]ignored {len(unknown)} unknown item id(s):[/] {shown}")
    elif not rec.is_known(user):
        raise RecommendError(
            f"unknown user {user!r}: not in {artifacts.USERS.at(rd)}; pass --history FILE (item_id, "
            "event, timestamp) to recommend for a new user from a given history (cold start)"
        )
    titles = rec.items.set_index("item_id")["title"]
    for t in types:
        if history is not None:
            ids, scores = rec.recommend(
                vector[None, :], t, k, exclude_consumed=not include_consumed, consumed=consumed
            )
        else:
            ids, scores = rec.recommend([user], t, k, exclude_consumed=not include_consumed)
        table = Table(title=f"{t} recommendations for {user}")
        for col in ("#", "item_id", "title", "type", "score"):
            table.add_column(col, justify="right" if col in ("#", "score") else "left")
        for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True), start=1):
            if i is not None:
                table.add_row(str(r), str(i), str(titles.get(i, "")), t, f"{s:.4f}")
        console.print(table)


def read_user_ids(path: Path) -> list[str]:
    """User ids from .parquet / .csv (column user_id, else the first) or text (one per line)."""
    if not path.exists():
        raise InputFileError(f"user list not found: {path}")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            col = "user_id" if "user_id" in table.column_names else table.column_names[0]
            return [str(v) for v in table.column(col).to_pylist() if v is not None]
        if path.suffix == ".csv":
            import pandas as pd

            df = pd.read_csv(path, dtype=str)
            col = "user_id" if "user_id" in df.columns else df.columns[0]
            return df[col].dropna().tolist()
    except Exception as e:  # pyarrow / pandas parse errors
        raise InputFileError(f"{path}: cannot read the user list: {e}") from e
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.startswith("#")]


def read_history(path: Path) -> list[dict]:
    """History records from .json (a list, or {"history": [...]}), .csv or .parquet."""
    import json

    import pandas as pd

    if not path.exists():
        raise InputFileError(f"history file not found: {path}")
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data.get("history", []) if isinstance(data, dict) else data
            if not isinstance(records, list):
                raise ValueError("expected a list of records")
            return records
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"item_id": str})
    except Exception as e:
        raise InputFileError(f"{path}: cannot read the history: {e}") from e
    if "item_id" not in df.columns:
        raise InputFileError(f"{path}: a history needs an item_id column (has {list(df.columns)})")
    return df.to_dict("records")
