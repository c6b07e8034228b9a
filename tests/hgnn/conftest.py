"""Small synthetic co-listening worlds for the HGNN tests: planted taste communities, noisy text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from colisten.graph.store import CoListeningGraph
from colisten.hgnn.edge_sampler import undirected_edges
from colisten.io import save_numpy_atomic, write_parquet_atomic


def community_world(
    n_audiobooks: int = 60,
    n_podcasts: int = 120,
    communities: int = 6,
    dim: int = 16,
    edges: tuple[int, int, int] = (150, 400, 900),
    noise: float = 2.0,
    outside: float = 0.03,
    seed: int = 0,
) -> tuple[CoListeningGraph, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Graph whose edges mostly stay inside communities; text features only weakly reveal them.

    Returns (graph, features per type, community per type), with a-a << a-p << p-p as in the paper.
    """
    rng = np.random.default_rng(seed)
    community = {
        "audiobook": rng.integers(0, communities, n_audiobooks),
        "podcast": rng.integers(0, communities, n_podcasts),
    }
    centres = rng.normal(size=(communities, dim))
    features = {
        t: (centres[c] + noise * rng.normal(size=(c.shape[0], dim))).astype(np.float32)
        for t, c in community.items()
    }

    def draw(a: str, b: str, m: int):
        cu, cv = community[a], community[b]
        u = rng.integers(0, cu.shape[0], 20 * m)
        v = rng.integers(0, cv.shape[0], 20 * m)
        keep = (cu[u] == cv[v]) | (rng.random(u.shape[0]) < outside)
        u, v = u[keep], v[keep]
        if a == b:
            u, v = np.minimum(u, v), np.maximum(u, v)
            u, v = u[u < v], v[u < v]
        pairs = np.unique(np.stack([u, v], 1), axis=0)
        pairs = pairs[rng.permutation(pairs.shape[0])[:m]]
        return pairs[:, 0], pairs[:, 1], None

    graph = CoListeningGraph.from_undirected_edges(
        {"audiobook": n_audiobooks, "podcast": n_podcasts},
        {
            "audiobook__audiobook": draw("audiobook", "audiobook", edges[0]),
            "audiobook__podcast": draw("audiobook", "podcast", edges[1]),
            "podcast__podcast": draw("podcast", "podcast", edges[2]),
        },
    )
    return graph, features, community


def write_hgnn_run(root, n_audiobooks=30, n_podcasts=50, edges=(60, 150, 300)) -> pd.DataFrame:
    """A RUN with data/items, graph/nodes + csr and content/text_embeddings, per the contract, on a
    community_world of these sizes plus one never-streamed audiobook."""
    graph, features, _ = community_world(n_audiobooks=n_audiobooks, n_podcasts=n_podcasts, edges=edges)
    # one more, never-streamed audiobook: no edges at all
    pairs = {r: (e.u, e.v, None) for r in graph.relations() for e in [undirected_edges(graph, r)]}
    graph = CoListeningGraph.from_undirected_edges(
        {"audiobook": n_audiobooks + 1, "podcast": n_podcasts}, pairs
    )
    assert graph.csr[("audiobook", "podcast")].degrees()[n_audiobooks] == 0
    features["audiobook"] = np.vstack([features["audiobook"], np.ones((1, 16), np.float32)])
    items = pd.DataFrame(
        [(f"a{i:03d}", "audiobook") for i in range(n_audiobooks + 1)]
        + [(f"p{i:03d}", "podcast") for i in range(n_podcasts)],
        columns=["item_id", "item_type"],
    ).sort_values(["item_type", "item_id"], ignore_index=True)
    items["title"] = items["item_id"]
    write_parquet_atomic(root / "data" / "items.parquet", items)
    nodes = items[["item_id", "item_type"]].copy()
    nodes["global_index"] = np.arange(len(nodes))
    nodes["type_index"] = nodes.groupby("item_type").cumcount()
    write_parquet_atomic(root / "graph" / "nodes.parquet", nodes)
    graph.save(root / "graph" / "csr")
    text = np.vstack([features["audiobook"], features["podcast"]])
    save_numpy_atomic(
        root / "content" / "text_embeddings.npy", text / np.linalg.norm(text, axis=1, keepdims=True)
    )
    (root / "hgnn.toml").write_text(
        "[hgnn]\nepochs = 3\nhidden_dim = 16\nout_dim = 8\nfanouts = [4, 4]\nbatch_size = 64\nthreads = 1\n"
    )
    return nodes


@pytest.fixture(scope="session")
def make_run():
    """`make_run(ROOT)` writes a run directory for train-hgnn (write_hgnn_run); returns its nodes."""
    return write_hgnn_run


@pytest.fixture
def world():
    return community_world()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test machine is shared: one thread avoids threads waiting on each other (same results)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def make_world():
    """The world builder itself, for tests that need other sizes."""
    return community_world
