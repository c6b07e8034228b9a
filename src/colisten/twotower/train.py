"""Two-tower training loop: Adam on the in-batch softmax loss, validation every epoch, checkpoints
for `--resume`, and ensembles of seeds. Its data comes from twotower/data.py, its model from
twotower/model.py.
"""

from __future__ import annotations

import math
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import TwoTowerConfig
from colisten.console import epoch_timing
from colisten.device import resolve_device
from colisten.io import save_torch_atomic, write_json_atomic
from colisten.twotower.data import TrainingData, TrainingError, label_share, select_rows
from colisten.twotower.model import history_bag, item_vectors, load_model, user_vectors

# Settings that may change between a checkpoint and `--resume` without invalidating it.
RESUMABLE_CHANGES = {
    "epochs",
    "patience",
    "device",
    "user_table_mb",
    "member_workers",
}  # when to stop, where, how


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
        history_recency=cfg.recency_half_life > 0,
    )
    model.set_item_types(torch.from_numpy(data.space.item_type_codes))
    return model


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

        dense = data.users.dense  # a UserDense past twotower.user_table_mb: rows computed per batch
        self._user_dense = torch.from_numpy(dense).to(device) if isinstance(dense, np.ndarray) else dense
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

    def user_dense(self, u):
        """The dense inputs of user rows `u` (a tensor on the device)."""
        import torch

        if isinstance(self._user_dense, torch.Tensor):
            return self._user_dense[u]
        return torch.from_numpy(self._user_dense[u.cpu().numpy()]).to(self.device)

    def batch_loss(self, model, pairs: np.ndarray, negatives: np.ndarray | None = None):
        """Loss of one batch of (user row, item) pairs; `negatives`: extra item columns."""
        import torch

        from colisten.twotower.model import in_batch_softmax_loss

        u = torch.from_numpy(pairs[:, 0]).to(self.device)
        i = torch.from_numpy(pairs[:, 1]).to(self.device)
        if negatives is not None:  # columns: the rows' positives, then the sampled negatives
            i = torch.cat([i, torch.from_numpy(negatives).to(self.device)])
        history = history_bag(self.history, u) if model.id_dim else None
        user_vecs = model.encode_users(self.user_dense(u), self.user_cat[u], history)
        item_vecs = model.encode_items(self.item_dense[i], self.item_cat[i], i)
        bias, exclude = self._prior_and_mask(model, u, i, slice(0, len(u)))
        return in_batch_softmax_loss(
            user_vecs, item_vecs, i, self.log_frequency[i], self.temperature, bias, exclude
        )

    def _prior_and_mask(self, model, u, i, rows: slice):
        """The popularity prior [rows, columns] (each column's as of each row's window) and the
        same-type mask of the rows' columns; `rows`: which columns are the rows' positives."""
        item_type = self.item_cat[i, 2]
        bias = None
        if model.popularity_prior:
            pop = self.window_log_popularity[self.row_window[u][:, None], i[None, :]]
            bias = model.popularity_bias(pop, item_type[None, :])
        exclude = item_type[None, :] != item_type[rows, None] if self.same_type else None
        return bias, exclude

    def sharded_batch_loss(
        self, model, pairs: np.ndarray, negatives: np.ndarray | None, rank: int, world: int
    ):
        """This DDP rank's share of batch_loss over the whole global batch `pairs`.

        The rank encodes only its contiguous slice of rows (users and their positives); the
        positives' vectors of every rank are all-gathered with their gradients, so each row's
        softmax spans all len(pairs) columns as in one process. The sampled negatives are encoded
        on every rank (each uses them for its rows only). The share is sum / len(pairs) * world:
        DDP's mean of the ranks' gradients is then the gradient of the global batch's mean loss.
        """
        import torch
        import torch.nn.functional as F
        from torch.distributed.nn.functional import all_gather

        from colisten.twotower.model import in_batch_softmax_loss

        n = len(pairs)
        bounds = [r * n // world for r in range(world + 1)]
        sizes = np.diff(bounds)
        lo, hi = bounds[rank], bounds[rank + 1]
        i = torch.from_numpy(pairs[:, 1]).to(self.device)
        u = torch.from_numpy(pairs[lo:hi, 0]).to(self.device)
        mine = i[lo:hi]
        history = history_bag(self.history, u) if model.id_dim else None
        user_vecs = model.encode_users(self.user_dense(u), self.user_cat[u], history)
        own = model.encode_items(self.item_dense[mine], self.item_cat[mine], mine)
        # all_gather needs one shape on every rank: pad the slices to the largest, then cut
        parts = all_gather(F.pad(own, (0, 0, 0, int(sizes.max()) - len(own))))
        item_vecs = torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])
        if negatives is not None:
            neg = torch.from_numpy(negatives).to(self.device)
            extra = model.encode_items(self.item_dense[neg], self.item_cat[neg], neg)
            item_vecs = torch.cat([item_vecs, extra])
            i = torch.cat([i, neg])
        bias, exclude = self._prior_and_mask(model, u, i, slice(lo, hi))
        loss = in_batch_softmax_loss(
            user_vecs, item_vecs, i, self.log_frequency[i], self.temperature, bias, exclude, lo, "sum"
        )
        return loss * (world / n)


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

    from colisten.ddp import check_same_data, fail_here, rank_and_world, rank_device
    from colisten.twotower.ddp import FAIL_AT_ENV, ShardLoss

    out_dir = Path(out_dir)
    rank, world = rank_and_world()
    device = resolve_device(cfg.device, "twotower.device")
    device = rank_device(device)  # one GPU per rank on its node
    model = new_model(data, cfg).to(device)
    # fused: one kernel over all parameters. On CPU a step of the id_dim=64 model takes 0.69x the time
    # of the default (foreach) Adam, less than the id_dim=0 model took with it (bench/twotower_step.py)
    if cfg.weight_decay > 0:
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True
        )
    else:  # plain Adam, as before the setting existed (bit for bit)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)
    tensors = _Tensors(data, cfg, device)
    fingerprint = _fingerprint(data, cfg)

    start_epoch, curve = 0, []
    best = {"val_loss": math.inf, "epoch": None}
    ckpt_path = artifacts.TWOTOWER_CHECKPOINT.within(out_dir)
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

    ddp = None
    if world > 1:  # after the checkpoint is loaded: every rank starts from the same state
        from torch.nn.parallel import DistributedDataParallel

        check_same_data(fingerprint, data.train_pairs)
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        # the model's buffers are constants (item types): synced once at init, not every step
        ddp = DistributedDataParallel(ShardLoss(model, tensors), device_ids=ids, forward_sync_buffers=False)

    n = len(data.train_pairs)
    for epoch in range(start_epoch, cfg.epochs):
        if _patience_spent(cfg, best, epoch, distributed=ddp is not None, device=device):
            if rank == 0:
                log(f"early stop after epoch {epoch}: no lower validation loss since epoch {best['epoch']}")
            break
        t0 = time.perf_counter()
        model.train()
        # the global batches are the same whatever the number of ranks: a function of (seed, epoch)
        order = np.random.default_rng([cfg.seed, 0, epoch]).permutation(n)
        batches = [order[s : s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
        batches = [b for b in batches if len(b) >= max(2, world)]  # every rank gets a row
        negatives = sampled_negatives(cfg, data.space.n_items, len(batches), 3, epoch)
        total, seen = 0.0, 0
        show = progress and rank == 0
        bar = tqdm(batches, desc=f"2T epoch {epoch + 1}/{cfg.epochs}", disable=not show, leave=False)
        for k, b in enumerate(bar):
            neg = None if negatives is None else negatives[k]
            if ddp is None:
                loss = tensors.batch_loss(model, data.train_pairs[b], neg)
            else:
                fail_here(FAIL_AT_ENV, rank, epoch + 1, k, len(batches))
                loss = ddp(data.train_pairs[b], neg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(b) / world  # a rank's share: world * its sum / len(b)
            seen += len(b)
            bar.set_postfix(loss=f"{total * world / seen:.4f}", refresh=False)  # rank 0's rows' mean
        if ddp is not None:  # the ranks' shares add up to the global batches' losses
            summed = torch.tensor([total], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(summed)
            total = float(summed.item())
            if rank != 0:  # rank 0 alone validates and writes; the others go on to the next epoch
                continue
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
                artifacts.TWOTOWER_MODEL.within(out_dir),
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
        write_json_atomic(artifacts.TWOTOWER_CURVE.within(out_dir), curve)
        hr = ", ".join(f"{t} {v:.3f}" for t, v in val["hr@10"].items())
        vl = "n/a" if val["val_loss"] is None else f"{val['val_loss']:.4f}"
        timing = epoch_timing([r["seconds"] for r in curve], epoch + 1, cfg.epochs)
        log(
            f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, val loss {vl}, "
            f"HR@10 {hr} {timing}"
        )
    if rank != 0:
        return {"epochs": cfg.epochs - start_epoch, "best_epoch": None, "best_val_loss": None, "curve": []}
    best_path = artifacts.TWOTOWER_MODEL.within(out_dir)
    if not best_path.exists():  # zero epochs left and no best saved: keep the last model
        save_torch_atomic(best_path, {"model": model.state_dict(), "model_config": model.config})
    return {
        "epochs": len(curve),
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "curve": curve,
    }


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
    from colisten.ddp import rank_and_world
    from colisten.twotower.model import TwoTowerEnsemble

    out_dir = Path(out_dir)
    if cfg.ensemble == 1:
        return train_two_tower(data, cfg, out_dir, resume=resume, progress=progress, log=log)
    jobs = [  # member j: seed + j, its own folder
        (
            cfg.model_copy(update={"seed": cfg.seed + j, "ensemble": 1}),
            artifacts.TWOTOWER_MEMBER.within(out_dir, member=j),
        )
        for j in range(cfg.ensemble)
    ]
    if rank_and_world()[0] != 0:  # a DDP rank beside rank 0: train each member, write nothing
        for member_cfg, member_dir in jobs:
            train_two_tower(data, member_cfg, member_dir, resume=resume, progress=False, log=log)
        return {}
    workers = member_workers(cfg, len(data.train_pairs), _nbytes(data))
    if workers > 1:
        summaries = _train_members_in_parallel(data, jobs, workers, resume=resume, log=log)
    else:
        summaries = []
        for j, (member_cfg, member_dir) in enumerate(jobs):
            log(f"ensemble member {j + 1}/{cfg.ensemble} (seed {member_cfg.seed})")
            summaries.append(
                train_two_tower(data, member_cfg, member_dir, resume=resume, progress=progress, log=log)
            )
    members = [load_model(artifacts.TWOTOWER_MODEL.within(member_dir)) for _, member_dir in jobs]
    model = TwoTowerEnsemble(members)
    save_torch_atomic(
        artifacts.TWOTOWER_MODEL.within(out_dir), {"model": model.state_dict(), "model_config": model.config}
    )
    curve = _mean_curve([s["curve"] for s in summaries])
    write_json_atomic(artifacts.TWOTOWER_CURVE.within(out_dir), curve)
    (artifacts.TWOTOWER_CHECKPOINT.within(out_dir)).unlink(
        missing_ok=True
    )  # a single model's: not this ensemble's
    losses = [s["best_val_loss"] for s in summaries]
    return {
        "epochs": len(curve),
        "best_epoch": [s["best_epoch"] for s in summaries],
        "best_val_loss": float(np.mean(losses)),
        "curve": curve,
    }


# 'auto' starts member processes from this many training label pairs: a process costs seconds to
# start (torch's import), a member on fewer pairs trains in about as long
AUTO_WORKERS_MIN_PAIRS = 20_000


def member_workers(cfg: TwoTowerConfig, n_pairs: int, data_bytes: int = 0) -> int:
    """How many processes train the ensemble's members at once ([twotower] member_workers; 'auto'
    = every member on 2 or more usable cores, from AUTO_WORKERS_MIN_PAIRS training pairs, while
    the workers' copies of the training data, `data_bytes` each, take at most half the memory
    available); 1 for a single model, under DDP (the ranks train each member together) and on
    a GPU."""
    import psutil

    from colisten.ddp import rank_and_world
    from colisten.device import usable_cores

    if cfg.ensemble == 1 or rank_and_world()[1] > 1 or resolve_device(cfg.device, "twotower.device") != "cpu":
        return 1
    if cfg.member_workers == "auto":
        fits = cfg.ensemble * data_bytes <= psutil.virtual_memory().available // 2
        return cfg.ensemble if usable_cores() >= 2 and n_pairs >= AUTO_WORKERS_MIN_PAIRS and fits else 1
    return min(cfg.member_workers, cfg.ensemble)


def _nbytes(value: Any) -> int:
    """The bytes of the arrays in `value` (the training data a member worker gets a copy of)."""
    import dataclasses

    import scipy.sparse as sp

    from colisten.twotower.features import UserDense

    if isinstance(value, np.ndarray):
        return value.nbytes
    if sp.issparse(value):
        return value.data.nbytes + value.indices.nbytes + value.indptr.nbytes
    if isinstance(value, list | tuple):
        return sum(_nbytes(v) for v in value)
    if isinstance(value, UserDense):
        return _nbytes(value.blocks) + value.embedding.nbytes + value.rest.nbytes
    if dataclasses.is_dataclass(value):
        return sum(_nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


def _train_members_in_parallel(
    data: TrainingData, jobs: list[tuple[TwoTowerConfig, Path]], workers: int, *, resume: bool, log
) -> list[dict[str, Any]]:
    """Each member trained by train_two_tower in a spawned process (torch and fork do not mix) with
    cores / workers torch threads (at least 1: three one-thread members on two cores share them,
    which still beats one member after another at two threads, as a second thread speeds a small
    MLP's step up far less than 2x). Every worker gets its own copy of `data`. Members are
    independent (own seed, folder and checkpoint), so `--resume` continues each as before."""
    from concurrent.futures import as_completed

    from colisten.device import usable_cores, worker_pool

    threads = max(1, usable_cores() // workers)
    log(f"ensemble: {len(jobs)} members on {workers} worker processes ({threads} torch thread(s) each)")
    summaries: list[dict[str, Any]] = [{}] * len(jobs)
    pool = worker_pool(workers, threads, _keep_member_data, data)
    try:
        futures = {
            pool.submit(_train_member, member_cfg, member_dir, resume): j
            for j, (member_cfg, member_dir) in enumerate(jobs)
        }
        for future in as_completed(futures):
            j = futures[future]
            summaries[j] = future.result()
            log(
                f"ensemble member {j + 1}/{len(jobs)} (seed {jobs[j][0].seed}): best epoch "
                f"{summaries[j]['best_epoch']}, validation loss {summaries[j]['best_val_loss']:.4f}"
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return summaries


_MEMBER_WORKER: dict[str, Any] = {}


def _keep_member_data(data: TrainingData) -> None:
    _MEMBER_WORKER["data"] = data


def _train_member(cfg: TwoTowerConfig, member_dir: Path, resume: bool) -> dict[str, Any]:
    return train_two_tower(
        _MEMBER_WORKER["data"], cfg, member_dir, resume=resume, progress=False, log=lambda _m: None
    )


def _mean_curve(curves: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per epoch, the mean of every number (dicts of numbers averaged key by key) over the members
    that trained that epoch: with twotower.patience members may stop at different epochs."""

    def mean(values: list[Any]) -> Any:
        if all(isinstance(v, dict) for v in values):
            return {k: mean([v[k] for v in values if k in v]) for k in values[0]}
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        return float(np.mean(numbers)) if numbers else None

    rows = []
    for present in zip_longest(*curves):
        epoch_rows = [r for r in present if r is not None]
        row = {k: mean([r.get(k) for r in epoch_rows]) for k in epoch_rows[0] if k != "epoch"}
        rows.append({"epoch": epoch_rows[0]["epoch"], **row})
    return rows


def _patience_spent(
    cfg: TwoTowerConfig, best: dict[str, Any], done: int, *, distributed: bool, device: str
) -> bool:
    """Whether `cfg.patience` epochs have passed since the best one, after `done` epochs (also
    right after a resume); under DDP rank 0's answer (it alone validates)."""
    from colisten.ddp import from_rank_0

    spent = cfg.patience > 0 and best["epoch"] is not None and done - best["epoch"] >= cfg.patience
    return from_rank_0(spent, device) if distributed else spent


def _fingerprint(data: TrainingData, cfg: TwoTowerConfig) -> dict[str, Any]:
    d = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    d["n_train_pairs"] = len(data.train_pairs)
    d["n_items"] = data.space.n_items
    d["user_dense_dim"] = int(data.users.dense.shape[1])
    return d
