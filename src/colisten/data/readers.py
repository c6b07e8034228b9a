"""Readers for the `data/` and `split/` artifacts, for the stages that come after validation.

Each raises a RunError naming the command to run when its artifact is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colisten.io import read_json
from colisten.run import RunDir


def _run(run: RunDir | str | Path) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(run)


def _read(run: RunDir | str | Path, relative: str, produced_by: str, columns: list[str] | None) -> Any:
    import pyarrow.parquet as pq

    path = _run(run).require(relative, produced_by)
    return pq.read_table(path, columns=columns).to_pandas()


def load_items(run: RunDir | str | Path, columns: list[str] | None = None) -> Any:
    """data/items.parquet as a DataFrame; row i is the item with global index i."""
    return _read(run, "data/items.parquet", "validate", columns)


def load_users(run: RunDir | str | Path, columns: list[str] | None = None) -> Any:
    """data/users.parquet: every known user (age int32|null, country str|null, [taste_vector])."""
    return _read(run, "data/users.parquet", "validate", columns)


def load_interactions(run: RunDir | str | Path, columns: list[str] | None = None) -> Any:
    """All accepted interactions (data/interactions.parquet), sorted by timestamp. Not for
    training or features: use load_history, which cannot contain hold-out events."""
    return _read(run, "data/interactions.parquet", "validate", columns)


def load_history(run: RunDir | str | Path, columns: list[str] | None = None) -> Any:
    """split/history.parquet: interactions with history_start <= timestamp < cut."""
    return _read(run, "split/history.parquet", "split", columns)


def load_holdout(run: RunDir | str | Path, columns: list[str] | None = None) -> Any:
    """split/holdout.parquet: interactions with cut <= timestamp <= end (evaluation only)."""
    return _read(run, "split/holdout.parquet", "split", columns)


def load_segments(run: RunDir | str | Path) -> Any:
    """split/segments.parquet: user_id, item_type, segment ('warm'|'cold')."""
    return _read(run, "split/segments.parquet", "split", None)


def load_split_info(run: RunDir | str | Path) -> dict[str, Any]:
    """split/split.json: history_start, cut, end (epoch s), windows in days, counts."""
    return read_json(_run(run).require("split/split.json", "split"))


def load_validation(run: RunDir | str | Path) -> dict[str, Any]:
    """data/validation.json: the counts `colisten validate` printed."""
    return read_json(_run(run).require("data/validation.json", "validate"))
