"""The data contract (readers, validation, quarantine) and the global temporal split.

Public API (imported lazily, so `colisten --help` does not load DuckDB or pandas):
`validate_dataset`, `ValidationReport`, `temporal_split`, `SplitInfo`, `split_bounds`,
`load_items`, `load_users`, `load_interactions`, `load_history`, `load_holdout`,
`load_segments`, `load_split_info`, `load_validation`, `DataContractError`.
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
    "load_items": "colisten.data.readers",
    "load_users": "colisten.data.readers",
    "load_interactions": "colisten.data.readers",
    "load_history": "colisten.data.readers",
    "load_holdout": "colisten.data.readers",
    "load_segments": "colisten.data.readers",
    "load_split_info": "colisten.data.readers",
    "load_validation": "colisten.data.readers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'colisten.data' has no attribute {name!r}")
