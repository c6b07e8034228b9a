"""Crash safety, proven by killing the process (issue 16, part 4).

Each of `colisten graph`, `train-hgnn`, `train-2t` and `evaluate` runs as a subprocess on a tiny
run (tests/toy_run.py + `colisten split`, short settings from a config TOML), is killed with
SIGKILL partway through and rerun (`--resume` where the command has it). "Partway" is found from
the files the stage itself writes, not from sleeps: graph when DuckDB's work folder appears;
train-hgnn after its first checkpoint; train-2t after the first checkpoint of a *rerun over the
finished stage* (the case where old and new files could mix); evaluate while the 2T baseline
trains inside it, then again half a second after metrics.json appears (the report takes seconds).
The test asserts:

- no partial artifact is ever visible: an inotify watch over the whole run directory records every
  write, and no byte may be written to a visible path (one with no component starting with "."):
  artifacts are written under a hidden temporary name and renamed into place (colisten.io), so a
  reader sees a file complete or not at all. After each kill every visible artifact also loads;
- the manifest stays parseable, and says a stage is done only when all its outputs are there and
  are the unbroken run's (a stage killed partway is never recorded as done);
- the rerun's artifacts equal an unbroken run's: bit-identical on CPU for the HGNN and two-tower
  weights, optimizer states and vectors, the graph's nodes and CSR arrays, and every evaluation
  metric and per-user value. Not compared: timings (`seconds`, `finished_at`, ...), the order of
  edges.parquet's rows within a relation (unspecified by the contract; compared sorted), and
  report.html (rendered from metrics.json / meta.json, with timings; it is checked to be whole).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from toy_run import write_toy_run

from colisten.config import load_settings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux-only")

# Small but not instant: each training stage has a few hundred milliseconds of epochs left when
# its first checkpoint appears, so the kill lands mid-training.
CONFIG = """\
[graph]
threads = 1
[hgnn]
epochs = 15
patience = 15
hidden_dim = 32
out_dim = 16
fanouts = [5, 5]
batch_size = 64
max_edges_per_epoch = 512
validation_edges = 100
threads = 1
device = "cpu"
[twotower]
epochs = 12
tower_dims = [32, 16]
device = "cpu"
ensemble = 2
[evaluate]
bootstrap = 0
hgnn_w_users_epochs = 2
lightgcn_epochs = 3
[tune]
enabled = false
"""

# One torch / BLAS thread: the machine is shared, and results do not depend on it.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# Keys whose values are wall-clock times: never compared.
TIMING_KEYS = {"seconds", "train_seconds", "seconds_per_epoch", "step_seconds", "finished_at"}


@dataclass(frozen=True)
class Stage:
    name: str  # the manifest's stage name and the command
    args: tuple[str, ...]  # extra command-line options
    folders: tuple[str, ...]  # what the stage writes (relative to RUN)
    outputs: tuple[str, ...]  # files that must all exist once the manifest says the stage is done
    # one kill per entry: (file or folder, seconds): SIGKILL that long after the path appears
    kill_when: tuple[tuple[str, float], ...]
    resume: bool = False
    compare: tuple[str, ...] = field(default=())  # files compared with the unbroken run
    # start from the finished stage (a rerun with the same settings) instead of from nothing
    over_finished: bool = False


# train-hgnn's outputs: all written, and all bit-identical to the unbroken run's after --resume
HGNN_FILES = (
    "hgnn/item_embeddings.npy",
    "hgnn/item_ids.parquet",
    "hgnn/embeddings.json",
    "hgnn/curve.json",
    "hgnn/checkpoint.pt",
    "hgnn/best.pt",
)

STAGES = [
    Stage(
        "graph",
        (),
        ("graph",),
        ("graph/graph.json", "graph/nodes.parquet", "graph/edges.parquet", "graph/csr/num_nodes.json"),
        kill_when=(("graph/.work", 0.0),),  # DuckDB is pairing items
        compare=(
            "graph/graph.json",
            "graph/nodes.parquet",
            "graph/edges.parquet",
            "graph/csr/num_nodes.json",
            "graph/csr/audiobook__audiobook.npz",
            "graph/csr/audiobook__podcast.npz",
            "graph/csr/podcast__audiobook.npz",
            "graph/csr/podcast__podcast.npz",
        ),
    ),
    Stage(
        "train-hgnn",
        ("--quiet",),
        ("hgnn",),
        HGNN_FILES,
        kill_when=(("hgnn/checkpoint.pt", 0.0),),  # after epoch 1
        resume=True,
        compare=HGNN_FILES,
    ),
    Stage(
        "train-2t",
        ("--no-progress",),
        ("twotower",),
        (
            "twotower/item_vectors.npy",
            "twotower/features.json",
            "twotower/curve.json",
            "twotower/members/0/checkpoint.pt",
            "twotower/members/1/checkpoint.pt",
            "twotower/best.pt",
        ),
        # an ensemble of 2 (the default path): killed after member 0's first epoch of the rerun
        kill_when=(("twotower/members/0/checkpoint.pt", 0.0),),
        resume=True,
        over_finished=True,
        compare=(
            "twotower/item_vectors.npy",
            "twotower/features.json",
            "twotower/curve.json",
            "twotower/members/0/checkpoint.pt",
            "twotower/members/1/checkpoint.pt",
            "twotower/best.pt",
        ),
    ),
    Stage(
        "evaluate",
        (),
        ("eval", "baselines"),
        ("eval/metrics.json", "eval/meta.json", "eval/per_user.parquet", "eval/report.html"),
        # first while the 2T baseline trains inside evaluate, then while the report is rendered
        # (metrics.json, meta.json and per_user.parquet are written, report.html takes seconds)
        kill_when=(("baselines/2T/twotower/members/0/checkpoint.pt", 0.0), ("eval/metrics.json", 0.5)),
        compare=(
            "eval/metrics.json",
            "eval/meta.json",
            "eval/per_user.parquet",
            "eval/hgnn_w_users/best.pt",
            "baselines/2T/twotower/item_vectors.npy",
            "baselines/2T/twotower/best.pt",
        ),
    ),
]


# --- watching every write under the run --------------------------------------------------------
IN_MODIFY, IN_MOVED_TO, IN_CREATE = 0x2, 0x80, 0x100
IN_Q_OVERFLOW, IN_ISDIR = 0x4000, 0x40000000
IN_ONLYDIR, IN_DONT_FOLLOW = 0x01000000, 0x02000000
_EVENT = struct.Struct("iIII")


class WriteWatcher:
    """Records every path under `root` that bytes were written to (inotify IN_MODIFY), following
    new sub-folders as they appear (not symlinks)."""

    def __init__(self, root: Path):
        self.root = root
        self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.dirs: dict[int, Path] = {}
        self.written: set[str] = set()
        self._add_tree(root)

    def _add_tree(self, top: Path) -> None:
        for d, subdirs, _ in os.walk(top):  # does not follow symlinks
            mask = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW
            wd = self._libc.inotify_add_watch(self.fd, os.fsencode(d), mask)
            if wd >= 0:  # a folder removed meanwhile (a temp folder) cannot be watched
                self.dirs[wd] = Path(d)
            subdirs[:] = [s for s in subdirs if not (Path(d) / s).is_symlink()]

    def drain(self) -> None:
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(buf):
                wd, mask, _, length = _EVENT.unpack_from(buf, offset)
                name = buf[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
                offset += _EVENT.size + length
                assert not mask & IN_Q_OVERFLOW, "inotify queue overflowed: writes were missed"
                if wd not in self.dirs:
                    continue
                path = self.dirs[wd] / os.fsdecode(name)
                if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    self._add_tree(path)
                elif mask & IN_MODIFY:
                    self.written.add(path.relative_to(self.root).as_posix())

    def visible_writes(self) -> list[str]:
        """Paths written in place where a reader could see them (no hidden component)."""
        self.drain()
        return sorted(p for p in self.written if not any(part.startswith(".") for part in p.split("/")))

    def close(self) -> None:
        os.close(self.fd)


# --- running and killing the CLI --------------------------------------------------------------
def _colisten(run: Path, config: Path, stage: Stage) -> list[str]:
    return [sys.executable, "-m", "colisten", stage.name, "--run", str(run), "--config", str(config)]


def run_cli(
    cmd: list[str],
    log: Path,
    kill_when: Path | None = None,
    delay: float = 0.0,
    watcher: WriteWatcher | None = None,
) -> int:
    """Run `cmd`; with `kill_when`, SIGKILL it `delay` seconds after that path appears (or, if it
    exists already, is replaced). Returns the exit code."""
    before = _inode(kill_when) if kill_when is not None else None
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + 300
        kill_at = None
        while proc.poll() is None:
            if watcher is not None:
                watcher.drain()
            if kill_at is None and kill_when is not None and _inode(kill_when) not in (None, before):
                kill_at = time.monotonic() + delay
            if kill_at is not None and time.monotonic() >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"{cmd} did not finish; see {log}")
            time.sleep(0.003)
        rc = proc.wait()
        out.write(f"-> exit {rc} after {time.monotonic() - deadline + 300:.1f} s\n".encode())
    if watcher is not None:
        watcher.drain()
    return rc


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _tail(log: Path, n: int = 3000) -> str:
    return log.read_text(errors="replace")[-n:]


# --- the tiny run and the unbroken reference -----------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(RUN after every stage ran unbroken, the config file)."""
    root = tmp_path_factory.mktemp("crash")
    config = root / "crash.toml"
    config.write_text(CONFIG)
    run = root / "reference"
    write_toy_run(run, settings=load_settings(config))
    shutil.rmtree(run / "hgnn")  # the toy run's stand-in embeddings: train-hgnn writes its own
    log = root / "reference.log"
    split = [sys.executable, "-m", "colisten", "split", "--run", str(run), "--config", str(config)]
    assert run_cli(split, log) == 0, _tail(log)  # adds split/segments.parquet, which evaluate needs
    for stage in STAGES:
        rc = run_cli([*_colisten(run, config, stage), *stage.args], log)
        assert rc == 0, _tail(log)
    return run, config


def _fresh_copy(reference: Path, dest: Path, stage: Stage) -> Path:
    """The reference run without this stage's folders and manifest entry (earlier stages done),
    or the whole reference run for a stage rerun over its finished self."""
    shutil.copytree(reference, dest, symlinks=True)
    if stage.over_finished:
        return dest
    for folder in stage.folders:
        shutil.rmtree(dest / folder, ignore_errors=True)
    manifest = json.loads((dest / "manifest.json").read_text())
    del manifest["stages"][stage.name]
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


# --- checks ------------------------------------------------------------------------------------
def load_artifact(path: Path):
    """Read one artifact fully with the reader a later stage would use; raises if it is broken."""
    suffix = path.suffix
    if suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    if suffix == ".parquet":
        return pq.read_table(path)
    if suffix == ".npy":
        return np.load(path)
    if suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=False)
    if suffix == ".html":
        text = path.read_text(encoding="utf-8")
        assert text.rstrip().endswith("</html>"), f"{path} is cut short"
        return text
    return path.read_bytes()


def check_consistent(run: Path, stage: Stage, reference: Path) -> bool:
    """Every visible artifact of the stage loads; the manifest parses and says the stage is done
    only if all its outputs exist and are the unbroken run's (they belong together: not an old
    item_vectors.npy beside a half-retrained best.pt). Returns whether the manifest says done."""
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    for folder in stage.folders:
        for path in sorted((run / folder).rglob("*")):
            rel = path.relative_to(run)
            if path.is_file() and not any(p.startswith(".") for p in rel.parts):
                try:
                    load_artifact(path)
                except Exception as e:  # noqa: BLE001 - any failure to load is the finding
                    raise AssertionError(f"{rel} is visible but does not load: {e!r}") from e
    done = stage.name in manifest.get("stages", {})
    if done:
        missing = [o for o in stage.outputs if not (run / o).exists()]
        assert not missing, f"the manifest says {stage.name} is done but {missing} are missing"
        for rel in stage.compare:
            assert_same_artifact(reference / rel, run / rel, rel)
    return done


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _tensors_equal(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a.keys() - TIMING_KEYS:
            _tensors_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _tensors_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert _strip(a) == _strip(b), where


def assert_same_artifact(a: Path, b: Path, rel: str) -> None:
    x, y = load_artifact(a), load_artifact(b)
    if rel == "graph/edges.parquet":  # row order within a relation is unspecified
        keys = [("relation", "ascending"), ("src", "ascending"), ("dst", "ascending")]
        x, y = (t.sort_by(keys) for t in (x, y))
    if isinstance(x, np.ndarray):
        same = x.dtype == y.dtype and np.array_equal(x, y)  # bit-identical (no NaNs here)
        assert same, f"{rel} differs from the unbroken run's"
    elif hasattr(x, "equals"):  # pyarrow tables
        assert x.equals(y), rel
    elif rel.endswith(".pt") or rel.endswith(".npz"):
        _tensors_equal(
            {k: torch.from_numpy(v) for k, v in x.items()} if rel.endswith(".npz") else x,
            {k: torch.from_numpy(v) for k, v in y.items()} if rel.endswith(".npz") else y,
            rel,
        )
    else:
        assert _strip(x) == _strip(y), rel


# --- the test ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_a_killed_stage_leaves_no_partial_artifact_and_reruns_to_the_unbroken_result(
    stage, reference, tmp_path
):
    ref, config = reference
    run = _fresh_copy(ref, tmp_path / "run", stage)
    log = tmp_path / "cli.log"
    cmd = [*_colisten(run, config, stage), *stage.args]
    watcher = WriteWatcher(run)
    try:
        for i, (marker, delay) in enumerate(stage.kill_when):
            again = ["--resume"] if stage.resume and i > 0 else []
            rc = run_cli([*cmd, *again], log, kill_when=run / marker, delay=delay, watcher=watcher)
            # killed partway: not finished before the signal, not recorded, outputs incomplete
            assert rc == -signal.SIGKILL, f"{stage.name} ended ({rc}) before {marker} appeared\n{_tail(log)}"
            assert not check_consistent(run, stage, ref), f"{stage.name} is recorded as done after a kill"
            assert not all((run / o).exists() for o in stage.outputs), stage.outputs
        rc = run_cli([*cmd, *(["--resume"] if stage.resume else [])], log, watcher=watcher)
        assert rc == 0, _tail(log)
        assert check_consistent(run, stage, ref), f"{stage.name} finished but is not in the manifest"
        assert watcher.visible_writes() == [], "written in place, visible while half-written"
    finally:
        watcher.close()
    for rel in stage.compare:
        assert_same_artifact(ref / rel, run / rel, rel)
