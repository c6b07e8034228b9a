"""Two-tower training, readable top to bottom: labels, features, model, loop, validation, checkpoints.

No leakage: labels are the (user, item) interactions of the last `label_days` of the history
window, and user features come only from events before that label window, mirroring the
evaluation split (features up to `cut`, labels in the hold-out). The hold-out is never read.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from colisten.config import Settings, TwoTowerConfig
from colisten.console import epoch_timing
from colisten.device import resolve_device
from colisten.errors import ColistenError
from colisten.io import read_json, save_numpy_atomic, save_torch_atomic, write_json_atomic
from colisten.run import RunDir
from colisten.twotower.features import (
    SECONDS_PER_DAY,
    FeatureSpace,
    ItemFeatures,
    UserFeatures,
    build_feature_space,
    consumed_items,
    csr_concat,
    csr_rows,
    item_features,
    log_popularity,
    user_features,
)

# Settings that may change between a checkpoint and `--resume` without invalidating it.
RESUMABLE_CHANGES = {"epochs", "device"}


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
    for k in range(cfg.label_windows):
        w_end = cut - k * cfg.label_days * SECONDS_PER_DAY
        w_start = w_end - cfg.label_days * SECONDS_PER_DAY
        if k > 0 and w_start - history_start < cfg.label_min_feature_days * SECONDS_PER_DAY:
            break  # too little history left before this window for meaningful features
        windows.append(
            (
                *_label_window(
                    history, ts, is_label_event, w_start, w_end, users, space, cfg, label_codes, cold_code
                ),
                log_popularity(history, space, start=history_start, as_of=w_start),  # prior as of w_start
            )
        )

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
    feats = UserFeatures(
        user_ids=np.concatenate(row_ids),
        dense=np.concatenate(dense),
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
    ts: np.ndarray,
    is_label_event: np.ndarray,
    w_start: int,
    w_end: int,
    users: pd.DataFrame,
    space: FeatureSpace,
    cfg: TwoTowerConfig,
    label_codes: list[int] | None,
    cold_code: int | None = None,
) -> tuple[UserFeatures, np.ndarray, tuple[np.ndarray, np.ndarray], int]:
    """One label window [w_start, w_end): its users' features and consumed items as of w_start,
    its (user row, item) label pairs, and how many rows are real users (the rest: cold copies).

    Cold copies (twotower.cold_copies, `cold_code` = the target type): every user with target-type
    history and target-type labels gets a second row whose features leave the target-type history
    out, labelled with the target-type labels alone. Cold users of the target type have no
    target-type labels in history (they never streamed one), so without copies the model never
    sees a target-type label after a history without the type: the cold-start case it must serve.
    """
    labels = history.loc[(ts >= w_start) & (ts < w_end) & is_label_event]
    label_item = space.item_index.get_indexer(labels["item_id"])
    keep = label_item >= 0
    if label_codes is not None:
        keep &= np.isin(space.item_type_codes[np.maximum(label_item, 0)], label_codes)
    label_user_ids = labels["user_id"].to_numpy(dtype=object)[keep]
    label_item = label_item[keep]

    user_ids = np.array(sorted(set(label_user_ids)), dtype=object)
    before = history.loc[ts < w_start]
    feats = user_features(before, users, user_ids, space, as_of=w_start)
    consumed = consumed_items(before, user_ids, space, which="strong", as_of=w_start)
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
    copies = user_features(stripped, users, user_ids[rows], space, as_of=w_start)
    copy_pairs = np.stack([n_real + np.searchsorted(rows, labels[:, 0]), labels[:, 1]], axis=1)
    merged = UserFeatures(
        user_ids=np.concatenate([feats.user_ids, copies.user_ids]),
        dense=np.concatenate([feats.dense, copies.dense]),
        categorical=np.concatenate([feats.categorical, copies.categorical]),
        history=csr_concat([feats.history, copies.history]),
    )
    # a copy's consumed items stay its user's: its labels are still new items only
    consumed = csr_concat([consumed, csr_rows(consumed, rows)])
    return merged, np.concatenate([pairs, copy_pairs]), consumed, n_real


def new_model(data: TrainingData, cfg: TwoTowerConfig):
    """An untrained model sized for `data` (seeded)."""
    import torch

    from colisten.twotower.model import TwoTowerModel

    torch.manual_seed(cfg.seed)
    model = TwoTowerModel(
        user_dense_dim=data.users.dense.shape[1],
        user_categorical_sizes=data.space.user_categorical_sizes,
        item_dense_dim=data.items.dense.shape[1],
        item_categorical_sizes=data.space.item_categorical_sizes,
        categorical_dim=cfg.categorical_dim,
        tower_dims=cfg.tower_dims,
        popularity_prior=cfg.popularity_prior,
        n_item_types=len(data.space.item_types),
        temperature=cfg.temperature,
        n_items=data.space.n_items,
        id_dim=cfg.id_dim,
        id_pooling=cfg.id_pooling,
    )
    model.set_item_types(torch.from_numpy(data.space.item_type_codes))
    return model


def _bag(indptr, indices, rows):
    """EmbeddingBag inputs (item indices, offsets) of CSR rows `rows`: features.csr_rows in torch
    tensors, on the training device (it runs once per batch)."""
    import torch

    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    offsets = torch.cumsum(lengths, 0) - lengths
    at = torch.arange(int(lengths.sum()), device=indptr.device)
    at = at - torch.repeat_interleave(offsets - starts, lengths)
    return indices[at], offsets


def label_share(train_pairs: np.ndarray, n_items: int) -> np.ndarray:
    """Each item's share of the training labels (an item without any counts as one label), the
    chance of being drawn into a batch that the logQ correction divides out."""
    freq = np.bincount(train_pairs[:, 1], minlength=n_items).astype(np.float64)
    return np.maximum(freq, 1.0) / freq.sum()


def candidate_log_counts(data: TrainingData, cfg: TwoTowerConfig) -> np.ndarray:
    """The logQ correction of each item as a batch candidate: log of its expected count among a
    batch's columns, batch_size * (label share) + sampled_negatives / n_items, times logq_weight.
    Without sampled negatives it is log(label share) plus a constant, which softmax ignores."""
    if not cfg.sampled_negatives:
        return data.log_frequency
    share = label_share(data.train_pairs, data.space.n_items)
    expected = cfg.batch_size * share + cfg.sampled_negatives / data.space.n_items
    return (cfg.logq_weight * np.log(expected)).astype(np.float32)


def sampled_negatives(
    cfg: TwoTowerConfig, n_items: int, n_batches: int, stream: int, epoch: int
) -> np.ndarray | None:
    """Uniform negatives [n_batches, sampled_negatives], a function of (seed, stream, epoch) so that
    a resumed run draws the same ones; None without them."""
    if not cfg.sampled_negatives:
        return None
    rng = np.random.default_rng([cfg.seed, stream, epoch])
    return rng.integers(0, n_items, size=(n_batches, cfg.sampled_negatives), dtype=np.int64)


class _Tensors:
    """The data's arrays on the training device."""

    def __init__(self, data: TrainingData, cfg: TwoTowerConfig, device: str) -> None:
        import torch

        self.user_dense = torch.from_numpy(data.users.dense).to(device)
        self.user_cat = torch.from_numpy(data.users.categorical).to(device)
        self.item_dense = torch.from_numpy(data.items.dense).to(device)
        self.item_cat = torch.from_numpy(data.items.categorical).to(device)
        self.log_frequency = torch.from_numpy(candidate_log_counts(data, cfg)).to(device)
        self.temperature = cfg.temperature
        self.same_type = cfg.negatives_same_type
        self.window_log_popularity = torch.from_numpy(data.window_log_popularity).to(device)
        self.row_window = torch.from_numpy(data.row_window).to(device)
        self.history = tuple(torch.from_numpy(a).to(device) for a in data.users.history)
        self.device = device

    def batch_loss(self, model, pairs: np.ndarray, negatives: np.ndarray | None = None):
        """Loss of one batch of (user row, item) pairs; `negatives`: extra item columns."""
        import torch

        from colisten.twotower.model import in_batch_softmax_loss

        u = torch.from_numpy(pairs[:, 0]).to(self.device)
        i = torch.from_numpy(pairs[:, 1]).to(self.device)
        if negatives is not None:  # columns: the rows' positives, then the sampled negatives
            i = torch.cat([i, torch.from_numpy(negatives).to(self.device)])
        history = _bag(*self.history, u) if model.id_dim else None
        user_vecs = model.encode_users(self.user_dense[u], self.user_cat[u], history)
        item_vecs = model.encode_items(self.item_dense[i], self.item_cat[i], i)
        item_type = self.item_cat[i, 2]
        bias = None
        if model.popularity_prior:  # [rows, items]: each column's prior as of each row's window
            pop = self.window_log_popularity[self.row_window[u][:, None], i[None, :]]
            bias = model.popularity_bias(pop, item_type[None, :])
        exclude = item_type[None, :] != item_type[: len(u), None] if self.same_type else None
        return in_batch_softmax_loss(
            user_vecs, item_vecs, i, self.log_frequency[i], self.temperature, bias, exclude
        )


def item_vectors(model, items: ItemFeatures, device: str = "cpu", batch: int = 8192) -> np.ndarray:
    """Retrieval vectors of every item (float32 [n_items, d (+1 with the popularity prior)])."""
    import torch

    def encode(rows: np.ndarray):
        dense = torch.from_numpy(items.dense[rows]).to(device)
        categorical = torch.from_numpy(items.categorical[rows]).to(device)
        return model.encode_items(dense, categorical, torch.from_numpy(rows).to(device))

    v = _in_batches(model, encode, len(items.dense), batch)
    if not model.popularity_prior:
        return v
    if items.log_popularity is None:
        raise TrainingError("the model has a popularity prior but the item features carry no popularity")
    with torch.inference_mode():
        out = model.serving_items(
            torch.from_numpy(v).to(device),
            torch.from_numpy(items.categorical[:, 2]).to(device),
            torch.from_numpy(items.log_popularity).to(device),
        )
    return out.cpu().numpy().astype(np.float32)


def user_vectors(model, users: UserFeatures, device: str = "cpu", batch: int = 8192) -> np.ndarray:
    """Retrieval vectors of every row of `users` (float32 [n, d (+1 with the popularity prior)])."""
    import torch

    history = None
    if model.id_dim:
        if users.history is None:
            raise TrainingError("a model with learned item vectors (id_dim > 0) needs the users' history")
        history = tuple(torch.from_numpy(a).to(device) for a in users.history)

    def encode(rows: np.ndarray):
        r = torch.from_numpy(rows).to(device)
        return model.encode_users(
            torch.from_numpy(users.dense[rows]).to(device),
            torch.from_numpy(users.categorical[rows]).to(device),
            _bag(*history, r) if history is not None else None,
        )

    u = _in_batches(model, encode, len(users.dense), batch)
    return model.serving_users(torch.from_numpy(u)).numpy()


def _in_batches(model, encode, n: int, batch: int) -> np.ndarray:
    """encode(rows) over all n rows in batches, in inference mode (float32 [n, d])."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, n, batch):
            out.append(encode(np.arange(s, min(s + batch, n))).cpu().numpy())
    d = model.out_dim
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, d), np.float32)


def select_rows(users: UserFeatures, rows: np.ndarray) -> UserFeatures:
    """The UserFeatures of rows `rows` (history CSR included)."""
    history = csr_rows(users.history, rows) if users.history is not None else None
    return UserFeatures(users.user_ids[rows], users.dense[rows], users.categorical[rows], history=history)


def validation_metrics(model, data: TrainingData, cfg: TwoTowerConfig, device: str = "cpu") -> dict[str, Any]:
    """Held-out users' label-window pairs: in-batch loss and HR@10 per item type (full ranking).

    HR@10 ranks every item of the type, minus what the user streamed before the label window:
    the same protocol as the offline evaluation, on a split the model never trained on.
    """
    import torch

    from colisten.retrieval.exact import exact_top_k

    pairs = data.val_pairs
    out: dict[str, Any] = {"val_loss": None, "hr@10": {}}
    if len(pairs) == 0:
        return out
    tensors = _Tensors(data, cfg, device)
    model.eval()
    order = np.random.default_rng([cfg.seed, 1]).permutation(len(pairs))
    starts = range(0, len(order), cfg.batch_size)
    negatives = sampled_negatives(cfg, data.space.n_items, len(starts), 4, 0)  # the same every epoch
    losses, weights = [], []
    with torch.inference_mode():
        for k, s in enumerate(starts):
            b = pairs[order[s : s + cfg.batch_size]]
            if len(b) < 2:
                continue
            losses.append(float(tensors.batch_loss(model, b, None if negatives is None else negatives[k])))
            weights.append(len(b))
    if losses:
        out["val_loss"] = float(np.average(losses, weights=weights))

    users = np.unique(pairs[:, 0])
    users = np.random.default_rng([cfg.seed, 2]).permutation(users)[: cfg.validation_users]
    users.sort()
    sub = select_rows(data.users, users)
    u_vecs = user_vectors(model, sub, device)
    i_vecs = item_vectors(model, data.items, device)
    indptr, indices = data.consumed
    n_items = data.space.n_items
    truth_keys = pairs[:, 0] * n_items + pairs[:, 1]
    for item_type in data.space.item_types:
        lo, hi = data.space.type_range(item_type)
        in_type = (pairs[:, 1] >= lo) & (pairs[:, 1] < hi) & np.isin(pairs[:, 0], users)
        if not in_type.any():
            continue
        rows = np.unique(pairs[in_type, 0])
        excl = []
        for r in rows:
            c = indices[indptr[r] : indptr[r + 1]]
            excl.append(c[(c >= lo) & (c < hi)] - lo)
        top, _ = exact_top_k(
            u_vecs[np.searchsorted(users, rows)], i_vecs[lo:hi], min(10, hi - lo), exclude=excl
        )
        hit = np.isin(rows[:, None] * n_items + top + lo, truth_keys[in_type]) & (top >= 0)
        out["hr@10"][item_type] = float(hit.any(axis=1).mean())
    return out


def train_two_tower(
    data: TrainingData,
    cfg: TwoTowerConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Adam on the in-batch softmax loss; checkpoint every epoch, keep the best validation model.

    Writes out_dir/checkpoint.pt (last epoch, for `--resume`), out_dir/best.pt (lowest validation
    loss) and out_dir/curve.json. Batch order is a function of (seed, epoch), so a resumed run
    sees the same batches as an uninterrupted one.
    """
    import torch
    from tqdm import tqdm

    out_dir = Path(out_dir)
    device = resolve_device(cfg.device, "twotower.device")
    model = new_model(data, cfg).to(device)
    # fused: one kernel over all parameters. On CPU a step of the id_dim=64 model takes 0.69x the time
    # of the default (foreach) Adam, less than the id_dim=0 model took with it (bench/twotower_step.py)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    tensors = _Tensors(data, cfg, device)
    fingerprint = _fingerprint(data, cfg)

    start_epoch, curve = 0, []
    best = {"val_loss": math.inf, "epoch": None}
    ckpt_path = out_dir / "checkpoint.pt"
    if resume:
        if ckpt_path.exists():
            ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
            if ckpt["fingerprint"] != fingerprint:
                changed = sorted(
                    k
                    for k in set(fingerprint) | set(ckpt["fingerprint"])
                    if fingerprint.get(k) != ckpt["fingerprint"].get(k)
                )
                raise TrainingError(
                    f"{ckpt_path} was trained with different settings or data ({', '.join(changed)}); "
                    "rerun without --resume"
                )
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            start_epoch, curve, best = ckpt["epoch"], ckpt["curve"], ckpt["best"]
            log(f"resuming after epoch {start_epoch} of {cfg.epochs}")
        else:
            log(f"no checkpoint at {ckpt_path}: training from scratch")

    n = len(data.train_pairs)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        order = np.random.default_rng([cfg.seed, 0, epoch]).permutation(n)
        batches = [order[s : s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
        batches = [b for b in batches if len(b) >= 2]
        negatives = sampled_negatives(cfg, data.space.n_items, len(batches), 3, epoch)
        total, seen = 0.0, 0
        bar = tqdm(batches, desc=f"2T epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for k, b in enumerate(bar):
            loss = tensors.batch_loss(model, data.train_pairs[b], None if negatives is None else negatives[k])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(b)
            seen += len(b)
            bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
        val = validation_metrics(model, data, cfg, device)
        row = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "val_loss": val["val_loss"],
            "val_hr@10": val["hr@10"],
            "seconds": round(time.perf_counter() - t0, 3),
        }
        curve.append(row)
        score = val["val_loss"] if val["val_loss"] is not None else row["train_loss"]
        if score < best["val_loss"]:
            best = {"val_loss": score, "epoch": epoch + 1}
            save_torch_atomic(
                out_dir / "best.pt",
                {"model": model.state_dict(), "model_config": model.config, "epoch": epoch + 1, "val": val},
            )
        save_torch_atomic(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "curve": curve,
                "best": best,
                "fingerprint": fingerprint,
                "model_config": model.config,
            },
        )
        write_json_atomic(out_dir / "curve.json", curve)
        hr = ", ".join(f"{t} {v:.3f}" for t, v in val["hr@10"].items())
        vl = "n/a" if val["val_loss"] is None else f"{val['val_loss']:.4f}"
        timing = epoch_timing([r["seconds"] for r in curve], epoch + 1, cfg.epochs)
        log(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, val loss {vl}, "
            f"HR@10 {hr} {timing}"
        )
    if not (out_dir / "best.pt").exists():  # zero epochs left and no best saved: keep the last model
        save_torch_atomic(out_dir / "best.pt", {"model": model.state_dict(), "model_config": model.config})
    return {
        "epochs": len(curve),
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "curve": curve,
    }


def load_model(path: str | Path, device: str = "cpu"):
    """A TwoTowerModel (or TwoTowerEnsemble) from best.pt / checkpoint.pt, in eval mode."""
    import torch

    from colisten.twotower.model import TwoTowerEnsemble, TwoTowerModel

    ckpt = torch.load(path, map_location=device, weights_only=False)
    config = ckpt["model_config"]
    if "members" in config:
        model = TwoTowerEnsemble([TwoTowerModel(**c) for c in config["members"]])
    else:
        model = TwoTowerModel(**config)
    model.to(device).load_state_dict(ckpt["model"])
    model.eval()
    return model


def train_ensemble(
    data: TrainingData,
    cfg: TwoTowerConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """train_two_tower itself for one member; for twotower.ensemble = k, member j (seed + j) trains
    into out_dir/members/j (its own checkpoint, best.pt and curve: `--resume` continues each) and
    out_dir/best.pt holds them all as one TwoTowerEnsemble; curve.json is the members' mean."""
    from colisten.twotower.model import TwoTowerEnsemble

    out_dir = Path(out_dir)
    if cfg.ensemble == 1:
        return train_two_tower(data, cfg, out_dir, resume=resume, progress=progress, log=log)
    summaries, members = [], []
    for j in range(cfg.ensemble):
        log(f"ensemble member {j + 1}/{cfg.ensemble} (seed {cfg.seed + j})")
        member_cfg = cfg.model_copy(update={"seed": cfg.seed + j, "ensemble": 1})
        member_dir = out_dir / "members" / str(j)
        summaries.append(
            train_two_tower(data, member_cfg, member_dir, resume=resume, progress=progress, log=log)
        )
        members.append(load_model(member_dir / "best.pt"))
    model = TwoTowerEnsemble(members)
    save_torch_atomic(out_dir / "best.pt", {"model": model.state_dict(), "model_config": model.config})
    curve = _mean_curve([s["curve"] for s in summaries])
    write_json_atomic(out_dir / "curve.json", curve)
    (out_dir / "checkpoint.pt").unlink(missing_ok=True)  # a single model's: not this ensemble's
    losses = [s["best_val_loss"] for s in summaries]
    return {
        "epochs": len(curve),
        "best_epoch": [s["best_epoch"] for s in summaries],
        "best_val_loss": float(np.mean(losses)),
        "curve": curve,
    }


def _mean_curve(curves: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per epoch, the members' mean of every number (dicts of numbers averaged key by key)."""

    def mean(values: list[Any]) -> Any:
        if all(isinstance(v, dict) for v in values):
            return {k: mean([v[k] for v in values if k in v]) for k in values[0]}
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        return float(np.mean(numbers)) if numbers else None

    rows = []
    for epoch_rows in zip(*curves, strict=False):
        row = {k: mean([r.get(k) for r in epoch_rows]) for k in epoch_rows[0] if k != "epoch"}
        rows.append({"epoch": epoch_rows[0]["epoch"], **row})
    return rows


# --- stage: RUN/{data,split,content,hgnn} -> RUN/twotower ------------------------------------------
def read_stage_inputs(run: RunDir, cfg: TwoTowerConfig) -> dict[str, Any]:
    """The earlier stages' artifacts the two-tower stage reads (never split/holdout.parquet)."""
    import pyarrow.parquet as pq

    items = pq.read_table(run.require("data/items.parquet", "validate")).to_pandas()
    users = pq.read_table(run.require("data/users.parquet", "validate")).to_pandas()
    text = np.load(run.require("content/text_embeddings.npy", "embed"))
    hgnn = np.load(run.require("hgnn/item_embeddings.npy", "train-hgnn")) if cfg.use_hgnn else None
    for name, arr in (("content/text_embeddings.npy", text), ("hgnn/item_embeddings.npy", hgnn)):
        if arr is not None and arr.shape[0] != len(items):
            raise TrainingError(
                f"{run / name} has {arr.shape[0]} rows but data/items.parquet has {len(items)} items; "
                "rerun the stage that writes it"
            )
    return {"items": items, "users": users, "text": text, "hgnn": hgnn}


def load_training_data(run: RunDir, settings: Settings) -> TrainingData:
    """The run's training data as `train-2t` builds it: features and labels from split/history.parquet."""
    import pyarrow.parquet as pq

    inputs = read_stage_inputs(run, settings.twotower)
    split = read_json(run.require("split/split.json", "split"))
    history = pq.read_table(
        run.require("split/history.parquet", "split"), columns=["user_id", "item_id", "event", "timestamp"]
    ).to_pandas()
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


def train_stage(
    run: RunDir, settings: Settings, *, resume: bool = False, progress: bool = True, log=print
) -> dict[str, Any]:
    """Train on the run's history and write RUN/twotower (model, features.json, item_vectors.npy)."""
    cfg = settings.twotower
    split = read_json(run.require("split/split.json", "split"))
    t0 = time.perf_counter()
    data = load_training_data(run, settings)
    log(
        f"{len(data.train_pairs)} training / {len(data.val_pairs)} validation label pairs from "
        f"{len(data.users.user_ids)} (user, window) rows in {data.n_windows} label window(s) "
        f"({time.perf_counter() - t0:.1f}s to build features)"
    )
    out_dir = run.stage_dir("twotower")
    # training replaces best.pt epoch by epoch: until it ends, no features.json / item_vectors.npy
    # of an earlier training may claim to belong to it (a killed rerun leaves the stage incomplete)
    for stale in ("features.json", "item_vectors.npy"):
        (out_dir / stale).unlink(missing_ok=True)
    summary = train_ensemble(data, cfg, out_dir, resume=resume, progress=progress, log=log)
    meta = {
        **data.space.to_json(),
        "settings": cfg.model_dump(mode="json"),
        "history_start": int(split["history_start"]),
        "cut": int(split["cut"]),
        "label_start": int(data.label_start),
        "history_days": int(round((int(split["cut"]) - int(split["history_start"])) / SECONDS_PER_DAY)),
        "n_train_pairs": len(data.train_pairs),
        "n_val_pairs": len(data.val_pairs),
        "n_label_users": len(np.unique(data.users.user_ids)),
        "n_label_windows": int(data.n_windows),
    }
    # written after training, so features.json always describes the saved best.pt
    write_json_atomic(out_dir / "features.json", meta)
    model = load_model(out_dir / "best.pt")
    serving_items = dataclasses.replace(data.items, log_popularity=data.serving_log_popularity)
    save_numpy_atomic(out_dir / "item_vectors.npy", item_vectors(model, serving_items))
    last = summary["curve"][-1] if summary["curve"] else {}
    return {
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "best_val_loss": summary["best_val_loss"],
        "val_hr@10": last.get("val_hr@10"),
        "n_train_pairs": len(data.train_pairs),
        "n_val_pairs": len(data.val_pairs),
    }


def _fingerprint(data: TrainingData, cfg: TwoTowerConfig) -> dict[str, Any]:
    d = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    d["n_train_pairs"] = len(data.train_pairs)
    d["n_items"] = data.space.n_items
    d["user_dense_dim"] = int(data.users.dense.shape[1])
    return d


def _in_csr(csr: tuple[np.ndarray, np.ndarray], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each (row, col): is col among row's CSR entries?"""
    indptr, indices = csr
    n_cols = int(max(indices.max(initial=0), cols.max(initial=0))) + 1
    csr_rows = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    return np.isin(rows.astype(np.int64) * n_cols + cols, csr_rows * n_cols + indices)
