"""HGNN training: it learns, it resumes exactly, ablations and extra node types work."""

import numpy as np
import pytest
import torch

from colisten.config import HGNNConfig
from colisten.graph.store import CoListeningGraph
from colisten.hgnn.edge_sampler import HGNNSettingError
from colisten.hgnn.train import ResumeError, fit_hgnn

SMALL = {"hidden_dim": 32, "out_dim": 16, "fanouts": [5, 5], "batch_size": 64, "validation_fraction": 0.2}


def test_training_beats_the_untrained_model(world, tmp_path):
    graph, features, _ = world
    result = fit_hgnn(graph, features, HGNNConfig(epochs=12, **SMALL), out_dir=tmp_path, progress=False)
    initial, best = result.curve["initial"], result.curve["epochs"][result.best_epoch - 1]
    assert result.best_metric == best["mrr"]
    assert best["mrr"] > 1.3 * initial["mrr"]
    assert best["hr@10"] > initial["hr@10"] + 0.1
    losses = [e["loss"] for e in result.curve["epochs"]]
    assert losses[-1] < losses[0]
    for t, n in graph.num_nodes.items():
        z = result.embeddings[t]
        assert z.shape == (n, 16) and z.dtype == np.float32
        assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    # best.pt holds the best epoch's weights, and the returned model is that model
    best_pt = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best_pt["epoch"] == result.best_epoch
    assert all(torch.equal(v, result.model.state_dict()[k]) for k, v in best_pt["model"].items())
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "curve.json").exists()


def test_full_graph_training_learns_and_differs_from_minibatch(world, tmp_path):
    graph, features, _ = world
    cfg = HGNNConfig(epochs=12, training="full_graph", full_graph_step_edges=128, **SMALL)
    result = fit_hgnn(graph, features, cfg, out_dir=tmp_path, progress=False)
    initial, best = result.curve["initial"], result.curve["epochs"][result.best_epoch - 1]
    assert best["mrr"] > 1.3 * initial["mrr"] and best["hr@10"] > initial["hr@10"] + 0.1
    for t, n in graph.num_nodes.items():
        assert result.embeddings[t].shape == (n, 16)
        assert np.allclose(np.linalg.norm(result.embeddings[t], axis=1), 1, atol=1e-5)
    minibatch = fit_hgnn(graph, features, HGNNConfig(epochs=1, **SMALL), progress=False)
    full = fit_hgnn(graph, features, HGNNConfig(epochs=1, training="full_graph", **SMALL), progress=False)
    assert minibatch.curve["epochs"][0]["loss"] != full.curve["epochs"][0]["loss"]


class _Killed(Exception):
    pass


def _with_cocounts(graph):
    """The same edges with varied co-counts (1..7), as the graph stage stores them."""
    from colisten.hgnn.edge_sampler import undirected_edges

    edges = {}
    for rel in graph.relations():
        e = undirected_edges(graph, rel)
        edges[rel] = (e.u, e.v, 1.0 + (e.u * 7 + e.v * 3) % 7)
    return CoListeningGraph.from_undirected_edges(graph.num_nodes, edges)


@pytest.mark.parametrize(
    ("training", "weighting", "id_dim"),
    [
        ("minibatch", "none", 0),
        ("full_graph", "none", 0),
        ("minibatch", "cocount", 0),
        ("minibatch", "cocount", 8),
    ],
)
def test_resume_after_a_kill_gives_identical_weights(world, tmp_path, training, weighting, id_dim):
    graph, features, _ = world
    if weighting != "none":
        graph = _with_cocounts(graph)
    # bit-exact on CPU; CUDA's scatter sums are not (test_hgnn_cuda checks resume there)
    settings = HGNNConfig(
        epochs=4,
        patience=10,
        dropout=0.1,
        training=training,
        full_graph_step_edges=96,
        device="cpu",
        edge_weighting=weighting,
        id_dim=id_dim,
        **SMALL,
    )
    straight = fit_hgnn(graph, features, settings, out_dir=tmp_path / "a", progress=False)

    def kill_after_two(entry):
        if entry["epoch"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        fit_hgnn(
            graph, features, settings, out_dir=tmp_path / "b", progress=False, on_epoch_end=kill_after_two
        )
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["state"]["epoch"] == 2
    if weighting == "none":  # a checkpoint from before edge_weighting existed resumes as "none"
        ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
        del ck["settings"]["edge_weighting"]
        torch.save(ck, tmp_path / "b" / "checkpoint.pt")
    resumed = fit_hgnn(graph, features, settings, out_dir=tmp_path / "b", resume=True, progress=False)

    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert a["state"]["epoch"] == b["state"]["epoch"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [e["loss"] for e in a["curve"]["epochs"]] == [e["loss"] for e in b["curve"]["epochs"]]
    assert straight.best_epoch == resumed.best_epoch
    for t in straight.embeddings:
        assert np.array_equal(straight.embeddings[t], resumed.embeddings[t])
    # a checkpoint from other settings is refused with the reason
    with pytest.raises(ResumeError, match="margin"):
        fit_hgnn(
            graph, features, settings.model_copy(update={"margin": 0.3}), out_dir=tmp_path / "b", resume=True
        )


def test_two_cpu_runs_with_several_threads_give_identical_embeddings(make_world):
    """Multi-threaded scatter sums would differ in the last bits from run to run; not here."""
    graph, features, _ = make_world(n_audiobooks=300, n_podcasts=1200, edges=(3000, 8000, 20000), dim=64)
    settings = HGNNConfig(
        epochs=2, hidden_dim=64, out_dim=32, fanouts=[10, 5], batch_size=256, threads=2, device="cpu"
    )
    a = fit_hgnn(graph, features, settings, progress=False)
    b = fit_hgnn(graph, features, settings, progress=False)
    assert [e["loss"] for e in a.curve["epochs"]] == [e["loss"] for e in b.curve["epochs"]]
    for t in a.embeddings:
        assert np.array_equal(a.embeddings[t], b.embeddings[t])
    assert not torch.are_deterministic_algorithms_enabled()  # the caller's setting is restored


def test_ablation_without_audiobook_relations_still_embeds_audiobooks(world):
    graph, features, _ = world
    settings = HGNNConfig(epochs=1, relations=["podcast__podcast"], **SMALL)
    result = fit_hgnn(graph, features, settings, progress=False)
    assert result.model.edge_types == [("podcast", "podcast")]
    assert result.info["train_edges"].keys() == {"podcast__podcast"}
    z = result.embeddings["audiobook"]
    assert z.shape == (60, 16) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert np.unique(z.round(5), axis=0).shape[0] == 60  # from their own texts, all different


def test_extra_user_node_type_for_hgnn_with_users(world, tmp_path):
    graph, features, _ = world
    rng = np.random.default_rng(0)
    n_users = 40
    listens = {
        t: (rng.integers(0, n_users, 200), rng.integers(0, n, 200)) for t, n in graph.num_nodes.items()
    }
    edges = {r: (*undirected, None) for r, undirected in _user_edges(listens).items()}
    tripartite = CoListeningGraph.from_undirected_edges({**graph.num_nodes, "user": n_users}, edges)
    user_features = np.zeros((n_users, 16), np.float32)
    np.add.at(user_features, listens["audiobook"][0], features["audiobook"][listens["audiobook"][1]])
    tensors = {t: torch.from_numpy(f) for t, f in {**features, "user": user_features}.items()}
    # the public interface the HGNN-w-users baseline calls: embeddings per node type
    result = fit_hgnn(tripartite, tensors, HGNNConfig(epochs=1, **SMALL), tmp_path, progress=False)
    embeddings = result.embeddings
    assert set(embeddings) == {"audiobook", "podcast", "user"}
    assert embeddings["user"].shape == (n_users, 16)
    assert np.allclose(np.linalg.norm(embeddings["user"], axis=1), 1, atol=1e-5)
    assert (tmp_path / "curve.json").exists()
    with pytest.raises(HGNNSettingError, match="user"):
        fit_hgnn(tripartite, features, HGNNConfig(epochs=1, **SMALL), progress=False)


def _user_edges(listens):
    out = {}
    for item_type, (users, items) in listens.items():
        pairs = np.unique(np.stack([items, users], 1), axis=0)
        out[f"{item_type}__user"] = (pairs[:, 0], pairs[:, 1])
    return out


def test_validation_ranks_against_every_node_filtering_known_neighbours():
    from colisten.hgnn.edge_sampler import EdgeSet
    from colisten.hgnn.train import ValidationSet, link_metrics, rank_held_out

    # podcast 0 is the anchor; by score its candidates rank 1, 2, 3, 4, 5 (podcast 0 itself excluded)
    angles = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    z = {"podcast": torch.stack([angles.cos(), angles.sin()], 1)}
    held_out = {"podcast__podcast": EdgeSet(np.array([0, 0]), np.array([3, 5]))}
    validation = ValidationSet.draw(held_out, max_edges=10, seed=0)
    assert sorted(validation.targets[0].tolist()) == [3, 5]
    raw = rank_held_out(z, validation)["podcast__podcast"]
    assert sorted(raw.tolist()) == [3, 5]
    # known co-listening 0-1 and 0-3 (and the held-out 0-5): other true neighbours do not compete
    known = CoListeningGraph.from_undirected_edges(
        {"podcast": 6}, {"podcast__podcast": (np.array([0, 0, 0]), np.array([1, 3, 5]), None)}
    )
    filtered = rank_held_out(z, validation, known=known)["podcast__podcast"]
    assert sorted(filtered.tolist()) == [2, 3]
    metrics = link_metrics({"podcast__podcast": filtered})
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2) and metrics["hr@10"] == 1.0


def test_graph_without_edges_still_embeds_every_item():
    graph = CoListeningGraph.from_undirected_edges({"audiobook": 5, "podcast": 3}, {})
    features = {"audiobook": np.eye(5, 4, dtype=np.float32), "podcast": np.ones((3, 4), np.float32)}
    result = fit_hgnn(graph, features, HGNNConfig(epochs=3, **SMALL), progress=False)
    assert result.curve["epochs"] == [] and result.best_epoch == 0
    assert result.embeddings["audiobook"].shape == (5, 16)
    assert np.allclose(np.linalg.norm(result.embeddings["podcast"], axis=1), 1, atol=1e-5)


def test_id_vectors_start_at_the_text_only_model_and_learn(world):
    """hgnn.id_dim: a learned vector per node beside its features, zero at the start (so the first
    forward pass is the feature-only model's), trained with the rest, and needed in mini-batches."""
    from colisten.hgnn.model import HeteroGraphSAGE
    from colisten.hgnn.neighbor_sampler import NeighborSampler

    graph, features, _ = world
    x = {t: torch.as_tensor(np.asarray(f, dtype=np.float32)) for t, f in features.items()}
    dims = {t: int(v.shape[1]) for t, v in x.items()}
    counts = {t: int(v.shape[0]) for t, v in x.items()}
    torch.manual_seed(0)
    plain = HeteroGraphSAGE(dims, graph.edge_types, hidden_dim=16, out_dim=8)
    with_ids = HeteroGraphSAGE(dims, graph.edge_types, hidden_dim=16, out_dim=8, id_dim=4, num_nodes=counts)
    state = with_ids.state_dict()
    for k, v in plain.state_dict().items():  # same weights; the id columns of layer 0 stay random
        state[k] = torch.cat([v, state[k][:, v.shape[1] :]], dim=1) if state[k].shape != v.shape else v
    with_ids.load_state_dict(state)
    zp, zi = plain.embed_full_graph(graph, x), with_ids.embed_full_graph(graph, x)
    assert all(torch.allclose(zp[t], zi[t], atol=1e-6) for t in zp)
    sub = NeighborSampler(graph, [5, 5]).sample({t: np.arange(3) for t in x}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="node_ids"):
        with_ids({t: x[t][torch.from_numpy(i)] for t, i in sub.node_ids.items()}, sub.layers)

    result = fit_hgnn(graph, features, HGNNConfig(epochs=8, id_dim=8, **SMALL), progress=False)
    initial, best = result.curve["initial"], result.curve["epochs"][result.best_epoch - 1]
    assert best["mrr"] > 1.3 * initial["mrr"]
    learned = result.model.node_embedding
    assert all(float(learned[t].weight.abs().sum()) > 0 for t in counts)
    assert result.model.config["id_dim"] == 8
    assert result.model.config["num_nodes"] == dict(sorted(counts.items()))
