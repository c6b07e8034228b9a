"""The global temporal split: bounds, no hold-out leakage into history artifacts, warm/cold."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from colisten.artifacts import load_history, load_holdout, load_segments, load_split_info
from colisten.config import Settings
from colisten.data.contract import validate_dataset
from colisten.data.split import DAY_S, SplitError, split_bounds, temporal_split
from colisten.rundir import RunDir, RunError

END = 1_710_000_000  # newest event
SETTINGS = Settings.model_validate({"data": {"history_days": 10, "holdout_days": 2}})
CUT = END - 2 * DAY_S
START = CUT - 10 * DAY_S


def make_run(tmp_path, rows, settings=SETTINGS) -> RunDir:
    data = tmp_path / "in"
    data.mkdir()
    (data / "items.csv").write_text("item_id,item_type,title\na1,audiobook,A\na2,audiobook,B\np1,podcast,P\n")
    lines = ["user_id,item_id,event,timestamp"] + [",".join(map(str, r)) for r in rows]
    (data / "interactions.csv").write_text("\n".join(lines) + "\n")
    run = RunDir(tmp_path / "run")
    run.init(settings)
    validate_dataset(data, settings, out_dir=run.stage_dir("data"))
    return run


ROWS = [
    ("old", "p1", "stream", START - 1),  # before the history window: excluded everywhere
    ("warm", "a1", "preview", START),  # weak signal at the first history second -> warm
    ("warm", "p1", "stream", CUT - 1),
    ("late", "p1", "stream", CUT - 5),
    ("late", "a2", "stream", CUT),  # first hold-out second: hold-out, must not make 'late' warm
    ("warm", "a2", "stream", END),
    ("new", "a1", "follow", END - 10),  # only in hold-out -> cold everywhere
]


def test_split_bounds():
    assert split_bounds(END, 10, 2) == (START, CUT, END)


def test_no_holdout_event_reaches_history_artifacts(tmp_path):
    run = make_run(tmp_path, ROWS)
    info = temporal_split(run, SETTINGS)
    assert (info.history_start, info.cut, info.end) == (START, CUT, END)

    history, holdout = load_history(run), load_holdout(run)
    assert history.timestamp.max() < CUT and history.timestamp.min() >= START
    assert holdout.timestamp.min() >= CUT and holdout.timestamp.max() == END
    assert list(history.timestamp) == sorted(history.timestamp)
    assert len(history) == 3 and len(holdout) == 3
    assert "old" not in set(history.user_id) | set(holdout.user_id)

    seg = load_segments(run).set_index(["user_id", "item_type"]).segment.to_dict()
    assert seg == {
        ("late", "audiobook"): "cold",  # its audiobook stream is in the hold-out
        ("late", "podcast"): "warm",
        ("new", "audiobook"): "cold",
        ("new", "podcast"): "cold",
        ("warm", "audiobook"): "warm",  # a preview (weak signal) counts
        ("warm", "podcast"): "warm",
    }

    saved = load_split_info(run)
    assert saved["cut"] == CUT and saved["counts"]["events"] == {
        "history": 3,
        "holdout": 3,
        "before_history_excluded": 1,
    }
    assert saved["counts"]["segments"]["audiobook"] == {"warm": 1, "cold": 2}
    assert saved["counts"]["holdout_users"]["audiobook"] == {"warm": 1, "cold": 2}
    assert not [p for p in (run / "split").iterdir() if p.name.startswith(".")]


def test_split_uses_the_runs_settings_by_default(tmp_path):
    run = make_run(tmp_path, ROWS)
    info = temporal_split(run)
    assert info.holdout_days == 2 and info.cut == CUT
    assert json.loads((run / "split" / "split.json").read_text())["history_days"] == 10


def test_split_needs_validated_data(tmp_path):
    with pytest.raises(RunError, match="colisten validate"):
        temporal_split(RunDir(tmp_path / "empty"), SETTINGS)


def test_split_without_interactions_is_a_clear_error(tmp_path):
    run = make_run(tmp_path, [("u", "zz", "stream", END)])  # quarantined: unknown item
    with pytest.raises(SplitError, match="no accepted interactions"):
        temporal_split(run, SETTINGS)


def test_segments_cover_every_type_and_active_user(tmp_path):
    run = make_run(tmp_path, ROWS)
    temporal_split(run, SETTINGS)
    seg = load_segments(run)
    assert isinstance(seg, pd.DataFrame)
    assert len(seg) == 3 * 2 and set(seg.segment) <= {"warm", "cold"}
