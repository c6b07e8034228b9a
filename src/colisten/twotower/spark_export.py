"""`colisten recommend --users ... --engine spark`: the recommendation export on Spark.

The job, per user batch, is the local export's (`recommender.recommendation_rows`): the same
numpy user features, the same user tower, the same exact (or ANN) top k with the same
consumed-item filter. Spark only moves data:

1. the requested user ids (written beside the output) and the run's history
   (RUN/split/history.parquet, semi-joined to those users) are unioned and hash-partitioned by
   user_id, sorted within each partition, so a user's events arrive together;
2. `mapInPandas` loads the recommender once per Python worker from the run directory (model,
   item vectors, catalogue, demographics: on a cluster the run directory must be on storage
   every executor reads, like the output), hands each batch of `retrieval.batch_users` users
   their own events (`TwoTowerRecommender.use_history`) and emits their rows;
3. the parts are written to a temporary folder beside DIR and renamed onto DIR only when the
   job succeeded: a failed job (an unreachable master included) leaves no DIR behind.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from colisten import artifacts
from colisten.config import Settings
from colisten.errors import ColistenError
from colisten.io import replace_dir
from colisten.twotower.recommender import (
    TwoTowerRecommender,
    check_export,
    export_schema,
    recommendation_rows,
)

_LOADED: dict[tuple[str, str], TwoTowerRecommender] = {}  # per Python worker: run -> recommender


class SparkExportError(ColistenError):
    """The Spark job of `colisten recommend --engine spark` failed (nothing was written)."""


def write_recommendations_spark(
    recommender: TwoTowerRecommender,
    user_ids: Sequence[str],
    item_types: Sequence[str],
    k: int,
    out: str | Path,
    settings: Settings,
    *,
    master: str | None = None,
) -> int:
    """Write the export of `user_ids` to the folder `out` (Parquet parts, export_schema) on Spark.

    `master` defaults to `[graph] spark_master`. Returns the row count. The rows equal the local
    export's (`write_recommendations`); their order across parts is unspecified.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from colisten.spark import spark_session

    ids = recommender.check_users(dict.fromkeys(user_ids))  # de-duplicated, unknown ones named
    check_export(recommender, item_types, k)
    out = Path(out)
    master = master or settings.graph.spark_master
    spark = spark_session(  # an unreachable master fails here, before anything is written
        master,
        driver_memory=settings.graph.spark_driver_memory,
        threads=settings.graph.threads,
        app_name="colisten-recommend",
        what="--spark-master" if master != settings.graph.spark_master else "[graph] spark_master",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    work.mkdir()
    try:
        users_file = work / "requested-users.parquet"  # the job's input, not a run artifact
        pq.write_table(pa.table({"user_id": pa.array(ids.tolist(), pa.string())}), users_file)
        parts = work / "parts"
        _job(spark, recommender, users_file, list(item_types), k, settings).write.parquet(str(parts))
        rows = ds.dataset(parts, format="parquet").count_rows()
        for junk in list(parts.glob(".*.crc")):  # Hadoop's checksums of the parts
            junk.unlink()
        replace_dir(parts, out)  # a previous export there is replaced
    except Exception as e:
        if isinstance(e, ColistenError):
            raise
        raise SparkExportError(f"the Spark export failed and wrote nothing to {out}: {_short(e)}") from e
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def _job(spark, recommender: TwoTowerRecommender, users_file: Path, item_types: list[str], k: int, settings):
    """The DataFrame of export rows (lazy)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    users = spark.read.parquet(str(users_file)).select(
        "user_id",
        F.lit(None).cast("string").alias("item_id"),
        F.lit(None).cast("string").alias("event"),
        F.lit(None).cast("long").alias("timestamp"),
        F.lit(True).alias("requested"),
    )
    history = (
        spark.read.parquet(str(recommender.run.require(artifacts.HISTORY)))
        .select(
            F.col("user_id").cast("string"),
            F.col("item_id").cast("string"),
            F.col("event").cast("string"),
            F.col("timestamp").cast("long"),
        )
        .join(users.select("user_id"), on="user_id", how="left_semi")
        .withColumn("requested", F.lit(False))
    )
    n_parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    rows = users.unionByName(history).repartition(n_parts, "user_id").sortWithinPartitions("user_id")
    schema = T.StructType(
        [
            T.StructField("user_id", T.StringType()),
            T.StructField("item_type", T.StringType()),
            T.StructField("item_id", T.StringType()),
            T.StructField("rank", T.IntegerType()),
            T.StructField("score", T.FloatType()),
        ]
    )
    run = str(Path(recommender.run.root).resolve())
    config = settings.model_dump_json()
    batch_users = settings.retrieval.batch_users

    def score(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rec = _recommender(run, config)
        for table in score_partition(rec, frames, item_types, k, batch_users):
            # numpy columns (object strings): PySpark cannot take pandas 3's Arrow-backed strings
            yield pd.DataFrame({c: _numpy(table.column(c)) for c in table.column_names})

    return rows.mapInPandas(score, schema)


def _numpy(column) -> pd.Series:
    values = column.to_numpy()
    return pd.Series(values, dtype=object if values.dtype.kind == "O" else values.dtype)


def _recommender(run: str, config: str) -> TwoTowerRecommender:
    """The run's recommender, loaded once per Python worker (workers are reused across tasks)."""
    key = (run, config)
    if key not in _LOADED:
        _threads_per_task()
        _LOADED.clear()
        _LOADED[key] = TwoTowerRecommender.load(run, Settings.model_validate_json(config))
    return _LOADED[key]


def _threads_per_task() -> None:
    """torch intra-op threads = the task's cores (spark.task.cpus), not every core of the host."""
    import torch

    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        cpus = int(ctx.cpus()) if ctx is not None else 1
    except Exception:  # older Spark without TaskContext.cpus
        cpus = 1
    torch.set_num_threads(max(1, cpus))


def score_partition(
    rec: TwoTowerRecommender,
    frames: Iterator[pd.DataFrame],
    item_types: Sequence[str],
    k: int,
    batch_users: int,
):
    """Export rows (pyarrow Tables) of one partition: frames of (user_id, item_id, event,
    timestamp, requested) sorted by user_id, a user's rows possibly split across frames. Rows
    with requested=True name the users to score; the others are their history events."""
    carry: pd.DataFrame | None = None  # the rows so far of the last user seen
    for frame in frames:
        if not len(frame):
            continue
        rows = frame if carry is None else pd.concat([carry, frame], ignore_index=True)
        done = rows["user_id"].to_numpy(dtype=object) != rows["user_id"].iat[-1]
        carry = rows[~done]
        yield from _score(rec, rows[done], item_types, k, batch_users)
    if carry is not None:
        yield from _score(rec, carry, item_types, k, batch_users)


def _score(rec: TwoTowerRecommender, rows: pd.DataFrame, item_types: Sequence[str], k: int, batch_users: int):
    """Score complete users (all their rows are in `rows`, sorted by user_id), batch by batch."""
    if not len(rows):
        return
    uid = rows["user_id"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    bounds = np.r_[starts, len(uid)]
    requested = rows["requested"].to_numpy(dtype=bool)
    for b in range(0, len(starts), batch_users):
        lo, hi = bounds[b], bounds[min(b + batch_users, len(starts))]
        chunk = rows.iloc[lo:hi]
        wanted = requested[lo:hi]
        ids = chunk["user_id"].to_numpy(dtype=object)[wanted]
        if not len(ids):
            continue
        rec.use_history(chunk[~wanted])
        yield recommendation_rows(rec, np.asarray(ids, dtype=object), item_types, k)


def _short(e: Exception) -> str:
    """The gist of a (Py4J / Spark) error: the JVM stack trace is not for users. For a failed
    Python task, the Python exception's own line."""
    lines = [s.strip() for s in str(e).splitlines() if s.strip() and not s.strip().startswith("at ")]
    python = [s for s in lines if re.match(r"^[A-Za-z_]\w*(Error|Exception): ", s)]
    if python:
        return python[-1][:400]
    lines = [s for s in lines if not s.startswith("An error occurred while calling")] or [type(e).__name__]
    return " ".join(lines[:2])[:400]


__all__ = ["SparkExportError", "export_schema", "score_partition", "write_recommendations_spark"]
