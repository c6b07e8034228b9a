"""Simulated A/B test (issue 14): calibration (A/A), power (oracle vs Popularity), determinism,
assignment, no leakage and the bad-input messages, on small worlds built once per module."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from colisten.abtest import stage as abtest_stage
from colisten.abtest.arms import AbTestError, parse_arms
from colisten.abtest.assignment import assign_arms, balance, sample_users
from colisten.abtest.stage import format_results, load_context
from colisten.cli import app
from colisten.config import Settings
from colisten.data import stage as data_stage
from colisten.rundir import RunDir
from colisten.world.simulate import generate_world


def run_abtest(run, arms, **options):
    """The abtest stage on the run directory `run` with its own settings."""
    rd = RunDir(run)
    return abtest_stage.run(rd, rd.settings(), arms=arms, **options)


def _run(tmp, users: int, seed: int):
    generate_world(tmp / "world", users=users, podcasts=300, audiobooks=120, days=104, seed=seed)
    rd = RunDir(tmp / "run")
    settings = Settings()
    data_stage.validate(rd, settings, data=tmp / "world")
    data_stage.split(rd, settings)
    return rd.root


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    run = _run(tmp_path_factory.mktemp("ab"), 6000, 1)
    return run, load_context(run, run.parent / "world")


def test_aa_is_calibrated_over_20_seeds(small):
    run, ctx = small
    arms = parse_arms("a1=Popularity,a2=Popularity")
    p = []
    for seed in range(20):
        r = run_abtest(run, arms, days=4, users=1200, seed=seed, write=False, context=ctx)
        p += [r["lifts"]["a2"][m]["p"] for m in ("start_rate", "stream_rate")]
    share = float(np.mean(np.asarray(p) < 0.05))
    assert share <= 0.15, (share, p)


def test_oracle_beats_popularity_on_start_rate(small):
    run, ctx = small
    r = run_abtest(run, parse_arms("control=Popularity,oracle=Oracle"), days=14, write=False, context=ctx)
    lift = r["lifts"]["oracle"]["start_rate"]
    assert lift["lift"] > 0 and lift["ci95"][0] > 0, lift
    assert r["lifts"]["oracle"]["shelf_starts"]["lift"] > 0
    assert r["leakage_check"]


def test_same_seed_same_results_and_written_atomically(small):
    run, ctx = small
    arms = parse_arms("control=Popularity,oracle=Oracle")
    a = run_abtest(run, arms, days=3, users=1500, seed=4, name="det", context=ctx)
    b = run_abtest(run, arms, days=3, users=1500, seed=4, write=False, context=ctx)
    c = run_abtest(run, arms, days=3, users=1500, seed=5, write=False, context=ctx)
    assert a["arms"] == b["arms"] and a["lifts"] == b["lifts"]
    assert a["cumulative_starts"] == b["cumulative_starts"]
    assert a["arms"] != c["arms"]
    saved = json.loads((run / "abtest" / "det" / "results.json").read_text())
    assert saved["lifts"] == json.loads(json.dumps(a["lifts"]))
    lines = format_results(a)
    assert max(len(x) for x in lines) <= 80


def test_assignment_is_stable_and_balanced():
    ids = np.asarray([f"u{i:07d}" for i in range(30_000)])
    arm = assign_arms(ids, 3, "0")
    assert np.array_equal(arm[::7], assign_arms(ids[::7], 3, "0"))  # per user, whoever else is in
    assert not np.array_equal(arm, assign_arms(ids, 3, "1"))
    b = balance(arm, 3)
    assert b["balanced"] and max(b["users"]) - min(b["users"]) < 0.03 * 10_000
    assert np.array_equal(sample_users(ids, 100, "s"), sample_users(ids, 100, "s"))
    assert not balance(np.r_[np.zeros(900, int), np.ones(100, int)], 2)["balanced"]


def test_models_never_see_events_after_the_day_they_serve(small):
    run, ctx = small
    seen: list[tuple[int, int]] = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def shelf(self, log, users, as_of, k, started=None):
            user, item, event, ts = log.window(as_of, None)
            all_ts = log.arrays()[3]
            seen.append((as_of, int(ts.max()), int((all_ts >= as_of).sum())))
            return self.inner.shelf(log, users, as_of, k, started)

    import colisten.abtest.stage as stage

    original = stage._ranker
    stage._ranker = lambda *a, **k: Spy(original(*a, **k))
    try:
        r = run_abtest(
            run, parse_arms("c=Popularity,t=Popularity"), days=4, users=1500, write=False, context=ctx
        )
    finally:
        stage._ranker = original
    assert r["leakage_check"] and len(seen) == 8
    assert all(newest < as_of for as_of, newest, _ in seen)
    assert all(future > 0 for _, _, future in seen)  # the log did hold later events, withheld


def test_bad_input_names_the_option(small, tmp_path):
    run, ctx = small
    runner = CliRunner()
    cases = {
        "--arms": ["--arms", "control=Popularity,t=NoSuchModel"],
        "--shelf": ["--arms", "c=Popularity,t=Oracle", "--shelf", "500"],
        "--users": ["--arms", "c=Popularity,t=Oracle", "--users", "1"],
        "--days": ["--arms", "c=Popularity,t=Oracle", "--days", "40"],
    }
    for option, args in cases.items():
        res = runner.invoke(app, ["abtest", "--run", str(run), *args])
        assert res.exit_code == 2, (option, res.output)
        assert option in res.output, (option, res.output)
    with pytest.raises(AbTestError, match="--arms"):
        parse_arms("control=Popularity")
    # a run without truth/
    world = run.parent / "world"
    (world / "truth").rename(world / "truth.off")
    try:
        res = runner.invoke(app, ["abtest", "--run", str(run), "--arms", "c=Popularity,t=Oracle"])
        assert res.exit_code == 2 and "truth/" in res.output, res.output
    finally:
        (world / "truth.off").rename(world / "truth")
