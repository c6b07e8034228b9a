"""A small structured run, trained once for the whole folder."""

import pytest
from toy_run import write_toy_run

from colisten.config import Settings
from colisten.twotower import stage as twotower_stage

# Smaller towers than the paper's 512-256-128 keep the folder fast; test_twotower_model checks
# the default sizes separately.
# one model (the default ensemble of 3 is tested on its own): these tests look at one training
FAST = {
    "twotower": {
        "tower_dims": [128, 64, 32],
        "epochs": 8,
        "batch_size": 64,
        "label_windows": 1,
        "label_folds": 0,
        "ensemble": 1,
    }
}


def fast_settings(**twotower) -> Settings:
    return Settings.model_validate({"twotower": {**FAST["twotower"], **twotower}})


@pytest.fixture
def fast():
    """Settings factory: the folder's fast towers, plus twotower overrides."""
    return fast_settings


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    import torch

    run = write_toy_run(tmp_path_factory.mktemp("toy") / "run", n_users=400, seed=0, settings=fast_settings())
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = twotower_stage.run(run, run.settings())
    finally:
        torch.set_num_threads(before)
    return run, summary


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test machine's cores are shared: one intra-op thread avoids spin-wait contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rec(trained_run):
    """The trained run's recommender, loaded once per module."""
    from colisten.twotower.recommender import TwoTowerRecommender

    return TwoTowerRecommender.load(trained_run[0])
