"""Test helper for DDP training: the worker, recording which files each rank writes.

It lives on tests/ (pytest's pythonpath) so that the launcher's spawned workers can import it.
Every artifact goes through colisten.io.atomic_path, and temporary files through os.open;
both are recorded with os.replace and mkdir, then dumped to $SPY_DIR/rank<R>.json at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

SPY_DIR = "COLISTEN_TEST_SPY_DIR"


def spy_worker(run, settings, resume, progress):
    import colisten.io
    from colisten.twotower.distributed import run_worker

    written: list[str] = []
    real_atomic, real_open = colisten.io.atomic_path, os.open
    real_replace, real_mkdir = os.replace, Path.mkdir

    @contextlib.contextmanager
    def atomic_path(path):
        written.append(f"atomic {path}")
        with real_atomic(path) as tmp:
            yield tmp

    def spy_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(f"open {path}")
        return real_open(path, flags, *args, **kwargs)

    def spy_replace(src, dst, *args, **kwargs):
        written.append(f"replace {dst}")
        return real_replace(src, dst, *args, **kwargs)

    def spy_mkdir(self, *args, **kwargs):
        if not self.exists():
            written.append(f"mkdir {self}")
        return real_mkdir(self, *args, **kwargs)

    patches = [(colisten.io, "atomic_path", atomic_path), (os, "open", spy_open)]
    patches += [(os, "replace", spy_replace), (Path, "mkdir", spy_mkdir)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, spy in patches:
        setattr(obj, name, spy)
    try:
        return run_worker(run, settings, resume, progress)
    finally:
        for obj, name, real in saved:
            setattr(obj, name, real)
        out = Path(os.environ[SPY_DIR]) / f"rank{os.environ['RANK']}.json"
        out.write_text(json.dumps(written))
