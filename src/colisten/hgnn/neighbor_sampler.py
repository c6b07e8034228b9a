"""GraphSAGE neighbour sampling over the co-listening graph's CSR arrays, vectorised with numpy.

For a set of seed nodes it draws, per layer and per relation, up to `fanout` distinct neighbours of
every node (uniformly, without replacement) and returns the mini-batch as message-passing layers
(DGL-style blocks): each layer's destination nodes are a prefix of its source nodes, so a node's own
representation is always available for the self term. Every node type receives messages from every
relation touching it, in both directions for cross-type relations. PyG's NeighborLoader needs
compiled extras (pyg-lib / torch-sparse) that PyPI does not carry for our torch; this needs none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from colisten.graph.store import CoListeningGraph, EdgeType


@dataclass
class Layer:
    """One message-passing layer of a sampled mini-batch.

    `edges[(src_type, dst_type)] = (src, dst)`: local indices, sorted by dst; a message flows from
    node `src[i]` (of src_type, among this layer's source nodes) to node `dst[i]` (of dst_type,
    among its destination nodes). Destination nodes are the first `num_dst[t]` source nodes of
    each type.
    """

    num_src: dict[str, int]
    num_dst: dict[str, int]
    edges: dict[EdgeType, tuple[np.ndarray, np.ndarray]]

    def num_edges(self) -> int:
        return sum(int(s.shape[0]) for s, _ in self.edges.values())


@dataclass
class SampledSubgraph:
    """A mini-batch: input nodes per type (seeds first, in the order given) and the layers to run.

    `layers[0]` consumes the input features of `node_ids`; the last layer outputs the seeds.
    """

    node_ids: dict[str, np.ndarray]  # type indices of all input nodes; seeds are the prefix
    num_seeds: dict[str, int]
    layers: list[Layer]

    def num_sampled_nodes(self) -> int:
        return sum(int(v.shape[0]) for v in self.node_ids.values())


def sample_neighbors(
    indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, fanout: int | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `fanout` distinct uniform neighbours of each node (all if fewer, or if fanout is None).

    Returns (row, neighbour), sorted by row: `row[i]` is the position in `nodes` whose neighbour is
    `neighbour[i]`. The cost per node is O(fanout) whatever its degree (see `draw_distinct`), so
    hub podcasts with thousands of neighbours cost no more than anyone else.
    """
    nodes = np.asarray(nodes, dtype=np.int64)
    start = indptr[nodes]
    deg = indptr[nodes + 1] - start
    if fanout is not None and nodes.shape[0] and int(deg.min()) > fanout:
        # the usual case on dense co-listening graphs: every node has more neighbours than the fan-out
        offsets = draw_distinct(deg, fanout, rng)
        rows = np.repeat(np.arange(nodes.shape[0], dtype=np.int64), fanout)
        return rows, indices[(start[:, None] + offsets).ravel()]
    take = deg if fanout is None else np.minimum(deg, fanout)
    total = int(take.sum())
    rows = np.repeat(np.arange(nodes.shape[0], dtype=np.int64), take)
    out_start = np.cumsum(take) - take  # where each node's neighbours go in the output
    # default: neighbour j of node r sits at start[r] + j (every neighbour of low-degree nodes)
    pos = np.arange(total, dtype=np.int64) + np.repeat(start - out_start, take)
    if fanout is not None:
        big = np.flatnonzero(deg > fanout)
        if big.shape[0]:
            offsets = draw_distinct(deg[big], fanout, rng)
            pos[(out_start[big, None] + np.arange(fanout)).ravel()] = (start[big, None] + offsets).ravel()
    return rows, indices[pos]


def draw_distinct(deg: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct uniform offsets in [0, deg[i]) for every row i (requires deg > k): int64 [n, k].

    Draws with replacement and keeps the rows without a repeat (given no repeat, a uniform
    k-subset); rows with a repeat are redrawn the same way a few times, and the rare rows still
    repeating (degree close to k) get Floyd's algorithm, vectorised over rows. Every route gives a
    uniform k-subset, so their mixture does too.
    """
    offsets = np.empty((deg.shape[0], k), dtype=np.int64)
    todo = np.arange(deg.shape[0])
    for _ in range(4):
        d = deg[todo, None]
        draw = (rng.random((todo.shape[0], k)) * d).astype(np.int64)
        np.minimum(draw, d - 1, out=draw)  # guard against float rounding up to deg
        draw.sort(axis=1)
        repeated = (draw[:, 1:] == draw[:, :-1]).any(axis=1)
        offsets[todo] = draw
        todo = todo[repeated]
        if todo.shape[0] == 0:
            return offsets
    d = deg[todo]
    # Floyd: for j in d-k .. d-1 draw t in [0, j]; take t unless already taken, else take j
    chosen = np.empty((todo.shape[0], k), dtype=np.int64)
    for j in range(k):
        upper = d - k + j  # inclusive bound of the draw
        t = (rng.random(todo.shape[0]) * (upper + 1)).astype(np.int64)
        np.minimum(t, upper, out=t)
        taken = (chosen[:, :j] == t[:, None]).any(axis=1)
        chosen[:, j] = np.where(taken, upper, t)
    offsets[todo] = chosen
    return offsets


class NeighborSampler:
    """Samples mini-batch layers for seed nodes with fixed fan-outs per layer and per relation.

    `fanouts[0]` is the number of neighbours drawn around the seeds (the last layer), `fanouts[1]`
    one hop further, and so on (PyG's `num_neighbors` order). None means all neighbours.
    """

    def __init__(self, graph: CoListeningGraph, fanouts: list[int | None]):
        self.graph = graph
        self.fanouts = list(fanouts)
        self.node_types = sorted(graph.num_nodes)
        # scratch maps type index -> local index, reset after every use (avoids a sort per hop)
        self._local = {t: np.full(n, -1, dtype=np.int64) for t, n in graph.num_nodes.items()}

    def sample(self, seeds: dict[str, np.ndarray], rng: np.random.Generator) -> SampledSubgraph:
        """Sample the layers for `seeds` (unique type indices per type; missing types = none)."""
        current = {t: np.asarray(seeds.get(t, ()), dtype=np.int64) for t in self.node_types}
        num_seeds = {t: int(v.shape[0]) for t, v in current.items()}
        hops: list[Layer] = []
        for fanout in self.fanouts:
            found: dict[str, list[np.ndarray]] = {t: [] for t in self.node_types}
            drawn: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}
            for dst_type, src_type in self.graph.edge_types:  # csr[(a, b)]: neighbours of a among b
                csr = self.graph.csr[(dst_type, src_type)]
                rows, nbrs = sample_neighbors(csr.indptr, csr.indices, current[dst_type], fanout, rng)
                drawn[(src_type, dst_type)] = (rows, nbrs)
                found[src_type].append(nbrs)
            extended: dict[str, np.ndarray] = {}
            local_of: dict[str, np.ndarray] = {}
            for t in self.node_types:
                extended[t], local_of[t] = self._extend(t, current[t], found[t])
            edges: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}
            offsets = dict.fromkeys(self.node_types, 0)
            for (src_type, dst_type), (rows, _) in drawn.items():
                k = rows.shape[0]
                o = offsets[src_type]
                edges[(src_type, dst_type)] = (local_of[src_type][o : o + k], rows)
                offsets[src_type] = o + k
            hops.append(
                Layer(
                    num_src={t: int(v.shape[0]) for t, v in extended.items()},
                    num_dst={t: int(v.shape[0]) for t, v in current.items()},
                    edges=edges,
                )
            )
            current = extended
        return SampledSubgraph(node_ids=current, num_seeds=num_seeds, layers=hops[::-1])

    def _extend(
        self, node_type: str, prefix: np.ndarray, found: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`prefix` followed by the new nodes among `found`; and every found node's local index."""
        local = self._local[node_type]
        new = np.concatenate(found) if found else np.empty(0, dtype=np.int64)
        n = prefix.shape[0]
        local[prefix] = np.arange(n, dtype=np.int64)
        candidates = new[local[new] < 0]
        # dedupe without sorting: of repeated writes to one slot one wins; keep the position whose mark won
        marks = np.arange(n, n + candidates.shape[0], dtype=np.int64)
        local[candidates] = marks
        unseen = candidates[local[candidates] == marks]
        local[unseen] = np.arange(n, n + unseen.shape[0], dtype=np.int64)
        ids = np.concatenate([prefix, unseen])
        local_new = local[new]
        local[ids] = -1
        return ids, local_new
