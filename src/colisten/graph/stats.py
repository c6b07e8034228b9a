"""Describe a co-listening graph: sizes, degrees, edge-type imbalance, components, isolated items.

The imbalance ratio (largest relation / smallest) is what motivates the balanced multi-link sampler
(PAPER.md §4): p-p and a-p edges vastly outnumber a-a, so uniform edge sampling barely trains a-a.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from colisten.graph.build import isolated_nodes_per_type
from colisten.graph.store import CoListeningGraph

QUANTILES = (0.5, 0.9, 0.99)


def degree_summary(degrees: np.ndarray) -> dict[str, float]:
    """Quantiles of a degree array over all source nodes, zero-degree nodes included."""
    d = np.asarray(degrees, dtype=np.int64)
    if d.size == 0:
        return {"nodes": 0}
    out: dict[str, float] = {"nodes": int(d.size), "min": int(d.min()), "mean": float(d.mean())}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = float(np.quantile(d, q))
    out["max"] = int(d.max())
    out["zero_degree_share"] = float((d == 0).mean())
    return out


def imbalance_ratio(edges_per_relation: dict[str, int]) -> float | None:
    """Largest relation's edge count / smallest non-empty one; None when no relation has edges."""
    sizes = [n for n in edges_per_relation.values() if n > 0]
    return float(max(sizes) / min(sizes)) if sizes else None


def union_adjacency(graph: CoListeningGraph):
    """All relations as one scipy CSR matrix over global item indices (types in sorted order)."""
    import scipy.sparse as sp

    offsets, start = {}, 0
    for t in graph.node_types:
        offsets[t] = start
        start += graph.num_nodes[t]
    rows, cols = [], []
    for (s, d), c in graph.csr.items():
        rows.append(np.repeat(np.arange(graph.num_nodes[s], dtype=np.int64), c.degrees()) + offsets[s])
        cols.append(c.indices + offsets[d])
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    data = np.ones(row.shape[0], dtype=np.int8)
    return sp.csr_matrix((data, (row, col)), shape=(start, start)), offsets


def component_summary(graph: CoListeningGraph) -> dict[str, Any]:
    """Connected components of the union graph (every relation, undirected)."""
    from scipy.sparse.csgraph import connected_components

    adjacency, offsets = union_adjacency(graph)
    n, labels = connected_components(adjacency, directed=False)
    sizes = np.bincount(labels, minlength=n)
    largest = int(np.argmax(sizes)) if n else 0
    in_largest = labels == largest
    per_type = {
        t: int(in_largest[offsets[t] : offsets[t] + graph.num_nodes[t]].sum()) for t in graph.node_types
    }
    total = int(labels.size)
    return {
        "components": int(n),
        "components_with_edges": int((sizes > 1).sum()),
        "largest_component_nodes": int(sizes.max()) if n else 0,
        "largest_component_share": float(sizes.max() / total) if total else 0.0,
        "largest_component_nodes_per_type": per_type,
        "largest_component_sizes": sorted((int(x) for x in sizes), reverse=True)[:5],
    }


def graph_stats(graph: CoListeningGraph) -> dict[str, Any]:
    """Everything `colisten graph stats` reports, as plain JSON-able data."""
    edges = {rel: graph.num_undirected_edges(rel) for rel in graph.relations()}
    return {
        "nodes_per_type": dict(graph.num_nodes),
        "nodes": int(sum(graph.num_nodes.values())),
        "edges_per_relation": edges,
        "edges": int(sum(edges.values())),
        "relations_without_edges": [rel for rel, n in edges.items() if n == 0],
        "imbalance_ratio": imbalance_ratio(edges),
        "degrees": {f"{s}->{d}": degree_summary(c.degrees()) for (s, d), c in sorted(graph.csr.items())},
        "isolated_nodes_per_type": isolated_nodes_per_type(graph),
        **component_summary(graph),
    }


def plot_degree_distributions(
    graph: CoListeningGraph, path: str | Path, stats: dict[str, Any] | None = None
) -> Path:
    """PNG: degree CCDF per directed edge type (log-log) beside edges per relation (log bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from colisten.io import atomic_path

    stats = stats or graph_stats(graph)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (s, d), c in sorted(graph.csr.items()):
        deg = np.sort(c.degrees()[c.degrees() > 0])
        if deg.size == 0:
            continue
        ccdf = 1.0 - np.arange(deg.size) / deg.size
        left.step(deg, ccdf, where="post", label=f"{s} → {d}")
    left.set(xscale="log", yscale="log", xlabel="degree", ylabel="share of nodes with degree ≥ x")
    left.set_title("Degree distribution (nodes with ≥1 edge)")
    if left.get_legend_handles_labels()[0]:
        left.legend(fontsize=8)
    rels = list(stats["edges_per_relation"])
    counts = [max(stats["edges_per_relation"][r], 0) for r in rels]
    right.bar(range(len(rels)), [max(c, 0.5) for c in counts], color="tab:blue")
    right.set_xticks(range(len(rels)), rels, rotation=20, ha="right", fontsize=8)
    right.set_yscale("log")
    right.set_ylim(bottom=0.8)  # bars from ~1 edge, so heights compare on the log scale
    right.set_ylabel("undirected edges")
    ratio = stats["imbalance_ratio"]
    right.set_title("Edges per relation" + (f" (imbalance {ratio:.1f}×)" if ratio else ""))
    for i, c in enumerate(counts):
        right.annotate(f"{c:,}", (i, max(c, 0.5)), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
