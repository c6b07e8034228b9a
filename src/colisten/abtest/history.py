"""The test's event log: the run's history, the world's hold-out podcast events and every event
the simulation adds, with the one rule that keeps models honest: a model serving at `as_of` is
given only events with timestamp < as_of (and within the run's history window before it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


class EventLog:
    """Events as integer arrays: user = row of the run's users, item = global item index,
    event = index into `event_names`, ts = epoch seconds."""

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, event_names: list[str]):
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.event_names = list(event_names)
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._cache: tuple[np.ndarray, ...] | None = None
        self.served_up_to: list[tuple[int, int]] = []  # (as_of, newest ts handed out): the leakage check
        self._day_data: tuple | None = None  # one day's EvalData, shared by the harness arms

    def code(self, event: str) -> int:
        if event not in self.event_names:
            self.event_names.append(event)
        return self.event_names.index(event)

    def add(self, user: np.ndarray, item: np.ndarray, event: np.ndarray, ts: np.ndarray) -> None:
        if len(user):
            self._parts.append(
                (
                    np.asarray(user, np.int64),
                    np.asarray(item, np.int64),
                    np.asarray(event, np.int16),
                    np.asarray(ts, np.int64),
                )
            )
            self._cache = None

    def arrays(self) -> tuple[np.ndarray, ...]:
        if self._cache is None:
            if not self._parts:
                self._cache = tuple(np.zeros(0, t) for t in (np.int64, np.int64, np.int16, np.int64))
            else:
                self._cache = tuple(np.concatenate(c) for c in zip(*self._parts, strict=True))
                self._parts = [self._cache]
        return self._cache

    def window(self, as_of: int, start: int | None) -> tuple[np.ndarray, ...]:
        """(user, item, event, ts) with start <= ts < as_of; records what was handed out."""
        user, item, event, ts = self.arrays()
        keep = ts < as_of
        if start is not None:
            keep &= ts >= start
        out = (user[keep], item[keep], event[keep], ts[keep])
        self.served_up_to.append((int(as_of), int(out[3].max()) if out[3].size else -(2**62)))
        return out

    def frame(self, as_of: int, start: int | None, users: np.ndarray | None = None) -> pd.DataFrame:
        """The window as the data contract's columns (user_id, item_id, event, timestamp)."""
        user, item, event, ts = self.window(as_of, start)
        if users is not None:
            keep = np.isin(user, users)
            user, item, event, ts = user[keep], item[keep], event[keep], ts[keep]
        names = np.asarray(self.event_names, dtype=object)
        return pd.DataFrame(
            {
                "user_id": self.user_ids[user],
                "item_id": self.item_ids[item],
                "event": names[event],
                "timestamp": ts,
            }
        )

    def matrices(
        self, as_of: int, start: int | None, strong: set[str], weak: set[str]
    ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(strong, weak) event counts, users x items, over the window."""
        user, item, event, _ = self.window(as_of, start)
        shape = (self.user_ids.size, self.item_ids.size)
        out = []
        for names in (strong, weak):
            codes = [i for i, e in enumerate(self.event_names) if e in names]
            m = np.isin(event, codes)
            mat = sp.csr_matrix((np.ones(int(m.sum()), np.float32), (user[m], item[m])), shape=shape)
            mat.sum_duplicates()
            out.append(mat)
        return out[0], out[1]
