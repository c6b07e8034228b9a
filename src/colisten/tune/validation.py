"""The history-only validation split that every model's settings are chosen on.

It is the main split moved back by one hold-out: the validation truth is the last `holdout_days`
of history, the inputs are the history days before them, and warm/cold users are made exactly as
the main split makes them (any interaction with the type before the validation cut). Cold users
of the target type cannot occur in it naturally (a user cold in the run has no target-type events
in history at all), so a seeded share of the users it would score as warm are made cold, as the
real-data recast makes them: their target-type events before the validation cut are dropped
(`[tune] cold_share`; 'auto' = the share of the run's history users who are cold). It is a
run-shaped folder, RUN/tune/validation/, so every stage and model runs on it unchanged; its
data/interactions.parquet holds the run's history rows only, so no hold-out event can reach a
tuned input whatever a stage does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from colisten import artifacts
from colisten.config import Settings
from colisten.errors import ColistenError
from colisten.io import read_json, write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir, link

if TYPE_CHECKING:
    import pandas as pd

DAY_S = 86_400


class ValidationSplitError(ColistenError):
    """The run's history is too short to carve a validation split from it."""


def validation_settings(settings: Settings) -> Settings:
    """The run's settings with the history shortened by one hold-out (the validation truth), and
    one two-tower model per trial (twotower.ensemble = 1: k times the cost would rank alike)."""
    d = settings.data
    if d.history_days <= d.holdout_days:
        raise ValidationSplitError(
            f"[data] history_days ({d.history_days}) must exceed holdout_days ({d.holdout_days}) to carve "
            "a validation split from history; lengthen the history or set [tune] enabled = false"
        )
    data = d.model_copy(update={"history_days": d.history_days - d.holdout_days})
    evaluate = settings.evaluate.model_copy(update={"oracles": False})
    # trials rank settings with one two-tower model; the run's ensemble averages k of the chosen
    twotower = settings.twotower.model_copy(update={"ensemble": 1})
    return settings.model_copy(update={"data": data, "evaluate": evaluate, "twotower": twotower})


def split_key(run: RunDir) -> str:
    """Identifies the run's data and split: its data fingerprint and split.json (bounds, counts).
    Validation splits, trials and tuning.json made under another key are stale."""
    import hashlib
    import json

    data = run.manifest().get("data", {}).get("fingerprint")
    split = read_json(run.require(artifacts.SPLIT))
    return hashlib.sha256(json.dumps([data, split], sort_keys=True).encode()).hexdigest()[:16]


def validation_key(run: RunDir, settings: Settings) -> str:
    """split_key plus the settings that shape the validation split (its simulated cold users)."""
    import hashlib
    import json

    shape = [split_key(run), settings.tune.cold_share, settings.tune.seed, settings.data.target_type]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def carve_validation_split(run: RunDir, settings: Settings) -> RunDir:
    """RUN/tune/validation/: data (history rows only), split (validation windows), content (linked).

    Rebuilt when the run's data or split has changed since it was carved; returns the validation run.
    """
    import pyarrow.parquet as pq

    from colisten.data.split import temporal_split

    main = read_json(run.require(artifacts.SPLIT))
    history_start, cut = int(main["history_start"]), int(main["cut"])
    key = validation_key(run, settings)
    val = RunDir(artifacts.TUNE_VALIDATION.at(run))
    carved = artifacts.SPLIT.at(val)
    vsettings = validation_settings(settings)
    if carved.exists() and read_json(carved).get("validation_key") == key:
        val.init(vsettings)
        return val
    val.root.mkdir(parents=True, exist_ok=True)
    val.init(vsettings)
    for artifact in (artifacts.ITEMS, artifacts.USERS):
        link(artifact.at(val), run.require(artifact))
    history = pq.read_table(run.require(artifacts.HISTORY)).to_pandas()
    items = pq.read_table(run.require(artifacts.ITEMS), columns=["item_id", "item_type"])
    val_cut = cut - settings.data.holdout_days * DAY_S
    history, cold = simulate_cold_users(history, items.to_pandas(), settings, val_cut)
    write_parquet_atomic(artifacts.INTERACTIONS.at(val), history)
    link(val / artifacts.TEXT_EMBEDDINGS.folder, run.root / artifacts.TEXT_EMBEDDINGS.folder)
    bounds = (history_start, val_cut, cut - 1)
    with val.stage("split") as info:
        result = temporal_split(val, vsettings, bounds=bounds)
        info.update({"cut": result.cut, "end": result.end, "events": result.counts["events"], **cold})
    # Mark which main split it was carved from (read back above to decide whether to rebuild).
    write_json_atomic(
        carved,
        {**read_json(carved), "source_cut": cut, "source_key": split_key(run), "validation_key": key, **cold},
    )
    return val


def simulate_cold_users(
    history: pd.DataFrame, items: pd.DataFrame, settings: Settings, val_cut: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop the target-type events before `val_cut` of a seeded share of the users who have
    target-type events before it and streams after it; returns the rows kept and what was done.

    The share is `[tune] cold_share`, or ('auto') the share of users with history who have no
    target-type event in it: the run's own mix of warm and cold users.
    """
    import numpy as np

    target = settings.data.target_type
    is_target = history["item_id"].isin(items.loc[items["item_type"] == target, "item_id"]).to_numpy()
    users = history["user_id"].to_numpy(dtype=object)
    share = settings.tune.cold_share
    if share == "auto":
        n_users = len(np.unique(users))
        share = 1.0 - len(np.unique(users[is_target])) / n_users if n_users else 0.0
    before = history["timestamp"].to_numpy(dtype=np.int64) < val_cut
    strong = history["event"].isin(settings.data.strong_events).to_numpy()
    eligible = np.intersect1d(users[is_target & before], users[is_target & ~before & strong])
    n_cold = int(round(share * len(eligible)))
    chosen = np.random.default_rng(settings.tune.seed).permutation(np.sort(eligible))[:n_cold]
    drop = is_target & before & np.isin(users, chosen)
    report = {
        "simulated_cold_share": round(float(share), 4),
        "simulated_cold_users": n_cold,
        "simulated_cold_dropped_events": int(drop.sum()),
    }
    return history.loc[~drop].reset_index(drop=True), report
