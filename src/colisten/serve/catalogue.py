"""The item catalogue as the server sees it: ids, titles and types in the run's global item order.

`data/items.parquet` is sorted by (item_type, item_id), so each type is one contiguous block of
global indices and an item's type index is its offset inside that block; no joins are needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colisten.serve.errors import ServeError

# What starlette's JSONResponse encodes with (json.dumps(ensure_ascii=False, allow_nan=False, ...)).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class ItemCatalogue:
    """Item metadata in global order plus the id → global index map."""

    item_ids: np.ndarray  # object[str] [n_items]
    item_types: np.ndarray  # object[str] [n_items]
    titles: np.ndarray  # object[str] [n_items]
    genres: np.ndarray  # object[str | None] [n_items]
    index: dict[str, int]  # item_id -> global index
    type_ranges: dict[str, tuple[int, int]]  # item_type -> [start, end) in global order
    # global index -> its JSON members, encoded on first use (see `json_members`)
    _json: dict[int, tuple[str, str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_columns(
        cls,
        item_ids: list[str] | np.ndarray,
        item_types: list[str] | np.ndarray,
        titles: list[str] | np.ndarray,
        genres: list[str | None] | np.ndarray | None = None,
    ) -> ItemCatalogue:
        ids = np.asarray(item_ids, dtype=object)
        types = np.asarray(item_types, dtype=object)
        n = ids.shape[0]
        order = sorted(range(n), key=lambda i: (types[i], ids[i]))
        if order != list(range(n)):
            raise ServeError(
                "data/items.parquet must be sorted by (item_type, item_id) (docs/architecture.md)"
            )
        ranges: dict[str, tuple[int, int]] = {}
        for i, t in enumerate(types):
            start, _ = ranges.get(t, (i, i))
            ranges[t] = (start, i + 1)
        return cls(
            item_ids=ids,
            item_types=types,
            titles=np.asarray(titles, dtype=object),
            genres=np.asarray(genres if genres is not None else [None] * n, dtype=object),
            index={str(x): i for i, x in enumerate(ids)},
            type_ranges=ranges,
        )

    @classmethod
    def load(cls, items_parquet: str | Path) -> ItemCatalogue:
        """Read `RUN/data/items.parquet` (only the columns the server shows)."""
        import pyarrow.parquet as pq

        columns = ["item_id", "item_type", "title", "genre"]
        table = pq.read_table(items_parquet, columns=columns)
        return cls.from_columns(*(table.column(c).to_pylist() for c in columns))

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def types(self) -> list[str]:
        return sorted(self.type_ranges)

    def type_of(self, global_index: int) -> str:
        return str(self.item_types[global_index])

    def type_index(self, global_index: int) -> int:
        return global_index - self.type_ranges[self.type_of(global_index)][0]

    def to_global(self, item_type: str, type_indices: np.ndarray) -> np.ndarray:
        return np.asarray(type_indices, dtype=np.int64) + self.type_ranges[item_type][0]

    def json_members(self, g: int) -> tuple[str, str]:
        """Item `g` as JSON object members, encoded once: `"item_id":..,"title":..,"item_type":..,
        "genre":..` (schemas.Item, the start of a recommended item) and the same without the genre
        (the start of a `because` entry). Same text as json.dumps(ensure_ascii=False) of the values."""
        members = self._json.get(g)
        if members is None:
            dumps = _ENCODER.encode
            head = (
                f'"item_id":{dumps(self.item_ids[g])},"title":{dumps(self.titles[g])},'
                f'"item_type":{dumps(self.item_types[g])}'
            )
            members = self._json[g] = (f'{head},"genre":{dumps(self.genres[g])}', head)
        return members

    def lookup(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Global indices of the known ids (input order kept) and the list of unknown ids."""
        found: list[int] = []
        unknown: list[str] = []
        for item_id in item_ids:
            g = self.index.get(item_id)
            if g is None:
                unknown.append(item_id)
            else:
                found.append(g)
        return np.asarray(found, dtype=np.int64), unknown
