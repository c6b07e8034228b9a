"""bench/scale.py: the growth fit, the projection's verdicts, the 80-column tables, resume, and the
measurement of one command in its own process (the end-to-end run is `bench/scale.py --sizes
1000,2000 --no-record`, minutes: not a test)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _args(**kw):
    return argparse.Namespace(**{"max_memory_gb": 24.0, "max_hours": 24.0, **kw})


def test_the_fit_recovers_the_growth_above_the_fixed_cost(scale):
    xs = [4e5, 1.6e6, 6.4e6]
    ys = [300 + 2e-4 * x**1.3 for x in xs]  # 300 MiB of imports, then superlinear growth
    fit = scale.fit_growth(xs, ys, floor=300)
    assert fit["b"] == pytest.approx(1.3, abs=1e-9) and not fit["flat"]
    assert scale.predict(fit, 8e8) == pytest.approx(300 + 2e-4 * 8e8**1.3, rel=1e-9)
    assert scale.fit_plain(xs, [300 + 2e-6 * x**1.3 for x in xs]) < 0.8  # fixed cost read as slow growth


def test_a_stage_that_does_not_grow_is_flat(scale):
    fit = scale.fit_growth([1e5, 4e5, 1.6e6], [3.1, 3.0, 3.2], floor=3.0)
    assert fit["flat"] and fit["b"] == 0.0
    assert scale.fit_growth([1e5, 4e5, 1.6e6], [9.0, 6.0, 5.0], floor=3.0)["flat"]  # shrinking: noise


def _measured(events, stages):
    return {
        "size": {"users": events // 80, "podcasts": 10, "audiobooks": 10},
        "events": events,
        "world": {"seconds": 1.0, "peak_rss_mib": 100.0, "disk_mib": 1.0},
        "stages": {s: dict(v) for s, v in stages.items()},
    }


def _row(seconds, rss, disk):
    return {"seconds": seconds, "peak_rss_mib": rss, "disk_mib": disk}


def test_projection_verdicts_and_tables_fit_80_columns(scale):
    floor = _measured(30_000, {s: _row(2.0, 200.0, 0.5) for s in scale.STAGES})
    measured = []
    for events in (400_000, 1_600_000, 6_400_000):
        k = events / 400_000
        stages = {s: _row(2.0 + k, 200.0 + 10 * k, 0.5 + k) for s in scale.STAGES}
        stages["train-2t"] = _row(2.0 + 30 * k, 200.0 + 500 * k, 1.0)  # memory grows past 24 GB
        stages["evaluate"] = _row(2.0 + 60 * k**2, 300.0, 1.0)  # quadratic time
        stages["graph"] = _row(2.0 + k, 200.0 + 500 * k, 1.0)  # DuckDB: spills, memory not held
        measured.append(_measured(events, stages))
    proj = scale.projections(measured, floor, 8e8)
    assert proj["evaluate"]["seconds"]["b"] == pytest.approx(2.0)
    assert scale.verdict("train-2t", proj["train-2t"], 24, 24) == "cluster: mem"
    assert scale.verdict("evaluate", proj["evaluate"], 24, 24) == "cluster: time"
    assert scale.verdict("graph", proj["graph"], 24, 24) == "one machine*"
    assert scale.verdict("split", proj["split"], 24, 24) == "one machine"

    table = scale.projection_table(proj, _args())
    tables = scale.measured_tables(measured, floor)
    for line in [*table.splitlines(), *tables.splitlines()]:
        assert len(line) <= 80, line
    assert "cluster: mem" in table and 'engine = "spark"' in table and "--engine spark" in table


def test_measurements_resume_and_refuse_other_settings(scale, tmp_path):
    path = tmp_path / "measurements.json"
    store = scale.Store(path, {"config": "a"}, fresh=False)
    store.size(1000)["stages"]["validate"] = _row(1.0, 2.0, 3.0)
    store.save()
    again = scale.Store(path, {"config": "a"}, fresh=False)
    assert again.size(1000)["stages"]["validate"]["seconds"] == 1.0
    with pytest.raises(SystemExit, match="--fresh"):
        scale.Store(path, {"config": "b"}, fresh=False)
    assert scale.Store(path, {"config": "b"}, fresh=True).data["sizes"] == {}
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp file left


def test_each_stage_is_the_command_a_user_types(scale, tmp_path):
    world, run, config = tmp_path / "w", tmp_path / "r", tmp_path / "c.toml"
    for stage in scale.STAGES:
        args = scale.stage_command(stage, world, run, config, "Popularity")
        assert args[0] == stage and str(run) in args
    assert "--config" in scale.stage_command("validate", world, run, config, "P")
    assert scale.stage_command("evaluate", world, run, config, "Popularity,HGNN")[-2:] == [
        "--models",
        "Popularity,HGNN",
    ]
    size = scale.world_size(10_000_000)
    assert size["podcasts"] + size["audiobooks"] == 3_750_000  # the paper's catalogue at its scale


def test_a_failing_stage_is_measured_and_explained(scale, tmp_path):
    log = tmp_path / "split.log"
    result = scale.measure(["split", "--run", str(tmp_path / "no-run")], log, timeout_s=120)
    assert result["returncode"] == 2 and result["peak_rss_mib"] > 10 and not result["timed_out"]
    assert "colisten validate" in scale.failure(result, log)
