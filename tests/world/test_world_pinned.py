"""The generator's output is pinned: the A/B test's refactor of world/simulate.py (one span of
days per call of book_starts / signal_draws / weak_signals / title_sessions, issue 14) must
leave every world exactly as it was. The digests were computed with the generator before that
refactor (commit 64901d3); they hash the decoded tables and arrays, not the files' bytes, so a
pyarrow upgrade (which writes its version into Parquet metadata) does not break them."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow.parquet as pq

from colisten.world.simulate import Behaviour, generate_world

PINNED = {
    "plain": "7b97227e17590171c8554261fd53e1e7c1d5b268871185ee2f64c3e5efc89ecd",
    "segments": "95a979d62d2f56f393117d151fac40322af5c7aa4799c8eeea9b67b0d82e2dd6",
}
WORLDS = {
    "plain": dict(users=600, podcasts=120, audiobooks=60, days=40, seed=3, chunk_users=256),
    "segments": dict(
        users=300,
        podcasts=80,
        audiobooks=40,
        days=30,
        seed=5,
        chunk_users=128,
        behaviour=Behaviour(segments=3),
    ),
}


def world_digest(d) -> str:
    h = hashlib.sha256()
    for name in ("items.parquet", "users.parquet", "interactions"):
        table = pq.read_table(d / name)
        h.update(json.dumps(table.to_pydict(), sort_keys=True, default=str).encode())
    for name in ("users.npz", "items.npz"):
        with np.load(d / "truth" / name) as z:
            for key in sorted(z.files):
                a = z[key]
                h.update(key.encode() + str(a.dtype).encode() + np.ascontiguousarray(a).tobytes())
    h.update((d / "truth" / "truth.json").read_bytes())
    return h.hexdigest()


def test_generator_output_is_pinned(tmp_path):
    for name, kwargs in WORLDS.items():
        generate_world(tmp_path / name, **kwargs)
        assert world_digest(tmp_path / name) == PINNED[name], name
