"""The Spark backend produces exactly the DuckDB edge set (and weights, and CSR arrays)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from colisten.config import GraphConfig
from colisten.graph.build import build_co_listening_graph

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="pyspark is not installed (pip install 'colisten[spark]'; .ci/run installs it)",
    ),
]


def synthetic(graph_helpers, seed: int = 7):
    """~2k events of 60 users over 40 items of two types, with repeats, weak events and a heavy user."""
    rng = np.random.default_rng(seed)
    items = [(f"a{i:02d}", "audiobook") for i in range(12)] + [(f"p{i:02d}", "podcast") for i in range(28)]
    ids = [i for i, _ in items]
    popularity = 1.0 / np.arange(1, len(ids) + 1)  # skewed, like real listening
    popularity /= popularity.sum()
    events = []
    for u in range(60):
        n = 120 if u == 0 else int(rng.integers(1, 25))
        for item in rng.choice(ids, size=n, p=popularity):
            ts = int(rng.integers(0, 60 * graph_helpers.DAY))
            events.append(
                (f"u{u:03d}", str(item), ts, str(rng.choice(["stream", "stream", "follow", "preview"])))
            )
    events.append(("u999", "zz-unknown", 5, "stream"))
    return items, events


@pytest.fixture(scope="module")
def spark_stopper():
    yield
    from colisten.graph.spark import stop_spark

    stop_spark()


@pytest.mark.parametrize(
    "cfg",
    [
        {},  # the paper's rule with the default per-user cap
        {
            "max_items_per_user": 10,
            "window_days": 20,
            "min_cocount": 2,
            "top_k": 3,
            "edge_events": ["stream"],
            "association": "cosine",
            "shrinkage": 2.0,
        },
        {"association": "ppmi", "top_k": 5},
    ],
    ids=["defaults", "all-extras", "ppmi-top-k"],
)
def test_spark_and_duckdb_build_the_identical_graph(tmp_path, graph_helpers, spark_stopper, cfg):
    items, events = synthetic(graph_helpers)
    history = graph_helpers.history_table(events)
    item_table = graph_helpers.items_table(items)
    cut = 50 * graph_helpers.DAY
    out = {}
    for engine in ("duckdb", "spark"):
        settings = GraphConfig(engine=engine, threads=2, **cfg)
        out[engine] = build_co_listening_graph(history, item_table, settings, tmp_path / engine, cut=cut)
    duck, spark = out["duckdb"], out["spark"]
    assert duck.edges().num_rows > 50  # a real test, not two empty graphs
    order = [("relation", "ascending"), ("src", "ascending"), ("dst", "ascending")]
    assert duck.edges().sort_by(order).equals(spark.edges().sort_by(order))  # row order is unspecified
    for count in ("user_item_pairs", "users_capped", "user_item_pairs_after_cap"):
        assert duck.stats[count] == spark.stats[count]
    if cfg.get("max_items_per_user"):
        assert duck.stats["users_capped"] > 0  # the heavy user really is capped
    for key, c in duck.graph.csr.items():
        s = spark.graph.csr[key]
        assert np.array_equal(c.indptr, s.indptr) and np.array_equal(c.indices, s.indices)
        assert np.array_equal(c.weight, s.weight)
    expected = graph_helpers.reference_edges(items, events, GraphConfig(**cfg), cut=cut)
    got = {(r["src"], r["dst"]): r["weight"] for r in duck.edges().to_pylist()}
    assert got == {k: float(np.float32(v)) for k, v in expected.items()}
