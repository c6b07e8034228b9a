"""How much hold-out quality a synthetic world leaves on the table: oracle ceilings beside the run's
models.

A run built on a synthetic world (`colisten demo`, or `colisten run --data WORLD`) has the world's
ground truth next to its input data. This script ranks the run's hold-out with the same harness,
split and metrics as `colisten evaluate`, for:

- **Oracle: true taste** — the world's own choice model with every user's true latent taste: the
  best any recommender could do (it still misses, because choices are random draws).
- **Oracle: taste from history** — the true choice model and the true topic mixture of every item,
  but the user's taste estimated from the items in their history only (mean topic mixture of the
  distinct items they streamed or signalled; for a type: half its own items' mean, half the other
  type's, or the other type's alone when the user has none of its own). What a model that knew
  every item perfectly could reach from the history a real model sees.
- **2T, true item topics** and **2T, ALS item factors** (with `--swap-embeddings`) — the run's
  two-tower model retrained with other item embeddings in place of the HGNN's: the items' true
  topic mixtures (perfect knowledge of every item's topics, though not of its popularity), then
  the ALS baseline's item factors (a plain collaborative embedding of the same history): how much
  better item embeddings could lift 2T-HGNN on this world. **2T, random item vectors** is the
  control: a fixed random vector per item gives the model item identity and nothing else, so an
  embedding helps only as far as it beats that row.

The run's own models come from RUN/eval/metrics.json. Prints a table and appends it to
bench/RESULTS.md.

    .venv/bin/python bench/ceiling.py --run RUN [--swap-embeddings] [--embeddings NAME=FILE.npy ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from colisten.evaluate.baselines import ALS
from colisten.evaluate.data import load_eval_data
from colisten.evaluate.harness import evaluate_run
from colisten.evaluate.oracle import TasteFromHistory, TrueTaste, world_of_run
from colisten.rundir import RunDir
from colisten.world.truth import WorldTruth

ROWS = ("Popularity", "LLM-KNN", "HGNN", "HGNN-w-users", "ALS", "2T", "2T-HGNN")
CELLS = (("audiobook", "warm"), ("audiobook", "cold"), ("podcast", "all"))
BUILT_IN_SWAPS = ("true item topics", "ALS item factors", "random item vectors")  # --swap-embeddings rows


def world_of(run: Path) -> Path:
    world = world_of_run(run)
    if world is None:
        sys.exit(f"{run}: its input data is not a synthetic world (no truth/); nothing to compare")
    return world


def true_topics(truth: WorldTruth, data) -> np.ndarray:
    """Every item's true topic mixture (sqrt, unit rows), in the run's item order."""
    topics = np.sqrt(
        truth.arrays["item_topic_mixture"][truth.item_index(list(data.item_ids))].astype(np.float32)
    )
    return topics / np.linalg.norm(topics, axis=1, keepdims=True)


def als_factors(settings, data) -> np.ndarray:
    """implicit ALS item factors fitted on the run's history (the ALS baseline's), unit rows."""
    _, items, _ = ALS(settings).fit(data)
    return items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-9)


def random_vectors(n_items: int, dim: int, seed: int = 0) -> np.ndarray:
    """A fixed random unit vector per item: identity without knowledge of the item (the control)."""
    v = np.random.default_rng(seed).normal(size=(n_items, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def retrain_with_item_embeddings(run: Path, embeddings: np.ndarray, workdir: Path) -> dict:
    """Copy the run's inputs, put `embeddings` where the HGNN embeddings were (zero padded to their
    width), retrain the two-tower model with the run's settings and evaluate it."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for part in ("data", "split", "content", "graph", "hgnn", "manifest.json"):
        src = run / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workdir / part)
    hgnn = np.load(workdir / "hgnn" / "item_embeddings.npy")
    if embeddings.ndim != 2 or embeddings.shape[1] > hgnn.shape[1] or embeddings.shape[0] != hgnn.shape[0]:
        sys.exit(f"embeddings of shape {embeddings.shape} do not fit the HGNN's {hgnn.shape}")
    emb = np.zeros_like(hgnn)
    emb[:, : embeddings.shape[1]] = embeddings
    np.save(workdir / "hgnn" / "item_embeddings.npy", emb)
    colisten = [sys.executable, "-m", "colisten"]
    subprocess.run(
        [*colisten, "train-2t", "--run", str(workdir), "--no-progress"], check=True, stdout=subprocess.DEVNULL
    )
    subprocess.run(
        [*colisten, "evaluate", "--run", str(workdir), "--models", "2T-HGNN"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads((workdir / "eval" / "metrics.json").read_text())


def cell(metrics: dict, model: str, item_type: str, segment: str) -> str:
    m = metrics.get(item_type, {}).get(segment, {}).get(model)
    if not m or "hr@10" not in m:
        return "n/a"
    ci = m.get("ci95", {}).get("hr@10")
    return f"{m['hr@10']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a run on a synthetic world, after evaluate")
    parser.add_argument(
        "--swap-embeddings",
        action="store_true",
        help="also retrain 2T with true item topics, ALS item factors and random item vectors "
        "in place of the HGNN's",
    )
    parser.add_argument(
        "--embeddings",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="also retrain 2T with these item embeddings (global item order, as hgnn/item_embeddings.npy; "
        "e.g. an HGNN trained elsewhere) in place of the HGNN's; the row is called '2T, NAME'. Repeatable.",
    )
    parser.add_argument("--workdir", type=Path, default=Path("bench/_work/ceiling"))
    args = parser.parse_args()

    extra = {}  # --embeddings, checked before the (slow) oracle evaluation
    for spec in args.embeddings:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path).is_file():
            sys.exit(f"--embeddings {spec!r}: expected NAME=FILE.npy with an existing file")
        if f"2T, {name}" in extra or name in BUILT_IN_SWAPS:
            sys.exit(f"--embeddings {spec!r}: the name {name!r} is already used by another row")
        extra[f"2T, {name}"] = path
    run = args.run.resolve()
    world_dir = world_of(run)
    truth = WorldTruth.load(world_dir)
    settings = RunDir(run).settings()
    data = load_eval_data(run, settings)
    oracles = [TrueTaste(truth), TasteFromHistory(truth)]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    for item_type, by_segment in evaluate_run(run, settings, oracles, data=data).items():
        for segment, models in by_segment.items():
            metrics.setdefault(item_type, {}).setdefault(segment, {}).update(models)
    rows = [o.name for o in oracles] + list(ROWS)
    swaps = []  # the two-tower model with other item embeddings in the HGNN's place
    if args.swap_embeddings:
        built_in = {
            "true item topics": lambda: true_topics(truth, data),
            "ALS item factors": lambda: als_factors(settings, data),
            "random item vectors": lambda: random_vectors(len(data.item_ids), settings.hgnn.out_dim),
        }
        swaps += [(f"2T, {name}", built_in[name]) for name in BUILT_IN_SWAPS]
    for name, path in extra.items():
        swaps.append((name, lambda path=path: np.load(path)))
    if swaps:
        for name, load in swaps:
            swapped = retrain_with_item_embeddings(run, load(), args.workdir)
            for item_type, segment in CELLS:
                metrics[item_type][segment][name] = swapped[item_type][segment]["2T-HGNN"]
            rows.append(name)

    header = "| model | " + " | ".join(f"HR@10 {t}s, {s} users" for t, s in CELLS) + " |"
    lines = [header, "|---" * (len(CELLS) + 1) + "|"]
    lines += [f"| {r} | " + " | ".join(cell(metrics, r, t, s) for t, s in CELLS) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    world = json.loads((world_dir / "world.json").read_text())
    section = (
        "\n## Quality ceiling of a synthetic world (bench/ceiling.py)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem_gb:.0f} GiB RAM\n"
        f"- command: `.venv/bin/python bench/ceiling.py {' '.join(sys.argv[1:])}`\n"
        f"- world: {world['users']:,} users, {world['podcasts']:,} podcasts, {world['audiobooks']:,} "
        f"audiobooks, seed {world['seed']}, segments {world['behaviour'].get('segments', 1)}\n\n{table}\n"
    )
    results = Path(__file__).with_name("RESULTS.md")
    with results.open("a") as f:
        f.write(section)


if __name__ == "__main__":
    main()
