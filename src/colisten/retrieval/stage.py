"""The `index` stage: the run's two-tower vectors handed to `retrieval.indexing`, which never
imports the two-tower package; RUN/index/TYPE.voy and index.json, recorded in the manifest.

This module alone sits a layer above the rest of retrieval/ (tests/test_architecture.py): it is
where the model's vectors meet the index."""

from __future__ import annotations

from typing import Any

from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.rundir import RunDir


def run(rd: RunDir, settings: Settings, *, log: Log = quiet) -> dict[str, Any]:
    """Build RUN/index/TYPE.voy for each item type and write RUN/index/index.json; records (and
    returns) recall@10 per type.

    The two-tower model gives the vectors: its item vectors, and as recall@10 queries the user
    vectors of up to `retrieval.recall_queries` users of the run, drawn with `retrieval.seed`.
    """
    from colisten.retrieval.indexing import build_indexes, recall_query_users
    from colisten.twotower.recommender import TwoTowerRecommender

    with rd.stage("index") as info:
        out_dir = rd.stage_dir("index")
        rec = TwoTowerRecommender.load(rd, settings)
        queries = rec.user_vectors(recall_query_users(rec.known_users(), settings.retrieval))
        item_vectors = {item_type: rec.item_vectors(item_type)[1] for item_type in rec.item_types}
        report = build_indexes(out_dir, queries, item_vectors, settings.retrieval, log)
        info["recall@10"] = {t: v["recall@10"] for t, v in report["types"].items()}
    return info
