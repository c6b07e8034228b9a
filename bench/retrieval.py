"""Retrieval and two-tower scoring benchmark.

1. Exact vs Voyager HNSW on synthetic 128-d item vectors (250k = the paper's audiobook
   catalogue): single-query p50/p99 latency, recall@10 against exact, build time.
2. Two-tower training time and batch scoring on a demo-size toy run: `colisten recommend
   --users all` export path (users/s) against the per-user real-time path (baseline).

Usage: .venv/bin/python bench/retrieval.py [--quick] [--threads N] [--skip-train]
Prints tables and appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from colisten.config import Settings
from colisten.retrieval.ann import AnnIndex
from colisten.retrieval.exact import exact_top_k
from colisten.retrieval.indexing import recall_at_k

RESULTS = Path(__file__).with_name("RESULTS.md")


def clustered_vectors(n: int, d: int, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around random topic centroids: embedding-like structure, not uniform noise."""
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32)
    x = centers[rng.integers(0, n_clusters, n)] + 0.6 * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def ann_vs_exact(n_items: int, n_queries: int, efs: list[int], M: int, ef_construction: int) -> list[list]:  # noqa: N803
    """One index; two query sets: new points of the items' distribution (same centroids), and
    random directions (off the items' manifold: a stress case, harder than real user vectors)."""
    rng = np.random.default_rng(0)
    both = clustered_vectors(n_items + n_queries, 128, 2000, rng)
    items = both[:n_items]
    query_sets = {
        "same distribution": both[n_items:],
        "random directions": random_directions(n_queries, 128, rng),
    }
    t0 = time.perf_counter()
    index = AnnIndex.build(items, M=M, ef_construction=ef_construction, seed=0)
    build_s = time.perf_counter() - t0

    rows = []
    for name, queries in query_sets.items():
        t0 = time.perf_counter()
        truth, _ = exact_top_k(queries, items, 10)
        batch_qps = n_queries / (time.perf_counter() - t0)
        exact_ms = []
        for q in queries:
            t = time.perf_counter()
            exact_top_k(q, items, 10)
            exact_ms.append((time.perf_counter() - t) * 1e3)
        e50, e99 = percentiles(exact_ms)
        rows.append(
            [
                name,
                "exact (matmul + topk)",
                "-",
                f"{e50:.3f}",
                f"{e99:.3f}",
                "1.0000",
                "1.0x",
                f"{batch_qps:,.0f}",
                "-",
            ]
        )
        for ef in efs:
            index.query(queries[:50], 10, ef=ef)  # warm-up
            ms = []
            found = np.empty_like(truth)
            for i, q in enumerate(queries):
                t = time.perf_counter()
                found[i], _ = index.query(q, 10, ef=ef, num_threads=1)
                ms.append((time.perf_counter() - t) * 1e3)
            p50, p99 = percentiles(ms)
            t0 = time.perf_counter()
            index.query(queries, 10, ef=ef)
            qps = n_queries / (time.perf_counter() - t0)
            rows.append(
                [
                    name,
                    f"Voyager HNSW M={M} efC={ef_construction}",
                    str(ef),
                    f"{p50:.3f}",
                    f"{p99:.3f}",
                    f"{recall_at_k(found, truth):.4f}",
                    f"{e50 / p50:.0f}x",
                    f"{qps:,.0f}",
                    f"{build_s:.0f}",
                ]
            )
    return rows


def two_tower(n_users: int, epochs: int, realtime_users: int, k: int, train: bool) -> tuple[list[list], dict]:
    sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # the toy run: tests/toy_run.py
    import pandas as pd
    from toy_run import write_toy_run

    from colisten.twotower import stage as twotower_stage
    from colisten.twotower.recommender import TwoTowerRecommender, write_recommendations

    rows: list[list] = []
    info: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.model_validate({"twotower": {"epochs": epochs if train else 1}})
        run = write_toy_run(
            Path(tmp) / "run",
            n_users=n_users,
            n_audiobooks=max(200, n_users // 10),
            n_podcasts=max(400, n_users // 5),
            n_topics=40,
            events_per_user=50,
            text_dim=384,
            hgnn_dim=128,
            settings=settings,
        )
        info["events"] = len(pd.read_parquet(run / "data/interactions.parquet", columns=["user_id"]))
        cpu0, t0 = time.process_time(), time.perf_counter()
        summary = twotower_stage.run(run, settings)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        info["train"] = summary
        rows.append(
            [
                f"train-2t, {summary['epochs']} epochs ({summary['n_train_pairs']:,} label pairs, batch 128)",
                f"{wall:.1f} s wall",
                f"{cpu:.1f} s CPU",
                "-",
            ]
        )
        rec = TwoTowerRecommender.load(run)
        users = rec.known_users()
        t0 = time.perf_counter()
        write_recommendations(rec, users, ["audiobook"], k, Path(tmp) / "recs.parquet", progress=False)
        batch_ups = len(users) / (time.perf_counter() - t0)

        history = pd.read_parquet(run / "split/history.parquet")
        by_user = dict(tuple(history.groupby("user_id")))
        sample = users[:realtime_users]
        ms = []
        t0 = time.perf_counter()
        for u in sample:
            t = time.perf_counter()
            h = by_user.get(u)
            records = [] if h is None else h[["item_id", "event", "timestamp"]].to_dict("records")
            rec.recommend_from_history(records, "audiobook", k, **rec.demographics(u))
            ms.append((time.perf_counter() - t) * 1e3)
        rt_ups = len(sample) / (time.perf_counter() - t0)
        p50, p99 = percentiles(ms)
        n_books = rec.item_vectors("audiobook")[1].shape[0]
        rows.append(
            [
                f"batch export (`recommend --users all`), top-{k} of {n_books:,} audiobooks",
                f"{batch_ups:,.0f} users/s",
                f"{len(users):,} users",
                f"{batch_ups / rt_ups:.0f}x",
            ]
        )
        rows.append(
            [
                f"real-time path, one user per call (baseline), top-{k}",
                f"{rt_ups:,.0f} users/s",
                f"p50 {p50:.1f} ms / p99 {p99:.1f} ms",
                "1.0x",
            ]
        )
    return rows, info


def goal_verdict(rows: list[list]) -> str:
    """The issue's goal (p99 <= 2 ms at recall@10 >= 0.98): the cheapest ef that reaches the recall."""
    ok = [r for r in rows if r[0] == "same distribution" and r[2] != "-" and float(r[5]) >= 0.98]
    if not ok:
        return "goal (p99 <= 2 ms at recall@10 >= 0.98, same-distribution queries): recall 0.98 not reached"
    best = min(ok, key=lambda r: float(r[4]))
    met = "met" if float(best[4]) <= 2.0 else "missed on p99 (CPU shared; see p50)"
    return (
        f"goal (p99 <= 2 ms at recall@10 >= 0.98, same-distribution queries): ef={best[2]} gives recall "
        f"{best[5]} at p50 {best[3]} ms / p99 {best[4]} ms -> {met}"
    )


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--skip-train", action="store_true", help="train 1 epoch only (scoring needs a model)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        n_items, n_queries, n_users, epochs, rt_users = 20_000, 200, 2_000, 2, 100
    else:
        n_items, n_queries, n_users, epochs, rt_users = 250_000, 1_000, 20_000, 10, 300
    efs = [32, 64, 128, 256, 512]
    load0 = os.getloadavg()[0]
    ann_rows = ann_vs_exact(n_items, n_queries, efs, M=16, ef_construction=200)
    tt_rows, info = two_tower(n_users, epochs, rt_users, 100, train=not args.skip_train)
    load1 = os.getloadavg()[0]

    ann_header = [
        "queries",
        "search",
        "ef",
        "p50 ms",
        "p99 ms",
        "recall@10",
        "p50 speed-up",
        "batch queries/s",
        "build s",
    ]
    tt_header = ["two-tower step", "throughput / time", "detail", "vs real-time"]
    t_ann = table(ann_header, ann_rows)
    t_tt = table(tt_header, tt_rows)
    print(t_ann)
    print()
    print(t_tt)
    print(goal_verdict(ann_rows))

    ram = psutil.virtual_memory().total / 2**30
    notes = [
        f"date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {ram:.1f} GiB RAM, "
        f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)",
        f"command: `.venv/bin/python bench/retrieval.py {' '.join(sys.argv[1:])}`",
        f"note: the CPU was shared with other jobs while measured (1-min load average {load0:.1f} at start, "
        f"{load1:.1f} at end, on {os.cpu_count()} CPUs): absolute times, p99s most of all, are pessimistic.",
        f"ANN: {n_items:,} synthetic unit vectors, 128-d, around 2,000 topic centroids (noise 0.6 per "
        f"dimension). Queries ({n_queries:,} per set): 'same distribution' = new points around the items' "
        "centroids; 'random directions' = uniform on the sphere, off the items' manifold (stress case). "
        "Latency = one `AnnIndex.query` / "
        "`exact_top_k` call per query, one thread; recall@10 against exact; speed-up = exact p50 / HNSW p50.",
        f"two-tower: toy run (`tests/toy_run.py`), {n_users:,} users, {info['events']:,} events, "
        "384-d text and 128-d HGNN embeddings, paper settings (512-256-128 towers, batch 128, Adam 1e-3). "
        "The export times reading the history, user features, user tower, exact top-k with the consumed "
        "filter and Parquet writing; the baseline runs the real-time path (`recommend_from_history`: history "
        "records -> user vector -> filtered top-k) once per user.",
    ]
    verdict = goal_verdict(ann_rows)
    notes.append(verdict)
    title = "## Retrieval: exact vs Voyager HNSW; two-tower training and scoring (bench/retrieval.py)"
    bullets = "\n".join(f"- {n}" for n in notes)
    section = f"\n{title}\n\n{bullets}\n\n{t_ann}\n\n{t_tt}\n"
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(section)
    print(f"\nappended to {RESULTS}")


if __name__ == "__main__":
    main()
