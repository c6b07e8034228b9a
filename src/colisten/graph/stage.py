"""The `graph` stage on a run directory: read split/history + data/items, write RUN/graph/.

Outputs (docs/architecture.md): nodes.parquet, edges.parquet, csr/ (CoListeningGraph.save), graph.json;
its description (`describe`, also `colisten graph stats`) adds stats.json and degrees.png.
graph.json is written last, so its presence means the other files are complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.graph.build import Progress, build_co_listening_graph
from colisten.graph.store import CoListeningGraph
from colisten.io import read_json, replace_dir, write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir


def _run_dir(run: str | Path | RunDir) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(run)


def load_graph(run: str | Path | RunDir) -> CoListeningGraph:
    """The run's co-listening graph (RUN/graph/csr), or a message saying to run `colisten graph`."""
    rd = _run_dir(run)
    rd.require(artifacts.GRAPH_SUMMARY)
    return CoListeningGraph.load(rd.require(artifacts.GRAPH_NUM_NODES).parent)


def run(
    rd: RunDir,
    settings: Settings,
    *,
    engine: str | None = None,
    describe: bool = True,
    progress: Progress | None = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Build RUN/graph/ from RUN/split/history.parquet (history window only) and RUN/data/items.parquet
    (recorded as `graph`) and, with `describe`, its statistics (`graph-stats`); returns graph.json.

    `engine` overrides `settings.graph.engine`. Events at or after the split's cut (split.json) are
    ignored even if present in the history.
    """
    import pyarrow.parquet as pq

    graph_settings = (
        settings.graph if engine is None else settings.graph.model_copy(update={"engine": engine})
    )
    history = rd.require(artifacts.HISTORY)
    items_path = rd.require(artifacts.ITEMS)
    split_json = artifacts.SPLIT.at(rd)
    cut = read_json(split_json).get("cut") if split_json.exists() else None

    out = rd.stage_dir("graph")
    work = out / ".work"
    shutil.rmtree(work, ignore_errors=True)
    with rd.stage("graph") as info:
        items = pq.ParquetFile(items_path).read(columns=["item_id", "item_type"])
        build = build_co_listening_graph(
            history,
            items,
            graph_settings,
            work,
            cut=None if cut is None else int(cut),
            progress=progress,
            history_name=str(history),
        )
        if progress:
            progress("saving")
        write_parquet_atomic(artifacts.GRAPH_NODES.at(rd), build.nodes)
        os.replace(build.edges_path, artifacts.GRAPH_EDGES.at(rd))
        build.edges_path = artifacts.GRAPH_EDGES.at(rd)
        _replace_dir(artifacts.GRAPH_CSR.at(rd), build.graph.save)
        for stale in (artifacts.GRAPH_STATS, artifacts.GRAPH_DEGREES):  # they describe the previous graph
            stale.at(rd).unlink(missing_ok=True)
        summary: dict[str, Any] = {
            "settings": graph_settings.model_dump(mode="json"),
            "cut": cut,
            **build.stats,
        }
        write_json_atomic(artifacts.GRAPH_SUMMARY.at(rd), summary)
        info.update(
            engine=graph_settings.engine,
            edges=build.stats["edges"],
            edges_per_relation=build.stats["edges_per_relation"],
        )
    shutil.rmtree(work, ignore_errors=True)
    if describe:
        describe_graph(rd)
    return summary


def _replace_dir(target: Path, write) -> None:
    """Write a directory beside `target` and swap it in, so no stale relation file survives a rebuild."""
    fresh = target.with_name(f".{target.name}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    write(fresh)
    replace_dir(fresh, target)


def describe_graph(run: str | Path | RunDir) -> dict[str, Any]:
    """The graph's statistics, recorded as `graph-stats`: RUN/graph/stats.json and degrees.png."""
    from colisten.graph.stats import graph_stats, plot_degree_distributions

    rd = _run_dir(run)
    graph = load_graph(rd)
    with rd.stage("graph-stats") as info:
        stats = graph_stats(graph)
        write_json_atomic(artifacts.GRAPH_STATS.at(rd), stats)
        plot_degree_distributions(graph, artifacts.GRAPH_DEGREES.at(rd), stats)
        info.update(imbalance_ratio=stats["imbalance_ratio"], components=stats["components"])
    return stats
