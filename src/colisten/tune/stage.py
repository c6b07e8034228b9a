"""The `tune` stage: choose every model's settings on the validation split and make the run use
them: 2T-HGNN's choice goes into the run's config (so graph, train-hgnn and train-2t train with
it), every other model's is read from RUN/tune/tuning.json by `colisten evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.errors import ColistenError
from colisten.io import read_json, write_json_atomic
from colisten.rundir import RunDir
from colisten.tune.choice import chosen_overrides
from colisten.tune.search import tune_models
from colisten.tune.spaces import apply_overrides
from colisten.tune.validation import split_key

OURS = "2T-HGNN"


def run(rd: RunDir, settings: Settings, *, reuse: Path | None = None, log: Log = quiet) -> dict[str, Any]:
    """Tune (or take the choice of `reuse`, another run's tuning.json), recorded as `tune`; the
    run's settings with 2T-HGNN's chosen settings applied become the run's config (`rd.settings()`
    gives them to the later stages). Returns the choice per model it recorded."""
    with rd.stage("tune") as info:
        tuning = reuse_tuning(rd, reuse) if reuse is not None else tune_models(rd, settings, log=log)
        info["chosen"] = {m: v["chosen"] for m, v in tuning["models"].items()}
        if reuse is not None:
            info["reused_from"] = str(reuse)
    rd.init(apply_overrides(settings, chosen_overrides(tuning, OURS)))
    return info


def reuse_tuning(rd: RunDir, source: Path) -> dict[str, Any]:
    """Adopt the settings another run chose (e.g. another seed of the same data set) for this run.

    Refused when the source's validation window reaches this run's hold-out: settings chosen on
    days this run holds out would be tuned on its hold-out."""
    path = artifacts.TUNING.at(source) if source.is_dir() else source
    if not path.exists():
        raise ColistenError(
            f"--reuse {source}: no {artifacts.TUNING.path} there (run `colisten tune` on it first)"
        )
    tuning = read_json(path)
    split = read_json(rd.require(artifacts.SPLIT))
    import datetime as dt

    end = dt.datetime.fromisoformat(tuning["validation"]["end"]).timestamp()
    if end >= int(split["cut"]):
        raise ColistenError(
            f"--reuse {path}: its validation window ends at {tuning['validation']['end']}, inside this "
            f"run's hold-out (from {split['cut_iso']}); tune this run on its own history instead"
        )
    adopted = {
        **tuning,
        "source_cut": split["cut"],
        "source_key": split_key(rd),
        "reused_from": str(path.resolve()),
    }
    write_json_atomic(artifacts.TUNING.at(rd), adopted)
    return adopted
