"""The choice tuning made, as the later stages read it: RUN/tune/tuning.json (if it belongs to the
run's current data and split) and the settings chosen for each model.

Its own module, below tune/search.py, because evaluation reads it while tuning scores its trials
with the evaluation harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings
from colisten.io import read_json
from colisten.rundir import RunDir
from colisten.tune.spaces import apply_overrides
from colisten.tune.validation import split_key


def load_tuning(run: str | Path) -> dict[str, Any] | None:
    """RUN/tune/tuning.json if it was made for the run's current data and split, else None."""
    rd = RunDir(run)
    path = artifacts.TUNING.at(rd)
    if not path.exists() or not artifacts.SPLIT.at(rd).exists():
        return None
    tuning = read_json(path)
    return tuning if tuning.get("source_key") == split_key(rd) else None


def chosen_overrides(tuning: dict[str, Any] | None, model: str) -> dict[str, Any]:
    """The settings chosen for `model` (or for the model it shares its stages with)."""
    if not tuning:
        return {}
    from colisten.tune.spaces import SHARES_SETTINGS_OF

    source = SHARES_SETTINGS_OF.get(model, model)
    chosen = tuning.get("models", {}).get(source, {}).get("chosen", {})
    if source != model:  # a sharing model takes only the stages it shares (not two-tower settings)
        chosen = {k: v for k, v in chosen.items() if not k.startswith("twotower.")}
    return dict(chosen)


def settings_for(run: str | Path, settings: Settings, model: str) -> Settings:
    """`settings` with the settings chosen on validation for `model`, if the run was tuned."""
    return apply_overrides(settings, chosen_overrides(load_tuning(run), model))
