"""Supervision edges for the HGNN: the validation hold-out and the balanced multi-link sampler.

PAPER.md §4: every epoch each relation's supervision edges are undersampled to the size of the
smallest relation (all a-a edges kept, a fresh uniform sample of that size from a-p and p-p), which
cuts training time and improves accuracy. Before training, a share of every relation's edges is
held out for validation and removed from message passing as well as from supervision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from colisten.errors import ColistenError
from colisten.graph.store import CoListeningGraph

SamplerMode = Literal["balanced", "uniform", "ratios"]

# Fixed stream ids so that the split, the epochs and the validation draw never share random numbers.
_SPLIT_STREAM = 1
_EPOCH_STREAM = 2


class HGNNSettingError(ColistenError):
    """A [hgnn] setting that does not fit the graph (unknown relation, bad ratio...)."""


@dataclass(frozen=True)
class EdgeSet:
    """Undirected edges of one relation 'A__B': `u` are type indices in A, `v` in B."""

    u: np.ndarray  # int64
    v: np.ndarray  # int64
    weight: np.ndarray | None = None  # float32 co-count per edge (None: all 1)

    def __len__(self) -> int:
        return int(self.u.shape[0])

    def take(self, ids: np.ndarray) -> EdgeSet:
        return EdgeSet(self.u[ids], self.v[ids], None if self.weight is None else self.weight[ids])


def undirected_edges(graph: CoListeningGraph, relation: str) -> EdgeSet:
    """Each unordered pair of `relation` once, read back from the graph's CSR arrays."""
    a, b = relation.split("__")
    csr = graph.csr[(a, b)]
    src = np.repeat(np.arange(len(csr.indptr) - 1, dtype=np.int64), csr.degrees())
    dst = csr.indices.astype(np.int64, copy=False)
    weight = csr.weight
    if a == b:  # same-type relations are stored symmetrically: keep u < v (self-loops carry nothing)
        keep = src < dst
        src, dst, weight = src[keep], dst[keep], weight[keep]
    return EdgeSet(src, dst, weight)


def select_relations(graph: CoListeningGraph, relations: list[str] | None) -> list[str]:
    """The relations used for training: all of the graph's, or the named subset (ablations)."""
    available = graph.relations()
    if relations is None:
        return available
    unknown = sorted(set(relations) - set(available))
    if unknown:
        raise HGNNSettingError(
            f"hgnn.relations: {unknown} not in the graph; available relations: {available}"
        )
    return sorted(set(relations))


@dataclass
class EdgeSplit:
    """Training edges (message passing and supervision) and held-out validation edges per relation."""

    train: dict[str, EdgeSet]
    validation: dict[str, EdgeSet]
    train_graph: CoListeningGraph  # graph without validation edges and without excluded relations
    full_graph: CoListeningGraph  # all edges of the selected relations (for final inference)


def split_validation_edges(
    graph: CoListeningGraph, relations: list[str], fraction: float, seed: int
) -> EdgeSplit:
    """Hold out `fraction` of every relation's edges (uniform, seeded) for validation.

    Relations not in `relations` are dropped from both graphs, so an ablated relation carries
    neither supervision nor messages. Node counts are kept, so isolated nodes still get embeddings.
    """
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    train: dict[str, EdgeSet] = {}
    validation: dict[str, EdgeSet] = {}
    full: dict[str, tuple[np.ndarray, np.ndarray, None]] = {}
    for rel in relations:
        edges = undirected_edges(graph, rel)
        n_val = int(len(edges) * fraction)
        perm = rng.permutation(len(edges))
        validation[rel] = edges.take(np.sort(perm[:n_val]))
        train[rel] = edges.take(np.sort(perm[n_val:]))
        full[rel] = (edges.u, edges.v, None)
    train_graph = CoListeningGraph.from_undirected_edges(
        graph.num_nodes, {r: (e.u, e.v, None) for r, e in train.items()}
    )
    full_graph = CoListeningGraph.from_undirected_edges(graph.num_nodes, full)
    return EdgeSplit(train=train, validation=validation, train_graph=train_graph, full_graph=full_graph)


class BalancedEdgeSampler:
    """Which supervision edges each epoch trains on, per relation (edge ids into that relation's set).

    Modes: `balanced` (paper): every relation undersampled to the smallest relation's size, redrawn
    each epoch; `uniform`: every edge every epoch (the ablation); `ratios`: a fixed share of each
    relation per epoch. `max_edges_per_epoch` then scales all relations down by the same factor, so
    the balance is kept. Epoch `e` depends only on (seed, e), which makes `--resume` exact.

    `weights` (per relation, one positive number per edge) make a subsampled relation draw its edges
    with probability proportional to the weight, without replacement, instead of uniformly: with
    co-counts, an edge that many users share is trained on more often than a chance co-listen,
    as skip-gram models see each co-occurrence once per occurrence. Where a relation keeps all
    its edges the weights change nothing.
    """

    def __init__(
        self,
        edge_counts: dict[str, int],
        mode: SamplerMode = "balanced",
        ratios: dict[str, float] | None = None,
        max_edges_per_epoch: int | None = None,
        seed: int = 0,
        weights: dict[str, np.ndarray] | None = None,
    ):
        self.edge_counts = {r: int(n) for r, n in edge_counts.items()}
        self.mode = mode
        self.seed = seed
        self.sizes = _epoch_sizes(self.edge_counts, mode, ratios or {}, max_edges_per_epoch)
        self.log_weights: dict[str, np.ndarray] = {}
        for rel, w in (weights or {}).items():
            w = np.asarray(w, dtype=np.float64)
            if w.shape != (self.edge_counts[rel],) or not np.all(np.isfinite(w)) or np.any(w <= 0):
                raise HGNNSettingError(f"edge weights of {rel}: need one positive finite weight per edge")
            self.log_weights[rel] = np.log(w)

    def epoch_edges(self, epoch: int) -> dict[str, np.ndarray]:
        """Per relation, the sorted ids of the edges used in `epoch` (a fresh draw every epoch)."""
        rng = np.random.default_rng([self.seed, _EPOCH_STREAM, epoch])
        out: dict[str, np.ndarray] = {}
        for rel in sorted(self.edge_counts):
            n, k = self.edge_counts[rel], self.sizes[rel]
            if k >= n:
                ids = np.arange(n, dtype=np.int64)
            elif rel in self.log_weights:
                # Efraimidis-Spirakis: the k largest log(u) / w are a weighted draw without replacement
                keys = np.log(rng.random(n)) * np.exp(-self.log_weights[rel])
                ids = np.argpartition(keys, n - k)[n - k :]
            else:
                ids = rng.choice(n, size=k, replace=False)
            out[rel] = np.sort(ids)
        return out

    def edges_per_epoch(self) -> int:
        return sum(self.sizes.values())


def _epoch_sizes(
    counts: dict[str, int], mode: SamplerMode, ratios: dict[str, float], cap: int | None
) -> dict[str, int]:
    nonempty = {r: n for r, n in counts.items() if n > 0}
    if mode == "balanced":
        smallest = min(nonempty.values(), default=0)
        sizes = {r: min(n, smallest) for r, n in counts.items()}
    elif mode == "uniform":
        sizes = dict(counts)
    elif mode == "ratios":
        unknown = sorted(set(ratios) - set(counts))
        if unknown:
            raise HGNNSettingError(
                f"hgnn.relation_ratios: {unknown} are not trained relations; use some of {sorted(counts)}"
            )
        bad = {r: x for r, x in ratios.items() if not 0 < x <= 1}
        if bad:
            raise HGNNSettingError(f"hgnn.relation_ratios must be in (0, 1]: {bad}")
        sizes = {r: max(1, round(n * ratios.get(r, 1.0))) if n else 0 for r, n in counts.items()}
    else:
        raise HGNNSettingError(f"hgnn.sampler: unknown mode {mode!r}")
    total = sum(sizes.values())
    if cap is not None and total > cap:
        scale = cap / total
        sizes = {r: max(1, int(k * scale)) if k else 0 for r, k in sizes.items()}
    return sizes
