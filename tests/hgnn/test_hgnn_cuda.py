"""HGNN on CUDA (skipped without a GPU): same batches as on CPU, so the same model up to float error."""

import numpy as np
import pytest
import torch

from colisten.config import HGNNConfig
from colisten.hgnn.model import HeteroGraphSAGE
from colisten.hgnn.train import fit_hgnn

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SMALL = {"hidden_dim": 32, "out_dim": 16, "fanouts": [5, 5], "batch_size": 64, "validation_fraction": 0.2}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("training", ["minibatch", "full_graph"])
def test_cuda_training_matches_cpu_training(world, tmp_path, training):
    graph, features, _ = world
    cfg = HGNNConfig(epochs=3, patience=10, training=training, full_graph_step_edges=128, **SMALL)
    cpu = fit_hgnn(graph, features, cfg, out_dir=tmp_path / "cpu", device="cpu", progress=False)
    gpu = fit_hgnn(graph, features, cfg, out_dir=tmp_path / "gpu", device="cuda", progress=False)
    assert gpu.info["device"].startswith("cuda") and next(gpu.model.parameters()).is_cuda
    first = cpu.curve["epochs"][0]["loss"], gpu.curve["epochs"][0]["loss"]
    assert first[1] == pytest.approx(first[0], rel=1e-3)
    assert abs(cpu.best_metric - gpu.best_metric) < 0.02
    for t, z in gpu.embeddings.items():
        assert z.dtype == np.float32 and z.shape == cpu.embeddings[t].shape
        assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
        assert _cosines(z, cpu.embeddings[t]).mean() > 0.99


def test_a_cuda_checkpoint_resumes_and_loads_on_cpu(world, tmp_path):
    graph, features, _ = world
    cfg = HGNNConfig(epochs=4, patience=10, dropout=0.1, **SMALL)
    straight = fit_hgnn(graph, features, cfg, out_dir=tmp_path / "a", device="cuda", progress=False)

    def kill_after_two(entry):
        if entry["epoch"] == 2:
            raise _Killed

    with pytest.raises(_Killed):
        fit_hgnn(
            graph, features, cfg, tmp_path / "b", device="cuda", progress=False, on_epoch_end=kill_after_two
        )
    resumed = fit_hgnn(
        graph, features, cfg, out_dir=tmp_path / "b", resume=True, device="cuda", progress=False
    )
    assert [e["epoch"] for e in resumed.curve["epochs"]] == [1, 2, 3, 4]
    for t in straight.embeddings:  # CUDA scatter sums are not bit-reproducible; the model is the same
        np.testing.assert_allclose(straight.embeddings[t], resumed.embeddings[t], atol=1e-4)
    best = torch.load(tmp_path / "a" / "best.pt", map_location="cpu", weights_only=False)
    model = HeteroGraphSAGE(**best["model_config"])
    model.load_state_dict(best["model"])  # a GPU-trained model serves on a CPU-only machine
    assert all(not p.is_cuda for p in model.parameters())
