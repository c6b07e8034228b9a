"""The `evaluate` stage: evaluate every model on the run and write RUN/eval/{metrics,meta}.json and
report.html (the pipeline's `run` / `demo` call `run_evaluate_stage`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colisten.config import Settings
from colisten.evaluate.baselines import RankingModel
from colisten.evaluate.data import load_eval_data
from colisten.evaluate.harness import evaluate, resolve_models
from colisten.evaluate.report import write_report
from colisten.io import write_json_atomic
from colisten.run import RunDir


def run_evaluate_stage(
    run: str | Path,
    settings: Settings | None = None,
    models: Sequence[str | RankingModel] | None = None,
    bootstrap: int | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Evaluate, write metrics.json, meta.json and report.html; returns the metrics."""
    rd = RunDir(run)
    settings = settings or rd.settings()
    with rd.stage("evaluate") as info:
        data = load_eval_data(rd.root, settings)
        metrics, meta = evaluate(
            data, resolve_models(rd.root, settings, models), settings, bootstrap=bootstrap, console=console
        )
        out = rd.stage_dir("eval")
        write_json_atomic(out / "metrics.json", metrics)
        write_json_atomic(out / "meta.json", meta)
        established = next(iter(settings.data.established_types), None)
        write_report(rd.root, settings.data.target_type, established)
        info["models"] = sorted(meta["models"])
        info["evaluated_users"] = {t: v["evaluated_users"] for t, v in meta["item_types"].items()}
    return metrics
