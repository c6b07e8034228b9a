"""DDP primitives the training loop uses (colisten.twotower.distributed starts the ranks).

A module of its own below train.py and stage.py, so that the launcher, which runs the stage,
and the stage, which asks for its rank, do not import each other.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import numpy as np
import torch

from colisten.twotower.data import TrainingError

# Test hook: "RANK:EPOCH" makes that rank exit (os._exit) halfway through that epoch (1-based),
# the way a killed or crashed process would, so the failure path can be tested.
FAIL_AT_ENV = "COLISTEN_2T_FAIL_AT"


class ShardLoss(torch.nn.Module):
    """The module DDP wraps: its forward is one rank's share of a global batch's loss, so DDP's
    gradient hooks see every parameter the towers use. The model's own state_dict is saved."""

    def __init__(self, model: torch.nn.Module, tensors: Any) -> None:
        super().__init__()
        self.model = model
        self.tensors = tensors

    def forward(self, pairs: np.ndarray, negatives: np.ndarray | None) -> torch.Tensor:
        rank, world = rank_and_world()
        return self.tensors.sharded_batch_loss(self.model, pairs, negatives, rank, world)


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the process group, (0, 1) without one (plain single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def check_same_data(fingerprint: dict[str, Any], train_pairs: np.ndarray) -> None:
    """Every rank must slice the same batches: compare the settings and a checksum of the pairs."""
    import torch.distributed as dist

    mine = (sorted(fingerprint.items()), zlib.crc32(np.ascontiguousarray(train_pairs).tobytes()))
    every: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    if any(other != every[0] for other in every):
        bad = [r for r, other in enumerate(every) if other != every[0]]
        raise TrainingError(f"rank(s) {bad} built other training data or settings than rank 0")


def fail_here(rank: int, epoch: int, batch: int, n_batches: int) -> None:
    """The FAIL_AT_ENV test hook."""
    at = os.environ.get(FAIL_AT_ENV)
    if at and at == f"{rank}:{epoch + 1}" and batch == n_batches // 2:
        os._exit(1)
