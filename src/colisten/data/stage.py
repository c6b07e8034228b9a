"""The `validate` and `split` stages on a run directory, recorded in its manifest (the CLI
commands and the pipeline both call these, so a stage is recorded the same way either way)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from colisten.config import Settings
from colisten.run import RunDir


def run_validate_stage(
    rd: RunDir,
    settings: Settings,
    data: str | Path,
    quarantine_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Validate `data` into RUN/data/, (re)initialise the run's manifest with the data's source and
    fingerprint, and record per-table row counts. Returns the ValidationReport."""
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
    return report


def run_split_stage(rd: RunDir, settings: Settings, progress: Callable[[str], None] | None = None) -> Any:
    """Global temporal split into RUN/split/, recorded in the manifest. Returns the SplitResult."""
    from colisten.data.split import temporal_split

    with rd.stage("split") as info:
        result = temporal_split(rd, settings, progress=progress)
        info.update({"cut": result.cut, "end": result.end, "events": result.counts["events"]})
    return result
