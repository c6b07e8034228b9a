"""A small, structured run directory written straight to the artifact contract.

A test fixture (tests/ is on pytest's `pythonpath`; bench/ adds it to sys.path). Lets the
two-tower stage be tested and benchmarked without the earlier stages: users have
latent topics, items belong to topics, text/HGNN embeddings sit near their topic's centroid,
weak signals are often followed by a stream, and some users only start audiobooks in the
hold-out (cold start). A model that learns something real beats an untrained one here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from colisten.config import Settings
from colisten.io import save_numpy_atomic, write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir

DAY = 86_400
END = 1_700_006_400  # a fixed UTC midnight, so runs are reproducible


def write_toy_run(
    root: str | Path,
    *,
    n_users: int = 300,
    n_audiobooks: int = 60,
    n_podcasts: int = 120,
    n_topics: int = 6,
    events_per_user: float = 30.0,
    text_dim: int = 32,
    hgnn_dim: int = 16,
    taste_dim: int = 8,
    history_days: int = 90,
    holdout_days: int = 14,
    seed: int = 0,
    settings: Settings | None = None,
) -> RunDir:
    """Write data/, split/, content/ and hgnn/ artifacts of a synthetic run; return its RunDir."""
    rng = np.random.default_rng(seed)
    run = RunDir(root)
    run.init(settings or Settings(), data_source="toy_run", fingerprint=f"toy-{seed}")
    cut = END - holdout_days * DAY
    start = cut - history_days * DAY

    # items: type, topic, popularity (Zipf within each type), ids sorted by (type, id)
    types = np.array(["audiobook"] * n_audiobooks + ["podcast"] * n_podcasts, dtype=object)
    ids = np.array(
        [f"a{i:05d}" for i in range(n_audiobooks)] + [f"p{i:05d}" for i in range(n_podcasts)], dtype=object
    )
    topic = rng.integers(0, n_topics, len(ids))
    popularity = np.empty(len(ids))
    for t, n in (("audiobook", n_audiobooks), ("podcast", n_podcasts)):
        mask = types == t
        popularity[mask] = 1.0 / (rng.permutation(n) + 1.0) ** 0.8
    languages = np.array(["en", "es", "de", None], dtype=object)
    items = pd.DataFrame(
        {
            "item_id": ids,
            "item_type": types,
            "title": [
                f"{t.title()} on topic {k} #{i}" for i, (t, k) in enumerate(zip(types, topic, strict=True))
            ],
            "description": [f"A {t} about topic {k}." for t, k in zip(types, topic, strict=True)],
            "genre": np.where(rng.random(len(ids)) < 0.9, [f"G{k:02d}" for k in topic], None),
            "language": languages[rng.choice(4, len(ids), p=[0.6, 0.2, 0.15, 0.05])],
            "published_at": None,
        }
    )

    text_centroids = _unit(rng.standard_normal((n_topics, text_dim)))
    hgnn_centroids = _unit(rng.standard_normal((n_topics, hgnn_dim)))
    text = _unit(text_centroids[topic] + 0.6 * rng.standard_normal((len(ids), text_dim)) / np.sqrt(text_dim))
    hgnn = _unit(hgnn_centroids[topic] + 0.3 * rng.standard_normal((len(ids), hgnn_dim)) / np.sqrt(hgnn_dim))

    # users: sparse topic preferences, demographics with gaps, a taste vector from the topics
    prefs = rng.dirichlet(np.full(n_topics, 0.3), n_users)
    user_ids = np.array([f"u{i:06d}" for i in range(n_users)], dtype=object)
    ages = rng.integers(16, 80, n_users).astype(float)
    ages[rng.random(n_users) < 0.1] = np.nan
    countries = np.array(["SE", "US", "DE", "BR", None], dtype=object)[rng.integers(0, 5, n_users)]
    taste_proj = rng.standard_normal((n_topics, taste_dim))
    taste = prefs @ taste_proj + 0.1 * rng.standard_normal((n_users, taste_dim))
    has_taste = rng.random(n_users) < 0.8

    # audiobook adoption: 50% from the start, 20% only in the hold-out (cold start), 30% never
    adopt = np.full(n_users, np.inf)
    r = rng.random(n_users)
    adopt[r < 0.5] = start
    late = (r >= 0.5) & (r < 0.7)
    adopt[late] = cut + rng.random(late.sum()) * (END - cut)

    n_ev = rng.poisson(events_per_user, n_users)
    user = np.repeat(np.arange(n_users), n_ev)
    ts = rng.integers(start, END, len(user))
    is_book = (rng.random(len(user)) < 0.35) & (ts >= adopt[user])
    ev_topic = (rng.random(len(user))[:, None] > np.cumsum(prefs, axis=1)[user]).sum(axis=1)
    ev_topic = np.minimum(ev_topic, n_topics - 1)
    item = np.full(len(user), -1)
    for is_b, t in ((True, "audiobook"), (False, "podcast")):
        for k in range(n_topics):
            sel = np.flatnonzero((is_book == is_b) & (ev_topic == k))
            pool = np.flatnonzero((types == t) & (topic == k))
            if len(pool) == 0:
                pool = np.flatnonzero(types == t)
            p = popularity[pool] / popularity[pool].sum()
            item[sel] = rng.choice(pool, size=len(sel), p=p)
    event = np.array(["stream", "follow", "preview", "intent_to_pay"], dtype=object)[
        rng.choice(4, len(user), p=[0.7, 0.12, 0.12, 0.06])
    ]
    # weak signals predict streams: half are followed by a stream of the same item
    weak = np.flatnonzero((event != "stream") & (rng.random(len(user)) < 0.5))
    later = ts[weak] + rng.integers(DAY, 20 * DAY, len(weak))
    ok = later < END
    user = np.r_[user, user[weak][ok]]
    item = np.r_[item, item[weak][ok]]
    ts = np.r_[ts, later[ok]]
    event = np.r_[event, np.full(ok.sum(), "stream", dtype=object)]

    order = np.argsort(ts, kind="stable")
    interactions = pd.DataFrame(
        {
            "user_id": user_ids[user[order]],
            "item_id": ids[item[order]],
            "event": event[order],
            "timestamp": ts[order].astype(np.int64),
            "duration_s": np.where(event[order] == "stream", 1800.0, np.nan),
        }
    )
    seen = np.zeros(n_users, dtype=bool)
    seen[user] = True
    users_tbl = pa.table(
        {
            "user_id": pa.array(user_ids[seen], pa.string()),
            "age": pa.array([None if np.isnan(a) else int(a) for a in ages[seen]], pa.int32()),
            "country": pa.array(countries[seen].tolist(), pa.string()),
            "taste_vector": pa.array(
                [
                    v.astype(np.float32).tolist() if h else None
                    for v, h in zip(taste[seen], has_taste[seen], strict=True)
                ],
                pa.list_(pa.float32()),
            ),
        }
    )

    history = interactions[(interactions.timestamp >= start) & (interactions.timestamp < cut)]
    holdout = interactions[interactions.timestamp >= cut]
    write_parquet_atomic(run / "data/items.parquet", items)
    write_parquet_atomic(run / "data/users.parquet", users_tbl)
    write_parquet_atomic(run / "data/interactions.parquet", interactions)
    write_parquet_atomic(run / "split/history.parquet", history)
    write_parquet_atomic(run / "split/holdout.parquet", holdout)
    write_json_atomic(
        run / "split/split.json",
        {
            "history_start": int(start),
            "cut": int(cut),
            "end": int(END),
            "history_days": history_days,
            "holdout_days": holdout_days,
            "counts": {"history": len(history), "holdout": len(holdout)},
        },
    )
    save_numpy_atomic(run / "content/text_embeddings.npy", text.astype(np.float32))
    save_numpy_atomic(run / "hgnn/item_embeddings.npy", hgnn.astype(np.float32))
    return run


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)
