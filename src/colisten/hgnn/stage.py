"""The `train-hgnn` stage: read the graph and text embeddings of a run, train, write RUN/hgnn.

Inputs: graph/csr (CoListeningGraph), graph/nodes.parquet (type index <-> global index),
content/text_embeddings.npy (global order). Outputs: hgnn/item_embeddings.npy (global order, every
item, isolated ones included), item_ids.parquet (the ids of those rows), checkpoint.pt, best.pt,
curve.json, embeddings.json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.errors import ColistenError
from colisten.graph.store import CoListeningGraph
from colisten.rundir import RunDir


class HGNNInputError(ColistenError):
    """Graph, node table and text embeddings of a run that do not line up."""


def load_item_features(
    run: RunDir,
) -> tuple[CoListeningGraph, dict[str, np.ndarray], dict[str, np.ndarray], Any]:
    """The run's graph, text features per type (type-index order) and each type's global indices."""
    import pyarrow.parquet as pq

    nodes_path = run.require(artifacts.GRAPH_NODES)
    csr_dir = run.require(artifacts.GRAPH_NUM_NODES).parent
    emb_path = run.require(artifacts.TEXT_EMBEDDINGS)
    nodes = pq.read_table(
        nodes_path, columns=["item_id", "item_type", "global_index", "type_index"]
    ).to_pandas()
    text = np.load(emb_path, mmap_mode="r")
    n = len(nodes)
    if text.ndim != 2 or text.shape[0] != n:
        raise HGNNInputError(
            f"{emb_path} has shape {tuple(text.shape)} but {nodes_path} lists {n} items; "
            f"rerun `colisten embed --run {run.root}`"
        )
    gi = nodes["global_index"].to_numpy(np.int64)
    if not np.array_equal(np.sort(gi), np.arange(n)):
        raise HGNNInputError(f"{nodes_path}: global_index is not a permutation of 0..{n - 1}")
    graph = CoListeningGraph.load(csr_dir)
    global_index: dict[str, np.ndarray] = {}
    for item_type, group in nodes.groupby("item_type", sort=True):
        group = group.sort_values("type_index")
        ti = group["type_index"].to_numpy(np.int64)
        if not np.array_equal(ti, np.arange(len(group))):
            raise HGNNInputError(f"{nodes_path}: type_index of {item_type!r} is not 0..{len(group) - 1}")
        expected = graph.num_nodes.setdefault(str(item_type), len(group))  # a type with no edges at all
        if expected != len(group):
            raise HGNNInputError(
                f"{artifacts.GRAPH_NUM_NODES.at(run)} says {expected} {item_type!r} nodes but "
                f"{nodes_path} has {len(group)}; rerun `colisten graph --run {run.root}`"
            )
        global_index[str(item_type)] = group["global_index"].to_numpy(np.int64)
    extra = sorted(set(graph.num_nodes) - set(global_index))
    if extra:
        raise HGNNInputError(f"{csr_dir} has node types {extra} that {nodes_path} does not list")
    features = {t: np.ascontiguousarray(text[g], dtype=np.float32) for t, g in global_index.items()}
    return graph, features, global_index, nodes


def run(
    rd: RunDir,
    settings: Settings,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = False,
    log: Log = quiet,
) -> dict[str, Any]:
    """The `train-hgnn` stage: RUN/hgnn/, recorded in the manifest; returns the summary it recorded
    (also RUN/hgnn/embeddings.json). `log` receives one plain line per epoch (the validation metric
    and an ETA), e.g. for `colisten run`, whose output may be a log file.

    Under DDP (colisten.hgnn.distributed) every rank calls this; ranks other than 0 train beside
    rank 0 and write nothing (no manifest, no folder), returning {}."""
    import pyarrow as pa

    from colisten.ddp import rank_and_world
    from colisten.hgnn.train import fit_hgnn
    from colisten.io import save_numpy_atomic, write_json_atomic, write_parquet_atomic

    s = settings.hgnn
    if rank_and_world()[0] != 0:
        graph, features, _, _ = load_item_features(rd)
        out = rd.root / artifacts.HGNN_EMBEDDINGS.folder  # read (--resume), never written here
        fit_hgnn(graph, features, s, out_dir=out, resume=resume, device=device, progress=False)
        return {}
    with rd.stage("train-hgnn") as info:
        graph, features, global_index, nodes = load_item_features(rd)
        out = rd.stage_dir(artifacts.HGNN_EMBEDDINGS.folder)
        on_epoch = epoch_logger(log, s.epochs, s.validation_metric)
        result = fit_hgnn(
            graph,
            features,
            s,
            out_dir=out,
            resume=resume,
            device=device,
            progress=progress,
            on_epoch_end=on_epoch,
        )
        n_items = sum(len(g) for g in global_index.values())
        embeddings = np.zeros((n_items, s.out_dim), dtype=np.float32)
        for t, g in global_index.items():
            embeddings[g] = result.embeddings[t]
        save_numpy_atomic(artifacts.HGNN_EMBEDDINGS.at(rd), embeddings)
        order = nodes.sort_values("global_index")
        write_parquet_atomic(
            artifacts.HGNN_ITEM_IDS.at(rd),
            pa.table({"item_id": order["item_id"].astype(str), "item_type": order["item_type"].astype(str)}),
        )
        epochs = result.curve.get("epochs", [])
        summary = {
            "n_items": n_items,
            "dim": s.out_dim,
            "metric": s.validation_metric,
            "best_epoch": result.best_epoch,
            "best_metric": result.best_metric if result.best_epoch else None,
            "initial_metric": result.curve.get("initial", {}).get(s.validation_metric),
            "epochs_run": len(epochs),
            "stopped_early": result.curve.get("stopped_early", False),
            "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])) if epochs else None,
            **result.info,
        }
        write_json_atomic(artifacts.HGNN_SUMMARY.at(rd), summary)
        info.update(summary)
    return summary


def summary_line(summary: dict[str, Any], run: Any) -> str:
    """The line `colisten train-hgnn` ends with."""
    s = summary
    return (
        f"train-hgnn: {s['n_items']} items embedded ({s['dim']}-d) on {s['device']}; best validation "
        f"{s['metric']} {s['best_metric'] or 0:.4f} at epoch {s['best_epoch']} "
        f"(untrained {s['initial_metric'] or 0:.4f}) -> {Path(run) / artifacts.HGNN_EMBEDDINGS.folder}"
    )


def epoch_logger(log: Callable[[str], None], epochs: int, metric: str) -> Callable[[dict[str, Any]], None]:
    """An `on_epoch_end` that logs "epoch k/E: metric m (s s, ETA at most t s)" (console.epoch_timing)."""
    from colisten.console import epoch_timing

    seconds: list[float] = []

    def on_epoch_end(entry: dict[str, Any]) -> None:
        seconds.append(float(entry.get("seconds", 0.0)))
        value = entry.get(metric)
        shown = "n/a" if value is None else f"{value:.4f}"
        timing = epoch_timing(seconds, int(entry["epoch"]), epochs)
        log(f"epoch {entry['epoch']}/{epochs}: {metric} {shown} {timing}")

    return on_epoch_end
