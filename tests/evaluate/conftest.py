"""A tiny run directory fabricated by hand per docs/architecture.md: users with one latent topic,
items of two types with topics; history and hold-out follow the user's topic, so a model that
reads history can beat popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from colisten.config import Settings
from colisten.io import save_numpy_atomic, write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir

CUT = 1_700_000_000


def fabricate_run(
    root: Path,
    n_users: int = 80,
    n_audiobooks: int = 40,
    n_podcasts: int = 30,
    topics: int = 4,
    seed: int = 0,
    settings: Settings | None = None,
) -> RunDir:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [f"a{i:03d}" for i in range(n_audiobooks)] + [f"p{i:03d}" for i in range(n_podcasts)],
            "item_type": ["audiobook"] * n_audiobooks + ["podcast"] * n_podcasts,
        }
    )
    items["title"] = items["item_id"]
    items = items.sort_values(["item_type", "item_id"]).reset_index(drop=True)
    item_topic = rng.integers(0, topics, len(items))
    user_topic = rng.integers(0, topics, n_users)
    centers = rng.normal(size=(topics, 16))
    text = centers[item_topic] + 0.5 * rng.normal(size=(len(items), 16))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    hgnn = centers[item_topic] + 0.3 * rng.normal(size=(len(items), 16))
    hgnn /= np.linalg.norm(hgnn, axis=1, keepdims=True)

    rows_h, rows_o = [], []
    types = items["item_type"].to_numpy()
    for u in range(n_users):
        uid = f"u{u:03d}"
        own = np.flatnonzero(item_topic == user_topic[u])
        warm = u % 3 != 0  # every third user never touches audiobooks in history (cold)
        for i in rng.choice(own, size=min(6, own.size), replace=False):
            if types[i] == "audiobook" and not warm:
                continue
            rows_h.append(
                (uid, items.item_id[i], "stream" if rng.random() < 0.7 else "preview", CUT - 1000 - u)
            )
        for i in rng.choice(own, size=min(3, own.size), replace=False):
            rows_o.append((uid, items.item_id[i], "stream", CUT + 100 + u))
    cols = ["user_id", "item_id", "event", "timestamp"]
    history = pd.DataFrame(rows_h, columns=cols)
    holdout = pd.DataFrame(rows_o, columns=cols)
    segs = []
    touched = history.merge(items[["item_id", "item_type"]], on="item_id")
    for uid in sorted(set(history.user_id) | set(holdout.user_id)):
        mine = set(touched.loc[touched.user_id == uid, "item_type"])
        for t in ("audiobook", "podcast"):
            segs.append((uid, t, "warm" if t in mine else "cold"))
    segments = pd.DataFrame(segs, columns=["user_id", "item_type", "segment"])

    rd = RunDir(root)
    rd.init(settings or Settings())
    write_parquet_atomic(root / "data/items.parquet", items)
    write_parquet_atomic(root / "split/history.parquet", history)
    write_parquet_atomic(root / "split/holdout.parquet", holdout)
    write_parquet_atomic(root / "split/segments.parquet", segments)
    users = pd.DataFrame({"user_id": sorted(segments.user_id.unique())})
    users["age"] = pd.array(rng.integers(18, 70, len(users)), dtype="Int32")
    users["country"] = rng.choice(["SE", "US", "DE"], len(users))
    write_parquet_atomic(root / "data/users.parquet", users)
    write_json_atomic(root / "split/split.json", {"cut": CUT, "history_start": CUT - 90 * 86400})
    save_numpy_atomic(root / "content/text_embeddings.npy", text.astype(np.float32))
    save_numpy_atomic(root / "hgnn/item_embeddings.npy", hgnn.astype(np.float32))
    return rd


@pytest.fixture
def tiny_run(tmp_path: Path) -> RunDir:
    return fabricate_run(tmp_path / "run")
