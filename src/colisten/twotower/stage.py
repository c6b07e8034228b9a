"""The `train-2t` stage: RUN/{data,split,content,hgnn} -> RUN/twotower (best.pt, features.json,
item_vectors.npy, curve.json), recorded in the run's manifest."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.io import read_json, save_numpy_atomic, write_json_atomic
from colisten.rundir import RunDir
from colisten.twotower.data import load_training_data
from colisten.twotower.features import SECONDS_PER_DAY
from colisten.twotower.model import item_vectors, load_model
from colisten.twotower.train import train_ensemble


def run(
    rd: RunDir, settings: Settings, *, resume: bool = False, progress: bool = False, log: Log = quiet
) -> dict[str, Any]:
    """Train on the run's history and write RUN/twotower (model, features.json, item_vectors.npy);
    recorded in the manifest as `train-2t`, and what it recorded is returned.

    Under DDP (colisten.twotower.distributed) every rank calls this; ranks other than 0 train
    beside rank 0 and write nothing (no manifest, no folder), returning {}."""
    from colisten.ddp import rank_and_world

    if rank_and_world()[0] != 0:
        data = load_training_data(rd, settings)
        out_dir = rd.root / artifacts.TWOTOWER_MODEL.folder
        train_ensemble(data, settings.twotower, out_dir, resume=resume, progress=False, log=quiet)
        return {}
    with rd.stage("train-2t") as info:
        info.update(_train(rd, settings, resume=resume, progress=progress, log=log))
    return info


def _train(rd: RunDir, settings: Settings, *, resume: bool, progress: bool, log: Log) -> dict[str, Any]:
    cfg = settings.twotower
    split = read_json(rd.require(artifacts.SPLIT))
    t0 = time.perf_counter()
    data = load_training_data(rd, settings)
    log(
        f"{len(data.train_pairs)} training / {len(data.val_pairs)} validation label pairs from "
        f"{len(data.users.user_ids)} (user, window) rows in {data.n_windows} label window(s) "
        f"({time.perf_counter() - t0:.1f}s to build features)"
    )
    out_dir = rd.stage_dir(artifacts.TWOTOWER_MODEL.folder)
    # training replaces best.pt epoch by epoch: until it ends, no features.json / item_vectors.npy
    # of an earlier training may claim to belong to it (a killed rerun leaves the stage incomplete)
    for stale in (artifacts.TWOTOWER_FEATURES, artifacts.TWOTOWER_ITEM_VECTORS):
        stale.at(rd).unlink(missing_ok=True)
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
    write_json_atomic(artifacts.TWOTOWER_FEATURES.at(rd), meta)
    model = load_model(artifacts.TWOTOWER_MODEL.at(rd))
    serving_items = dataclasses.replace(data.items, log_popularity=data.serving_log_popularity)
    save_numpy_atomic(artifacts.TWOTOWER_ITEM_VECTORS.at(rd), item_vectors(model, serving_items))
    last = summary["curve"][-1] if summary["curve"] else {}
    return {
        "epochs": summary["epochs"],
        "best_epoch": summary["best_epoch"],
        "best_val_loss": summary["best_val_loss"],
        "val_hr@10": last.get("val_hr@10"),
        "n_train_pairs": len(data.train_pairs),
        "n_val_pairs": len(data.val_pairs),
    }


def summary_line(info: dict[str, Any], run: Any) -> str:
    """The line `colisten train-2t` ends with (one process or torchrun's rank 0)."""
    best = info["best_epoch"]  # an ensemble's: member by member
    epochs = ", ".join(map(str, best)) if isinstance(best, list) else str(best)
    return (
        f"two-tower model: best epoch {epochs} (validation loss {info['best_val_loss']:.4f}); "
        f"wrote {Path(run) / artifacts.TWOTOWER_MODEL.folder}"
    )
