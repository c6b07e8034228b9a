"""The data contract (reading the input files, validation, quarantine) and the global temporal split.

Public API (imported lazily, so `colisten --help` does not load DuckDB or pandas):
`validate_dataset`, `ValidationReport`, `temporal_split`, `SplitInfo`, `split_bounds`,
`DataContractError`. The readers of the artifacts they write (`load_items`, `load_history`, ...)
are in colisten.artifacts.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validate_dataset": "colisten.data.contract",
    "ValidationReport": "colisten.data.contract",
    "TableCounts": "colisten.data.contract",
    "CONTRACT": "colisten.data.contract",
    "DataContractError": "colisten.data.sources",
    "temporal_split": "colisten.data.split",
    "split_bounds": "colisten.data.split",
    "SplitInfo": "colisten.data.split",
    "SplitError": "colisten.data.split",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'colisten.data' has no attribute {name!r}")
