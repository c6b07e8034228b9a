"""Explanations: which items of the user's history make a recommendation plausible.

A recommended item is explained by up to `max_reasons` items the user interacted with. Direct
co-listening neighbours come first (the graph edge is the evidence: other users consumed both),
strongest co-count first; remaining slots are filled with the history items closest to it in
HGNN embedding space. Every reason says which of the two it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from colisten.graph.store import CoListeningGraph
from colisten.serve.catalogue import ItemCatalogue

Via = Literal["co_listening", "embedding_similarity"]


@dataclass(frozen=True)
class Reason:
    """One 'because you listened to …' item: its global index, where it came from, how strong."""

    item: int
    via: Via
    strength: float  # co-count of the graph edge, or cosine similarity of the HGNN embeddings


def distinct_recent_first(history_items: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Distinct history items, most recently touched first (the order reasons are tie-broken in)."""
    if history_items.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((history_items, -np.asarray(timestamps, dtype=np.int64)))
    items = np.asarray(history_items, dtype=np.int64)[order]
    _, first = np.unique(items, return_index=True)
    return items[np.sort(first)]


class Explainer:
    """Finds the reasons for many recommended items at once.

    Built once per model: for every relation's CSR it keeps `row * n_dst + neighbour` keys,
    which are globally sorted, so "which of these history items neighbour which of these
    recommended items" is one `searchsorted` per relation, whatever the items' degrees.
    """

    def __init__(
        self,
        catalogue: ItemCatalogue,
        graph: CoListeningGraph | None,
        item_embeddings: np.ndarray | None,
        max_reasons: int = 3,
    ) -> None:
        self.catalogue = catalogue
        self.graph = graph
        self.item_embeddings = item_embeddings
        self.max_reasons = max_reasons
        self._keys: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, int]] = {}
        if graph is not None:
            for (src, dst), csr in graph.csr.items():
                if src not in catalogue.type_ranges or dst not in catalogue.type_ranges:
                    continue
                n_dst = catalogue.type_ranges[dst][1] - catalogue.type_ranges[dst][0]
                rows = np.repeat(np.arange(len(csr.indptr) - 1, dtype=np.int64), np.diff(csr.indptr))
                keys, weight = rows * n_dst + csr.indices, csr.weight
                if keys.size and not np.all(keys[1:] >= keys[:-1]):  # neighbour lists not sorted
                    order = np.argsort(keys, kind="stable")
                    keys, weight = keys[order], weight[order]
                self._keys[(src, dst)] = (keys, weight, n_dst)

    def explain(self, recommended: np.ndarray, history_recent_first: np.ndarray) -> list[list[Reason]]:
        """Up to `max_reasons` reasons per recommended item (global indices), from distinct history
        items given most recent first; ties in co-count or similarity go to the more recent item."""
        recs = np.asarray(recommended, dtype=np.int64)
        history = np.asarray(history_recent_first, dtype=np.int64)
        out: list[list[Reason]] = [[] for _ in range(len(recs))]
        if history.size == 0 or recs.size == 0 or self.max_reasons <= 0:
            return out
        recency = np.empty(0, dtype=np.int64)
        rows_found, items_found, weights_found = [], [], []
        ranges = self.catalogue.type_ranges
        for rec_type, (r_lo, r_hi) in ranges.items():
            rows = np.flatnonzero((recs >= r_lo) & (recs < r_hi))
            if rows.size == 0:
                continue
            rec_ti = recs[rows] - r_lo
            for hist_type, (h_lo, h_hi) in ranges.items():
                at = np.flatnonzero((history >= h_lo) & (history < h_hi))
                entry = self._keys.get((rec_type, hist_type))
                if at.size == 0 or entry is None:
                    continue
                keys, weight, n_dst = entry
                wanted = (rec_ti[:, None] * n_dst + (history[at] - h_lo)[None, :]).ravel()
                pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
                hit = np.flatnonzero(keys[pos] == wanted)
                rows_found.append(rows[hit // at.size])
                items_found.append(at[hit % at.size])  # positions in `history` = recency ranks
                weights_found.append(weight[pos[hit]])
        if rows_found:
            row = np.concatenate(rows_found)
            recency = np.concatenate(items_found)
            w = np.concatenate(weights_found)
            keep = history[recency] != recs[row]
            row, recency, w = row[keep], recency[keep], w[keep]
            order = np.lexsort((recency, -w, row))  # per item: strongest co-count, then most recent
            row, recency, w = row[order], recency[order], w[order]
            rank = np.arange(len(row)) - np.searchsorted(row, row)
            for r, h, wt in zip(
                row[rank < self.max_reasons],
                recency[rank < self.max_reasons],
                w[rank < self.max_reasons],
                strict=True,
            ):
                out[r].append(Reason(int(history[h]), "co_listening", float(wt)))
        short = [i for i, reasons in enumerate(out) if len(reasons) < self.max_reasons]
        if short and self.item_embeddings is not None:
            sim = self.item_embeddings[recs[short]] @ self.item_embeddings[history].T
            # a stable sort keeps the recency order among equal similarities
            ranked = np.argsort(-sim, axis=1, kind="stable")
            for j, i in enumerate(short):
                taken = {reason.item for reason in out[i]} | {int(recs[i])}
                for h in ranked[j]:
                    g = int(history[h])
                    if g in taken:
                        continue
                    out[i].append(Reason(g, "embedding_similarity", float(sim[j, h])))
                    if len(out[i]) == self.max_reasons:
                        break
        return out


def explanation_source(reasons: list[Reason]) -> str:
    """'co_listening_graph' if any reason is a graph neighbour, else the fallback used (or 'none')."""
    if any(r.via == "co_listening" for r in reasons):
        return "co_listening_graph"
    if reasons:
        return "embedding_similarity"
    return "none"
