"""What the two-tower training loop asks of DDP beyond colisten.ddp: the module DDP wraps, and the
test hook's variable (colisten.twotower.distributed starts the ranks).

A module of its own below train.py and stage.py, so that the launcher, which runs the stage,
and the stage, which asks for its rank, do not import each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from colisten.ddp import rank_and_world

# Test hook (colisten.ddp.fail_here): "RANK:EPOCH" makes that rank exit (os._exit) halfway through
# that epoch (1-based), the way a killed or crashed process would, so the failure path can be tested.
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
