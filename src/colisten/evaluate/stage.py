"""The `evaluate` stage: evaluate every model on the run and write RUN/eval/{metrics,meta}.json,
per_user.parquet and report.html, recorded in the manifest (`run`, the stage contract)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.evaluate.baselines import RankingModel
from colisten.evaluate.data import load_eval_data
from colisten.evaluate.harness import evaluate, resolve_models
from colisten.evaluate.report import write_report
from colisten.io import write_json_atomic, write_parquet_atomic
from colisten.rundir import RunDir
from colisten.tune.choice import chosen_overrides, load_tuning


def run(
    rd: RunDir,
    settings: Settings,
    *,
    models: Sequence[str | RankingModel] | None = None,
    bootstrap: int | None = None,
    console: Any = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Evaluate `models` (default: [evaluate] models), write metrics.json, meta.json and
    report.html; recorded as `evaluate` (models, evaluated users); returns the metrics."""
    with rd.stage("evaluate") as info:
        data = load_eval_data(rd.root, settings)
        per_user: list[pd.DataFrame] = []
        metrics, meta = evaluate(
            data,
            resolve_models(rd.root, settings, models),
            settings,
            bootstrap=bootstrap,
            console=console,
            per_user=per_user,
            log=log,
        )
        record_tuned_settings(metrics, meta, load_tuning(rd.root))
        rd.stage_dir(artifacts.METRICS.folder)
        write_json_atomic(artifacts.METRICS.at(rd), metrics)
        write_json_atomic(artifacts.EVAL_META.at(rd), meta)
        if per_user:
            frame = pd.concat(per_user, ignore_index=True)
            write_parquet_atomic(artifacts.PER_USER.at(rd), pa.Table.from_pandas(frame, preserve_index=False))
        established = next(iter(settings.data.established_types), None)
        write_report(rd.root, settings.data.target_type, established)
        info["models"] = sorted(meta["models"])
        info["evaluated_users"] = {t: v["evaluated_users"] for t, v in meta["item_types"].items()}
    return metrics


def record_tuned_settings(
    metrics: dict[str, Any], meta: dict[str, Any], tuning: dict[str, Any] | None
) -> None:
    """Put each model's settings chosen on validation into its metrics rows and meta["tuning"]."""
    if not tuning:
        return
    meta["tuning"] = {
        key: tuning[key] for key in ("metric", "segment", "item_type", "trials_per_model", "validation")
    }
    meta["tuning"]["reused_from"] = tuning.get("reused_from")
    meta["tuning"]["models"] = {
        model: {"chosen": m["chosen"], "validation": m["validation"], "trials": len(m["trials"])}
        for model, m in tuning["models"].items()
    }
    for segments in metrics.values():
        for rows in segments.values():
            for model, row in rows.items():
                chosen = chosen_overrides(tuning, model)
                if chosen and "status" not in row:
                    row["settings"] = chosen
