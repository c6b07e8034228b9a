"""`colisten train-hgnn` on a hand-made run directory: every item embedded, in global order."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from colisten.cli import app
from colisten.graph.store import CoListeningGraph
from colisten.hgnn.edge_sampler import undirected_edges
from colisten.io import save_numpy_atomic, write_parquet_atomic
from colisten.rundir import RunDir


def _make_run(root, community_world):
    """A RUN with data/items, graph/nodes + csr and content/text_embeddings, per the contract."""
    graph, features, _ = community_world(n_audiobooks=30, n_podcasts=50, edges=(60, 150, 300))
    # one more, never-streamed audiobook: no edges at all
    edges = {r: (e.u, e.v, None) for r in graph.relations() for e in [undirected_edges(graph, r)]}
    graph = CoListeningGraph.from_undirected_edges({"audiobook": 31, "podcast": 50}, edges)
    assert graph.csr[("audiobook", "podcast")].degrees()[30] == 0
    features["audiobook"] = np.vstack([features["audiobook"], np.ones((1, 16), np.float32)])
    items = pd.DataFrame(
        [(f"a{i:03d}", "audiobook") for i in range(31)] + [(f"p{i:03d}", "podcast") for i in range(50)],
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


def test_train_hgnn_command_writes_the_contract(tmp_path, make_world):
    nodes = _make_run(tmp_path, make_world)
    runner = CliRunner()
    args = ["train-hgnn", "--run", str(tmp_path), "--config", str(tmp_path / "hgnn.toml"), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "hgnn"
    z = np.load(out / "item_embeddings.npy")
    assert z.shape == (81, 8) and z.dtype == np.float32
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)  # the isolated audiobook (row 30) too
    ids = pd.read_parquet(out / "item_ids.parquet")
    assert ids["item_id"].tolist() == nodes["item_id"].tolist()
    curve = json.loads((out / "curve.json").read_text())
    assert [e["epoch"] for e in curve["epochs"]] == [1, 2, 3]
    assert {"loss", "mrr", "hr@10", "seconds"} <= curve["epochs"][0].keys()
    assert (out / "checkpoint.pt").exists() and (out / "best.pt").exists()
    stage = RunDir(tmp_path).manifest()["stages"]["train-hgnn"]
    assert stage["n_items"] == 81 and stage["seconds"] > 0
    # --resume of a finished run trains nothing more and rewrites the same embeddings
    again = runner.invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert np.array_equal(np.load(out / "item_embeddings.npy"), z)


def test_missing_text_embeddings_name_the_command_to_run(tmp_path, make_world):
    _make_run(tmp_path, make_world)
    (tmp_path / "content" / "text_embeddings.npy").unlink()
    result = CliRunner().invoke(app, ["train-hgnn", "--run", str(tmp_path)])
    assert result.exit_code != 0
    assert "text_embeddings.npy" in str(result.exception) and "colisten embed" in str(result.exception)


def test_misaligned_embeddings_are_a_clear_error(tmp_path, make_world):
    from colisten.hgnn import stage
    from colisten.hgnn.stage import HGNNInputError
    from colisten.rundir import RunDir

    _make_run(tmp_path, make_world)
    save_numpy_atomic(tmp_path / "content" / "text_embeddings.npy", np.zeros((5, 16), np.float32))
    with pytest.raises(HGNNInputError, match="lists 81 items"):
        rd = RunDir(tmp_path)
        stage.run(rd, rd.settings(tmp_path / "hgnn.toml"))
