"""The `validate` and `split` stages on a run directory, recorded in its manifest.

Both follow the stage contract of every `colisten/<package>/stage.py`: `(rd, settings, *, log,
stage options) -> dict`, recording themselves; the CLI commands, the pipeline and the sub-runs
call them and do nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.rundir import RunDir


def validate(
    rd: RunDir,
    settings: Settings,
    *,
    data: str | Path,
    quarantine_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Validate `data` into RUN/data/ (validation.json holds the whole report), (re)initialise the
    run's manifest with the data's source and fingerprint; returns the per-table row counts it
    recorded."""
    from colisten.data.contract import validate_dataset

    with rd.stage("validate") as info:
        report = validate_dataset(
            data, settings, out_dir=rd.stage_dir("data"), quarantine_path=quarantine_path, progress=progress
        )
        rd.init(settings, data_source=str(Path(data).resolve()), fingerprint=report.fingerprint)
        info.update(
            {
                name: {"rows_in": c.rows_in, "accepted": c.accepted, "quarantined": c.quarantined}
                for name, c in report.tables.items()
            }
        )
        info["users"] = report.users
        info["items_per_type"] = report.items_per_type
        info["quarantined"] = report.quarantined
    return info


def split(
    rd: RunDir, settings: Settings, *, progress: Callable[[str], None] | None = None, log: Log = quiet
) -> dict[str, Any]:
    """Global temporal split into RUN/split/ (split.json holds the bounds and counts); returns the
    cut, end and event counts it recorded."""
    from colisten.data.split import temporal_split

    with rd.stage("split") as info:
        result = temporal_split(rd, settings, progress=progress)
        info.update({"cut": result.cut, "end": result.end, "events": result.counts["events"]})
    return info
