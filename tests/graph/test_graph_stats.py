"""Graph statistics: what `colisten graph stats` reports must describe the graph exactly."""

from __future__ import annotations

import numpy as np

from colisten.graph.stats import degree_summary, graph_stats, imbalance_ratio, plot_degree_distributions
from colisten.graph.store import CoListeningGraph


def small_graph() -> CoListeningGraph:
    """Audiobooks a0..a3, podcasts p0..p4. Components: {a0, a1, p0, p1, p2}, {a2, p3}; isolated a3, p4."""
    return CoListeningGraph.from_undirected_edges(
        {"audiobook": 4, "podcast": 5},
        {
            "audiobook__audiobook": (np.array([0]), np.array([1]), None),
            "audiobook__podcast": (np.array([0, 1, 2]), np.array([0, 0, 3]), None),
            "podcast__podcast": (np.array([0, 0, 1]), np.array([1, 2, 2]), None),
        },
    )


def test_counts_imbalance_and_isolated_nodes():
    s = graph_stats(small_graph())
    assert s["nodes_per_type"] == {"audiobook": 4, "podcast": 5}
    assert s["edges_per_relation"] == {
        "audiobook__audiobook": 1,
        "audiobook__podcast": 3,
        "podcast__podcast": 3,
    }
    assert s["imbalance_ratio"] == 3.0
    assert s["isolated_nodes_per_type"] == {"audiobook": 1, "podcast": 1}
    assert s["relations_without_edges"] == []


def test_connected_components_over_all_relations():
    s = graph_stats(small_graph())
    assert s["components"] == 4  # two with edges + two isolated nodes
    assert s["components_with_edges"] == 2
    assert s["largest_component_nodes"] == 5
    assert s["largest_component_nodes_per_type"] == {"audiobook": 2, "podcast": 3}
    assert s["largest_component_sizes"][:2] == [5, 2]


def test_degree_quantiles_per_direction_include_zero_degree_nodes():
    s = graph_stats(small_graph())
    ap = s["degrees"]["audiobook->podcast"]
    assert ap["nodes"] == 4 and ap["max"] == 1 and ap["zero_degree_share"] == 0.25
    pa = s["degrees"]["podcast->audiobook"]
    assert pa["max"] == 2 and pa["p50"] == 0.0  # p0 has a0 and a1, p3 has a2; p1, p2, p4 none
    d = degree_summary(np.array([0, 1, 1, 2, 10]))
    assert d["min"] == 0 and d["p50"] == 1.0 and d["max"] == 10 and d["mean"] == 2.8


def test_imbalance_ignores_empty_relations_and_handles_none():
    assert imbalance_ratio({"a__a": 0, "a__p": 10, "p__p": 200}) == 20.0
    assert imbalance_ratio({"a__a": 0}) is None
    empty = CoListeningGraph.from_undirected_edges(
        {"audiobook": 2, "podcast": 1},
        {"audiobook__podcast": (np.array([0]), np.array([0]), None), "audiobook__audiobook": ([], [], None)},
    )
    s = graph_stats(empty)
    assert s["relations_without_edges"] == ["audiobook__audiobook"]
    assert s["imbalance_ratio"] == 1.0


def test_degree_plot_is_a_png(tmp_path):
    out = plot_degree_distributions(small_graph(), tmp_path / "degrees.png")
    data = out.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 5000
