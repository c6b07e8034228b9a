"""The world's ground truth (DIR/truth/): latent tastes and item topics, and the true affinity of
any (user, item) pair, for calibration statistics and later simulated online tests.

Affinity is the probability that the user's next choice within an item type is that item:

    affinity(u, i) = language_weight[lang_u, lang_i]
                     * sum_k theta_uk * choice_weight_ik / topic_norm[lang_u, k]

with `theta` the user's topic taste for that type, `choice_weight_ik` = topic mixture x appeal,
`language_weight` how much a user of one language likes content in another (1 for their own) and
`topic_norm[l, k] = sum_i language_weight[l, lang_i] * choice_weight_ik`. So a user picks a topic
by taste, then a title of that topic by appeal x language fit: where their language has few titles
of a topic they drift to English. Each row of `affinity(users, item_type)` sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from colisten.errors import ColistenError
from colisten.io import read_json

ITEM_TYPES = ("audiobook", "podcast")  # type code = position; also the sorted order of items.parquet


class WorldError(ColistenError):
    """A world directory that is missing files or was not written by `colisten world`."""


@dataclass
class WorldTruth:
    """Arrays saved in DIR/truth/ (see its README.md). User index = row in users.parquet."""

    theta: dict[str, np.ndarray]  # item_type -> float32 [n_users, n_topics]
    user_language: np.ndarray  # int [n_users], index into `languages`
    item_type: np.ndarray  # int8 [n_items], index into ITEM_TYPES; items in items.parquet order
    item_language: np.ndarray  # int [n_items]
    choice_weight: np.ndarray  # float32 [n_items, n_topics]
    language_weight: np.ndarray  # [n_languages(user), n_languages(item)]
    topic_norm: dict[str, np.ndarray]  # item_type -> [n_languages(user), n_topics]
    item_ids: np.ndarray  # str [n_items]
    arrays: dict[str, np.ndarray]  # every other saved array (rates, topic mixtures, appeal, ...)
    meta: dict

    @classmethod
    def load(cls, world_dir: str | Path) -> WorldTruth:
        truth = Path(world_dir) / "truth"
        needed = [truth / "users.npz", truth / "items.npz", truth / "truth.json"]
        for p in needed:
            if not p.exists():
                raise WorldError(f"{p} is missing: `colisten world --out {world_dir}` writes it")
        meta = read_json(truth / "truth.json")
        with np.load(truth / "users.npz") as u, np.load(truth / "items.npz") as it:
            users = {k: u[k] for k in u.files}
            items = {k: it[k] for k in it.files}
        theta = {t: users.pop(f"theta_{t}") for t in ITEM_TYPES}
        return cls(
            theta=theta,
            user_language=users.pop("language"),
            item_type=items.pop("item_type"),
            item_language=items.pop("language"),
            choice_weight=items.pop("choice_weight"),
            language_weight=np.asarray(meta["language_weight"]),
            topic_norm={t: items.pop(f"topic_norm_{t}") for t in ITEM_TYPES},
            item_ids=items.pop("item_id"),
            arrays={
                **{f"user_{k}": v for k, v in users.items()},
                **{f"item_{k}": v for k, v in items.items()},
            },
            meta=meta,
        )

    @property
    def n_users(self) -> int:
        return int(self.user_language.shape[0])

    def items_of_type(self, item_type: str) -> np.ndarray:
        """Global item indices (rows of items.parquet) of one type, in order."""
        return np.flatnonzero(self.item_type == ITEM_TYPES.index(item_type))

    def affinity(self, users: np.ndarray, item_type: str) -> np.ndarray:
        """True choice probabilities [len(users), n_items_of_type] (rows sum to 1)."""
        users = np.asarray(users, dtype=np.int64)
        items = self.items_of_type(item_type)
        lang = self.user_language[users]
        return choice_probabilities(
            self.theta[item_type][users],
            self.topic_norm[item_type][lang],
            self.language_weight[lang],
            self.item_language[items],
            self.choice_weight[items],
        )

    def affinity_factors(
        self, users: np.ndarray, item_type: str, theta: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user vectors, item vectors) whose dot products are `affinity(users, item_type)`, so a
        dot-product ranker (the evaluation harness) can rank by the true choice model.

        One block of topics per item language: user block l = language_weight[lang_u, l] x
        theta_u / topic_norm[lang_u]; an item fills only its own language's block with its
        choice_weight. `theta` replaces the users' true tastes (e.g. an estimate from history).
        """
        users = np.asarray(users, dtype=np.int64)
        items = self.items_of_type(item_type)
        lang = self.user_language[users]
        th = self.theta[item_type][users] if theta is None else np.asarray(theta)
        scaled = th.astype(np.float64) / self.topic_norm[item_type][lang]
        n_lang, k = self.language_weight.shape[1], scaled.shape[1]
        user_vecs = (self.language_weight[lang][:, :, None] * scaled[:, None, :]).reshape(
            len(users), n_lang * k
        )
        item_vecs = np.zeros((items.size, n_lang, k))
        item_vecs[np.arange(items.size), self.item_language[items]] = self.choice_weight[items]
        return user_vecs, item_vecs.reshape(items.size, n_lang * k)

    def pair_affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """True affinity of each (users[j], items[j]) pair; `items` are global indices."""
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        out = np.empty(len(users), dtype=np.float64)
        for code, t in enumerate(ITEM_TYPES):
            m = self.item_type[items] == code
            if m.any():
                lang = self.user_language[users[m]]
                out[m] = pair_choice_probability(
                    self.theta[t][users[m]],
                    self.topic_norm[t][lang],
                    self.language_weight[lang, self.item_language[items[m]]],
                    self.choice_weight[items[m]],
                )
        return out

    def user_index(self, user_ids: Sequence[str]) -> np.ndarray:
        """Row of each user id ('u0000042' -> 42)."""
        return np.fromiter((int(u[1:]) for u in user_ids), dtype=np.int64, count=len(user_ids))

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        """Global index (row of items.parquet) of each item id."""
        lookup = {v: i for i, v in enumerate(self.item_ids.tolist())}
        return np.fromiter((lookup[i] for i in item_ids), dtype=np.int64, count=len(item_ids))


def choice_probabilities(
    theta: np.ndarray,
    topic_norm_rows: np.ndarray,
    language_rows: np.ndarray,
    item_language: np.ndarray,
    choice_weight: np.ndarray,
) -> np.ndarray:
    """[n_users, n_items] affinity; the `*_rows` are the users' rows of topic_norm / language_weight."""
    topical = (theta / topic_norm_rows) @ choice_weight.astype(np.float64).T
    return topical * language_rows[:, item_language]


def pair_choice_probability(
    theta: np.ndarray, topic_norm_rows: np.ndarray, language_factor: np.ndarray, choice_weight: np.ndarray
) -> np.ndarray:
    """Row-wise version of `choice_probabilities` for aligned (user, item) pairs."""
    topical = np.einsum("ij,ij->i", theta / topic_norm_rows, choice_weight.astype(np.float64))
    return topical * language_factor


def base_start_probability(
    affinity: np.ndarray,
    book_rate: np.ndarray,
    adoption_day: np.ndarray,
    day: np.ndarray,
    days: float,
    published_day: np.ndarray | float = -np.inf,
) -> np.ndarray:
    """P(a user who has not started a title by `day` starts it before the window ends), without
    any weak signal: adopters start one title on their adoption day, then titles at `book_rate`
    per day, each drawn by affinity."""
    begin = np.maximum(np.maximum(day, np.clip(adoption_day, 0.0, days)), published_day)
    remaining = np.clip(days - begin, 0.0, None)
    first_title = (adoption_day > day) & (adoption_day < days) & (adoption_day >= published_day)
    not_started = (1.0 - affinity * first_title) * np.exp(-book_rate * remaining * affinity)
    return np.clip(1.0 - not_started, 0.0, 1.0)
