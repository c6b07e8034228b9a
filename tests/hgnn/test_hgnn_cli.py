"""`colisten train-hgnn` on a hand-made run directory: every item embedded, in global order."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from colisten.cli import app
from colisten.io import save_numpy_atomic
from colisten.rundir import RunDir


def test_train_hgnn_command_writes_the_contract(tmp_path, make_run):
    nodes = make_run(tmp_path)
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


def test_missing_text_embeddings_name_the_command_to_run(tmp_path, make_run):
    make_run(tmp_path)
    (tmp_path / "content" / "text_embeddings.npy").unlink()
    result = CliRunner().invoke(app, ["train-hgnn", "--run", str(tmp_path)])
    assert result.exit_code != 0
    assert "text_embeddings.npy" in str(result.exception) and "colisten embed" in str(result.exception)


def test_misaligned_embeddings_are_a_clear_error(tmp_path, make_run):
    from colisten.hgnn import stage
    from colisten.hgnn.stage import HGNNInputError
    from colisten.rundir import RunDir

    make_run(tmp_path)
    save_numpy_atomic(tmp_path / "content" / "text_embeddings.npy", np.zeros((5, 16), np.float32))
    with pytest.raises(HGNNInputError, match="lists 81 items"):
        rd = RunDir(tmp_path)
        stage.run(rd, rd.settings(tmp_path / "hgnn.toml"))
