"""Synthetic world: users, podcasts and audiobooks with logs in the data contract, calibrated to the
paper's observations, with the ground truth saved beside it.

    from colisten.world import generate_world, world_stats, WorldTruth
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "generate_world": "colisten.world.simulate",
    "Behaviour": "colisten.world.simulate",
    "WorldSummary": "colisten.world.simulate",
    "world_stats": "colisten.world.stats",
    "WorldTruth": "colisten.world.truth",
    "WorldError": "colisten.world.truth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: `colisten --help` must not import numpy/pyarrow
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'colisten.world' has no attribute {name!r}")
