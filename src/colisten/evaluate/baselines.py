"""The models compared in the paper's tables, plus implicit's ALS, as user and item vectors.

Every model reduces to one shape the harness ranks with: a user vector per user and an item
vector per item of the ranked type (score = dot product). A model that cannot form a user vector
for some users marks them unservable (they count as misses and are reported as `users_unserved`);
a model that cannot serve a whole segment by design (LLM-KNN for cold users) says so per segment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.errors import ColistenError
from colisten.evaluate.data import EvalData


class NotAvailable(Exception):  # noqa: N818 - a model's answer, not a failure of evaluation
    """The model cannot be evaluated on this run (missing artifact or module); says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class UserItemVectors:
    """Score of (user u, item i) = users[u] . items[i]; rows of `users` follow EvalData.user_ids.
    Either may be a scipy sparse matrix (EASE, ItemKNN: d = all items, a user's history row)."""

    users: np.ndarray | sp.spmatrix  # float [n_users, d]
    items: np.ndarray | sp.spmatrix  # float [n_type_items, d], type-index order
    servable: np.ndarray  # bool [n_users]
    unsupported: dict[str, str] = field(default_factory=dict)  # segment -> reason


class RankingModel(Protocol):
    """A model the harness can evaluate: a name and, per item type, user and item vectors."""

    name: str

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors: ...


def mean_item_vectors(touched: sp.csr_matrix, item_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each user's items' vectors (rows of `touched` = users, 1 per item), and who has any."""
    counts = np.asarray(touched.sum(axis=1)).ravel()
    inv = np.divide(1.0, counts, out=np.zeros_like(counts, dtype=np.float64), where=counts > 0)
    means = sp.diags(inv) @ touched @ item_vectors.astype(np.float64)
    return np.asarray(means, dtype=np.float32), counts > 0


class Popularity:
    """Every user gets the type's items by history popularity (strong events), as in the paper."""

    name = "Popularity"

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        pop = data.targets[item_type].popularity
        return UserItemVectors(
            users=np.ones((data.n_users, 1), np.float32),
            items=pop[:, None].astype(np.float64),
            servable=np.ones(data.n_users, bool),
        )


class LLMKNN:
    """User = mean text embedding of the items of the ranked type they touched (streams and weak
    signals) in history; items ranked by cosine. Needs history with that type: no cold users."""

    name = "LLM-KNN"

    def __init__(self, text_embeddings: np.ndarray):
        self.text_embeddings = text_embeddings

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        sl = data.type_slice(item_type)
        items = self.text_embeddings[sl]
        users, has = mean_item_vectors(data.history_touched()[:, sl], items)
        norms = np.linalg.norm(users, axis=1, keepdims=True)
        users = np.divide(users, norms, out=np.zeros_like(users), where=norms > 0)
        reason = f"no {item_type} history (LLM-KNN needs the user's {item_type}s)"
        return UserItemVectors(
            users=users,
            items=_unit_rows(items),
            servable=has,
            unsupported={"cold": reason, "all": f"{reason}; 'all' includes cold users"},
        )


class HGNNMean:
    """User = mean HGNN embedding of every item (all types) they touched in history; score = dot
    product with the ranked type's HGNN embeddings (the paper's 'HGNN' baseline)."""

    name = "HGNN"

    def __init__(self, item_embeddings: np.ndarray, name: str = "HGNN"):
        self.item_embeddings = item_embeddings
        self.name = name

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        users, has = mean_item_vectors(data.history_touched(), self.item_embeddings)
        return UserItemVectors(
            users=users, items=self.item_embeddings[data.type_slice(item_type)], servable=has
        )


class ALS:
    """implicit's AlternatingLeastSquares on the history user x item matrix (all types), the library
    a practitioner would reach for. r = streams + weak_weight * weak events, confidence 1 + alpha r;
    per type, the scores are the dot products with that type's item factors."""

    name = "ALS"

    def __init__(self, settings: Settings):
        self.cfg = settings.evaluate
        self._fitted: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    def fit(self, data: EvalData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._fitted is not None and self._fitted[0] == id(data):
            return self._fitted[1:]
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's advice; BLAS threads fight ALS's
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        r = (data.history_strong + self.cfg.als_weak_weight * data.history_weak).tocsr().astype(np.float32)
        r.eliminate_zeros()
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.cfg.als_factors,
                regularization=self.cfg.als_regularization,
                alpha=self.cfg.als_alpha,
                iterations=self.cfg.als_iterations,
                random_state=self.cfg.seed,
            )
            model.fit(r, show_progress=False)
        has = np.diff(r.indptr) > 0
        self._fitted = (id(data), np.asarray(model.user_factors), np.asarray(model.item_factors), has)
        return self._fitted[1:]

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        users, items, has = self.fit(data)
        return UserItemVectors(users=users, items=items[data.type_slice(item_type)], servable=has)


class HGNNWithUsers:
    """Users as nodes: a tripartite user-item graph from history (no item-item edges), user
    features = mean text embedding of their items, trained with our HGNN trainer; score = dot
    product of the user's and the item's output embeddings (the paper's 'HGNN-w-users'). `log`
    (set by the harness) gets one line per training epoch."""

    name = "HGNN-w-users"

    def __init__(self, text_embeddings: np.ndarray, settings: Settings, out_dir: Path, log: Log = quiet):
        self.text_embeddings = text_embeddings
        self.settings = settings
        self.out_dir = out_dir
        self.log = log
        self._fitted: tuple[int, dict[str, np.ndarray], np.ndarray] | None = None

    def fit(self, data: EvalData) -> tuple[dict[str, np.ndarray], np.ndarray]:
        if self._fitted is not None and self._fitted[0] == id(data):
            return self._fitted[1], self._fitted[2]
        from colisten.hgnn.stage import epoch_logger
        from colisten.hgnn.train import fit_hgnn

        graph, features, has = tripartite_graph(data, self.text_embeddings)
        # Same HGNN settings as the item graph's, on both user-item relations, trained briefly.
        hgnn = self.settings.hgnn.model_copy(
            update={"epochs": self.settings.evaluate.hgnn_w_users_epochs, "relations": None}
        )
        on_epoch = epoch_logger(self.log, hgnn.epochs, hgnn.validation_metric)
        fit = fit_hgnn(graph, features, hgnn, self.out_dir, progress=False, on_epoch_end=on_epoch)
        result = fit.embeddings
        emb = {t: np.asarray(v, dtype=np.float32) for t, v in result.items()}
        self._fitted = (id(data), emb, has)
        return emb, has

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        emb, has = self.fit(data)
        return UserItemVectors(users=emb[USER_NODE], items=emb[item_type], servable=has)


USER_NODE = "user"


def tripartite_graph(
    data: EvalData, text_embeddings: np.ndarray
) -> tuple[Any, dict[str, np.ndarray], np.ndarray]:
    """User-item graph (one relation per item type, edge = any history event, weight = events)
    with text features for items and mean-of-items text features for users."""
    from colisten.graph.store import CoListeningGraph, relation_name

    touched = data.history_touched()
    counts = (data.history_strong + data.history_weak).tocsr()
    types = list(dict.fromkeys(data.item_types.tolist()))
    if USER_NODE in types:
        raise NotAvailable(f"an item type is called {USER_NODE!r}, the name of the user node type")
    num_nodes = {t: data.type_slice(t).stop - data.type_slice(t).start for t in types}
    num_nodes[USER_NODE] = data.n_users
    edges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for t in types:
        sl = data.type_slice(t)
        m = counts[:, sl].tocoo()
        rel = relation_name(t, USER_NODE)
        a = rel.split("__")[0]
        u, i, w = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float32)
        edges[rel] = (u, i, w) if a == USER_NODE else (i, u, w)
    graph = CoListeningGraph.from_undirected_edges(num_nodes, edges)
    user_features, has = mean_item_vectors(touched, text_embeddings)
    features = {t: text_embeddings[data.type_slice(t)].astype(np.float32) for t in types}
    features[USER_NODE] = user_features
    return graph, features, has


class TwoTower:
    """A trained two-tower recommender (colisten.twotower): user vectors from history as of the
    cut, the item tower's vectors for the ranked type. `load(log)` returns the recommender, and
    may train it first (the 2T baseline), logging through `log` (set by the harness)."""

    def __init__(
        self, name: str, load: Callable[[Log], Any], missing_reason: str | None = None, log: Log = quiet
    ):
        self.name = name
        self._load = load
        self._missing = missing_reason
        self.log = log
        self._rec: Any = None
        self._users: tuple[int, np.ndarray, np.ndarray] | None = None

    def recommender(self) -> Any:
        if self._missing:
            raise NotAvailable(self._missing)
        if self._rec is None:
            try:
                self._rec = self._load(self.log)
            except ColistenError as e:
                raise NotAvailable(f"{self.name}: {e}") from e
        return self._rec

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        rec = self.recommender()
        try:
            if self._users is None or self._users[0] != id(data):
                ids = data.user_ids.astype(object)
                parts = [rec.user_vectors(ids[lo : lo + 8192]) for lo in range(0, ids.size, 8192)]
                users = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
                self._users = (id(data), users, np.ones(data.n_users, bool))
            ids, items = rec.item_vectors(item_type)
        except ColistenError as e:
            raise NotAvailable(f"{self.name}: {e}") from e
        expected = data.item_ids[data.type_slice(item_type)]
        if not np.array_equal(np.asarray(ids).astype(str), expected):
            raise NotAvailable(f"{self.name}: item vectors for {item_type} are not in the run's item order")
        return UserItemVectors(users=self._users[1], items=np.asarray(items), servable=self._users[2])


def _unit_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x, dtype=np.float32), where=n > 0).astype(np.float32)
