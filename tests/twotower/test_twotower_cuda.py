"""Two-tower training on CUDA (skipped without a GPU): same batches, same model up to float error."""

import numpy as np
import pytest
import torch
from toy_run import write_toy_run

from colisten.io import read_json
from colisten.twotower import stage as twotower_stage
from colisten.twotower.model import load_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

QUIET = {"progress": False, "log": lambda *_: None}


def test_cuda_training_matches_cpu_and_serves_on_cpu(tmp_path, fast):
    runs = {}
    for device in ("cpu", "cuda"):
        run = write_toy_run(tmp_path / device, n_users=150, seed=2, settings=fast(epochs=2, device=device))
        twotower_stage.run(run, run.settings(), **QUIET)
        runs[device] = run
    curves = {d: read_json(r / "twotower/curve.json") for d, r in runs.items()}
    for a, b in zip(curves["cpu"], curves["cuda"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-3)
    va, vb = (np.load(r / "twotower/item_vectors.npy") for r in runs.values())
    assert va.shape == vb.shape and (va * vb).sum(1).mean() > 0.99  # unit rows: cosine
    model = load_model(runs["cuda"] / "twotower/best.pt")  # trained on the GPU, loaded on a CPU
    assert all(not p.is_cuda for p in model.parameters())
