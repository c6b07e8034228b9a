"""Explanations: graph neighbours from the history first (by co-count, then recency), then embeddings."""

from __future__ import annotations

import numpy as np

from colisten.graph.store import CoListeningGraph
from colisten.serve.catalogue import ItemCatalogue
from colisten.serve.explain import Explainer, distinct_recent_first, explanation_source

# global order: a0 a1 a2 a3 (audiobooks 0..3), p0 p1 p2 (podcasts 4..6)
CATALOGUE = ItemCatalogue.from_columns(
    ["a0", "a1", "a2", "a3", "p0", "p1", "p2"],
    ["audiobook"] * 4 + ["podcast"] * 3,
    ["A0", "A1", "A2", "A3", "P0", "P1", "P2"],
)
GRAPH = CoListeningGraph.from_undirected_edges(
    {"audiobook": 4, "podcast": 3},
    {
        # a0 co-listened with a1 (by 2 users); a0 with p0 (5 users), p1 (2 users)
        "audiobook__audiobook": (np.array([0]), np.array([1]), np.array([2.0])),
        "audiobook__podcast": (np.array([0, 0]), np.array([0, 1]), np.array([5.0, 2.0])),
    },
)


def _embeddings() -> np.ndarray:
    rng = np.random.default_rng(0)
    e = rng.standard_normal((7, 8)).astype(np.float32)
    e[3] = e[6] + 0.01  # a3 is almost p2
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_graph_neighbours_ranked_by_co_count_then_recency():
    explainer = Explainer(CATALOGUE, GRAPH, _embeddings(), max_reasons=2)
    history = np.array([5, 1, 4, 6])  # p1 (most recent), a1, p0, p2
    [reasons] = explainer.explain(np.array([0]), history)  # explain a0
    assert [(r.item, r.via, r.strength) for r in reasons] == [
        (4, "co_listening", 5.0),
        (5, "co_listening", 2.0),  # ties with a1 at co-count 2, but p1 is more recent
    ]
    # a1 and p1 tie at co-count 2: the more recent history item wins
    [reasons] = Explainer(CATALOGUE, GRAPH, None, max_reasons=3).explain(
        np.array([0]), np.array([6, 1, 5, 4])
    )
    assert [r.item for r in reasons] == [4, 1, 5]
    [reasons] = Explainer(CATALOGUE, GRAPH, None, max_reasons=3).explain(np.array([0]), np.array([5, 1, 4]))
    assert [r.item for r in reasons] == [4, 5, 1]


def test_embedding_similarity_fills_in_when_the_graph_has_no_link():
    explainer = Explainer(CATALOGUE, GRAPH, _embeddings(), max_reasons=3)
    # a3 has no graph neighbours at all: every reason comes from the HGNN embeddings
    [reasons] = explainer.explain(np.array([3]), np.array([4, 6, 1]))
    assert [r.via for r in reasons] == ["embedding_similarity"] * 3
    assert reasons[0].item == 6  # the nearest embedding
    assert reasons[0].strength > reasons[1].strength >= reasons[2].strength
    assert explanation_source(reasons) == "embedding_similarity"
    # a0 has one neighbour in this history: it comes first, the embedding fills the other slots
    [reasons] = explainer.explain(np.array([0]), np.array([6, 4, 2]))
    assert reasons[0].item == 4 and reasons[0].via == "co_listening"
    assert [r.via for r in reasons[1:]] == ["embedding_similarity"] * 2
    assert explanation_source(reasons) == "co_listening_graph"


def test_an_item_never_explains_itself_and_empty_history_gives_none():
    explainer = Explainer(CATALOGUE, GRAPH, _embeddings(), max_reasons=3)
    [reasons] = explainer.explain(np.array([1]), np.array([1, 0]))
    assert [r.item for r in reasons] == [0]
    assert explainer.explain(np.array([0, 1]), np.array([], dtype=np.int64)) == [[], []]
    assert explanation_source([]) == "none"


def test_many_recommendations_at_once_match_one_by_one():
    rng = np.random.default_rng(1)
    n_a, n_p = 40, 60
    ids = [f"a{i:02d}" for i in range(n_a)] + [f"p{i:02d}" for i in range(n_p)]
    catalogue = ItemCatalogue.from_columns(ids, ["audiobook"] * n_a + ["podcast"] * n_p, ids)
    edges = {}
    for rel, (na, nb) in {
        "audiobook__audiobook": (n_a, n_a),
        "audiobook__podcast": (n_a, n_p),
        "podcast__podcast": (n_p, n_p),
    }.items():
        u, v = rng.integers(0, na, 300), rng.integers(0, nb, 300)
        keep = u != v if na == nb and rel.split("__")[0] == rel.split("__")[1] else np.ones(300, bool)
        pairs = np.unique(np.c_[u[keep], v[keep]], axis=0)
        edges[rel] = (pairs[:, 0], pairs[:, 1], rng.integers(1, 4, len(pairs)).astype(np.float32))
    graph = CoListeningGraph.from_undirected_edges({"audiobook": n_a, "podcast": n_p}, edges)
    emb = rng.standard_normal((100, 6)).astype(np.float32)
    explainer = Explainer(catalogue, graph, emb / np.linalg.norm(emb, axis=1, keepdims=True))
    history = distinct_recent_first(rng.integers(0, 100, 30), rng.integers(0, 1000, 30))
    recs = rng.choice(100, 12, replace=False)
    together = explainer.explain(recs, history)
    one_by_one = [explainer.explain(np.array([r]), history)[0] for r in recs]
    assert [[(r.item, r.via) for r in rs] for rs in together] == [
        [(r.item, r.via) for r in rs] for rs in one_by_one
    ]
    np.testing.assert_allclose(
        [r.strength for rs in together for r in rs], [r.strength for rs in one_by_one for r in rs], rtol=1e-5
    )
    for rec, reasons in zip(recs, together, strict=True):
        assert len(reasons) == 3 and rec not in [r.item for r in reasons]
        graph_part = [r for r in reasons if r.via == "co_listening"]
        assert reasons[: len(graph_part)] == graph_part


def test_distinct_recent_first_keeps_each_items_latest_touch():
    items = np.array([3, 1, 3, 2])
    stamps = np.array([10, 20, 30, 5])
    assert distinct_recent_first(items, stamps).tolist() == [3, 1, 2]
