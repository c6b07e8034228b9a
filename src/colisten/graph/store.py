"""In-memory co-listening graph as per-relation CSR arrays, and its on-disk form (RUN/graph/csr).

The graph is what the HGNN samples from: for every ordered pair of node types (SRC, DST) that
share a relation, `indptr`/`indices` list each SRC node's DST-type neighbours (type indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from colisten import artifacts
from colisten.io import save_npz_atomic, write_json_atomic

EdgeType = tuple[str, str]  # (src_type, dst_type)


def relation_name(type_a: str, type_b: str) -> str:
    """Undirected relation name with the two type names sorted, e.g. 'audiobook__podcast'."""
    a, b = sorted((type_a, type_b))
    return f"{a}__{b}"


@dataclass
class CSR:
    """Neighbours of every source node: indices[indptr[i]:indptr[i+1]] (sorted), with weights."""

    indptr: np.ndarray  # int64 [n_src + 1]
    indices: np.ndarray  # int64 [n_edges] (destination type indices)
    weight: np.ndarray  # float32 [n_edges]

    @property
    def num_edges(self) -> int:
        return int(self.indices.shape[0])

    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    def neighbors(self, node: int) -> np.ndarray:
        return self.indices[self.indptr[node] : self.indptr[node + 1]]

    @classmethod
    def from_pairs(
        cls, src: np.ndarray, dst: np.ndarray, num_src: int, weight: np.ndarray | None = None
    ) -> CSR:
        src = np.asarray(src, dtype=np.int64)
        dst = np.asarray(dst, dtype=np.int64)
        w = np.ones(src.shape[0], np.float32) if weight is None else np.asarray(weight, np.float32)
        order = np.lexsort((dst, src))
        src, dst, w = src[order], dst[order], w[order]
        indptr = np.zeros(num_src + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=num_src), out=indptr[1:])
        return cls(indptr=indptr, indices=dst, weight=w)


@dataclass
class CoListeningGraph:
    """Item-only heterogeneous graph: node types are item types, edges are co-listening."""

    num_nodes: dict[str, int]  # item_type -> number of items of that type (incl. isolated)
    csr: dict[EdgeType, CSR] = field(default_factory=dict)  # both directions for cross-type

    @property
    def node_types(self) -> list[str]:
        return sorted(self.num_nodes)

    @property
    def edge_types(self) -> list[EdgeType]:
        return sorted(self.csr)

    def relations(self) -> list[str]:
        return sorted({relation_name(s, d) for s, d in self.csr})

    def num_undirected_edges(self, relation: str) -> int:
        a, b = relation.split("__")
        return self.csr[(a, b)].num_edges // (2 if a == b else 1)

    @classmethod
    def from_undirected_edges(
        cls,
        num_nodes: dict[str, int],
        edges: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    ) -> CoListeningGraph:
        """Build from undirected edges per relation: {"a__b": (type_index_in_a, type_index_in_b, weight)}.

        Same-type relations are symmetrised; cross-type relations get both directions.
        """
        csr: dict[EdgeType, CSR] = {}
        for rel, (u, v, w) in edges.items():
            a, b = rel.split("__")
            u = np.asarray(u, np.int64)
            v = np.asarray(v, np.int64)
            w = np.ones(u.shape[0], np.float32) if w is None else np.asarray(w, np.float32)
            if a == b:
                csr[(a, a)] = CSR.from_pairs(np.r_[u, v], np.r_[v, u], num_nodes[a], np.r_[w, w])
            else:
                csr[(a, b)] = CSR.from_pairs(u, v, num_nodes[a], w)
                csr[(b, a)] = CSR.from_pairs(v, u, num_nodes[b], w)
        return cls(num_nodes=dict(num_nodes), csr=csr)

    # --- disk ------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for (s, t), c in self.csr.items():
            save_npz_atomic(d / f"{s}__{t}.npz", indptr=c.indptr, indices=c.indices, weight=c.weight)
        write_json_atomic((d / artifacts.GRAPH_NUM_NODES.name), self.num_nodes)

    @classmethod
    def load(cls, directory: str | Path) -> CoListeningGraph:
        import json

        d = Path(directory)
        num_nodes = json.loads((d / artifacts.GRAPH_NUM_NODES.name).read_text())
        csr: dict[EdgeType, CSR] = {}
        for f in sorted(d.glob("*__*.npz")):
            s, t = f.stem.split("__")
            with np.load(f) as z:
                csr[(s, t)] = CSR(z["indptr"], z["indices"], z["weight"])
        return cls(num_nodes=num_nodes, csr=csr)
