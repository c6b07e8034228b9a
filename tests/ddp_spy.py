"""Test helper for DDP training: the workers (train-2t, train-hgnn), recording which files each
rank writes.

It lives on tests/ (pytest's pythonpath) so that the launcher's spawned workers can import it.
Every artifact goes through colisten.io.atomic_path, and temporary files through os.open;
both are recorded with os.replace, mkdir and any open() for writing (torch.save, numpy.save,
pathlib), then dumped to $SPY_DIR/rank<R>.json at the end.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
from pathlib import Path

SPY_DIR = "COLISTEN_TEST_SPY_DIR"


def spy_worker(run, settings, resume, progress):
    """colisten.twotower.distributed.run_worker, spied on."""
    from colisten.twotower.distributed import run_worker

    return _spying(run_worker, run, settings, resume, progress)


def hgnn_spy_worker(run, settings, resume, progress):
    """colisten.hgnn.distributed.run_worker, spied on."""
    from colisten.hgnn.distributed import run_worker

    return _spying(run_worker, run, settings, resume, progress)


def _spying(run_worker, *args):
    import colisten.io

    written: list[str] = []
    real_atomic, real_open = colisten.io.atomic_path, os.open
    real_replace, real_mkdir, real_file_open = os.replace, Path.mkdir, builtins.open

    @contextlib.contextmanager
    def atomic_path(path):
        written.append(f"atomic {path}")
        with real_atomic(path) as tmp:
            yield tmp

    def spy_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            written.append(f"open {path}")
        return real_open(path, flags, *args, **kwargs)

    def spy_file_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            written.append(f"open {file}")
        return real_file_open(file, mode, *args, **kwargs)

    def spy_replace(src, dst, *args, **kwargs):
        written.append(f"replace {dst}")
        return real_replace(src, dst, *args, **kwargs)

    def spy_mkdir(self, *args, **kwargs):
        if not self.exists():
            written.append(f"mkdir {self}")
        return real_mkdir(self, *args, **kwargs)

    patches = [(colisten.io, "atomic_path", atomic_path), (os, "open", spy_open)]
    patches += [(os, "replace", spy_replace), (Path, "mkdir", spy_mkdir)]
    patches += [(builtins, "open", spy_file_open), (io, "open", spy_file_open)]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, spy in patches:
        setattr(obj, name, spy)
    try:
        return run_worker(*args)
    finally:
        for obj, name, real in saved:
            setattr(obj, name, real)
        out = Path(os.environ[SPY_DIR]) / f"rank{os.environ['RANK']}.json"
        out.write_text(json.dumps(written))


def assert_rank_0_alone_wrote(spy_dir, folder, names):
    """What the spied ranks recorded: rank 1 wrote nothing at all, rank 0 each of `names` in the
    stage's `folder` and the run's manifest, atomically."""
    rank0 = json.loads((Path(spy_dir) / "rank0.json").read_text())
    rank1 = json.loads((Path(spy_dir) / "rank1.json").read_text())
    assert rank1 == []
    for name in names:
        assert f"atomic {Path(folder) / name}" in rank0, name
    assert f"atomic {Path(folder).parent / 'manifest.json'}" in rank0
