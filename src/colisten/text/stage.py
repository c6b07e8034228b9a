"""Stage `embed`: RUN/data/items.parquet → RUN/content/ (text embeddings in global item order).

Files: text_embeddings.npy (float32 [n_items, d], L2-normalised), item_ids.parquet (the item id
of each row, so the array is self-describing and a stale one is detected), embeddings.json.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.io import atomic_path, write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir, RunError


def cache_dir_for(run: RunDir, settings: Settings) -> Path:
    """content.cache_dir if set (shared across runs), else RUN/content/cache."""
    if settings.content.cache_dir:
        return Path(settings.content.cache_dir).expanduser()
    return run / artifacts.TEXT_EMBEDDINGS.folder / "cache"


def items_fingerprint(item_ids: list[str]) -> str:
    """sha256 of the item ids in order: equal iff two arrays describe the same rows."""
    h = hashlib.sha256()
    for item_id in item_ids:
        h.update(item_id.encode("utf-8") + b"\0")
    return h.hexdigest()


def _embed(run: RunDir, settings: Settings, progress: bool) -> dict[str, Any]:
    """Embed every item of the run and write RUN/content/; returns the stats in embeddings.json."""
    import pandas as pd

    from colisten.text.embed import ContentError, embed_items, load_text_model

    items_path = run.require(artifacts.ITEMS)
    items = pd.read_parquet(items_path, columns=["item_id", "title", "description"])
    if len(items) == 0:
        raise ContentError(f"{items_path} has no items to embed")
    model = load_text_model(settings.content.model, settings.content.device)
    cache_dir = cache_dir_for(run, settings)
    with atomic_path(artifacts.TEXT_EMBEDDINGS.at(run)) as tmp:
        # fill a memory-mapped .npy in place: no second in-memory copy for large catalogues
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(items), model.dim))
        _, stats = embed_items(items, settings.content, cache_dir, progress=progress, model=model, out=out)
        out.flush()
        del out
    item_ids = items["item_id"].astype(str).tolist()
    write_parquet_atomic(artifacts.TEXT_ITEM_IDS.at(run), pd.DataFrame({"item_id": item_ids}))
    stats = {
        **stats,
        "items_fingerprint": items_fingerprint(item_ids),
        "cache_dir": str(cache_dir),
        "batch_size": settings.content.batch_size,
        "max_description_chars": settings.content.max_description_chars,
    }
    write_json_atomic(artifacts.TEXT_SUMMARY.at(run), stats)
    return stats


def load_text_embeddings(run: RunDir, mmap: bool = True) -> np.ndarray:
    """RUN/content/text_embeddings.npy, checked to line up with RUN/data/items.parquet's rows."""
    import pyarrow.parquet as pq

    path = run.require(artifacts.TEXT_EMBEDDINGS)
    ids_path = run.require(artifacts.TEXT_ITEM_IDS)
    items_path = run.require(artifacts.ITEMS)
    vectors = np.load(path, mmap_mode="r" if mmap else None)
    embedded = pq.read_table(ids_path, columns=["item_id"]).column("item_id").to_pylist()
    current = pq.read_table(items_path, columns=["item_id"]).column("item_id").to_pylist()
    if embedded != current or len(vectors) != len(current):
        raise RunError(
            f"{path} was built for other items than {items_path} ({len(vectors)} vs {len(current)} rows): "
            f"run `colisten embed --run {run.root}` again"
        )
    return vectors


_RECORDED = ("model_id", "dim", "n_items", "n_from_cache", "n_embedded_now", "items_per_s")


def run(rd: RunDir, settings: Settings, *, progress: bool = False, log: Log = quiet) -> dict[str, Any]:
    """The `embed` stage: RUN/content/, recorded in the manifest (its main numbers); returns the
    whole of embeddings.json."""
    with rd.stage("embed") as info:
        stats = _embed(rd, settings, progress=progress)
        info.update({k: stats[k] for k in _RECORDED})
    return stats
