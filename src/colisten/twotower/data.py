"""Two-tower training data: label pairs, the users' pre-label features and the validation split.

No leakage: labels are the (user, item) interactions of the last `label_days` of the history
window, and user features come only from events before that label window, mirroring the
evaluation split (features up to `cut`, labels in the hold-out). Optional fold rows
(`label_folds`) label every stream of the history from the rest of it. The hold-out is never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from colisten import artifacts
from colisten.config import Settings, TwoTowerConfig
from colisten.errors import ColistenError
from colisten.io import read_json
from colisten.rundir import RunDir
from colisten.twotower.features import (
    SECONDS_PER_DAY,
    FeatureSpace,
    ItemFeatures,
    UserDense,
    UserFeatures,
    build_feature_space,
    consumed_items,
    csr_concat,
    csr_rows,
    item_features,
    log_popularity,
    user_features,
)


class TrainingError(ColistenError):
    """Training cannot start (no labels, bad label window, incompatible checkpoint)."""


@dataclass
class TrainingData:
    """Everything the loop needs, as arrays. User rows are the label-window users."""

    space: FeatureSpace
    users: UserFeatures  # one row per (label window, user): features as of that window's start
    items: ItemFeatures
    train_pairs: np.ndarray  # int64 [n, 2]: user row, global item index
    val_pairs: np.ndarray  # int64 [m, 2]: users disjoint from train_pairs' users
    consumed: tuple[np.ndarray, np.ndarray]  # CSR per user row: items streamed before label_start
    log_frequency: np.ndarray  # float32 [n_items]: log share of training labels (logQ correction)
    label_start: int  # start of the last (validation) label window
    n_windows: int = 1  # label windows used (rows repeat a user once per window)
    # popularity prior: float32 [n_windows, n_items], each window's as of its start; the window of
    # each user row; and the items' as of the cut (what serving and evaluation rank with)
    window_log_popularity: np.ndarray | None = None
    row_window: np.ndarray | None = None
    serving_log_popularity: np.ndarray | None = None


def build_training_data(
    history: pd.DataFrame,
    users: pd.DataFrame,
    items: pd.DataFrame,
    text_embeddings: np.ndarray,
    hgnn_embeddings: np.ndarray,
    settings: Settings,
    history_start: int,
    cut: int,
) -> TrainingData:
    """Label-window pairs, pre-label user features, item features and the validation split."""
    cfg = settings.twotower
    label_start = cut - cfg.label_days * SECONDS_PER_DAY
    if label_start <= history_start:
        raise TrainingError(
            f"twotower.label_days={cfg.label_days} covers the whole history window "
            f"({(cut - history_start) / SECONDS_PER_DAY:.0f} days): no events are left for user features"
        )
    space = build_feature_space(
        items,
        users,
        hgnn_embeddings if cfg.use_hgnn else text_embeddings,
        strong_events=settings.data.strong_events,
        weak_events=settings.data.weak_events,
        use_weak_signals=cfg.use_weak_signals,
        weak_signals_own_mean=cfg.weak_signals_own_mean,
        age_buckets=cfg.age_buckets,
        use_taste_vector=cfg.use_taste_vector,
        history_embedding_source="hgnn" if cfg.use_hgnn else "text",
        recency_half_life=cfg.recency_half_life,
        recency_means=cfg.recency_means,
    )
    label_ev = settings.data.strong_events + (settings.data.weak_events if cfg.label_events == "any" else [])
    label_codes = None
    if cfg.label_types is not None:
        unknown = sorted(set(cfg.label_types) - set(space.item_types))
        if unknown:
            raise TrainingError(
                f"twotower.label_types names unknown item types {unknown}; known: {space.item_types}"
            )
        label_codes = [space.item_types.index(t) for t in cfg.label_types]
    target = settings.data.target_type
    cold_code = space.item_types.index(target) if cfg.cold_copies and target in space.item_types else None

    # Label windows step back from the cut by label_days; window k's labels are its own
    # interactions and its users' features come only from events before its start.
    ts = history["timestamp"].to_numpy(dtype=np.int64)
    is_label_event = history["event"].isin(label_ev).to_numpy()
    windows = []

    def add_window(is_label: np.ndarray, is_before: np.ndarray, as_of: int, equal_recency=False) -> None:
        """Label events `is_label`, features and popularity prior from the events `is_before`;
        `equal_recency`: every history item's recency weight is 1."""
        windows.append(
            (
                *_label_window(
                    history,
                    is_label,
                    is_before,
                    as_of,
                    users,
                    space,
                    cfg,
                    label_codes,
                    cold_code,
                    equal_recency,
                ),
                log_popularity(history.loc[is_before], space, start=history_start, as_of=as_of),
            )
        )

    for k in range(cfg.label_windows):
        w_end = cut - k * cfg.label_days * SECONDS_PER_DAY
        w_start = w_end - cfg.label_days * SECONDS_PER_DAY
        if k > 0 and w_start - history_start < cfg.label_min_feature_days * SECONDS_PER_DAY:
            break  # too little history left before this window for meaningful features
        add_window((ts >= w_start) & (ts < w_end) & is_label_event, ts < w_start, w_start)
    # Fold rows (label_folds = K): each (user, item) pair of the history falls in one of K seeded
    # folds; fold f's labels are its streams, its users' features and prior come from every other
    # fold. Calendar windows only label the last weeks; folds label every stream of the history
    # (each exactly once), the way FISM / EASE learn item-item structure from whole histories.
    # A fold's labels come from any time of the history, so its rows weigh every history item
    # alike (recency_half_life): recency is learned from the windows, which predict what follows.
    if cfg.label_folds:
        fold = label_fold(history, cfg.label_folds, cfg.seed)
        for f in range(cfg.label_folds):
            add_window((fold == f) & is_label_event, fold != f, cut, equal_recency=True)

    # validation users: disjoint from training users (in every window), chosen by seed among the
    # last window's label users, so the validation set does not depend on label_windows
    last_feats, last_pairs, _, last_n_real, _ = windows[0]
    last_ids, last_pairs = last_feats.user_ids, last_pairs[last_pairs[:, 0] < last_n_real]  # no copies
    pair_user_ids = np.unique(last_ids[np.unique(last_pairs[:, 0])]) if len(last_pairs) else last_ids[:0]
    rng = np.random.default_rng(cfg.seed)
    n_val = int(math.ceil(cfg.validation_fraction * len(pair_user_ids))) if len(pair_user_ids) >= 2 else 0
    val_user_ids = set(rng.permutation(pair_user_ids)[:n_val].tolist())

    dense, categorical, row_ids, consumed_parts, history_parts = [], [], [], [], []
    row_window, window_pop = [], []
    train_parts, val_parts, offset = [], [], 0
    for k, (feats, pairs, window_consumed, n_real, pop) in enumerate(windows):
        is_val = np.isin(feats.user_ids[pairs[:, 0]], list(val_user_ids)) if len(pairs) else np.zeros(0, bool)
        train_parts.append(pairs[~is_val] + [offset, 0])  # a validation user's cold copy too
        if k == 0:
            val_parts.append(pairs[is_val & (pairs[:, 0] < n_real)] + [offset, 0])
        dense.append(feats.dense)
        categorical.append(feats.categorical)
        row_window.append(np.full(len(feats.user_ids), k, np.int64))
        window_pop.append(pop)
        row_ids.append(feats.user_ids)
        consumed_parts.append(window_consumed)
        history_parts.append(feats.history)
        offset += len(feats.user_ids)
    consumed = csr_concat(consumed_parts)
    user_dense = UserDense.concat(dense)
    feats = UserFeatures(
        user_ids=np.concatenate(row_ids),
        dense=user_dense.materialise() if user_dense.nbytes <= cfg.user_table_mb * 2**20 else user_dense,
        categorical=np.concatenate(categorical),
        history=csr_concat(history_parts),
    )
    train_pairs = np.concatenate(train_parts).astype(np.int64)
    val_pairs = np.concatenate(val_parts).astype(np.int64)
    label_start = cut - cfg.label_days * SECONDS_PER_DAY
    if len(train_pairs) < 2:
        raise TrainingError(
            f"only {len(train_pairs)} training pairs: the last {cfg.label_days} days of the history "
            f"window hold too few {'/'.join(label_ev)} events on new items; raise twotower.label_days "
            "or use a longer history"
        )

    log_frequency = (cfg.logq_weight * np.log(label_share(train_pairs, space.n_items))).astype(np.float32)
    item_feats = item_features(items, text_embeddings, hgnn_embeddings if cfg.use_hgnn else None, space)
    item_feats.log_popularity = window_pop[0]  # validation pairs are the last window's
    return TrainingData(
        space=space,
        users=feats,
        items=item_feats,
        train_pairs=train_pairs,
        val_pairs=val_pairs,
        consumed=consumed,
        log_frequency=log_frequency,
        label_start=label_start,
        n_windows=len(windows),
        window_log_popularity=np.stack(window_pop),
        row_window=np.concatenate(row_window),
        serving_log_popularity=log_popularity(history, space, start=history_start, as_of=cut),
    )


def _label_window(
    history: pd.DataFrame,
    is_label: np.ndarray,
    is_before: np.ndarray,
    as_of: int,
    users: pd.DataFrame,
    space: FeatureSpace,
    cfg: TwoTowerConfig,
    label_codes: list[int] | None,
    cold_code: int | None = None,
    equal_recency: bool = False,
) -> tuple[UserFeatures, np.ndarray, tuple[np.ndarray, np.ndarray], int]:
    """One label window: the events `is_label` are its labels, the events `is_before` its users'
    features and consumed items (as of `as_of`). Returns the features, the (user row, item) label
    pairs, the consumed items and how many rows are real users (the rest: cold copies).

    Cold copies (twotower.cold_copies, `cold_code` = the target type): every user with target-type
    history and target-type labels gets a second row whose features leave the target-type history
    out, labelled with the target-type labels alone. Cold users of the target type have no
    target-type labels in history (they never streamed one), so without copies the model never
    sees a target-type label after a history without the type: the cold-start case it must serve.
    """
    labels = history.loc[is_label]
    label_item = space.item_index.get_indexer(labels["item_id"])
    keep = label_item >= 0
    if label_codes is not None:
        keep &= np.isin(space.item_type_codes[np.maximum(label_item, 0)], label_codes)
    label_user_ids = labels["user_id"].to_numpy(dtype=object)[keep]
    label_item = label_item[keep]

    user_ids = np.array(sorted(set(label_user_ids)), dtype=object)
    before = history.loc[is_before]
    feats = user_features(before, users, user_ids, space, as_of=as_of, equal_recency=equal_recency, lazy=True)
    consumed = consumed_items(before, user_ids, space, which="strong", as_of=as_of)
    user_row = pd.Index(user_ids).get_indexer(label_user_ids)
    pairs = (
        np.unique(np.stack([user_row, label_item], axis=1), axis=0)
        if len(user_row)
        else np.zeros((0, 2), np.int64)
    )
    if cfg.label_new_items_only and len(pairs):
        pairs = pairs[~_in_csr(consumed, pairs[:, 0], pairs[:, 1])]
    pairs = pairs.astype(np.int64)
    n_real = len(user_ids)
    if cold_code is None or not len(pairs):
        return feats, pairs, consumed, n_real
    c_indptr, c_indices = consumed
    in_type = space.item_type_codes[c_indices] == cold_code
    warm = np.bincount(np.repeat(np.arange(n_real), np.diff(c_indptr))[in_type], minlength=n_real) > 0
    labels = pairs[space.item_type_codes[pairs[:, 1]] == cold_code]
    labels = labels[warm[labels[:, 0]]]
    rows = np.unique(labels[:, 0])
    if not len(rows):
        return feats, pairs, consumed, n_real
    target_items = space.item_ids[space.item_type_codes == cold_code]
    stripped = before.loc[~before["item_id"].isin(target_items)]
    copies = user_features(
        stripped, users, user_ids[rows], space, as_of=as_of, equal_recency=equal_recency, lazy=True
    )
    copy_pairs = np.stack([n_real + np.searchsorted(rows, labels[:, 0]), labels[:, 1]], axis=1)
    merged = UserFeatures(
        user_ids=np.concatenate([feats.user_ids, copies.user_ids]),
        dense=UserDense.concat([feats.dense, copies.dense]),
        categorical=np.concatenate([feats.categorical, copies.categorical]),
        history=csr_concat([feats.history, copies.history]),
    )
    # a copy's consumed items stay its user's: its labels are still new items only
    consumed = csr_concat([consumed, csr_rows(consumed, rows)])
    return merged, np.concatenate([pairs, copy_pairs]), consumed, n_real


def label_fold(history: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """Each event's fold in [0, k): seeded per (user, item) pair, so all of a pair's events (its
    streams and weak signals) fall in one fold and a fold's labels never leak into its features."""
    pair = (
        history.groupby(["user_id", "item_id"], sort=False, observed=True).ngroup().to_numpy()
    )  # first-seen order
    return np.random.default_rng(seed).integers(0, k, pair.max(initial=-1) + 1)[pair]


def label_share(train_pairs: np.ndarray, n_items: int) -> np.ndarray:
    """Each item's share of the training labels (an item without any counts as one label), the
    chance of being drawn into a batch that the logQ correction divides out."""
    freq = np.bincount(train_pairs[:, 1], minlength=n_items).astype(np.float64)
    return np.maximum(freq, 1.0) / freq.sum()


def select_rows(users: UserFeatures, rows: np.ndarray) -> UserFeatures:
    """The UserFeatures of rows `rows` (history CSR included)."""
    history = csr_rows(users.history, rows) if users.history is not None else None
    return UserFeatures(users.user_ids[rows], users.dense[rows], users.categorical[rows], history=history)


def read_stage_inputs(run: RunDir, cfg: TwoTowerConfig) -> dict[str, Any]:
    """The earlier stages' artifacts the two-tower stage reads (never split/holdout.parquet)."""
    import pyarrow.parquet as pq

    items = pq.read_table(run.require(artifacts.ITEMS)).to_pandas()
    users = pq.read_table(run.require(artifacts.USERS)).to_pandas()
    text = np.load(run.require(artifacts.TEXT_EMBEDDINGS))
    hgnn = np.load(run.require(artifacts.HGNN_EMBEDDINGS)) if cfg.use_hgnn else None
    for name, arr in ((artifacts.TEXT_EMBEDDINGS.path, text), (artifacts.HGNN_EMBEDDINGS.path, hgnn)):
        if arr is not None and arr.shape[0] != len(items):
            raise TrainingError(
                f"{run / name} has {arr.shape[0]} rows but data/items.parquet has {len(items)} items; "
                "rerun the stage that writes it"
            )
    return {"items": items, "users": users, "text": text, "hgnn": hgnn}


def load_training_data(run: RunDir, settings: Settings, history: pd.DataFrame | None = None) -> TrainingData:
    """The run's training data as `train-2t` builds it: features and labels from split/history.parquet
    (`history`: those events as already read; default read_coded_history)."""
    inputs = read_stage_inputs(run, settings.twotower)
    split = read_json(run.require(artifacts.SPLIT))
    history = read_coded_history(run) if history is None else history
    return build_training_data(
        history,
        inputs["users"],
        inputs["items"],
        inputs["text"],
        inputs["hgnn"],
        settings,
        history_start=int(split["history_start"]),
        cut=int(split["cut"]),
    )


def read_coded_history(run: RunDir) -> pd.DataFrame:
    """split/history.parquet with user_id, item_id and event as pandas categoricals: every window
    and fold cut from it copies 4-byte codes rather than strings, and each id lookup
    (`Index.get_indexer`) resolves the distinct ids once, not every event (the 20k-user world:
    28 s instead of 37 s to build the training data, the same arrays bit for bit)."""
    import pyarrow.parquet as pq

    coded = ["user_id", "item_id", "event"]
    table = pq.read_table(
        run.require(artifacts.HISTORY), columns=[*coded, "timestamp"], read_dictionary=coded
    )
    return table.to_pandas()


def _in_csr(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each (row, col): is col among row's CSR entries?"""
    indptr, indices = csr
    n_cols = int(max(indices.max(initial=0), cols.max(initial=0))) + 1
    csr_rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return np.isin(rows.astype(np.int64) * n_cols + cols, csr_rows * n_cols + indices)
