"""The whole pipeline in one call: `colisten run` on a user's data, `colisten demo` on the
synthetic world, and the paper's ablations (`colisten evaluate --ablations`).

Each stage is the same function its own command calls, so `run` is exactly the stage commands
in order: validate → split → embed → tune → graph → train-hgnn → train-2t → index → evaluate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from colisten.config import Settings, deep_merge, load_settings
from colisten.errors import ColistenError
from colisten.run import RunDir

# The demo world's size (issue: ~20k users, 5k podcasts, 1k audiobooks, >= 1M events).
DEMO_WORLD = {"users": 20_000, "podcasts": 5_000, "audiobooks": 1_000, "days": 104}
SMALL_WORLD = {"users": 2_500, "podcasts": 600, "audiobooks": 150, "days": 104}

# Settings for the demo: the paper's method with training budgets sized for 2 CPU cores.
# Five 14-day label windows give the two-tower ~5x the training labels of the paper's single window
# (validation HR@10 on held-out users: audiobooks 0.442 -> 0.469, podcasts 0.168 -> 0.192); its
# validation HR@10 plateaus by epoch 3-4, so 5 epochs keep train-2t (and the 2T baseline) in budget.
# The demo tunes only the baselines that fit in seconds (ALS, EASE, item-kNN: 8 trials each); our
# model keeps the settings above, so the demo can only flatter the baselines, never 2T-HGNN.
# The real-data suite (bench/quality.py) tunes every model with the same budget.
DEMO_TUNED = ["ALS", "EASE", "ItemKNN"]
DEMO_OVERRIDES: dict[str, Any] = {
    "twotower": {"label_windows": 5, "epochs": 5},
    "tune": {"models": DEMO_TUNED},
}
# `--small`: the same path on a tiny world in about a minute (the test suite uses it).
SMALL_OVERRIDES: dict[str, Any] = {
    "hgnn": {"epochs": 3, "patience": 2, "hidden_dim": 64, "out_dim": 32, "validation_edges": 300},
    "twotower": {"epochs": 2, "tower_dims": [64, 32]},
    "evaluate": {"bootstrap": 50},
    "tune": {"models": DEMO_TUNED, "trials": 3},
}

STAGES = ("validate", "split", "embed", "tune", "graph", "train-hgnn", "train-2t", "index", "evaluate")


def _console():
    from colisten.cli import console

    return console


def stage_validate(rd: RunDir, settings: Settings, data: Path) -> None:
    from colisten.data.stage import run_validate_stage

    report = run_validate_stage(rd, settings, data)
    if report.tables["interactions"].accepted == 0:
        raise ColistenError(f"{data}: no interactions were accepted; run `colisten validate --data {data}`")


def stage_split(rd: RunDir, settings: Settings) -> None:
    from colisten.data.stage import run_split_stage

    run_split_stage(rd, settings)


def stage_embed(rd: RunDir, settings: Settings) -> None:
    from colisten.content.stage import run_embed_stage

    run_embed_stage(rd, settings, progress=False)


def stage_graph(rd: RunDir, settings: Settings) -> None:
    from colisten.graph.stage import run_graph_stage, run_graph_stats

    run_graph_stage(rd, settings)
    run_graph_stats(rd)


def stage_hgnn(rd: RunDir, settings: Settings) -> None:
    from colisten.hgnn.stage import run_train_hgnn

    run_train_hgnn(rd.root, settings=settings, progress=False)


def stage_two_tower(rd: RunDir, settings: Settings) -> None:
    from colisten.twotower.train import train_stage

    with rd.stage("train-2t") as info:
        info.update(train_stage(rd, settings, progress=False, log=lambda *a, **k: None))


def stage_index(rd: RunDir, settings: Settings) -> None:
    from colisten.retrieval.indexing import build_run_indexes

    with rd.stage("index") as info:
        report = build_run_indexes(rd, settings, log=lambda *a, **k: None)
        info["recall@10"] = {t: v["recall@10"] for t, v in report["types"].items()}


def stage_evaluate(rd: RunDir, settings: Settings) -> None:
    from colisten.evaluate.stage import run_evaluate_stage

    run_evaluate_stage(rd.root, settings)


STAGE_FUNCTIONS: dict[str, Callable[..., None]] = {
    "split": stage_split,
    "embed": stage_embed,
    "graph": stage_graph,
    "train-hgnn": stage_hgnn,
    "train-2t": stage_two_tower,
    "index": stage_index,
    "evaluate": stage_evaluate,
}


def run_pipeline(
    data: Path,
    out: Path,
    settings: Settings,
    *,
    skip: tuple[str, ...] = (),
    reuse_tuning: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Run every stage on `data` into the run directory `out`; returns seconds per stage.
    `reuse_tuning`: take another run's tuned settings (`colisten tune --reuse`) instead of tuning."""
    rd = RunDir(out)
    rd.init(settings)
    timings: dict[str, float] = {}
    for name in STAGES:
        if name in skip:
            continue
        t0 = time.perf_counter()
        log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name} …")
        if name == "validate":
            stage_validate(rd, settings, data)
        elif name == "tune":
            if not settings.tune.enabled:
                log("      tune disabled (tune.enabled = false): configured settings kept")
                continue
            from colisten.tune.stage import run_tune_stage

            settings = run_tune_stage(rd, settings, reuse=reuse_tuning, log=lambda m: log(f"      {m}"))
        else:
            STAGE_FUNCTIONS[name](rd, settings)
        timings[name] = time.perf_counter() - t0
        log(f"      {name} done in {timings[name]:.1f} s")
    return timings


# --- ablations (PAPER.md Table 1) ------------------------------------------------------------
def ablation_overrides(settings: Settings) -> dict[str, dict[str, Any]]:
    """The paper's ablations as config overrides, named as in its Table 1."""
    from colisten.graph.store import relation_name

    target = settings.data.target_type
    other = next((t for t in settings.data.established_types if t != target), "podcast")
    aa, ap, pp = relation_name(target, target), relation_name(target, other), relation_name(other, other)
    return {
        "w/o balanced sampler": {"hgnn": {"sampler": "uniform"}},
        "w/o weak signals": {"twotower": {"use_weak_signals": False}},
        "w/o p-p edges": {"hgnn": {"relations": [aa, ap]}},
        "w/o a-a edges": {"hgnn": {"relations": [ap, pp]}},
        "a-a edges only": {"hgnn": {"relations": [aa]}},
        "p-p edges only": {"hgnn": {"relations": [pp]}},
    }


def run_ablations(
    run: Path, settings: Settings, names: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Retrain HGNN + 2T for each ablation in RUN/ablations/NAME (sharing the run's data, split,
    content and graph) and evaluate 2T-HGNN there; writes RUN/eval/ablations.json."""
    from colisten.evaluate.stage import run_evaluate_stage
    from colisten.io import read_json, write_json_atomic

    rd = RunDir(run)
    for needed in ("data", "split", "content", "graph"):
        rd.require(needed, {"data": "validate", "content": "embed"}.get(needed, needed))
    variants = ablation_overrides(settings)
    unknown = sorted(set(names or []) - set(variants))
    if unknown:
        raise ColistenError(f"unknown ablation(s) {unknown}; choose from {sorted(variants)}")
    out_path = rd.root / "eval" / "ablations.json"
    results: dict[str, Any] = read_json(out_path) if out_path.exists() else {}
    base = settings.model_dump(mode="json")
    for name in names or list(variants):
        log(f"ablation: {name}")
        sub = RunDir(rd.root / "ablations" / _slug(name))
        sub.root.mkdir(parents=True, exist_ok=True)
        for shared in ("data", "split", "content", "graph"):
            link = sub.root / shared
            if not link.exists():
                os.symlink(Path("..") / ".." / shared, link, target_is_directory=True)
        variant = Settings.model_validate(deep_merge(base, variants[name]))
        sub.init(variant)
        stage_hgnn(sub, variant)
        stage_two_tower(sub, variant)
        metrics = run_evaluate_stage(sub.root, variant, models=["2T-HGNN"])
        warm = metrics[settings.data.target_type]["warm"]["2T-HGNN"]
        results[name] = warm
        write_json_atomic(out_path, results)
    return results


def print_ablations(results: dict[str, Any], console: Any) -> None:
    """Ablations beside the paper's Table 1 figures (warm users, audiobooks, HR@10)."""
    from rich.table import Table

    from colisten.evaluate.report import PAPER_ABLATIONS

    table = Table(title="Ablations — warm users, audiobooks")
    for col in ("variant", "HR@10", "95% CI", "MRR@100", "Coverage@100", "paper HR@10"):
        table.add_column(col)
    for name, m in results.items():
        if "hr@10" not in m:
            table.add_row(name, m.get("status", "n/a"), "", "", "", "")
            continue
        lo, hi = m.get("ci95", {}).get("hr@10", [float("nan")] * 2)
        paper_hr = PAPER_ABLATIONS.get(name, (None, None))[0]
        table.add_row(
            name,
            f"{m['hr@10']:.3f}",
            f"[{lo:.3f}, {hi:.3f}]",
            f"{m['mrr@100']:.3f}",
            f"{m['coverage@100']:.1%}",
            "" if paper_hr is None else f"{paper_hr:.3f}",
        )
    console.print(table)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


# --- CLI ---------------------------------------------------------------------------------------
def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo-run"), "--out", help="Run directory to write."),
        world_dir: Path | None = typer.Option(
            None, "--world", help="Where the synthetic world goes (default: OUT/world)."
        ),
        small: bool = typer.Option(False, "--small", help="A tiny world and short training (~1 min)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings over the demo's."),
        seed: int = typer.Option(0, help="World seed."),
    ) -> None:
        """The main job on the embedded default: synthetic world → validate → graph → embed →
        HGNN → 2T → index → evaluate, printing the paper-style tables and the report's path."""
        from colisten.world.simulate import generate_world

        console = _console()
        t0 = time.perf_counter()
        settings = _settings(config, SMALL_OVERRIDES if small else DEMO_OVERRIDES)
        world_dir = world_dir or out / "world"
        size = SMALL_WORLD if small else DEMO_WORLD
        if (world_dir / "world.json").exists():
            console.print(f"[0/{len(STAGES)}] world: reusing {world_dir}")
        else:
            console.print(f"[0/{len(STAGES)}] world: simulating {size['users']:,} users …")
            summary = generate_world(world_dir, seed=seed, **size)
            console.print(f"      {summary.events:,} events in {summary.seconds:.1f} s")
        run_pipeline(world_dir, out, settings, log=console.print)
        _finish(out, console, time.perf_counter() - t0)

    @app.command("run")
    def run_all(
        data: Path = typer.Option(..., "--data", help="Input directory in the data contract."),
        out: Path = typer.Option(..., "--out", help="Run directory to write."),
        config: Path | None = typer.Option(None, "--config", "-c", help="TOML settings file."),
    ) -> None:
        """All stages on your own data: validate → split → embed → graph → train-hgnn → train-2t →
        index → evaluate. Stage commands (`colisten graph --run OUT`, ...) rerun one stage."""
        console = _console()
        t0 = time.perf_counter()
        run_pipeline(data, out, load_settings(config), log=console.print)
        _finish(out, console, time.perf_counter() - t0)


def _settings(config: Path | None, overrides: dict[str, Any]) -> Settings:
    """The demo's settings: its budgets, with the user's TOML file (if any) on top."""
    return load_settings(config, base=overrides)


def _finish(out: Path, console: Any, seconds: float) -> None:
    from colisten.evaluate.report import print_paper_tables
    from colisten.io import read_json

    metrics = read_json(out / "eval" / "metrics.json")
    print_paper_tables(metrics, console)
    console.print(f"\nreport: {(out / 'eval' / 'report.html').resolve()}")
    console.print(f"total: {seconds:.0f} s")
