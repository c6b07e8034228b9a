"""bench/serve.py --soak: the open loop keeps answering while the server hot-swaps between two runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from colisten.serve.state import model_version

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve.py"


def _bench_serve():
    spec = importlib.util.spec_from_file_location("bench_serve", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_soak_with_reloads_fails_no_request(toy_run, tmp_path):
    bench = _bench_serve()
    report = bench.soak(
        toy_run, seconds=3.0, rate=30.0, reload_every=1.0, concurrency=4, warmup=0.5, work=tmp_path
    )
    text = bench.format_soak(report)
    print(text)

    assert report["requests"] == 90 and report["failed"] == 0, text
    assert report["run_b_copied"] and report["run_b"] != str(toy_run.resolve())
    reloads = report["reloads"]  # at 1 and 2 s (the second skipped if the first took over 2 s)
    assert reloads and all(r["status"] == 200 for r in reloads), reloads
    assert [r["run"] for r in reloads] == ["B", "A"][: len(reloads)]
    assert reloads[0]["version"] != model_version(toy_run)  # B is another directory
    assert all(r["version"] == model_version(toy_run) for r in reloads[1:])
    assert report["rss_after_first_reload"] and len(report["rss_samples"]) >= 3
    assert "RSS MiB" in text and "p99" in text and "PASS  0 failed requests" in text
    table = [line for line in text.splitlines() if not line.startswith(("  A = ", "  B = "))]
    assert max(len(line) for line in table) <= 80  # but for the run paths
    assert not any(tmp_path.glob("soak-*")), "the copy of run A is removed"
