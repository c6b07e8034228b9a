"""Data-parallel training (`train-2t --nproc N`): 2 gloo ranks train the model 1 process trains,
rank 0 alone writes, a bad --nproc is refused, a killed rank is a clear error and --resume goes on.

Each launch spawns real worker processes (torch's elastic launcher), so the run is tiny.
"""

import os
import shutil

import numpy as np
import pytest
import torch
from ddp_spy import SPY_DIR, assert_rank_0_alone_wrote, spy_worker
from toy_run import write_toy_run

from colisten.config import Settings
from colisten.io import read_json
from colisten.twotower import stage as twotower_stage
from colisten.twotower.data import load_training_data
from colisten.twotower.ddp import FAIL_AT_ENV
from colisten.twotower.distributed import launch
from colisten.twotower.train import new_model

# float error only: the ranks' matmuls are slices of one process's, their gradients summed in
# another order (measured: ~3e-7 apart after 3 epochs)
TOL = {"rtol": 1e-4, "atol": 1e-5}
QUIET = {"progress": False}


def settings(**twotower):
    """The folder's fast settings (conftest.FAST), smaller still: each rank is a fresh process."""
    fast = {"tower_dims": [64, 32], "epochs": 3, "batch_size": 64, "label_windows": 1, "label_folds": 0}
    return Settings.model_validate({"twotower": {**fast, "ensemble": 1, "device": "cpu", **twotower}})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A pristine toy run; tests copy it."""
    return write_toy_run(tmp_path_factory.mktemp("ddp") / "run", n_users=150, seed=2, settings=settings())


def copy_run(toy, dest):
    shutil.copytree(toy.root, dest)
    return type(toy)(dest)


def weights(run, file="checkpoint.pt"):
    return torch.load(run / "twotower" / file, weights_only=False)["model"]


def assert_same_model(a, b, file="checkpoint.pt"):
    wa, wb = weights(a, file), weights(b, file)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], **TOL)


def test_two_ranks_train_the_model_one_process_trains_and_only_rank_0_writes(toy, tmp_path, monkeypatch):
    # a batch of 63 splits 31 / 32 rows; sampled negatives, same-type masks and an ensemble of 2
    # (each member trained by both ranks in turn) ride along
    # member_workers = 1: the reference is one process training the members in turn, as each rank does
    s = settings(batch_size=63, sampled_negatives=16, negatives_same_type=True, ensemble=2, member_workers=1)
    one, two = copy_run(toy, tmp_path / "one"), copy_run(toy, tmp_path / "two")
    twotower_stage.run(one, s, **QUIET)
    monkeypatch.setenv(SPY_DIR, str(tmp_path))
    info = launch(two.root, s, 2, progress=False, worker=spy_worker)

    curve1, curve2 = read_json(one / "twotower/curve.json"), read_json(two / "twotower/curve.json")
    assert len(curve1) == len(curve2) == 3
    np.testing.assert_allclose([r["val_loss"] for r in curve2], [r["val_loss"] for r in curve1], rtol=1e-5)
    np.testing.assert_allclose(
        [r["train_loss"] for r in curve2], [r["train_loss"] for r in curve1], rtol=1e-5
    )
    assert info["best_epoch"] == read_json(one / "manifest.json")["stages"]["train-2t"]["best_epoch"]
    assert_same_model(one, two, "best.pt")  # the ensemble: both members' best epochs
    for j in range(2):
        assert_same_model(one, two, f"members/{j}/checkpoint.pt")
    np.testing.assert_allclose(
        np.load(two / "twotower/item_vectors.npy"), np.load(one / "twotower/item_vectors.npy"), **TOL
    )
    # not trivially equal: training moved the weights far beyond the tolerance
    init = new_model(load_training_data(one, s), s.twotower).state_dict()  # member 0's seed
    trained = weights(two, "members/0/checkpoint.pt")
    assert max(float((trained[k] - init[k]).abs().max()) for k in init) > 100 * TOL["atol"]

    # the spy saw both ranks: rank 0 wrote the stage's files, rank 1 nothing at all
    names = ("best.pt", "curve.json", "features.json", "item_vectors.npy", "members/1/checkpoint.pt")
    assert_rank_0_alone_wrote(tmp_path, two / "twotower", names)
    assert two.manifest()["stages"]["train-2t"]["n_train_pairs"] > 0


def test_more_processes_than_cores_is_a_one_line_error_that_writes_nothing(toy, tmp_path, cli):
    run = copy_run(toy, tmp_path / "run")
    before = {p: p.stat().st_mtime_ns for p in run.root.rglob("*")}
    code, out, err = cli("train-2t", "--run", run.root, "--nproc", (os.cpu_count() or 1) + 1, "--no-progress")
    assert code == 2
    assert err.strip().count("\n") == 0 and "--nproc" in err and "CPU core" in err
    assert {p: p.stat().st_mtime_ns for p in run.root.rglob("*")} == before
    code, _, err = cli("train-2t", "--run", run.root, "--nproc", 0)
    assert code == 2 and "at least 1" in err


def test_a_killed_rank_is_a_clear_error_and_resume_finishes_the_unbroken_model(
    toy, tmp_path, cli, monkeypatch
):
    unbroken, broken = copy_run(toy, tmp_path / "unbroken"), copy_run(toy, tmp_path / "broken")
    twotower_stage.run(unbroken, settings(), **QUIET)

    monkeypatch.setenv(FAIL_AT_ENV, "1:2")  # rank 1 exits halfway through epoch 2
    code, _, err = cli("train-2t", "--run", broken.root, "--nproc", 2, "--no-progress")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "rank 1 failed: exited with code 1" in last and "holds epoch 1" in last and "--resume" in last
    ckpt = torch.load(broken / "twotower/checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 1
    # nothing half-written: no temporary file, no features / vectors of an unfinished model
    assert sorted(p.name for p in (broken / "twotower").iterdir()) == [
        "best.pt",
        "checkpoint.pt",
        "curve.json",
    ]
    assert "train-2t" not in broken.manifest().get("stages", {})

    monkeypatch.delenv(FAIL_AT_ENV)
    # the checkpoint is the bare model's: one process resumes what two ranks began
    single = copy_run(broken, tmp_path / "single")
    twotower_stage.run(single, settings(), resume=True, **QUIET)
    assert_same_model(unbroken, single)
    code, out, err = cli("train-2t", "--run", broken.root, "--nproc", 2, "--resume", "--no-progress")
    assert code == 0, err
    curve = read_json(broken / "twotower/curve.json")
    assert [r["epoch"] for r in curve] == [1, 2, 3]
    assert curve[0] == ckpt["curve"][0]  # epoch 1 is the broken run's (its timing too): resumed
    assert_same_model(unbroken, broken)
    assert (broken / "twotower/item_vectors.npy").exists() and "train-2t" in broken.manifest()["stages"]
