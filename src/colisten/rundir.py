"""The run directory: one folder per pipeline run, one sub-folder per stage, plus a manifest.

The manifest holds the effective config, the input data's fingerprint, package versions and
per-stage timings. Stages read their settings from the run (so a run stays reproducible) and
record themselves with `RunDir.stage(...)`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from colisten import __version__
from colisten.config import ConfigError, Settings, load_settings
from colisten.errors import ColistenError
from colisten.io import read_json, write_json_atomic

STAGE_DIRS = ("data", "split", "content", "graph", "hgnn", "twotower", "index", "eval")


class RunError(ColistenError):
    """A run directory that is missing a stage's artifacts."""


class RunDir:
    """Paths and manifest of a run. Creating one never deletes anything."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- paths -----------------------------------------------------------------------------
    def __truediv__(self, other: str) -> Path:
        return self.root / other

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def stage_dir(self, stage: str) -> Path:
        d = self.root / stage
        d.mkdir(parents=True, exist_ok=True)
        return d

    def require(self, artifact: Any, **fields: str) -> Path:
        """An artifact's path (colisten.artifacts: its `path` and the `stage` that writes it), or a
        RunError naming the command that produces it."""
        p = artifact.at(self, **fields)
        if not p.exists():
            data = " --data DIR" if artifact.stage == "validate" else ""
            raise RunError(f"{p} is missing: run `colisten {artifact.stage}{data} --run {self.root}` first")
        return p

    def branch(self, root: str | Path, share: Iterable[str]) -> RunDir:
        """A sub-run at the path `root` (e.g. `artifacts.BASELINE_2T.at(run)`; taken as given, not
        joined to this run's path) whose stage folders `share` are relative links to this run's, so
        it reuses their artifacts and writes only its own (the 2T baseline, the ablations, tuning's
        validation run and trials). Existing links are kept."""
        sub = RunDir(root)
        sub.root.mkdir(parents=True, exist_ok=True)
        for name in share:
            link(sub.root / name, self.root / name)
        return sub

    # --- manifest --------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        if self.manifest_path.exists():
            return read_json(self.manifest_path)
        return {}

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, manifest)

    def init(
        self, settings: Settings, data_source: str | None = None, fingerprint: str | None = None
    ) -> None:
        """Create the run (or update its config) and record versions."""
        self.root.mkdir(parents=True, exist_ok=True)
        m = self.manifest()
        m.setdefault("created_at", _now())
        m["colisten_version"] = __version__
        m["python"] = platform.python_version()
        m["config"] = settings.model_dump(mode="json")
        if data_source is not None:
            m["data"] = {"source": str(data_source), "fingerprint": fingerprint}
        m.setdefault("stages", {})
        self.write_manifest(m)

    def settings(self, config_path: str | Path | None = None) -> Settings:
        """The run's saved config, or the file given (which then becomes the run's config)."""
        if config_path is not None:
            return load_settings(config_path)
        cfg = self.manifest().get("config")
        try:
            return Settings.model_validate(cfg) if cfg else Settings()
        except ValueError as e:
            raise ConfigError(f"{self.manifest_path}: saved config is invalid: {e}") from e

    def record_stage(self, stage: str, seconds: float, **info: Any) -> None:
        m = self.manifest()
        m.setdefault("stages", {})[stage] = {"finished_at": _now(), "seconds": round(seconds, 3), **info}
        self.write_manifest(m)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; the yielded dict is stored with the timing in the manifest.

        A stage being rerun is not done until it ends: its previous record is dropped first, so a
        killed rerun, which may have replaced some of its files, is not taken for a finished one."""
        m = self.manifest()
        if name in m.get("stages", {}):
            del m["stages"][name]
            self.write_manifest(m)
        info: dict[str, Any] = {}
        t0 = time.perf_counter()
        yield info
        self.record_stage(name, time.perf_counter() - t0, **info)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def link(path: Path, target: Path) -> None:
    """A relative symlink `path` -> `target`'s real location (replaced if it points elsewhere; a
    real folder already at `path` is kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(target.resolve(), path.parent.resolve())
    if path.is_symlink() and os.readlink(path) == rel:
        return
    if path.is_dir() and not path.is_symlink():
        return
    if path.is_symlink() or path.is_file():
        path.unlink()
    path.symlink_to(rel, target_is_directory=target.is_dir())
