"""Explanations: which items of the user's history make a recommendation plausible.

A recommended item is explained by up to `max_reasons` items the user interacted with. Direct
co-listening neighbours come first (the graph edge is the evidence: other users consumed both),
strongest co-count first; remaining slots are filled with the history items closest to it in
HGNN embedding space. Every reason says which of the two it came from.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from colisten.graph.store import CoListeningGraph
from colisten.serve.catalogue import ItemCatalogue

Via = Literal["co_listening", "embedding_similarity"]


class Reason(NamedTuple):
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

    Built once per model: every relation's edges as one sorted array of keys over global item
    indices (item * n + neighbour; a pair of items determines its relation, so no pair comes
    from two relations), so "which of these history items neighbour which of these recommended
    items" is one binary search of the recommended x history pairs: a handful of numpy calls,
    whatever the item types and however many neighbours the recommended items have.
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
        self._n = n = len(catalogue)
        ranges = catalogue.type_ranges
        keys, weights = [], []
        if graph is not None:
            for (src, dst), csr in graph.csr.items():
                if src not in ranges or dst not in ranges:
                    continue
                rows = np.repeat(np.arange(len(csr.indptr) - 1, dtype=np.int64), np.diff(csr.indptr))
                keys.append(
                    (rows + ranges[src][0]) * n + (np.asarray(csr.indices, np.int64) + ranges[dst][0])
                )
                weights.append(np.asarray(csr.weight))
        key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        weight = np.concatenate(weights) if weights else np.zeros(0, np.float32)
        if key.size and not np.all(key[1:] >= key[:-1]):
            order = np.argsort(key, kind="stable")
            key, weight = key[order], weight[order]
        if key.size:  # a pair listed twice: its first listing's weight counts
            first = np.r_[True, key[1:] != key[:-1]]
            key, weight = key[first], weight[first]
        self._keys = key  # sorted: (item * n + neighbour) of every edge, both directions
        self._weights = weight

    def explain(self, recommended: np.ndarray, history_recent_first: np.ndarray) -> list[list[Reason]]:
        """Up to `max_reasons` reasons per recommended item (global indices), from distinct history
        items given most recent first; ties in co-count or similarity go to the more recent item."""
        recs = np.asarray(recommended, dtype=np.int64)
        history = np.asarray(history_recent_first, dtype=np.int64)
        out: list[list[Reason]] = [[] for _ in range(len(recs))]
        max_reasons = self.max_reasons
        if history.size == 0 or recs.size == 0 or max_reasons <= 0:
            return out
        if self._keys.size:
            # every (recommended, history) pair's edge key looked up at once: a handful of numpy
            # calls on recs x history keys, whatever the items' degrees
            pairs = (recs[:, None] * self._n + history[None, :]).ravel()
            at = np.searchsorted(self._keys, pairs)
            np.minimum(at, self._keys.size - 1, out=at)
            hit = np.flatnonzero(self._keys[at] == pairs)
            if hit.size:
                row, recency = np.divmod(hit, history.size)  # recency = position in `history`
                keep = history[recency] != recs[row]
                row, recency, w = row[keep], recency[keep], self._weights[at[hit[keep]]]
                order = np.lexsort((recency, -w, row))  # per item: strongest co-count, then most recent
                row, recency, w = row[order], recency[order], w[order]
                top = (np.arange(len(row)) - np.searchsorted(row, row)) < max_reasons
                for r, g, wt in zip(
                    row[top].tolist(), history[recency[top]].tolist(), w[top].tolist(), strict=True
                ):
                    out[r].append(Reason(g, "co_listening", wt))
        short = [i for i, reasons in enumerate(out) if len(reasons) < max_reasons]
        if short and self.item_embeddings is not None:
            sim = self.item_embeddings[recs[short]] @ self.item_embeddings[history].T
            # a stable sort keeps the recency order among equal similarities; an item skips at most
            # its max_reasons - 1 graph reasons and itself, so 2 x max_reasons candidates suffice
            ranked = np.argsort(-sim, axis=1, kind="stable")[:, : 2 * max_reasons]
            sims = np.take_along_axis(sim, ranked, axis=1).tolist()
            ranked = ranked.tolist()
            hist, rec_list = history.tolist(), recs.tolist()
            for j, i in enumerate(short):
                reasons = out[i]
                taken = {reason.item for reason in reasons}
                taken.add(rec_list[i])
                for h, s in zip(ranked[j], sims[j], strict=True):
                    g = hist[h]
                    if g in taken:
                        continue
                    reasons.append(Reason(g, "embedding_similarity", s))
                    if len(reasons) == max_reasons:
                        break
        return out


def explanation_source(reasons: list[Reason]) -> str:
    """'co_listening_graph' if any reason is a graph neighbour, else the fallback used (or 'none')."""
    if any(r.via == "co_listening" for r in reasons):
        return "co_listening_graph"
    if reasons:
        return "embedding_similarity"
    return "none"
