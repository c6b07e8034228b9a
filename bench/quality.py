"""The real-data suite: every model on two-type recasts of real data sets, several seeds, paired CIs.

For each data set (MovieLens-100K, ml-latest-small) and seed, the recast is made with that seed
(it picks the cold users) and `colisten run` runs every stage with the models seeded by it too.
Settings are chosen on the history-only validation split by the tune stage, the same trial budget
for every model; by default the first seed's choice is reused for the other seeds of a data set
(same time windows, so the choice never saw their hold-out; `--tune-every-seed` tunes each).

Per data set and segment it prints the mean over seeds of HR@10, MRR@100 and Coverage@100, and the
paired bootstrap 95% interval of (2T-HGNN − model) HR@10: users resampled within each seed, the same
users on both sides, the seeds' means averaged. Appends the tables, the tuned settings and the wall
time per model to bench/RESULTS.md.

    .venv/bin/python bench/quality.py [--datasets ml-100k,ml-latest-small] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = {"ml-100k": "movielens-100k", "ml-latest-small": "ml-latest-small"}
OURS = "2T-HGNN"
SEGMENTS = (("audiobook", "warm"), ("audiobook", "cold"), ("podcast", "all"))


def recast(dataset: str, out: Path, seed: int) -> None:
    """`colisten datasets` writes the data set's two-type recast (seeded) to `out`."""
    cmd = [
        sys.executable,
        "-m",
        "colisten",
        "datasets",
        DATASETS[dataset],
        "--out",
        str(out),
        "--seed",
        str(seed),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help="comma-separated, of: " + ", ".join(DATASETS)
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (recast and models)")
    parser.add_argument("--workdir", type=Path, default=Path("bench/_work/quality"))
    parser.add_argument("--config", type=Path, default=None, help="TOML settings over the defaults")
    parser.add_argument("--trials", type=int, default=None, help="trials per model (default [tune] trials)")
    parser.add_argument("--tune-every-seed", action="store_true", help="tune each seed on its own history")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples for the paired intervals")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    t_start = time.perf_counter()
    sections = []
    for name in names:
        runs = []
        for i, seed in enumerate(seeds):
            reuse = None if (i == 0 or args.tune_every_seed) else runs[0]
            runs.append(run_one(name, seed, args, reuse))
        sections.append(report_dataset(name, runs, seeds, args.bootstrap))
    wall = time.perf_counter() - t_start
    text = "\n".join(sections)
    print(text)
    print(f"total wall: {wall / 60:.1f} min")
    if not args.no_record:
        record(text, wall, args)


def run_one(name: str, seed: int, args: argparse.Namespace, reuse: Path | None) -> Path:
    """Recast `name` with `seed` and run the whole pipeline on it; returns the run directory."""
    from colisten.config import load_settings
    from colisten.pipeline import run_pipeline

    data = args.workdir / name / f"data-seed{seed}"
    out = args.workdir / name / f"run-seed{seed}"
    if not (out / "eval" / "metrics.json").exists():
        recast(name, data, seed)
        overrides = {
            "hgnn": {"seed": seed},
            "twotower": {"seed": seed},
            "evaluate": {"seed": seed},
            # the seeds share the items' texts: embed each once per data set (a speed-only setting)
            "content": {"cache_dir": str((args.workdir / name / "text-cache").resolve())},
        }
        if args.trials:
            overrides["tune"] = {"trials": args.trials}
        settings = load_settings(args.config, overrides)
        t0 = time.perf_counter()
        print(f"== {name} seed {seed}" + (f" (settings of {reuse})" if reuse else ""), flush=True)
        run_pipeline(data, out, settings, reuse_tuning=reuse, log=lambda m: print(m, flush=True))
        print(f"== {name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def paired_interval(diffs: list[np.ndarray], b: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean over seeds of the mean per-user difference, and its bootstrap 95% interval (users
    resampled within each seed)."""
    rng = np.random.default_rng(seed)
    point = float(np.mean([d.mean() for d in diffs]))
    stats = np.zeros(b)
    for d in diffs:
        idx = rng.integers(0, d.size, size=(b, d.size))
        stats += d[idx].mean(axis=1)
    stats /= len(diffs)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return point, float(lo), float(hi)


def report_dataset(name: str, runs: list[Path], seeds: list[int], b: int) -> str:
    from colisten.io import read_json

    metrics = [read_json(r / "eval" / "metrics.json") for r in runs]
    per_user = [pd.read_parquet(r / "eval" / "per_user.parquet") for r in runs]
    models = list(metrics[0]["audiobook"]["warm"])
    lines = [f"### {name} (seeds {', '.join(map(str, seeds))})", ""]
    for item_type, segment in SEGMENTS:
        n_users = [m[item_type][segment].get(OURS, {}).get("users", 0) for m in metrics]
        lines += [
            f"{item_type}, {segment} users (per seed: {', '.join(map(str, n_users))})",
            "",
            f"| model | HR@10 | MRR@100 | Cov@100 | {OURS} − model, HR@10 [95% CI] |",
            "|---|---|---|---|---|",
        ]
        for model in models:
            rows = [m[item_type][segment].get(model, {}) for m in metrics]
            if any("hr@10" not in r for r in rows):
                reason = next((r.get("reason", "") for r in rows if "hr@10" not in r), "")
                lines.append(f"| {model} | n/a | | | {reason[:40]} |")
                continue
            hr = np.mean([r["hr@10"] for r in rows])
            mrr = np.mean([r["mrr@100"] for r in rows])
            cov = np.mean([r["coverage@100"] for r in rows])
            diff = ""
            if model != OURS:
                diffs = []
                for pu in per_user:
                    sel = pu[(pu.item_type == item_type) & pu.segment.isin(_segments(segment))]
                    wide = sel.pivot_table(index="user_id", columns="model", values="hr@10")
                    if OURS in wide and model in wide:
                        diffs.append((wide[OURS] - wide[model]).to_numpy())
                if len(diffs) == len(runs):
                    point, lo, hi = paired_interval(diffs, b)
                    diff = f"{point:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            bold = "**" if model == OURS else ""
            lines.append(f"| {bold}{model}{bold} | {hr:.3f} | {mrr:.3f} | {cov:.1%} | {diff} |")
        lines.append("")
    lines += tuned_settings(runs[0]) + wall_times(runs)
    return "\n".join(lines)


def _segments(segment: str) -> list[str]:
    return ["warm", "cold"] if segment == "all" else [segment]


def tuned_settings(run: Path) -> list[str]:
    from colisten.io import read_json

    tuning = read_json(run / "tune" / "tuning.json")
    metric, segment = tuning["metric"], tuning["segment"]
    lines = [
        f"Settings chosen on validation ({metric}, {segment} {tuning['item_type']} users, "
        f"{tuning['trials_per_model']} trials per model):",
        "",
        f"| model | validation {metric} | chosen |",
        "|---|---|---|",
    ]
    for model, m in tuning["models"].items():
        score = m["validation"].get(segment, {}).get(metric)
        chosen = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in m["chosen"].items())
        lines.append(f"| {model} | {'n/a' if score is None else f'{score:.3f}'} | {chosen} |")
    return [*lines, ""]


def wall_times(runs: list[Path]) -> list[str]:
    """Seconds per model over all runs: tuning trials, and the final fit + ranking in evaluate
    (2T-HGNN's final fit is the graph, train-hgnn and train-2t stages)."""
    from colisten.io import read_json

    tune: dict[str, float] = {}
    final: dict[str, float] = {}
    shared = 0.0
    for run in runs:
        manifest = read_json(run / "manifest.json")
        stages = manifest["stages"]
        shared += sum(stages.get(s, {}).get("seconds", 0.0) for s in ("validate", "split", "embed", "index"))
        tuning = read_json(run / "tune" / "tuning.json")
        if not tuning.get("reused_from"):
            for model, m in tuning["models"].items():
                tune[model] = tune.get(model, 0.0) + sum(t["seconds"] for t in m["trials"])
        for model, info in read_json(run / "eval" / "meta.json")["models"].items():
            final[model] = final.get(model, 0.0) + sum(v.get("seconds", 0.0) for v in info.values())
        final[OURS] = final.get(OURS, 0.0) + sum(
            stages.get(s, {}).get("seconds", 0.0) for s in ("graph", "train-hgnn", "train-2t")
        )
    lines = [
        "Wall time per model, all seeds (s):",
        "",
        "| model | tuning | final fit + evaluation |",
        "|---|---|---|",
    ]
    for model in final:
        lines.append(f"| {model} | {tune.get(model, 0.0):.0f} | {final[model]:.0f} |")
    lines += [f"| (validate, split, embed, index) | | {shared:.0f} |", ""]
    return lines


def record(text: str, wall: float, args: argparse.Namespace) -> None:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    section = (
        "\n## Real-data suite (bench/quality.py)\n\n"
        f"- date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}\n"
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, {mem_gb:.0f} GiB RAM\n"
        f"- command: `{' '.join(['.venv/bin/python', 'bench/quality.py', *sys.argv[1:]])}`\n"
        f"- total wall: {wall / 60:.1f} min; load average (1 min) at the end: {os.getloadavg()[0]:.1f}\n"
        "- HR@10 etc. are means over seeds; the interval is the paired bootstrap over users "
        f"({args.bootstrap} resamples), 2T-HGNN minus the row's model.\n\n{text}\n"
    )
    with open(Path(__file__).parent / "RESULTS.md", "a", encoding="utf-8") as f:
        f.write(section)


if __name__ == "__main__":
    main()
