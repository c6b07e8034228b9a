"""Shared fixtures of the serving tests: two tiny trained runs and a real server in a thread.

The runs are real: the two-tower helper's toy world (users with topics, items with topics)
goes through the actual graph stage, two-tower training and index stage, just small.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from colisten.config import Settings


def _train_toy_run(root: Path, seed: int, **twotower) -> Path:
    from toy_run import write_toy_run

    from colisten.graph import stage as graph_stage
    from colisten.retrieval import stage as index_stage
    from colisten.twotower import stage as twotower_stage

    settings = Settings()
    settings.twotower.epochs = 2
    settings.twotower.tower_dims = [64, 32]
    settings.retrieval.recall_queries = 50
    for name, value in twotower.items():
        setattr(settings.twotower, name, value)
    run = write_toy_run(root, n_users=240, n_audiobooks=50, n_podcasts=100, seed=seed, settings=settings)
    graph_stage.run(run, settings, describe=False)
    twotower_stage.run(run, settings)
    index_stage.run(run, settings)
    return run.root


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny run (graph, HGNN embeddings, two-tower model, ANN indexes)."""
    return _train_toy_run(tmp_path_factory.mktemp("serve_run_a") / "run", seed=0)


@pytest.fixture(scope="session")
def recency_toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny run whose user tower also pools its history by recency."""
    return _train_toy_run(tmp_path_factory.mktemp("serve_run_r") / "run", seed=0, recency_half_life=5.0)


@pytest.fixture(scope="session")
def other_toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second run, trained on another toy world: a different model version to swap in."""
    return _train_toy_run(tmp_path_factory.mktemp("serve_run_b") / "run", seed=1)


@pytest.fixture(scope="session")
def toy_bundle(toy_run: Path):
    from colisten.serve.state import load_bundle

    return load_bundle(toy_run)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run `app` under a real uvicorn server on a free loopback port; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server():
    return serve_in_thread
