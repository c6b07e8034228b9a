"""Arms: `NAME=MODEL[@RUN]` specs and the shelf each arm's model serves on a simulated day.

Every ranker answers `shelf(log, users, as_of, k)`: the top-k audiobooks (type indices, -1 =
empty) for run users `users` from their events before `as_of`, as the model serves them:

- 2T, 2T-HGNN: the served real-time path: user features from the last `history_days` of events
  before as_of (`twotower.features.user_features`, as `TwoTowerRecommender.user_vector_from_history`),
  the user tower, `TwoTowerRecommender.top_k` with the consumed filter (`retrieval.exclude_events`).
  The towers themselves are the trained ones (no retraining during the test).
- every other model of `colisten evaluate` (Popularity, ALS, EASE, ItemKNN, LLM-KNN, HGNN,
  LightGCN, HGNN-w-users): the harness (`evaluate.harness.rank_users`) on an EvalData whose history
  is the same window. Models that are functions of the history (Popularity's counts, LLM-KNN's
  and HGNN's means, EASE's and ItemKNN's user rows) follow it day by day; models that fit on it
  (ALS, EASE, ItemKNN, LightGCN, HGNN-w-users) are refitted on each day's window (a daily
  retrain: slow for the heavy ones).
- Oracle: the world's true affinity (truth/) with the users' true tastes, excluding titles the
  user already started and titles not yet published: the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from colisten import artifacts
from colisten.abtest.history import EventLog
from colisten.config import MODELS, Settings
from colisten.errors import ColistenError

ORACLE = "Oracle"
DAY_S = 86_400


class AbTestError(ColistenError):
    """A bad A/B test request (unknown model, missing truth, empty arm, shelf too large...)."""


@dataclass
class ArmSpec:
    name: str
    model: str
    run: Path | None = None  # another run's model (same world and items)

    @property
    def label(self) -> str:
        return self.model if self.run is None else f"{self.model}@{self.run}"


def parse_arms(text: str) -> list[ArmSpec]:
    """'control=Popularity,treatment=2T-HGNN[@RUN],...' -> specs (first = control)."""
    specs: list[ArmSpec] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        if "=" not in part:
            raise AbTestError(f"--arms: {part!r} is not NAME=MODEL (e.g. control=Popularity)")
        name, model = (x.strip() for x in part.split("=", 1))
        run = None
        if "@" in model:
            model, other = model.split("@", 1)
            run = Path(other)
        if not name or not model:
            raise AbTestError(f"--arms: {part!r} needs both a NAME and a MODEL")
        known = (*MODELS, ORACLE)
        if model not in known:
            raise AbTestError(f"--arms: unknown model {model!r} in {part!r}; known: {', '.join(known)}")
        if run is not None and not artifacts.ITEMS.at(run).exists():
            raise AbTestError(f"--arms: {part!r}: {run} is not a run directory (no data/items.parquet)")
        specs.append(ArmSpec(name, model, run))
    names = [s.name for s in specs]
    if len(specs) < 2:
        raise AbTestError("--arms: give at least two arms, control first (control=MODEL,treatment=MODEL)")
    if len(set(names)) != len(names):
        raise AbTestError(f"--arms: arm names must be distinct (got {', '.join(names)})")
    return specs


class OracleRanker:
    """The world's true affinity: the best shelf any model could serve."""

    def __init__(self, truth: Any, truth_users: np.ndarray, type_slice: slice, published_day: np.ndarray):
        self.truth = truth
        self.truth_users = truth_users  # truth row of each run user
        self.lo = type_slice.start
        self.n = type_slice.stop - type_slice.start
        self.published_day = published_day  # per audiobook type index
        self.day_of = None  # set by the simulation: as_of epoch -> world day

    def shelf(self, log: EventLog, users: np.ndarray, as_of: int, k: int, started=None) -> np.ndarray:
        aff = self.truth.affinity(self.truth_users[users], "audiobook")
        day = self.day_of(as_of)
        aff[:, self.published_day > day] = -np.inf
        if started is not None:  # the titles each user started (the simulation knows them)
            r, c = started(users)
            aff[r, c] = -np.inf
        return _top_k(aff, k)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    import torch

    from colisten.evaluate.metrics import deterministic_top_k

    s = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64)).to(torch.float32)
    return deterministic_top_k(s, k)[0].numpy().astype(np.int64)


class TwoTowerRanker:
    """2T / 2T-HGNN served as in real time from the window of events before as_of."""

    def __init__(self, rec: Any, type_slice: slice):
        self.rec = rec
        self.lo = type_slice.start
        self.hi = type_slice.stop
        ids, _ = rec.item_vectors("audiobook")
        if len(ids) != self.hi - self.lo:
            raise AbTestError("the two-tower model's audiobooks are not the run's")

    def shelf(self, log: EventLog, users: np.ndarray, as_of: int, k: int, started=None) -> np.ndarray:
        from colisten.twotower.features import user_features
        from colisten.twotower.model import user_vectors

        rec = self.rec
        start = as_of - rec.history_days * DAY_S
        ids = log.user_ids[users]
        events = log.frame(as_of, start, users)
        feats = user_features(events, rec.users, ids, rec.space, start=start, as_of=as_of)
        vectors = user_vectors(rec.model, feats)
        exclude_events = set(rec.space.strong_events)
        if rec.retrieval.exclude_events == "any":
            exclude_events |= set(rec.space.weak_events)
        ex = events[events["event"].isin(exclude_events)]
        g = rec.space.item_index.get_indexer(ex["item_id"].to_numpy(dtype=object))
        row = pd.Index(ids).get_indexer(ex["user_id"].to_numpy(dtype=object))
        ok = (g >= self.lo) & (g < self.hi)
        exclude = [np.zeros(0, np.int64)] * len(users)
        if ok.any():
            frame = pd.DataFrame({"r": row[ok], "i": g[ok] - self.lo}).drop_duplicates()
            for r, grp in frame.groupby("r"):
                exclude[int(r)] = grp["i"].to_numpy(np.int64)
        names, _ = rec.top_k(vectors, "audiobook", k, exclude)
        got = rec.space.item_index.get_indexer(np.where(names == None, "", names).ravel())  # noqa: E711
        got = got.reshape(names.shape)
        return np.where(got >= 0, got - self.lo, -1).astype(np.int64)


class HarnessRanker:
    """Any evaluate model, ranked by the harness on an EvalData whose history is the window."""

    def __init__(self, model: Any, base: Any, settings: Settings, item_type: str = "audiobook"):
        self.model = model
        self.base = base  # the run's EvalData (users, items, settings)
        self.settings = settings
        self.item_type = item_type
        self._day: tuple[int, Any, Any] | None = None

    def _day_data(self, log: EventLog, as_of: int) -> Any:
        from colisten.evaluate.data import EvalData, build_targets

        start = as_of - self.settings.data.history_days * DAY_S
        strong, weak = log.matrices(
            as_of, start, set(self.settings.data.strong_events), set(self.settings.data.weak_events)
        )
        b = self.base
        data = EvalData(
            user_ids=b.user_ids,
            item_ids=b.item_ids,
            item_types=b.item_types,
            history_strong=strong,
            history_weak=weak,
            holdout_strong=sp.csr_matrix(strong.shape, dtype=np.float32),
            segments=pd.DataFrame({"user_id": [], "item_type": [], "segment": []}, dtype=str),
            settings=self.settings,
        )
        data.targets[self.item_type] = build_targets(data, self.item_type)
        return data

    def shelf(self, log: EventLog, users: np.ndarray, as_of: int, k: int, started=None) -> np.ndarray:
        from colisten.evaluate.harness import rank_users

        if self._day is None or self._day[0] != as_of:
            # arms of the same day share the window's EvalData (kept on the log for that day)
            cached = getattr(log, "_day_data", None)
            if cached is None or cached[0] != (as_of, self.settings.data.history_days):
                log._day_data = ((as_of, self.settings.data.history_days), self._day_data(log, as_of))
            data = log._day_data[1]
            self._day = (as_of, data, self.model.vectors(data, self.item_type))
        _, data, vectors = self._day
        lists = rank_users(data, vectors, self.item_type, self.settings, np.asarray(users))
        return lists.top[:, :k].astype(np.int64)
