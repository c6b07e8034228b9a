"""HGNN stage: balanced multi-link sampler, neighbour sampler, heterogeneous GraphSAGE, training.

`fit_hgnn(graph, features, settings, out_dir)` is the public entry point (`.embeddings` holds each
node type's vectors); torch is imported only when it is first used, so `colisten --help` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BalancedEdgeSampler", "HeteroGraphSAGE", "NeighborSampler", "fit_hgnn"]

_WHERE = {
    "BalancedEdgeSampler": "colisten.hgnn.sampler",
    "NeighborSampler": "colisten.hgnn.neighbors",
    "HeteroGraphSAGE": "colisten.hgnn.model",
    "fit_hgnn": "colisten.hgnn.train",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'colisten.hgnn' has no attribute {name!r}")
