"""`colisten recommend --engine spark` writes exactly the local export's rows; bad masters fail cleanly."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from colisten.twotower.recommender import TwoTowerRecommender, write_recommendations
from colisten.twotower.spark_export import score_partition

no_pyspark = pytest.mark.skipif(
    importlib.util.find_spec("pyspark") is None,
    reason="pyspark is not installed (pip install 'colisten[spark]'; .ci/run installs it)",
)
KEY = ["user_id", "item_type", "rank"]


def local_export(rec, tmp_path, users, types, k):
    path = tmp_path / "local.parquet"
    write_recommendations(rec, users, types, k, path, progress=False)
    return pd.read_parquet(path).sort_values(KEY, ignore_index=True)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Row for row: users, types, ranks and items exactly; scores to 1e-6 (a batch of one user is
    scored by a matrix-vector product, a larger one by a matrix product: the last bits differ,
    scores near 0 then fail any relative tolerance)."""
    pd.testing.assert_frame_equal(got.drop(columns="score"), want.drop(columns="score"))
    pd.testing.assert_series_equal(got["score"], want["score"], check_exact=False, rtol=0, atol=1e-6)


def test_a_partition_split_mid_user_scores_like_the_local_export(trained_run, rec, tmp_path):
    """What each Spark task runs, without Spark: frames cut inside users' histories, small batches."""
    run, _ = trained_run
    users = sorted(rec.known_users()[:30])
    h = pd.read_parquet(run / "split/history.parquet", columns=["user_id", "item_id", "event", "timestamp"])
    rows = pd.concat(
        [
            pd.DataFrame(
                {"user_id": users, "item_id": None, "event": None, "timestamp": None, "requested": True}
            ),
            h[h.user_id.isin(users)].assign(requested=False),
        ],
        ignore_index=True,
    ).sort_values("user_id", kind="stable", ignore_index=True)
    frames = (rows.iloc[s : s + 13] for s in range(0, len(rows), 13))  # 13 rows: users span frames
    worker = TwoTowerRecommender.load(run)  # as a Spark worker does (use_history replaces its history)
    tables = list(score_partition(worker, frames, ["audiobook", "podcast"], 6, batch_users=4))
    got = pd.concat([t.to_pandas() for t in tables]).sort_values(KEY, ignore_index=True)
    assert_same_rows(got, local_export(rec, tmp_path, users, ["audiobook", "podcast"], 6))


@pytest.fixture
def spark_stopper():
    yield
    from colisten.spark import stop_spark

    stop_spark()


@pytest.mark.spark
@no_pyspark
def test_spark_export_equals_the_local_export_row_for_row(trained_run, rec, tmp_path, cli, spark_stopper):
    from colisten.spark import spark_session

    run, _ = trained_run
    # small Arrow batches and user batches, so users' events span frames and partitions hold
    # several batches: the streaming paths run, not only the one-batch case
    spark = spark_session("local[2]", threads=2, driver_memory="1g")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "200")
    config = tmp_path / "settings.toml"
    config.write_text("[retrieval]\nbatch_users = 16\n[graph]\nthreads = 2\n")
    out = tmp_path / "recs"
    out.mkdir()  # an older export there is replaced
    (out / "stale.parquet").write_bytes(b"old")
    code, stdout, err = cli("recommend", "--run", run.root, "--users", "all", "--type", "all",
        "--k", "10", "--out", out, "--engine", "spark", "--spark-master", "local[2]", "--config", config,
    )  # fmt: skip
    assert code == 0, err
    assert len(stdout.splitlines()) == 1 and stdout.strip().endswith(f"{out}/")  # one line, as local
    parts = sorted(p.name for p in out.iterdir())
    assert "stale.parquet" not in parts and sum(p.startswith("part-") for p in parts) >= 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left

    got = pd.read_parquet(out).sort_values(KEY, ignore_index=True)
    want = local_export(rec, tmp_path, list(rec.known_users()), ["audiobook", "podcast"], 10)
    assert len(want) == len(rec.known_users()) * 2 * 10
    assert f"wrote {len(want)} recommendations for {len(rec.known_users())} users" in stdout
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert_same_rows(got, want)  # the same code on the same users


@pytest.mark.spark
@no_pyspark
def test_an_unreachable_master_is_a_clear_error_and_writes_nothing(trained_run, tmp_path, cli):
    run, _ = trained_run
    out = tmp_path / "recs"
    code, _, err = cli("recommend", "--run", run.root, "--users", "all", "--out", out,
        "--engine", "spark", "--spark-master", "spark://127.0.0.1:1",
    )  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "Spark master spark://127.0.0.1:1 is unreachable" in err and "--spark-master" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # the same from the setting
    config = tmp_path.parent / f"{tmp_path.name}-settings.toml"
    config.write_text('[graph]\nspark_master = "spark://127.0.0.1:1"\n')
    code, _, err = cli("recommend", "--run", run.root, "--users", "all", "--out", out,
        "--engine", "spark", "--config", config,
    )  # fmt: skip
    assert code == 2 and "[graph] spark_master" in err and not out.exists()


def test_engine_and_spark_master_go_with_users(trained_run, rec, cli):
    run, _ = trained_run
    user = rec.known_users()[0]
    code, _, err = cli("recommend", "--run", run.root, "--user", user, "--engine", "spark")
    assert code == 2 and "--users" in err
    code, _, err = cli("recommend", "--run", run.root, "--users", "all", "--out", "x", "--engine", "ray")
    assert code == 2 and "'ray'" in err
