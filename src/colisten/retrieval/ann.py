"""Approximate top-k with a Voyager HNSW index (inner product), saved to and reloaded from the run.

Voyager has no per-query filters, so exclusions are applied by over-fetching k + |excluded|
neighbours and dropping the excluded ones; queries that would need most of the catalogue fall
back to exact search over the index's own vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from colisten.io import atomic_path
from colisten.retrieval.exact import Exclusions, RetrievalError, check_k, exact_top_k, exclusion_csr


class AnnIndex:
    """HNSW index over item vectors whose ids are row numbers (type indices for the run's indexes)."""

    def __init__(self, index, ef: int = 100) -> None:  # index: voyager.Index
        self.index = index
        self.ef = int(ef)
        self._vectors: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        *,
        M: int = 16,  # noqa: N803 (HNSW's name for it)
        ef_construction: int = 200,
        ef: int = 100,
        seed: int = 0,
        num_threads: int = -1,
    ) -> AnnIndex:
        """Index `vectors` (float32 [n, d]) under ids 0..n-1, scored by inner product."""
        import voyager

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] == 0:
            raise RetrievalError(f"cannot index vectors of shape {vectors.shape}")
        index = voyager.Index(
            voyager.Space.InnerProduct,
            num_dimensions=int(vectors.shape[1]),
            M=int(M),
            ef_construction=int(ef_construction),
            random_seed=int(seed),
            max_elements=int(vectors.shape[0]),
        )
        index.add_items(vectors, ids=np.arange(vectors.shape[0], dtype=np.int64), num_threads=num_threads)
        out = cls(index, ef=ef)
        out._vectors = vectors
        return out

    def __len__(self) -> int:
        return int(self.index.num_elements)

    @property
    def num_dimensions(self) -> int:
        return int(self.index.num_dimensions)

    def save(self, path: str | Path) -> Path:
        """Write the index atomically (Voyager's own file format)."""
        with atomic_path(path) as tmp:
            self.index.save(str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, ef: int = 100) -> AnnIndex:
        import voyager

        p = Path(path)
        if not p.exists():
            raise RetrievalError(f"{p} is missing: build it with `colisten index --run RUN`")
        return cls(voyager.Index.load(str(p)), ef=ef)

    def vectors(self) -> np.ndarray:
        """The indexed vectors in id order (read back from the index when loaded from disk)."""
        if self._vectors is None:
            ids = np.arange(len(self), dtype=np.int64)
            self._vectors = np.asarray(self.index.get_vectors(ids.tolist()), dtype=np.float32)
        return self._vectors

    def query(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Exclusions | None = None,
        ef: int | None = None,
        num_threads: int = -1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k by inner product: (ids int64 [n, k], scores float32 [n, k]), best first.

        Same contract as `exact_top_k` (padding with -1 / -inf when exclusions leave < k items).
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        single = queries.ndim == 1
        if single:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.num_dimensions:
            raise RetrievalError(
                f"queries {queries.shape} do not match the index dimension {self.num_dimensions}"
            )
        n_items = len(self)
        check_k(k, n_items, what="index")
        excl = exclusion_csr(exclude, queries.shape[0])
        extra = 0 if excl is None else int(np.diff(excl[0]).max(initial=0))
        fetch = min(n_items, k + extra)
        ef = max(int(ef or self.ef), fetch)
        if fetch > n_items // 2:  # HNSW cannot reliably return most of its graph: search exactly
            idx, scores = exact_top_k(queries, self.vectors(), k, exclude=excl)
        else:
            ids, dist = self.index.query(queries, k=fetch, num_threads=num_threads, query_ef=ef)
            ids = ids.astype(np.int64).reshape(queries.shape[0], fetch)
            scores_all = (1.0 - dist).astype(np.float32).reshape(queries.shape[0], fetch)
            idx, scores = _drop_excluded(ids, scores_all, excl, k)
        if single:
            return idx[0], scores[0]
        return idx, scores


def _drop_excluded(
    ids: np.ndarray, scores: np.ndarray, excl: tuple[np.ndarray, np.ndarray] | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    n = ids.shape[0]
    if excl is None:
        return ids[:, :k].copy(), scores[:, :k].copy()
    indptr, indices = excl
    out_idx = np.full((n, k), -1, dtype=np.int64)
    out_score = np.full((n, k), -np.inf, dtype=np.float32)
    for i in range(n):
        banned = indices[indptr[i] : indptr[i + 1]]
        keep = ~np.isin(ids[i], banned) if len(banned) else slice(None)
        kept_ids, kept_scores = ids[i][keep][:k], scores[i][keep][:k]
        out_idx[i, : len(kept_ids)] = kept_ids
        out_score[i, : len(kept_ids)] = kept_scores
    return out_idx, out_score
