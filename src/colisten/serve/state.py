"""The model bundle the server answers from, and its atomic hot swap.

A `ModelBundle` is everything one model version needs to answer a request: the two-tower
recommender (user tower, item vectors, ANN indexes), the catalogue, every known user's stored
history, the co-listening graph and the HGNN embeddings. It is immutable once built.

`ModelState` holds the current bundle behind a single reference. A reload builds the new bundle
in a background thread while the old one keeps serving, then swaps the reference in one
assignment. Each request reads the reference once at its start and uses only that bundle, so
requests in flight finish on the model they started with and no request ever sees a half-loaded
model. The old bundle is freed when its last request ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import Settings
from colisten.graph.store import CoListeningGraph
from colisten.retrieval.exact import exact_top_k
from colisten.rundir import RunDir
from colisten.serve.catalogue import ItemCatalogue
from colisten.serve.errors import ServeError
from colisten.serve.explain import Explainer, Reason, distinct_recent_first
from colisten.serve.history import KnownHistories, UserEvents, UserStore
from colisten.serve.realtime import event_kind_map
from colisten.twotower.features import csr_rows

log = logging.getLogger("colisten.serve")

# Files whose size and modification time define a model version: retraining any stage that the
# answers depend on, or rebuilding the index, gives a new version string.
VERSION_ARTIFACTS = (
    artifacts.ITEMS,
    artifacts.USERS,
    artifacts.HISTORY,
    artifacts.HGNN_EMBEDDINGS,
    artifacts.GRAPH_SUMMARY,
    artifacts.TWOTOWER_MODEL,
    artifacts.TWOTOWER_FEATURES,
    artifacts.TWOTOWER_ITEM_VECTORS,
    artifacts.INDEX_REPORT,
)


def model_version(run: str | Path) -> str:
    """'<run name>-<8 hex>': a digest of the run's path and its model artifacts' sizes and mtimes."""
    root = Path(run).resolve()
    digest = hashlib.sha256(str(root).encode())
    paths = [a.at(root) for a in VERSION_ARTIFACTS] + artifacts.INDEX.glob(root)
    for p in paths:
        if p.exists():
            st = p.stat()
            digest.update(f"{p.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{root.name}-{digest.hexdigest()[:8]}"


@dataclass(frozen=True)
class Recommendation:
    """Top-k of one item type for one user vector, global item indices best first."""

    items: np.ndarray  # int64 global indices
    scores: np.ndarray  # float32
    retrieval: str  # "exact" or "ann"
    reasons: list[list[Reason]] | None


@dataclass(frozen=True)
class UserQuery:
    """What the user tower needs: one user's history and demographics.

    `kinds` are the model's event kinds (0 strong, 1 weak, -1 ignored) and `consumed` marks the
    events that make an item 'already consumed' (retrieval.exclude_events).
    """

    items: np.ndarray  # int64 global item indices
    events: np.ndarray  # object[str] event names
    kinds: np.ndarray  # int64
    consumed: np.ndarray  # bool
    timestamps: np.ndarray  # int64 epoch seconds (recency order of explanations)
    age: int | None = None
    country: str | None = None
    taste_vector: Any | None = None
    known_user: int | None = None  # row in the UserStore when the user is known


@dataclass(frozen=True)
class ModelBundle:
    """One servable model version (immutable)."""

    run: Path
    version: str
    trained_at: str | None
    settings: Settings
    recommender: Any  # colisten.twotower.recommender.TwoTowerRecommender
    catalogue: ItemCatalogue
    users: UserStore
    graph: CoListeningGraph | None
    item_embeddings: np.ndarray | None  # HGNN, L2-normalised, global order
    explainer: Explainer
    searchers: dict[str, tuple[Any | None, np.ndarray]]  # type -> (AnnIndex or None = exact, item vectors)
    realtime: Any | None  # RealtimeUserFeatures, or None = reference feature path
    user_categorical: np.ndarray  # int64 [n_users, 2] (known users' age bucket, country code)
    user_taste: np.ndarray  # float32 [n_users, taste_dim + 1]
    consumed_events: frozenset[str]
    kind_of_event: dict[str, int]  # event name -> model event kind (absent: ignored by the model)
    _code_tables: tuple[np.ndarray, np.ndarray]  # per stored event code: model kind, is-consumed
    load_seconds: float
    loaded_at: float = field(default_factory=time.time)
    tower: Any | None = None  # serve.tower.OneUserTower, or None = the model's modules (user_vector)
    # float32 [n_users, d]: every known user's vector from the batch path ([serve] known_user_vectors)
    known_vectors: np.ndarray | None = None
    # every known user's distinct recent-first and consumed items (what recommend reads per request)
    known_history: KnownHistories | None = None

    @property
    def item_types(self) -> list[str]:
        return list(self.recommender.item_types)

    @property
    def target_type(self) -> str:
        t = self.settings.data.target_type
        return t if t in self.item_types else self.item_types[0]

    # --- users ------------------------------------------------------------------------------
    def known_user_query(self, user: int) -> UserQuery:
        """The stored history (the two-tower batch path's: split/history.parquet) of a known user."""
        ev: UserEvents = self.users.events_of(user)
        age, country = self.users.demographics(user)
        return UserQuery(
            items=ev.items,
            events=self.users.event_names[ev.event_codes],
            kinds=self._kind_of_code[ev.event_codes],
            consumed=self._consumed_of_code[ev.event_codes],
            timestamps=ev.timestamps,
            age=age,
            country=country,
            known_user=user,
        )

    def adhoc_query(
        self,
        items: np.ndarray,
        events: list[str],
        timestamps: np.ndarray,
        age: int | None = None,
        country: str | None = None,
        taste_vector: Any | None = None,
    ) -> UserQuery:
        """A history given by the caller (global indices of known items; events as named)."""
        names = np.asarray(events, dtype=object)
        return UserQuery(
            items=np.asarray(items, dtype=np.int64),
            events=names,
            kinds=np.fromiter((self.kind_of_event.get(e, -1) for e in names), np.int64, len(names)),
            consumed=np.fromiter((e in self.consumed_events for e in names), bool, len(names)),
            timestamps=np.asarray(timestamps, dtype=np.int64),
            age=age,
            country=country,
            taste_vector=taste_vector,
        )

    @property
    def _kind_of_code(self) -> np.ndarray:
        return self._code_tables[0]

    @property
    def _consumed_of_code(self) -> np.ndarray:
        return self._code_tables[1]

    def user_vector(self, query: UserQuery) -> np.ndarray:
        """The user tower's output (float32 [d]) for this history and these demographics."""
        if query.known_user is not None and self.known_vectors is not None:
            return self.known_vectors[query.known_user]
        rec = self.recommender
        if self.realtime is None:  # reference path (pandas): by setting, or if the fast path failed its check
            if query.known_user is not None:
                return rec.user_vectors([self.users.user_ids[query.known_user]])[0]
            records = [
                {"item_id": self.catalogue.item_ids[i], "event": e, "timestamp": int(t)}
                for i, e, t in zip(query.items, query.events, query.timestamps, strict=True)
            ]
            return rec.user_vector_from_history(records, query.age, query.country, query.taste_vector)
        if query.known_user is not None:
            categorical = self.user_categorical[query.known_user]
            taste = self.user_taste[query.known_user]
        else:
            categorical = self.realtime.categorical(query.age, query.country)
            taste = self.realtime.taste(query.taste_vector)
        features = self.realtime.compute(query.items, query.kinds, categorical, taste, query.timestamps)
        if self.tower is not None:  # the same ops without the modules (checked bit for bit at load)
            return self.tower(features)
        return self.module_user_vector(features)

    def module_user_vector(self, features: Any) -> np.ndarray:
        """The user vector of one row of UserFeatures through the model's modules."""
        import torch

        rec = self.recommender
        # What twotower.model.user_vectors does for one row, minus its per-call model.eval()
        # (the loaded model is already in eval mode): the same tower, the same numbers.
        history = None
        if rec.model.id_dim:  # one EmbeddingBag row: the user's streamed items[, recency weights]
            history = (
                torch.from_numpy(features.history[1]),
                torch.zeros(1, dtype=torch.int64),
                *(torch.from_numpy(w) for w in features.history[2:]),
            )
        with torch.inference_mode():
            vector = rec.model.serving_users(
                rec.model.encode_users(
                    torch.from_numpy(features.dense), torch.from_numpy(features.categorical), history
                )
            )
        return vector.numpy()[0]

    def consumed(self, query: UserQuery) -> np.ndarray:
        """Global indices of the history items that count as consumed (retrieval.exclude_events)."""
        return np.unique(query.items[query.consumed])

    # --- retrieval --------------------------------------------------------------------------
    def type_size(self, item_type: str) -> int:
        lo, hi = self.catalogue.type_ranges[item_type]
        return hi - lo

    def uses_ann(self, item_type: str) -> bool:
        return self.searchers[item_type][0] is not None

    def recommend(
        self,
        query: UserQuery,
        item_type: str,
        k: int,
        exclude_consumed: bool = True,
        with_reasons: bool = True,
    ) -> Recommendation:
        """Top-k items of `item_type` for this user: the same retrieval as `colisten recommend`."""
        lo, hi = self.catalogue.type_ranges[item_type]
        k = min(k, hi - lo)
        vector = self.user_vector(query)
        stored = self.known_history if query.known_user is not None else None
        exclude = None
        if exclude_consumed:
            consumed = stored.consumed(query.known_user) if stored is not None else self.consumed(query)
            in_type = consumed[(consumed >= lo) & (consumed < hi)] - lo
            exclude = (np.array([0, in_type.size], dtype=np.int64), in_type)  # CSR with one row
        # TwoTowerRecommender.top_k's dispatch (exact search below retrieval.exact_below items, else
        # the run's Voyager index), with each type's vectors and index looked up once at load.
        ann, vectors = self.searchers[item_type]
        if ann is not None:
            idx, scores = ann.query(vector, k, exclude=exclude)
        else:
            idx, scores = _exact_top_k_one(vector, vectors, k, None if exclude is None else exclude[1])
        keep = idx >= 0
        items = idx[keep] + lo
        reasons = None
        if with_reasons:
            if stored is not None:
                history = stored.recent(query.known_user)
            else:
                history = distinct_recent_first(query.items, query.timestamps)
            reasons = self.explainer.explain(items, history)
        return Recommendation(items, scores[keep], "exact" if ann is None else "ann", reasons)

    def similar_items(self, item: int, item_type: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest items of `item_type` to one item by HGNN embedding cosine (the item itself excluded)."""
        if self.item_embeddings is None:
            raise ServeError(f"{artifacts.HGNN_EMBEDDINGS.at(self.run)} is missing: no similar items")
        lo, hi = self.catalogue.type_ranges[item_type]
        exclude = [[item - lo]] if lo <= item < hi else None
        k = min(k, hi - lo - (1 if exclude else 0))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx, scores = exact_top_k(self.item_embeddings[item], self.item_embeddings[lo:hi], k, exclude=exclude)
        keep = idx >= 0
        return idx[keep] + lo, scores[keep]


def load_bundle(
    run: str | Path, settings: Settings | None = None, verify_users: int | None = None
) -> ModelBundle:
    """Load everything one model version needs from a run directory (raises ServeError/RunError).

    `settings` default to the run's saved config. The fast real-time feature path is checked
    bit-for-bit against the two-tower batch path on `verify_users` known users (default:
    settings.serve.verify_users).
    """

    from colisten.twotower.features import age_bucket, taste_matrix
    from colisten.twotower.recommender import TwoTowerRecommender

    t0 = time.perf_counter()
    rd = RunDir(run)
    if not rd.root.is_dir():
        raise ServeError(f"run directory not found: {rd.root}")
    version = model_version(rd.root)
    settings = settings or rd.settings()
    rec = TwoTowerRecommender.load(rd, settings)
    catalogue = ItemCatalogue.load(rd.require(artifacts.ITEMS))
    if list(catalogue.item_ids) != list(rec.space.item_ids):
        raise ServeError(f"{artifacts.ITEMS.at(rd)} changed since `colisten train-2t`: retrain the model")
    import pyarrow.parquet as pq

    history = pq.read_table(  # Arrow, not pandas: UserStore.build maps it without the GIL
        rd.require(artifacts.HISTORY), columns=["user_id", "item_id", "event", "timestamp"]
    )
    users = UserStore.build(rec.users, history, catalogue)
    # the recommender's batch path (reference features, the fast path's check) reads the same
    # history: hand it this table instead of a second read and sort of the Parquet file
    rec.use_history(history)
    del history

    graph = None
    if artifacts.GRAPH_NUM_NODES.at(rd).exists():
        graph = CoListeningGraph.load(artifacts.GRAPH_CSR.at(rd))
    else:
        log.warning("%s has no co-listening graph: explanations use embedding similarity only", rd.root)
    embeddings = None
    if artifacts.HGNN_EMBEDDINGS.at(rd).exists():
        embeddings = np.load(artifacts.HGNN_EMBEDDINGS.at(rd)).astype(np.float32)
        norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
        embeddings = embeddings / np.maximum(norms, 1e-12)
        if embeddings.shape[0] != len(catalogue):
            raise ServeError(
                f"{artifacts.HGNN_EMBEDDINGS.at(rd)} has {embeddings.shape[0]} rows for "
                f"{len(catalogue)} items"
            )

    space = rec.space
    user_rows = rec.users.set_index(rec.users["user_id"].astype(str)).loc[users.user_ids]
    user_categorical = np.zeros((len(users), 2), dtype=np.int64)
    user_categorical[:, 0] = age_bucket(users.age, space)
    codes = {c: i + 1 for i, c in enumerate(space.countries)}
    user_categorical[:, 1] = [0 if c is None else codes.get(c, 0) for c in users.country]
    if space.taste_dim and "taste_vector" in user_rows.columns:
        user_taste = taste_matrix(user_rows["taste_vector"], space.taste_dim)
    else:
        user_taste = np.zeros((len(users), space.taste_dim + 1), dtype=np.float32)

    def rec_type_size(item_type: str) -> int:
        lo, hi = catalogue.type_ranges[item_type]
        return hi - lo

    consumed_events = set(space.strong_events)
    if rec.retrieval.exclude_events == "any":
        consumed_events |= set(space.weak_events)

    code_tables = _code_tables(users.event_names, space, consumed_events)
    bundle = ModelBundle(
        run=rd.root,
        version=version,
        trained_at=rd.manifest().get("stages", {}).get("train-2t", {}).get("finished_at"),
        settings=settings,
        recommender=rec,
        catalogue=catalogue,
        users=users,
        graph=graph,
        item_embeddings=embeddings,
        explainer=Explainer(catalogue, graph, embeddings, settings.serve.max_reasons),
        searchers={
            t: (
                rec.ann_index(t) if rec_type_size(t) >= rec.retrieval.exact_below else None,
                np.ascontiguousarray(rec.item_vectors(t)[1], dtype=np.float32),
            )
            for t in rec.item_types
        },
        realtime=None,
        user_categorical=user_categorical,
        user_taste=user_taste,
        consumed_events=frozenset(consumed_events),
        kind_of_event=event_kind_map(space),
        _code_tables=code_tables,
        load_seconds=0.0,
        known_history=KnownHistories.build(users, code_tables[1]),
    )
    n_verify = settings.serve.verify_users if verify_users is None else verify_users
    realtime = _verified_realtime(bundle, n_verify) if settings.serve.user_features == "fast" else None
    object.__setattr__(bundle, "realtime", realtime)
    if realtime is not None:
        object.__setattr__(bundle, "tower", _verified_tower(bundle, n_verify))
    if 0 < len(users) <= settings.serve.known_user_vectors:
        vectors = np.ascontiguousarray(rec.user_vectors(users.user_ids), dtype=np.float32)
        object.__setattr__(bundle, "known_vectors", vectors)
    object.__setattr__(bundle, "load_seconds", time.perf_counter() - t0)
    return bundle


def _code_tables(
    event_names: np.ndarray, space: Any, consumed_events: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per stored event name: the model's event kind and whether it marks an item consumed."""
    kind_of_event = event_kind_map(space)
    kinds = np.asarray([kind_of_event.get(e, -1) for e in event_names], dtype=np.int64)
    consumed = np.asarray([e in consumed_events for e in event_names], dtype=bool)
    return kinds, consumed


def _verified_realtime(bundle: ModelBundle, n_users: int) -> Any | None:
    """The fast feature path if it reproduces the batch path exactly on a sample of users."""
    from colisten.serve.realtime import RealtimeUserFeatures

    realtime = RealtimeUserFeatures(bundle.recommender.space)
    if n_users <= 0:
        return realtime
    users = bundle.users
    sample = _verification_sample(users, n_users)
    if sample.size == 0:
        return realtime
    reference = bundle.recommender.user_features(users.user_ids[sample])
    for row, u in enumerate(sample):
        q = bundle.known_user_query(int(u))
        f = realtime.compute(q.items, q.kinds, bundle.user_categorical[u], bundle.user_taste[u], q.timestamps)
        expected = csr_rows(reference.history, [row])
        if not (
            np.array_equal(f.dense[0], reference.dense[row])
            and np.array_equal(f.categorical[0], reference.categorical[row])
            and len(f.history) == len(expected)
            and all(np.array_equal(a, b) for a, b in zip(f.history[1:], expected[1:], strict=True))
        ):
            log.warning(
                "real-time features differ from the two-tower batch path for user %s: "
                "serving with the slower reference path",
                users.user_ids[u],
            )
            return None
    return realtime


def _verification_sample(users: UserStore, n_users: int) -> np.ndarray:
    """Rows of `n_users` users with a history (a fixed random draw) and up to 5 without one."""
    with_history = np.flatnonzero(np.diff(users.indptr) > 0)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.permutation(with_history)[:n_users])
    return np.r_[sample, np.flatnonzero(np.diff(users.indptr) == 0)[:5]].astype(np.int64)


def _verified_tower(bundle: ModelBundle, n_users: int) -> Any | None:
    """The module-free user tower if it gives the modules' vectors bit for bit on a sample of users
    (and on a cold-start query); None (the modules serve) when it differs or does not apply."""
    from colisten.serve.tower import OneUserTower

    tower = OneUserTower.of(bundle.recommender.model)
    if tower is None or n_users <= 0:
        return tower
    realtime = bundle.realtime
    cold = realtime.compute(
        np.zeros(0, np.int64), np.zeros(0, np.int64), realtime.categorical(None, None), realtime.taste(None)
    )
    checks = [("a cold-start user", cold)]
    for u in _verification_sample(bundle.users, n_users):
        q = bundle.known_user_query(int(u))
        f = realtime.compute(q.items, q.kinds, bundle.user_categorical[u], bundle.user_taste[u], q.timestamps)
        checks.append((f"user {bundle.users.user_ids[u]}", f))
    for who, f in checks:
        fast, reference = tower(f), bundle.module_user_vector(f)
        if fast.dtype != reference.dtype or not np.array_equal(fast, reference):
            log.warning(
                "the module-free user tower differs from the model's modules for %s: "
                "serving with the modules",
                who,
            )
            return None
    return tower


def _exact_top_k_one(
    vector: np.ndarray, items: np.ndarray, k: int, exclude: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """retrieval.exact.exact_top_k for one query (same products, same torch.topk), minus its batching:
    (indices int64 [k], scores float32 [k]), -1 / -inf past the items left after `exclude` (type
    indices, all within [0, len(items)))."""
    import torch

    query = np.ascontiguousarray(vector, dtype=np.float32)[None, :]
    scores = torch.from_numpy(query) @ torch.from_numpy(items).T
    if exclude is not None and exclude.size:
        scores.numpy()[0, exclude] = -np.inf
    top = torch.topk(scores, k, dim=1, largest=True, sorted=True)
    idx, values = top.indices.numpy()[0], top.values.numpy()[0]
    idx[~np.isfinite(values)] = -1
    return idx, values


def _release_memory() -> None:
    """Hand the freed model's memory back to the OS after a swap. Without it the allocators keep
    it (Arrow's mimalloc pool, glibc's heap): the demo server's RSS grew 18% over four reloads
    of the same-sized model, flat once released (bench/RESULTS.md, soak)."""
    import ctypes

    import pyarrow as pa

    # no gc.collect(): a full collection holds the GIL for as long as it walks the heap (the
    # bundle has no reference cycles; it is freed by reference count)
    pa.default_memory_pool().release_unused()
    with suppress(OSError, AttributeError):  # not glibc (macOS, musl): pages are kept
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# The GIL switch interval while a reload loads (Python's default is 5 ms).
RELOAD_SWITCH_INTERVAL_S = 0.0005


@contextmanager
def background_priority():
    """Run the body (a model load, in a thread of its own) behind the requests being served.

    Two things stretch requests during a reload on a machine with few cores: the OS gives the
    loading thread cores the serving thread needs, and whenever the loader holds the GIL a
    request waits up to the switch interval (5 ms) at each of its handovers. So the thread's nice
    value goes to 19 (Linux schedules threads by their own nice value; it cannot be raised back
    without privileges, hence a thread of its own) and the process's switch interval drops to
    0.5 ms until the load ends.
    """
    import sys

    with suppress(OSError, AttributeError):  # not Linux: the thread keeps its priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    # The interval is the process's: loads that overlap (a test's, a server's) share one short
    # interval; the first to start saves the old one and the last to end restores it.
    global _loads_running, _interval_before
    with _SWITCH_LOCK:
        if _loads_running == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval_before, RELOAD_SWITCH_INTERVAL_S))
        _loads_running += 1
    try:
        yield
    finally:
        with _SWITCH_LOCK:
            _loads_running -= 1
            if _loads_running == 0:
                sys.setswitchinterval(_interval_before)


_SWITCH_LOCK = threading.Lock()
_loads_running = 0  # loads inside background_priority now
_interval_before = 0.005  # the switch interval before the first of them started


@dataclass
class ReloadStatus:
    """What the last reload did (shown by GET /admin/reload and /healthz)."""

    state: str = "idle"  # idle | loading | swapped | failed
    run: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    previous_version: str | None = None
    version: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class ReloadInProgress(ServeError):
    """A reload was requested while another one is still loading."""


class ModelState:
    """The current ModelBundle behind one reference, swapped atomically by `reload`."""

    def __init__(
        self,
        bundle: ModelBundle,
        loader: Callable[[Path], ModelBundle],
        on_swap: Callable[[ModelBundle], None] | None = None,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        """`on_swap(bundle)` runs for the first bundle and after every swap; `on_reload(outcome)`
        after every reload attempt, outcome 'swapped' or 'failed'."""
        self._bundle = bundle
        self._loader = loader
        self._on_swap = on_swap
        self._on_reload = on_reload
        self._reload_lock = threading.Lock()
        self.status = ReloadStatus(version=bundle.version)
        if on_swap:
            on_swap(bundle)

    @property
    def bundle(self) -> ModelBundle:
        """The bundle to answer one request with: read it once per request."""
        return self._bundle

    def reload(self, run: str | Path | None = None) -> ReloadStatus:
        """Load `run` (default: the current run again) and swap it in; the old bundle serves meanwhile.

        Raises ReloadInProgress if another reload is loading; on a failed load the old bundle
        stays and the error is re-raised (and recorded in `status`). The load runs in a thread of
        its own (background_priority), this one waits for it.
        """
        self._begin(run)
        outcome: dict[str, Any] = {}
        self._start_load(run, outcome).join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["status"]

    def reload_in_background(self, run: str | Path | None = None) -> threading.Thread:
        """Start a reload in a daemon thread; ReloadInProgress at once if one is loading.

        A failed load is logged and recorded in `status`; the old model keeps serving.
        """
        self._begin(run)
        return self._start_load(run, None)

    def _start_load(self, run: str | Path | None, outcome: dict[str, Any] | None) -> threading.Thread:
        """_load_and_swap in a daemon thread of its own (background_priority lowers that thread's
        priority for good). Its status or error goes to `outcome`; without one, a failure is logged."""

        def target() -> None:
            try:
                status = self._load_and_swap(run)
            except Exception as e:
                if outcome is None:
                    log.exception("model reload failed")
                else:
                    outcome["error"] = e  # re-raised in the waiting thread
                return
            if outcome is not None:
                outcome["status"] = status

        thread = threading.Thread(target=target, name="colisten-reload", daemon=True)
        thread.start()
        return thread

    def _begin(self, run: str | Path | None) -> None:
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress(f"a reload of {self.status.run} is already in progress")
        target = Path(run) if run is not None else self._bundle.run
        self.status = ReloadStatus(
            state="loading", run=str(target), started_at=time.time(), previous_version=self._bundle.version
        )

    def _load_and_swap(self, run: str | Path | None) -> ReloadStatus:
        """Runs with the reload lock held (taken by `_begin`); releases it."""
        try:
            old = self._bundle
            target = Path(run) if run is not None else old.run
            try:
                with background_priority():
                    new = self._loader(target)
            except Exception as e:
                self.status.state, self.status.error = "failed", str(e)
                self.status.finished_at, self.status.version = time.time(), old.version
                if self._on_reload:
                    self._on_reload("failed")
                raise
            self._bundle = new  # the swap: one reference assignment
            if self._on_swap:
                self._on_swap(new)
            if self._on_reload:
                self._on_reload("swapped")
            self.status.state, self.status.version, self.status.finished_at = (
                "swapped",
                new.version,
                time.time(),
            )
            log.info("model swapped: %s -> %s (%s)", old.version, new.version, new.run)
            del old, new  # the old bundle goes with its last in-flight request
            _release_memory()
            return self.status
        finally:
            self._reload_lock.release()
