"""Nearest-neighbour retrieval (PAPER.md §6): exact top-k, Voyager HNSW index, consumed-item filters.

Entry points: `exact.exact_top_k`, `ann.AnnIndex`, `indexing.build_indexes` (vectors in, indexes out);
stage `index`: `stage.run` (hands it the run's two-tower vectors).
"""
