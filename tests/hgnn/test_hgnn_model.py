"""Heterogeneous GraphSAGE: the paper's update equation, unit-norm outputs, sampled = full graph."""

import numpy as np
import torch

from colisten.graph.store import CoListeningGraph
from colisten.hgnn.model import HeteroGraphSAGE
from colisten.hgnn.neighbor_sampler import NeighborSampler

A, P = "audiobook", "podcast"


def _tiny_graph():
    # a0-a1 (a-a), a0-p0 and a0-p1 (a-p); no p-p edges
    return CoListeningGraph.from_undirected_edges(
        {A: 2, P: 2},
        {"audiobook__audiobook": ([0], [1], None), "audiobook__podcast": ([0, 0], [0, 1], None)},
    )


def _set(linear, weight, bias=None):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        if bias is not None:
            linear.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def test_update_equation_by_hand():
    graph = _tiny_graph()
    x = {A: torch.tensor([[1.0, 0.0], [0.0, 1.0]]), P: torch.tensor([[1.0, 1.0], [2.0, -1.0]])}
    model = HeteroGraphSAGE({A: 2, P: 2}, graph.edge_types, out_dim=2, num_layers=1, final_activation=True)
    layer = model.layers[0]
    _set(layer.self_weight[A], [[1, 0], [0, 1]])
    _set(layer.self_weight[P], [[0, 0], [0, 0]])
    _set(layer.relation_weight["audiobook__audiobook"], [[1, 0], [0, 1]], [0, 0])
    _set(layer.relation_weight["podcast__audiobook"], [[1, 0], [0, -1]], [0, 0.5])
    _set(layer.relation_weight["audiobook__podcast"], [[1, 0], [0, 1]], [0, 0])
    z = model.embed_full_graph(graph, x)
    # a0: agg_aa = relu(x_a1) = [0, 1]; agg_pa = max(relu([1, -1] + b), relu([2, 1] + b)) = [2, 1.5]
    #     h' = relu(x_a0 + [0, 1] + [2, 1.5]) = [3, 2.5]
    # a1: agg_aa = relu(x_a0) = [1, 0]; no podcast neighbour -> 0; h' = relu([0, 1] + [1, 0]) = [1, 1]
    # p0, p1: W_self = 0, agg_ap = relu(x_a0) = [1, 0]
    expected_a = np.array([[3, 2.5], [1, 1]]) / np.linalg.norm([[3, 2.5], [1, 1]], axis=1, keepdims=True)
    assert np.allclose(z[A].numpy(), expected_a, atol=1e-6)
    assert np.allclose(z[P].numpy(), [[1, 0], [1, 0]], atol=1e-6)
    # the sampled mini-batch path computes the same thing
    sub = NeighborSampler(graph, [5]).sample(
        {A: np.array([0, 1]), P: np.array([0, 1])}, np.random.default_rng(0)
    )
    zb = model({t: x[t][torch.from_numpy(i)] for t, i in sub.node_ids.items()}, sub.layers)
    assert np.allclose(zb[A].detach().numpy(), expected_a, atol=1e-6)


def _reference(graph, x, model):
    """Straight per-node loops over the equations of PAPER.md §3 (all neighbours)."""
    h = {t: v.double().numpy() for t, v in x.items()}
    for i, layer in enumerate(model.layers):
        last = i == len(model.layers) - 1
        new = {}
        for t, ht in h.items():
            ws = layer.self_weight[t].weight.double().detach().numpy()
            rows = []
            for v in range(ht.shape[0]):
                total = ws @ ht[v]
                for st, dt in model.edge_types:
                    if dt != t:
                        continue
                    lin = layer.relation_weight[f"{st}__{dt}"]
                    w, b = lin.weight.double().detach().numpy(), lin.bias.double().detach().numpy()
                    msgs = [np.maximum(w @ h[st][u] + b, 0) for u in graph.csr[(t, st)].neighbors(v)]
                    total = total + (np.max(msgs, axis=0) if msgs else 0)
                rows.append(total if last else np.maximum(total, 0))
            new[t] = np.array(rows)
        h = new
    return {t: v / np.linalg.norm(v, axis=1, keepdims=True) for t, v in h.items()}


def test_two_layers_match_reference_and_are_unit_norm(world):
    graph, features, _ = world
    x = {t: torch.from_numpy(f) for t, f in features.items()}
    torch.manual_seed(0)
    model = HeteroGraphSAGE({t: 16 for t in x}, graph.edge_types, hidden_dim=8, out_dim=4)
    expected = _reference(graph, x, model)
    z = model.embed_full_graph(graph, x)
    for t in x:
        assert np.allclose(z[t].numpy(), expected[t], atol=1e-5)
        assert np.allclose(np.linalg.norm(z[t].numpy(), axis=1), 1, atol=1e-5)
    assert (z[A].numpy() < 0).any()  # no final ReLU by default: the whole sphere is usable
    # a fan-out above every degree makes the sampled path exact
    seeds = {A: np.array([3, 0, 11]), P: np.array([5])}
    sub = NeighborSampler(graph, [1000, 1000]).sample(seeds, np.random.default_rng(0))
    zb = model({t: x[t][torch.from_numpy(i)] for t, i in sub.node_ids.items()}, sub.layers)
    assert np.allclose(zb[A].detach().numpy(), expected[A][[3, 0, 11]], atol=1e-5)
    assert np.allclose(zb[P].detach().numpy(), expected[P][[5]], atol=1e-5)


def test_type_without_relations_is_embedded_from_its_text():
    graph = CoListeningGraph.from_undirected_edges({A: 3, P: 4}, {"audiobook__audiobook": ([0], [1], None)})
    x = {A: torch.randn(3, 5), P: torch.randn(4, 5)}
    model = HeteroGraphSAGE({A: 5, P: 5}, graph.edge_types, hidden_dim=6, out_dim=3)
    z = model.embed_full_graph(graph, x)
    assert z[P].shape == (4, 3) and torch.allclose(z[P].norm(dim=1), torch.ones(4))
    # different texts, different embeddings (the self path carries them)
    assert torch.cdist(z[P], z[P]).triu(1).max() > 0.1


def test_max_aggregate_dense_and_segment_paths_agree_with_a_loop():
    from colisten.hgnn.model import max_aggregate

    torch.manual_seed(0)
    for degrees in ([2, 0, 3, 1], [40, 0, 1, 1, 1, 1]):  # even -> dense layout, skewed -> segment max
        dst = torch.repeat_interleave(torch.arange(len(degrees)), torch.tensor(degrees))
        src = torch.randint(0, 7, (int(dst.shape[0]),))
        h = torch.randn(7, 3, requires_grad=True)
        out = max_aggregate(torch.relu(h), src, dst, len(degrees))
        expected = torch.stack(
            [
                torch.relu(h)[src[dst == i]].max(0).values if d else torch.zeros(3)
                for i, d in enumerate(degrees)
            ]
        )
        assert torch.allclose(out, expected)
        (g1,) = torch.autograd.grad(out.square().sum(), h)
        (g2,) = torch.autograd.grad(expected.square().sum(), h)
        assert torch.allclose(g1, g2)
