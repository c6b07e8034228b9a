"""Spark backend of the co-listening edge rule: the same steps as `build.duckdb_pairs`, for a cluster.

It writes `work_dir/spark-pairs/` (Parquet parts: src, dst, cocount; global item indices) and the
DuckDB side turns that into edges.parquet and CSR arrays, so both engines share one output path and
must agree edge for edge (tests/graph checks it). Ties are broken by global item index in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from colisten.config import GraphConfig
from colisten.graph.sql import SECONDS_PER_DAY, association_keep, association_sql, type_of
from colisten.spark import SparkUnavailableError, stop_spark
from colisten.spark import spark_session as shared_spark_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkUnavailableError", "spark_pairs", "spark_session", "stop_spark"]


def spark_session(settings: GraphConfig, work_dir: str | Path) -> SparkSession:
    """The active SparkSession, or a new one on `[graph] spark_master` (colisten.spark)."""
    return shared_spark_session(
        settings.spark_master,
        driver_memory=settings.spark_driver_memory,
        threads=settings.threads,
        app_name="colisten-graph",
    )


def spark_pairs(
    history_path: Path,
    nodes: pa.Table,
    type_starts: list[int],
    settings: GraphConfig,
    work_dir: Path,
    cut: int | None,
) -> dict[str, Any]:
    """Count co-listening pairs with Spark; write them to `work_dir/spark-pairs/`. Returns counts."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = spark_session(settings, work_dir)
    node_file = work_dir / "nodes-for-spark.parquet"
    pq.write_table(
        pa.table({"item_id": nodes.column("item_id"), "item": nodes.column("global_index").cast(pa.int32())}),
        node_file,
    )
    node_df = spark.read.parquet(str(node_file))
    history = spark.read.parquet(str(history_path)).filter(F.col("user_id").isNotNull())
    if settings.edge_events is not None:
        history = history.filter(F.col("event").isin(list(settings.edge_events)))
    if cut is not None:
        history = history.filter(F.col("timestamp") < F.lit(int(cut)))

    user_items = (
        history.join(F.broadcast(node_df), on="item_id", how="inner")
        .groupBy("user_id", "item")
        .agg(F.max("timestamp").cast("long").alias("ts"))
        .cache()
    )
    counts: dict[str, Any] = {"user_item_pairs": user_items.count()}
    kept = user_items
    if settings.max_items_per_user is not None:
        per_user = user_items.groupBy("user_id").count()
        counts["users_capped"] = per_user.filter(F.col("count") > settings.max_items_per_user).count()
        recent_first = Window.partitionBy("user_id").orderBy(F.col("ts").desc(), F.col("item").asc())
        kept = (
            user_items.withColumn("rank", F.row_number().over(recent_first))
            .filter(F.col("rank") <= settings.max_items_per_user)
            .drop("rank")
            .cache()
        )
    counts["user_item_pairs_after_cap"] = kept.count()

    a, b = kept.alias("a"), kept.alias("b")
    same_user = (F.col("a.user_id") == F.col("b.user_id")) & (F.col("a.item") < F.col("b.item"))
    if settings.window_days is not None:
        same_user &= F.abs(F.col("a.ts") - F.col("b.ts")) <= F.lit(settings.window_days * SECONDS_PER_DAY)
    pairs = (
        a.join(b, same_user)
        .select(F.col("a.item").alias("src"), F.col("b.item").alias("dst"))
        .groupBy("src", "dst")
        .agg(F.count(F.lit(1)).cast("int").alias("cocount"))
    )
    if settings.min_cocount > 1:
        pairs = pairs.filter(F.col("cocount") >= settings.min_cocount)
    item_users = kept.groupBy("item").agg(F.count(F.lit(1)).cast("double").alias("n"))
    n_users = kept.select("user_id").distinct().count()
    ns = item_users.select(F.col("item").alias("src"), F.col("n").alias("n_src"))
    nd = item_users.select(F.col("item").alias("dst"), F.col("n").alias("n_dst"))
    pairs = (
        pairs.join(F.broadcast(ns), on="src")
        .join(F.broadcast(nd), on="dst")
        .filter(F.expr(association_keep(settings.association, "cocount", "n_src", "n_dst", n_users)))
        .withColumn(
            "weight",
            F.expr(
                association_sql(
                    settings.association, "cocount", "n_src", "n_dst", n_users, settings.shrinkage
                )
            ).cast("double"),
        )
        .select("src", "dst", "cocount", "weight")
    )
    if settings.top_k is not None:
        pairs = pairs.cache()
        counts["edges_before_top_k"] = pairs.count()
        pairs = _top_k(pairs, settings.top_k, type_starts)

    out = work_dir / "spark-pairs"
    pairs.write.mode("overwrite").parquet(str(out))
    for cached in (user_items, kept, pairs):
        cached.unpersist()
    return counts


def _top_k(pairs: DataFrame, k: int, type_starts: list[int]) -> DataFrame:
    """Keep an edge if it is in the top-k (weight desc, then lower index) of either endpoint."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ends = pairs.select(F.col("src").alias("node"), F.col("dst").alias("other"), "src", "dst", "weight")
    ends = ends.unionByName(
        pairs.select(F.col("dst").alias("node"), F.col("src").alias("other"), "src", "dst", "weight")
    ).withColumn("other_type", F.expr(type_of("other", type_starts)))
    best_first = Window.partitionBy("node", "other_type").orderBy(
        F.col("weight").desc(), F.col("other").asc()
    )
    kept = (
        ends.withColumn("rank", F.row_number().over(best_first))
        .filter(F.col("rank") <= k)
        .select("src", "dst")
        .distinct()
    )
    return pairs.join(kept, on=["src", "dst"], how="left_semi")
