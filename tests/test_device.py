"""The shared `device` rule: auto picks what exists, an impossible device is a clear setting error."""

import pytest
import torch

from colisten.device import DeviceError, resolve_device


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu", "hgnn.device") == "cpu"


def test_cuda_without_a_gpu_names_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"twotower.device = 'cuda' but CUDA is not available"):
        resolve_device("cuda", "twotower.device")


def test_unknown_or_unsupported_devices_are_refused():
    with pytest.raises(DeviceError, match=r"content.device = 'gpu0' is not a torch device"):
        resolve_device("gpu0", "content.device")
    with pytest.raises(DeviceError, match="only cpu, cuda"):
        resolve_device("meta", "hgnn.device")


def test_a_stage_refuses_cuda_before_any_work(monkeypatch, tmp_path):
    """The HGNN stage raises the setting error itself (the CLI prints it, exit code 2)."""
    from colisten.config import HGNNConfig
    from colisten.graph.store import CoListeningGraph
    from colisten.hgnn.train import fit_hgnn

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    graph = CoListeningGraph.from_undirected_edges({"podcast": 3}, {"podcast__podcast": ([0], [1], None)})
    features = {"podcast": torch.zeros(3, 4).numpy()}
    threads = torch.get_num_threads()
    with pytest.raises(DeviceError, match="hgnn.device"):
        fit_hgnn(
            graph, features, HGNNConfig(device="cuda", threads=threads + 1), out_dir=tmp_path, progress=False
        )
    assert not any(tmp_path.iterdir())  # nothing half-written
    assert torch.get_num_threads() == threads  # and the process's thread count is untouched


def test_a_worker_pools_processes_die_with_the_process_that_started_them():
    """colisten.device.worker_pool (tune's trials, train-2t's ensemble members): a stage killed by
    SIGKILL takes its busy workers with it instead of leaving them writing into the run."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = (
        "import os, time\n"
        "from colisten.device import worker_pool\n"
        "pool = worker_pool(1, 1, int)\n"
        "print(pool.submit(os.getpid).result(), flush=True)\n"
        "pool.submit(time.sleep, 120)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()

    def alive(pid: int) -> bool:  # a zombie waiting for its new parent to reap it is dead
        status = Path(f"/proc/{pid}/status")
        try:
            return "\nState:\tZ" not in status.read_text()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker), "the worker outlived the killed process that started it"
