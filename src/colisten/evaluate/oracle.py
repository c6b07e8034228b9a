"""Oracle rankers for runs on a synthetic world: how much quality the world leaves on the table.

A run whose input data is a `colisten world` folder has the world's ground truth beside it
(truth/). These rankers use it, in the same harness, split and metrics as the real models:

- `TrueTaste` ranks by the world's own choice model with every user's true latent taste: the best
  any recommender could do (it still misses, because choices are random draws).
- `TasteFromHistory` keeps the true choice model and every item's true topic mixture, but
  estimates each user's taste from the items in their history only (mean topic mixture of the
  distinct items streamed or signalled; for a type, half its own items' mean and half the other
  type's, or the other type's alone when the user has none of its own). It is what a model that
  knew every item perfectly could reach from the history a real model sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from colisten.evaluate.baselines import UserItemVectors
from colisten.evaluate.data import EvalData
from colisten.rundir import RunDir
from colisten.world.truth import WorldTruth


def world_of_run(run: str | Path) -> Path | None:
    """The synthetic world a run was built from (its manifest's data source), if it is one."""
    source = RunDir(run).manifest().get("data", {}).get("source")
    if source and (Path(source) / "truth" / "truth.json").exists():
        return Path(source)
    return None


class TrueTaste:
    """Ranks by the world's true affinity (truth/README.md) with the users' true tastes."""

    name = "Oracle: true taste"

    def __init__(self, truth: WorldTruth):
        self.truth = truth

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        users = self.truth.user_index(list(data.user_ids))
        u, v = self.truth.affinity_factors(users, item_type, theta=self.theta(data, item_type))
        # rows of v follow the world's items of this type; the run's may be a subset (quarantine)
        row = np.full(len(self.truth.item_ids), -1)
        row[self.truth.items_of_type(item_type)] = np.arange(v.shape[0])
        v = v[row[self.truth.item_index(list(data.item_ids[data.item_types == item_type]))]]
        return UserItemVectors(
            users=u.astype(np.float32), items=v.astype(np.float32), servable=np.ones(len(users), bool)
        )

    def theta(self, data: EvalData, item_type: str) -> np.ndarray | None:
        return None  # the true tastes


class TasteFromHistory(TrueTaste):
    """The true choice model, with each user's taste estimated from their history's true topics."""

    name = "Oracle: taste from history"

    def theta(self, data: EvalData, item_type: str) -> np.ndarray:
        mixture = self.truth.arrays["item_topic_mixture"][self.truth.item_index(list(data.item_ids))]
        mixture = mixture.astype(np.float64)
        touched = ((data.history_strong + data.history_weak) > 0).astype(np.float64).tocsr()
        own = data.item_types == item_type

        def mean(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            m = touched[:, cols]
            n = np.asarray(m.sum(axis=1)).ravel()
            inv = sp.diags(np.divide(1.0, n, out=np.zeros_like(n), where=n > 0))
            return np.asarray(inv @ (m @ mixture[cols])), n > 0

        own_mean, has_own = mean(np.flatnonzero(own))
        other_mean, _ = mean(np.flatnonzero(~own))
        theta = np.where(has_own[:, None], 0.5 * own_mean + 0.5 * other_mean, other_mean) + 1e-3
        return theta / theta.sum(axis=1, keepdims=True)
