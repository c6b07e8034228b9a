"""GraphSAGE neighbour sampling: true neighbours only, fan-outs respected, uniform, all relations."""

import numpy as np

from colisten.graph.store import CoListeningGraph
from colisten.hgnn.edge_sampler import split_validation_edges
from colisten.hgnn.neighbor_sampler import NeighborSampler, sample_neighbors


def _global_edges(sub, layer_index):
    """(src_type, dst_type) -> set of (src type index, dst type index) of one sampled layer."""
    layer = sub.layers[layer_index]
    # layer i's sources are the first num_src nodes of the input list (nested prefixes)
    out = {}
    for (st, dt), (src, dst) in layer.edges.items():
        out[(st, dt)] = set(zip(sub.node_ids[st][src].tolist(), sub.node_ids[dt][dst].tolist(), strict=True))
        assert np.all(np.diff(dst) >= 0), "edges come sorted by destination"
        assert src.max(initial=-1) < layer.num_src[st] and dst.max(initial=-1) < layer.num_dst[dt]
    return out


def test_only_true_neighbours_fanout_respected_all_relations(world):
    graph, _, _ = world
    fanouts = [4, 3]
    sampler = NeighborSampler(graph, fanouts)
    seeds = {"audiobook": np.array([5, 1, 9]), "podcast": np.array([0, 7])}
    sub = sampler.sample(seeds, np.random.default_rng(0))
    # seeds first, in the order given; input nodes unique
    assert sub.node_ids["audiobook"][:3].tolist() == [5, 1, 9]
    assert sub.node_ids["podcast"][:2].tolist() == [0, 7]
    assert all(len(np.unique(v)) == len(v) for v in sub.node_ids.values())
    # the last layer works around the seeds with fanouts[0]; the first one hop further out
    assert sub.layers[-1].num_dst == {"audiobook": 3, "podcast": 2}
    for layer_index, fanout in ((1, fanouts[0]), (0, fanouts[1])):
        edges = _global_edges(sub, layer_index)
        # every node type hears from every relation touching it, reverse direction included
        assert set(edges) == {(s, d) for d, s in graph.edge_types}
        for (st, dt), pairs in edges.items():
            csr = graph.csr[(dt, st)]
            for s, d in pairs:
                assert s in set(csr.neighbors(d).tolist())
            dsts = [d for _, d in pairs]
            for d in set(dsts):
                assert dsts.count(d) == min(fanout, len(csr.neighbors(d)))  # distinct, <= fan-out


def test_draw_is_uniform_without_replacement():
    # one hub with 20 neighbours, fan-out 5: every neighbour appears with probability 5/20
    graph = CoListeningGraph.from_undirected_edges(
        {"podcast": 21}, {"podcast__podcast": (np.zeros(20, int), np.arange(1, 21), None)}
    )
    csr = graph.csr[("podcast", "podcast")]
    rng = np.random.default_rng(0)
    hub = np.zeros(4000, dtype=np.int64)
    rows, nbrs = sample_neighbors(csr.indptr, csr.indices, hub, 5, rng)
    assert np.array_equal(rows, np.repeat(np.arange(4000), 5))
    assert all(len(set(nbrs[i * 5 : i * 5 + 5])) == 5 for i in range(4000))
    freq = np.bincount(nbrs, minlength=21)[1:] / 4000
    assert np.allclose(freq, 0.25, atol=0.04)
    # fan-out None and low-degree nodes: every neighbour, in CSR order
    rows, nbrs = sample_neighbors(csr.indptr, csr.indices, np.array([3, 0]), None, rng)
    assert nbrs.tolist() == [0, *range(1, 21)] and rows.tolist() == [0] + [1] * 20


def test_validation_edges_are_never_sampled(world):
    graph, _, _ = world
    split = split_validation_edges(graph, graph.relations(), 0.3, seed=0)
    held_out = set()
    for rel, e in split.validation.items():
        a, b = rel.split("__")
        for u, v in zip(e.u.tolist(), e.v.tolist(), strict=True):
            held_out |= {(a, u, b, v), (b, v, a, u)}
    sampler = NeighborSampler(split.train_graph, [50, 50])  # large fan-out: every training edge
    seeds = {"audiobook": np.arange(graph.num_nodes["audiobook"]), "podcast": np.arange(10)}
    sub = sampler.sample(seeds, np.random.default_rng(1))
    seen = 0
    for layer_index in range(2):
        for (st, dt), pairs in _global_edges(sub, layer_index).items():
            seen += len(pairs)
            assert not {(st, s, dt, d) for s, d in pairs} & held_out
    assert seen > 0
