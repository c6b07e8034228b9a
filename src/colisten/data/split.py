"""The global temporal split (PAPER.md 'How it was evaluated'): history, hold-out, user segments.

One cut for everybody: the hold-out is the last `holdout_days` before the newest accepted
interaction, the history the `history_days` before the cut. Everything a model may learn from
(history, warm/cold segments) is derived from history rows only, so no hold-out event leaks.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings
from colisten.data.sources import sql_str
from colisten.errors import ColistenError
from colisten.io import write_json_atomic
from colisten.rundir import RunDir

DAY_S = 86_400


class SplitError(ColistenError):
    """The accepted interactions cannot be split (e.g. there are none)."""


@dataclass
class SplitInfo:
    """The split's bounds (epoch seconds, UTC) and counts; saved as RUN/split/split.json."""

    history_start: int
    cut: int
    end: int
    history_days: int
    holdout_days: int
    counts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def iso(t: int) -> str:
            return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()

        return {
            "history_start": self.history_start,
            "cut": self.cut,
            "end": self.end,
            "history_start_iso": iso(self.history_start),
            "cut_iso": iso(self.cut),
            "end_iso": iso(self.end),
            "history_days": self.history_days,
            "holdout_days": self.holdout_days,
            "counts": self.counts,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SplitInfo:
        keys = ("history_start", "cut", "end", "history_days", "holdout_days", "counts")
        return cls(**{k: obj[k] for k in keys})


def split_bounds(max_timestamp: int, history_days: int, holdout_days: int) -> tuple[int, int, int]:
    """(history_start, cut, end): hold-out = [cut, end], history = [history_start, cut)."""
    end = int(max_timestamp)
    cut = end - holdout_days * DAY_S
    return cut - history_days * DAY_S, cut, end


def temporal_split(
    run: RunDir | str | Path,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
    bounds: tuple[int, int, int] | None = None,
) -> SplitInfo:
    """Split RUN/data/interactions.parquet into RUN/split/{history,holdout,segments}.parquet and
    split.json. Settings default to the run's saved config. `bounds` = (history_start, cut, end)
    pins the windows instead of deriving them from the newest event (the validation split)."""
    from colisten.data.contract import connect

    say = progress or (lambda _msg: None)
    run = run if isinstance(run, RunDir) else RunDir(run)
    settings = settings or run.settings()
    d = settings.data
    interactions = sql_str(str(run.require(artifacts.INTERACTIONS)))
    items = sql_str(str(run.require(artifacts.ITEMS)))
    out = run.stage_dir("split")

    with tempfile.TemporaryDirectory(prefix=".split-", dir=out) as tmp:
        work = Path(tmp)
        con = connect(settings, work)
        try:
            (max_ts,) = con.execute(f'SELECT max("timestamp") FROM read_parquet({interactions})').fetchone()
            if max_ts is None:
                raise SplitError(
                    f"{artifacts.INTERACTIONS.at(run)} has no accepted interactions to split; "
                    "check the quarantine reasons printed by `colisten validate`"
                )
            history_start, cut, end = bounds or split_bounds(max_ts, d.history_days, d.holdout_days)
            info = SplitInfo(history_start, cut, end, d.history_days, d.holdout_days)
            say("writing history and hold-out")
            con.execute(
                f"""CREATE TABLE windowed AS
                SELECT i.*, it.item_type,
                       CASE WHEN i."timestamp" < {cut} THEN 'history' ELSE 'holdout' END AS win
                FROM read_parquet({interactions}) i LEFT JOIN read_parquet({items}) it USING (item_id)
                WHERE i."timestamp" >= {history_start} AND i."timestamp" <= {end}"""
            )
            parquet = "(FORMAT parquet, COMPRESSION zstd)"
            order = 'ORDER BY "timestamp", user_id, item_id, event'
            outputs = (artifacts.HISTORY, artifacts.HOLDOUT, artifacts.SEGMENTS)
            files = {a.name: work / a.name for a in outputs}
            for win in ("history", "holdout"):
                con.execute(
                    f"""COPY (SELECT user_id, item_id, event, "timestamp", duration_s FROM windowed
                              WHERE win = '{win}' {order})
                        TO {sql_str(str(files[win + ".parquet"]))} {parquet}"""
                )
            say("computing warm/cold segments")
            # warm = any history interaction (weak signals included) with an item of the type.
            con.execute(
                f"""COPY (
                    WITH users AS (SELECT DISTINCT user_id FROM windowed),
                    types AS (SELECT DISTINCT item_type FROM read_parquet({items})),
                    warm AS (SELECT DISTINCT user_id, item_type FROM windowed WHERE win = 'history')
                    SELECT u.user_id, t.item_type,
                           CASE WHEN w.user_id IS NULL THEN 'cold' ELSE 'warm' END AS segment
                    FROM users u CROSS JOIN types t
                    LEFT JOIN warm w ON w.user_id = u.user_id AND w.item_type = t.item_type
                    ORDER BY u.user_id, t.item_type)
                    TO {sql_str(str(files[artifacts.SEGMENTS.name]))} {parquet}"""
            )
            info.counts = _counts(con, history_start, interactions, files[artifacts.SEGMENTS.name])
        finally:
            con.close()
        for name, path in files.items():
            os.replace(path, out / name)
        write_json_atomic(artifacts.SPLIT.at(run), info.to_json())
    return info


def _counts(con: Any, history_start: int, interactions: str, segments_path: Path) -> dict[str, Any]:
    def rows(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    seg_file = sql_str(str(segments_path))

    events = {w: int(n) for w, n in rows("SELECT win, count(*) FROM windowed GROUP BY 1")}
    (before,) = con.execute(
        f'SELECT count(*) FROM read_parquet({interactions}) WHERE "timestamp" < {history_start}'
    ).fetchone()
    per_event: dict[str, dict[str, int]] = {"history": {}, "holdout": {}}
    for win, ev, n in rows("SELECT win, event, count(*) FROM windowed GROUP BY 1, 2 ORDER BY 1, 2"):
        per_event[win][ev] = int(n)
    users = {w: int(n) for w, n in rows("SELECT win, count(DISTINCT user_id) FROM windowed GROUP BY 1")}
    (both,) = con.execute(
        "SELECT count(*) FROM (SELECT user_id FROM windowed GROUP BY 1 HAVING count(DISTINCT win) = 2)"
    ).fetchone()
    segments: dict[str, dict[str, int]] = {}
    for t, seg, n in rows(f"SELECT item_type, segment, count(*) FROM read_parquet({seg_file}) GROUP BY 1, 2"):
        segments.setdefault(t, {"warm": 0, "cold": 0})[seg] = int(n)
    # The evaluation population: users with a hold-out interaction of the type, by segment.
    holdout_users: dict[str, dict[str, int]] = {t: {"warm": 0, "cold": 0} for t in segments}
    for t, seg, n in rows(
        f"""SELECT h.item_type, s.segment, count(DISTINCT h.user_id)
            FROM windowed h JOIN read_parquet({seg_file}) s
              ON s.user_id = h.user_id AND s.item_type = h.item_type
            WHERE h.win = 'holdout' GROUP BY 1, 2"""
    ):
        holdout_users[t][seg] = int(n)
    return {
        "events": {
            "history": events.get("history", 0),
            "holdout": events.get("holdout", 0),
            "before_history_excluded": int(before),
        },
        "per_event": per_event,
        "users": {
            "history": users.get("history", 0),
            "holdout": users.get("holdout", 0),
            "both": int(both),
        },
        "segments": segments,
        "holdout_users": holdout_users,
    }
