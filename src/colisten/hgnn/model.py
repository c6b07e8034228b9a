"""Heterogeneous GraphSAGE with per-relation max-pool aggregation (PAPER.md §3).

Per relation r: agg_r = max over sampled neighbours of σ(W_r h + b); update h' = σ(W_self h + Σ_r agg_r);
output z = h / ||h||. Our own small module rather than PyG's `HeteroConv(SAGEConv(aggr="max",
project=True), aggr="sum")`, which differs from the paper in three ways: SAGEConv applies a second
linear map after the max (`lin_l`), it has one self weight per relation instead of one W_self, and
HeteroConv gives no output to a node type without relations (an ablation must still embed such items
from their text through the self path).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colisten.graph.store import CoListeningGraph, EdgeType
from colisten.hgnn.neighbor_sampler import Layer, sample_neighbors

# Edges gathered at once in full-graph inference: bounds memory to about this many x dim floats.
_INFERENCE_CHUNK_ELEMENTS = 1 << 24


def _key(edge_type: EdgeType) -> str:
    return f"{edge_type[0]}__{edge_type[1]}"


class HeteroSAGELayer(nn.Module):
    """One layer: own W_r, b per directed relation (messages), one W_self per node type (update)."""

    def __init__(
        self,
        in_dims: dict[str, int],
        out_dim: int,
        edge_types: list[EdgeType],
        activation: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.out_dim = out_dim
        self.edge_types = sorted(edge_types)
        self.activation = activation
        self.dropout = dropout
        self.self_weight = nn.ModuleDict(
            {t: nn.Linear(d, out_dim, bias=False) for t, d in sorted(in_dims.items())}
        )
        self.relation_weight = nn.ModuleDict(
            {_key(e): nn.Linear(in_dims[e[0]], out_dim) for e in self.edge_types}
        )

    def message(self, edge_type: EdgeType, h_src: torch.Tensor) -> torch.Tensor:
        """σ(W_r h + b) for every source node (computed once per node, not per edge)."""
        return torch.relu(self.relation_weight[_key(edge_type)](h_src))

    def update(self, node_type: str, h_dst: torch.Tensor, aggregated: torch.Tensor | None) -> torch.Tensor:
        out = self.self_weight[node_type](h_dst)
        if aggregated is not None:
            out = out + aggregated
        return torch.relu(out) if self.activation else out

    def forward(
        self,
        h: dict[str, torch.Tensor],
        num_dst: dict[str, int],
        edges: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """h: source-node representations per type (destinations are each type's first num_dst rows)."""
        h = {t: F.dropout(x, self.dropout, self.training) for t, x in h.items()}
        aggregated: dict[str, torch.Tensor] = {}
        for edge_type, (src, dst) in edges.items():
            src_type, dst_type = edge_type
            if edge_type not in self.edge_types or src.numel() == 0:
                continue
            agg = max_aggregate(self.message(edge_type, h[src_type]), src, dst, num_dst[dst_type])
            aggregated[dst_type] = aggregated[dst_type] + agg if dst_type in aggregated else agg
        return {
            t: self.update(t, h[t][: num_dst[t]], aggregated.get(t)) for t in num_dst if t in self.self_weight
        }


def max_aggregate(messages: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, num_dst: int) -> torch.Tensor:
    """Per destination node, the element-wise max of its neighbours' messages (edges sorted by dst).

    Messages are >= 0 (ReLU), so 0 stands for "no neighbour": it is the result for a node without
    neighbours and the padding value. With bounded neighbourhoods (sampled fan-outs) the messages are
    laid out densely as [max_degree, num_dst, dim] and reduced with `max`, whose backward is much
    cheaper than a segment or scatter reduction's; skewed degrees (all neighbours) use a segment max.
    """
    dim = messages.shape[1]
    num_edges = int(src.shape[0])
    lengths = torch.bincount(dst, minlength=num_dst)
    width = int(lengths.max()) if num_edges else 0
    if width == 0:
        return messages.new_zeros(num_dst, dim)
    if num_dst * width <= 2 * num_edges + num_dst:
        start = torch.cumsum(lengths, 0) - lengths
        slot = torch.arange(num_edges, device=src.device) - start.repeat_interleave(
            lengths, output_size=num_edges
        )
        pad = messages.shape[0]  # index of an all-zero row appended below
        index = torch.full((width, num_dst), pad, dtype=torch.long, device=src.device)
        index[slot, dst] = src  # slot-major: the max runs over the outermost axis, the fastest layout
        padded = torch.cat([messages, messages.new_zeros(1, dim)])
        return padded.index_select(0, index.view(-1)).view(width, num_dst, dim).max(dim=0).values
    gathered = torch.index_select(messages, 0, src)  # its backward is an index_add, not an index_put
    return torch.segment_reduce(gathered, "max", lengths=lengths, unsafe=True, initial=0.0)


class HeteroGraphSAGE(nn.Module):
    """Stack of HeteroSAGELayer; embeds every node type into one L2-normalised space."""

    def __init__(
        self,
        in_dims: dict[str, int],
        edge_types: list[EdgeType],
        hidden_dim: int = 256,
        out_dim: int = 128,
        num_layers: int = 2,
        final_activation: bool = False,
        dropout: float = 0.0,
        id_dim: int = 0,
        num_nodes: dict[str, int] | None = None,
    ):
        super().__init__()
        self.config = {
            "in_dims": dict(sorted(in_dims.items())),
            "edge_types": [list(e) for e in sorted(edge_types)],
            "hidden_dim": hidden_dim,
            "out_dim": out_dim,
            "num_layers": num_layers,
            "final_activation": final_activation,
            "dropout": dropout,
            "id_dim": id_dim,
            "num_nodes": dict(sorted((num_nodes or {}).items())),
        }
        self.edge_types = sorted(edge_types)
        self.id_dim = id_dim
        if id_dim:
            if set(num_nodes or {}) != set(in_dims):
                raise ValueError("id_dim > 0 needs num_nodes for every node type")
            # Zero at the start, so the untrained model is the feature-only one and a node that is
            # never drawn in training (no edge, never a negative) keeps its feature-only embedding.
            self.node_embedding = nn.ModuleDict(
                {t: nn.Embedding(n, id_dim) for t, n in sorted((num_nodes or {}).items())}
            )
            for emb in self.node_embedding.values():
                nn.init.zeros_(emb.weight)
        first = {t: d + id_dim for t, d in in_dims.items()}
        dims = [first] + [dict.fromkeys(in_dims, hidden_dim)] * (num_layers - 1)
        outs = [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            HeteroSAGELayer(
                dims[i],
                outs[i],
                self.edge_types,
                activation=(i < num_layers - 1) or final_activation,
                dropout=dropout,
            )
            for i in range(num_layers)
        )

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @classmethod
    def from_config(cls, config: dict) -> HeteroGraphSAGE:
        c = dict(config)
        c["edge_types"] = [tuple(e) for e in c["edge_types"]]
        return cls(**c)

    def inputs(
        self, x: dict[str, torch.Tensor], node_ids: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """First-layer inputs: the features, then (id_dim > 0) each node's own learned vector.

        The learned part lets the model tell apart items whose text and neighbourhoods look alike:
        on dense real logs most of what separates them is who listened, not what they are called.
        x holds every node of a type when node_ids is None, else the rows of node_ids.
        """
        if not self.id_dim:
            return dict(x)
        if node_ids is None:
            return {t: torch.cat([v, self.node_embedding[t].weight], dim=1) for t, v in x.items()}
        return {t: torch.cat([v, self.node_embedding[t](node_ids[t])], dim=1) for t, v in x.items()}

    def forward(
        self,
        x: dict[str, torch.Tensor],
        layers: list[Layer],
        node_ids: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Embed a sampled mini-batch: x = input features of its nodes (node_ids: their indices,
        needed with id_dim > 0); returns z of the seeds."""
        assert len(layers) == self.num_layers, "one sampled layer per model layer"
        if self.id_dim and node_ids is None:
            raise ValueError("a model with id_dim > 0 needs the mini-batch's node_ids")
        device = next(self.parameters()).device
        h = self.inputs(x, node_ids)
        for module, layer in zip(self.layers, layers, strict=True):
            edges = {
                e: (torch.from_numpy(s).to(device), torch.from_numpy(d).to(device))
                for e, (s, d) in layer.edges.items()
            }
            h = module(h, layer.num_dst, edges)
        return {t: F.normalize(v, dim=-1) for t, v in h.items()}

    @torch.no_grad()
    def embed_full_graph(
        self,
        graph: CoListeningGraph,
        x: dict[str, torch.Tensor],
        fanouts: list[int | None] | None = None,
        seed: int = 0,
    ) -> dict[str, torch.Tensor]:
        """Embed every node, layer by layer over the whole graph (each node computed once per layer).

        fanouts=None aggregates over all neighbours; otherwise fanouts[i] caps every node's
        neighbours per relation, in the neighbour sampler's order (fanouts[0] = the last layer),
        with a fixed draw for a given seed.
        """
        was_training = self.training
        self.eval()
        try:
            return self.full_graph_forward(graph, x, fanouts, np.random.default_rng(seed))
        finally:
            self.train(was_training)

    def full_graph_forward(
        self,
        graph: CoListeningGraph,
        x: dict[str, torch.Tensor],
        fanouts: list[int | None] | None,
        rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """`embed_full_graph` with gradients and the module's own train/eval mode: a full-graph
        training step embeds every node with freshly sampled neighbours (hgnn.training =
        'full_graph'), which on a graph of a few thousand items is far cheaper per supervision edge
        than sampling a computation tree per mini-batch."""
        fanouts = list(fanouts) if fanouts is not None else [None] * self.num_layers
        if len(fanouts) != self.num_layers:
            raise ValueError(f"{len(fanouts)} fan-outs for {self.num_layers} layers")
        device = next(self.parameters()).device
        h = self.inputs({t: v.to(device) for t, v in x.items()})
        for module, fanout in zip(self.layers, fanouts[::-1], strict=True):
            out_dim = module.out_dim
            aggregated: dict[str, torch.Tensor] = {}
            for edge_type in self.edge_types:
                src_type, dst_type = edge_type
                csr = graph.csr.get((dst_type, src_type))
                if csr is None or csr.num_edges == 0:
                    continue
                m = module.message(edge_type, h[src_type])
                parts = []
                for lo, hi, rows, nbrs in _edge_chunks(csr.indptr, csr.indices, fanout, rng, out_dim):
                    src = torch.from_numpy(nbrs).to(device)
                    parts.append(max_aggregate(m, src, torch.from_numpy(rows).to(device), hi - lo))
                agg = torch.cat(parts)
                aggregated[dst_type] = aggregated[dst_type] + agg if dst_type in aggregated else agg
            h = {t: module.update(t, h[t], aggregated.get(t)) for t in h}
        return {t: F.normalize(v, dim=-1) for t, v in h.items()}


def _edge_chunks(
    indptr: np.ndarray, indices: np.ndarray, fanout: int | None, rng: np.random.Generator, dim: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(lo, hi, row - lo, neighbour) for consecutive node ranges [lo, hi) of a CSR, bounded in size."""
    n = indptr.shape[0] - 1
    per_chunk = max(1, _INFERENCE_CHUNK_ELEMENTS // dim)
    cap = np.diff(indptr) if fanout is None else np.minimum(np.diff(indptr), fanout)
    ends = np.searchsorted(
        np.cumsum(cap), np.arange(per_chunk, int(cap.sum()) + per_chunk, per_chunk), side="right"
    )
    lo = 0
    for hi in [*np.unique(np.clip(ends, 1, n)).tolist(), n]:
        if hi <= lo:
            continue
        nodes = np.arange(lo, hi, dtype=np.int64)
        rows, nbrs = sample_neighbors(indptr, indices, nodes, fanout, rng)
        yield lo, hi, rows, nbrs
        lo = hi
