"""Validation hold-out and the balanced multi-link sampler (PAPER.md §4)."""

import numpy as np
import pytest

from colisten.hgnn.edge_sampler import (
    BalancedEdgeSampler,
    HGNNSettingError,
    select_relations,
    split_validation_edges,
    undirected_edges,
)


def _pairs(edge_set):
    return set(zip(edge_set.u.tolist(), edge_set.v.tolist(), strict=True))


def test_hold_out_is_a_partition_and_leaves_message_passing(world):
    graph, _, _ = world
    split = split_validation_edges(graph, graph.relations(), 0.1, seed=0)
    for rel in graph.relations():
        everything = _pairs(undirected_edges(graph, rel))
        train, val = _pairs(split.train[rel]), _pairs(split.validation[rel])
        assert train | val == everything and not train & val
        assert len(val) == int(len(everything) * 0.1)
        # held-out edges are gone from the message-passing graph, training edges are still there
        assert _pairs(undirected_edges(split.train_graph, rel)) == train
        assert _pairs(undirected_edges(split.full_graph, rel)) == everything
    again = split_validation_edges(graph, graph.relations(), 0.1, seed=0)
    assert all(_pairs(again.validation[r]) == _pairs(split.validation[r]) for r in graph.relations())


def test_balanced_epochs_match_the_minority_relation_and_are_redrawn(world):
    graph, _, _ = world
    split = split_validation_edges(graph, graph.relations(), 0.1, seed=0)
    counts = {r: len(e) for r, e in split.train.items()}
    smallest = min(counts.values())
    assert counts["audiobook__audiobook"] == smallest < counts["podcast__podcast"]
    sampler = BalancedEdgeSampler(counts, mode="balanced", seed=7)
    e1, e2 = sampler.epoch_edges(1), sampler.epoch_edges(2)
    for rel in counts:
        assert len(e1[rel]) == smallest and len(np.unique(e1[rel])) == smallest
        assert e1[rel].min() >= 0 and e1[rel].max() < counts[rel]
    # all a-a edges every epoch; a fresh uniform sample of the majority relations
    assert np.array_equal(e1["audiobook__audiobook"], np.arange(smallest))
    assert not np.array_equal(e1["podcast__podcast"], e2["podcast__podcast"])
    assert not np.array_equal(e1["audiobook__podcast"], e2["audiobook__podcast"])
    # deterministic per seed (and per epoch, whatever was drawn before)
    replay = BalancedEdgeSampler(counts, mode="balanced", seed=7)
    assert all(np.array_equal(replay.epoch_edges(2)[r], e2[r]) for r in counts)
    other = BalancedEdgeSampler(counts, mode="balanced", seed=8)
    assert not np.array_equal(other.epoch_edges(1)["podcast__podcast"], e1["podcast__podcast"])


def test_sampled_supervision_edges_are_never_validation_edges(world):
    graph, _, _ = world
    split = split_validation_edges(graph, graph.relations(), 0.2, seed=3)
    sampler = BalancedEdgeSampler({r: len(e) for r, e in split.train.items()}, seed=3)
    for epoch in range(1, 6):
        for rel, ids in sampler.epoch_edges(epoch).items():
            assert not _pairs(split.train[rel].take(ids)) & _pairs(split.validation[rel])


def test_uniform_ratios_and_cap():
    counts = {"a__a": 10, "a__p": 100, "p__p": 1000}
    uniform = BalancedEdgeSampler(counts, mode="uniform").epoch_edges(1)
    assert {r: len(v) for r, v in uniform.items()} == counts
    ratios = BalancedEdgeSampler(counts, mode="ratios", ratios={"p__p": 0.05}).epoch_edges(1)
    assert {r: len(v) for r, v in ratios.items()} == {"a__a": 10, "a__p": 100, "p__p": 50}
    capped = BalancedEdgeSampler(counts, mode="uniform", max_edges_per_epoch=111)
    assert capped.sizes == {"a__a": 1, "a__p": 10, "p__p": 100}  # proportions kept
    balanced_cap = BalancedEdgeSampler(counts, mode="balanced", max_edges_per_epoch=15)
    assert balanced_cap.sizes == {"a__a": 5, "a__p": 5, "p__p": 5}  # balance kept
    with pytest.raises(HGNNSettingError, match="relation_ratios"):
        BalancedEdgeSampler(counts, mode="ratios", ratios={"x__y": 0.5})


def test_relations_setting_selects_and_rejects(world):
    graph, _, _ = world
    assert select_relations(graph, None) == graph.relations()
    assert select_relations(graph, ["podcast__podcast"]) == ["podcast__podcast"]
    with pytest.raises(HGNNSettingError, match="audiobook__user"):
        select_relations(graph, ["audiobook__user"])


def test_cocount_weighting_draws_shared_edges_more_often_without_repeats():
    n = 1000
    weight = np.where(np.arange(n) < 100, 20.0, 1.0)  # the first 100 edges: 20x the co-count
    sampler = BalancedEdgeSampler(
        {"podcast__podcast": n}, max_edges_per_epoch=100, weights={"podcast__podcast": weight}
    )
    heavy = []
    for epoch in (1, 2, 3):
        ids = sampler.epoch_edges(epoch)["podcast__podcast"]
        assert ids.shape == (100,) and np.unique(ids).shape == (100,)  # without replacement
        heavy.append(np.mean(ids < 100))
        np.testing.assert_array_equal(ids, sampler.epoch_edges(epoch)["podcast__podcast"])  # (seed, epoch)
    # uniform would put 10% of the draw on the heavy edges; weighting puts well over half there
    assert min(heavy) > 0.5
    uniform = BalancedEdgeSampler({"podcast__podcast": n}, max_edges_per_epoch=100)
    assert np.mean(uniform.epoch_edges(1)["podcast__podcast"] < 100) < 0.25
    with pytest.raises(HGNNSettingError, match="positive"):
        BalancedEdgeSampler({"podcast__podcast": 3}, weights={"podcast__podcast": np.array([1.0, 0.0, 2.0])})


def test_edge_sets_keep_the_graphs_co_counts():
    from colisten.graph.store import CoListeningGraph
    from colisten.hgnn.train import edge_weights

    graph = CoListeningGraph.from_undirected_edges(
        {"podcast": 4},
        {"podcast__podcast": (np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([5.0, 1.0, 2.0]))},
    )
    edges = undirected_edges(graph, "podcast__podcast")
    assert sorted(zip(edges.u.tolist(), edges.v.tolist(), edges.weight.tolist(), strict=True)) == [
        (0, 1, 5.0),
        (1, 2, 1.0),
        (2, 3, 2.0),
    ]
    split = split_validation_edges(graph, ["podcast__podcast"], 0.0, seed=0)
    assert sorted(split.train["podcast__podcast"].weight.tolist()) == [1.0, 2.0, 5.0]
    assert edge_weights(split.train, "none") is None
    np.testing.assert_allclose(
        np.sort(edge_weights(split.train, "sqrt_cocount")["podcast__podcast"]), np.sqrt([1.0, 2.0, 5.0])
    )


def test_weighted_draws_are_in_proportion_to_the_weights_chi_square():
    from scipy.stats import chisquare

    weight = np.array([0.1, 0.2, 0.3, 0.4])  # association weights are below 1: they must not be flattened
    sampler = BalancedEdgeSampler(
        {"podcast__podcast": 4}, max_edges_per_epoch=1, weights={"podcast__podcast": weight}
    )
    draws = np.concatenate([sampler.epoch_edges(e)["podcast__podcast"] for e in range(4000)])
    counts = np.bincount(draws, minlength=4)
    assert chisquare(counts, weight / weight.sum() * draws.size).pvalue > 0.01
    # uniform draws fail the same test
    uniform = BalancedEdgeSampler({"podcast__podcast": 4}, max_edges_per_epoch=1)
    flat = np.bincount(
        np.concatenate([uniform.epoch_edges(e)["podcast__podcast"] for e in range(4000)]), minlength=4
    )
    assert chisquare(flat, weight / weight.sum() * 4000).pvalue < 1e-6


def test_association_weights_below_one_keep_their_ratios():
    from colisten.graph.store import CoListeningGraph
    from colisten.hgnn.train import edge_weights

    graph = CoListeningGraph.from_undirected_edges(
        {"podcast": 4},
        {"podcast__podcast": (np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.5, 0.05, 0.25]))},
    )
    split = split_validation_edges(graph, ["podcast__podcast"], 0.0, seed=0)
    w = np.sort(edge_weights(split.train, "cocount")["podcast__podcast"])
    np.testing.assert_allclose(w, [0.05, 0.25, 0.5], rtol=1e-6)
