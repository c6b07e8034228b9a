"""Stage `index`'s work: one Voyager index per item type over given item vectors, checked against exact
search; `retrieval.stage.run` hands it the run's two-tower vectors."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from colisten import artifacts
from colisten.config import RetrievalConfig
from colisten.io import write_json_atomic
from colisten.retrieval.ann import AnnIndex
from colisten.retrieval.exact import exact_top_k


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k found by the approximate top-k (-1 = padding)."""
    hits = [
        len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) for a, e in zip(approx, exact, strict=True)
    ]
    sizes = [max(int((e >= 0).sum()), 1) for e in exact]
    return float(np.mean(np.asarray(hits) / np.asarray(sizes))) if hits else float("nan")


def latency_ms(index: AnnIndex, queries: np.ndarray, k: int, n: int = 200) -> dict[str, float]:
    """Single-query latency (one vector per call, one thread), p50 and p99 in milliseconds."""
    times = []
    for q in queries[:n]:
        t0 = time.perf_counter()
        index.query(q, k, num_threads=1)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def recall_query_users(users: np.ndarray, cfg: RetrievalConfig) -> np.ndarray:
    """The users whose vectors measure recall: up to `recall_queries` of `users`, drawn with
    `seed`, in their given order."""
    sample = np.random.default_rng(cfg.seed).permutation(len(users))[: cfg.recall_queries]
    return users[np.sort(sample)]


def build_indexes(
    out_dir: Path,
    queries: np.ndarray,
    item_vectors: Mapping[str, np.ndarray],
    cfg: RetrievalConfig,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build OUT_DIR/TYPE.voy over each type's item vectors (float32 [n_type, d], type-index
    order) and write OUT_DIR/index.json: recall@10 against exact search for the query vectors
    (float32 [n, d]; the stage passes real users', see `recall_query_users`) and single-query
    latency. The vectors come from the caller (the `index` stage: the two-tower model's)."""
    report: dict[str, Any] = {"ann": cfg.ann, "n_queries": len(queries), "types": {}}
    if not cfg.ann:
        log("retrieval.ann is off: no index built, every query is answered exactly")
        write_json_atomic(artifacts.INDEX_REPORT.within(out_dir), report)
        return report
    for item_type, vectors in item_vectors.items():
        t0 = time.perf_counter()
        index = AnnIndex.build(
            vectors, M=cfg.ann_m, ef_construction=cfg.ann_ef_construction, ef=cfg.ann_ef, seed=cfg.seed
        )
        build_s = time.perf_counter() - t0
        index.save(artifacts.INDEX.within(out_dir, item_type=item_type))
        k = min(10, len(vectors))
        exact, _ = exact_top_k(queries, vectors, k)
        approx, _ = index.query(queries, k)
        entry = {
            "n_items": len(vectors),
            "k": k,
            "recall@10": recall_at_k(approx, exact),
            "M": cfg.ann_m,
            "ef_construction": cfg.ann_ef_construction,
            "ef": cfg.ann_ef,
            "build_seconds": round(build_s, 3),
            **latency_ms(index, queries, k),
        }
        report["types"][item_type] = entry
        log(
            f"{item_type}: {entry['n_items']} items, recall@{k} {entry['recall@10']:.4f} vs exact, "
            f"p50 {entry['p50_ms']:.3f} ms, p99 {entry['p99_ms']:.3f} ms, built in {build_s:.1f}s"
        )
    write_json_atomic(artifacts.INDEX_REPORT.within(out_dir), report)
    return report
