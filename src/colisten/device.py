"""One rule for the `device` setting of every torch stage (content, hgnn, twotower), and the cores
this process may use."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from colisten.errors import ColistenError


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it, e.g. a
    container's cpuset; else the machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class DeviceError(ColistenError):
    """A device setting this machine cannot honour."""


def resolve_device(name: str, setting: str = "device") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; anything else must be a usable torch device.

    `setting` names the config field in the error (e.g. "hgnn.device"), so a user who asked for
    cuda on a machine without one is told which setting to change instead of getting torch's
    traceback halfway through a stage.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"{setting} = {name!r} is not a torch device: cpu, cuda, cuda:N or auto") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"{setting} = {name!r} but CUDA is not available here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"{setting} = {name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise DeviceError(f"{setting} = {name!r}: only cpu, cuda, cuda:N or auto are supported")
    return str(dev)


def worker_pool(workers: int, threads: int, init: Callable[..., None], *initargs: Any):
    """A ProcessPoolExecutor of `workers` spawned processes (torch and fork do not mix), each with
    `threads` torch threads, then init(*initargs) (e.g. keeping its copy of the data)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_torch_worker,
        initargs=(threads, init, initargs),
    )


def _init_torch_worker(threads: int, init: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    import torch

    _die_with_parent()
    torch.set_num_threads(threads)
    init(*initargs)


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the one that started it dies. A stage killed
    mid-training (SIGKILL, OOM) must not leave workers writing into the run while it is rerun."""
    import ctypes
    import signal

    with suppress(OSError, AttributeError):  # not Linux/glibc: workers end when their queue breaks
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
