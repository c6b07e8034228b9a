"""Tuning on the history-only validation split: no hold-out event reaches a tuned input, every
trial is recorded and resumable, the best trial is chosen and the run then uses it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from colisten.config import load_settings
from colisten.errors import ColistenError
from colisten.io import read_json
from colisten.pipeline import SMALL_OVERRIDES, run_pipeline
from colisten.rundir import RunDir
from colisten.tune import stage as tune_stage
from colisten.tune.choice import chosen_overrides, load_tuning, settings_for
from colisten.tune.search import tune_models
from colisten.tune.spaces import SEARCH_SPACES, get_setting
from colisten.tune.stage import reuse_tuning
from colisten.world.simulate import generate_world

pytestmark = pytest.mark.slow

TINY = {"users": 700, "podcasts": 150, "audiobooks": 50, "days": 104}
FAST = {
    **SMALL_OVERRIDES,
    "hgnn": {**SMALL_OVERRIDES["hgnn"], "epochs": 2, "max_edges_per_epoch": 512},
    "twotower": {"epochs": 1, "tower_dims": [32, 16]},
    "evaluate": {"bootstrap": 0, "hgnn_w_users_epochs": 1},
    "tune": {"models": ["ALS", "2T-HGNN"], "trials": 3, "cold_share": "auto"},
}
AFTER_EMBED = ("tune", "graph", "train-hgnn", "train-2t", "index", "evaluate")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    generate_world(root / "world", seed=5, **TINY)
    settings = load_settings(None, FAST)
    run_pipeline(root / "world", root / "run", settings, skip=AFTER_EMBED, log=lambda *_: None)
    rd = RunDir(root / "run")
    lines: list[str] = []
    tuning = tune_models(rd, settings, log=lines.append)
    return rd, settings, tuning, lines


def _rows(df: pd.DataFrame) -> set[tuple]:
    return set(df[["user_id", "item_id", "event", "timestamp"]].itertuples(index=False, name=None))


def test_no_holdout_event_reaches_any_tuned_input(tuned):
    rd, _, _, _ = tuned
    main = read_json(rd / "split" / "split.json")
    holdout = pd.read_parquet(rd / "split" / "holdout.parquet")
    assert len(holdout) > 0
    val = rd / "tune" / "validation"
    vsplit = read_json(val / "split" / "split.json")
    assert vsplit["cut"] == main["cut"] - 14 * 86_400 and vsplit["end"] < main["cut"]
    # the validation data is the main history, less the simulated cold users' target-type history
    history = pd.read_parquet(rd / "split" / "history.parquet")
    assert _rows(pd.read_parquet(val / "data" / "interactions.parquet")) <= _rows(history)
    vhist = pd.read_parquet(val / "split" / "history.parquet")
    vhold = pd.read_parquet(val / "split" / "holdout.parquet")
    assert len(vhold) > 0 and (vhist["timestamp"] < vsplit["cut"]).all()
    assert vhold["timestamp"].between(vsplit["cut"], main["cut"] - 1).all()
    # every table anywhere under RUN/tune holds only events from before the main cut
    held = _rows(holdout)
    for path in (rd.root / "tune").rglob("*.parquet"):
        df = pd.read_parquet(path)
        if "timestamp" in df.columns and "event" in df.columns:
            assert (df["timestamp"] < main["cut"]).all(), path
            assert not (_rows(df) & held), path
    # the trials' co-listening graphs link only items shared by a user in the validation inputs
    pairs = set()
    for _, items in vhist.groupby("user_id")["item_id"]:
        u = sorted(set(items))
        pairs |= {(a, b) for i, a in enumerate(u) for b in u[i + 1 :]}
    graphs = list((rd.root / "tune").rglob("graph/edges.parquet"))
    assert graphs
    for path in graphs:
        edges = pd.read_parquet(path)
        linked = {tuple(sorted(p)) for p in edges[["src", "dst"]].itertuples(index=False, name=None)}
        assert linked and linked <= pairs, path
    # the two-tower trials' features end at the validation cut
    for path in (rd.root / "tune" / "trials").rglob("twotower/features.json"):
        assert read_json(path)["cut"] == vsplit["cut"], path


def test_validation_has_cold_users_made_as_the_recast_makes_them(tuned):
    """Cold users of the target type cannot occur in a history-only split (a run's cold users have
    no target-type history at all): a seeded share of warm users lose their target-type history."""
    rd, settings, tuning, _ = tuned
    val = rd / "tune" / "validation"
    vsplit = read_json(val / "split" / "split.json")
    history = pd.read_parquet(rd / "split" / "history.parquet")
    items = pd.read_parquet(rd / "data" / "items.parquet")
    target = set(items.loc[items.item_type == "audiobook", "item_id"])
    lost = _rows(history) - _rows(pd.read_parquet(val / "data" / "interactions.parquet"))
    assert len(lost) == vsplit["simulated_cold_dropped_events"] > 0
    assert all(item in target and ts < vsplit["cut"] for _, item, _, ts in lost)
    cold = {u for u, *_ in lost}
    assert len(cold) == vsplit["simulated_cold_users"] == tuning["validation"]["simulated_cold_users"]
    # each lost all of its target-type history and is scored as cold on the validation hold-out
    vhist = pd.read_parquet(val / "split" / "history.parquet")
    assert not (vhist.user_id.isin(cold) & vhist.item_id.isin(target)).any()
    assert tuning["validation"]["evaluated_users"]["audiobook"]["cold"] >= len(cold)
    # the default share is the run's own share of history users with no target-type event
    users = history.user_id.unique()
    warm = history.loc[history.item_id.isin(target), "user_id"].unique()
    assert vsplit["simulated_cold_share"] == pytest.approx(1 - len(warm) / len(users), abs=1e-4)


def test_no_simulated_cold_users_with_cold_share_zero():
    from colisten.tune.validation import simulate_cold_users

    history = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c"],
            "item_id": ["book", "book2", "book", "book2", "pod"],
            "event": ["stream"] * 5,
            "timestamp": [1, 20, 2, 30, 3],
        }
    )
    items = pd.DataFrame({"item_id": ["book", "book2", "pod"], "item_type": ["audiobook"] * 2 + ["podcast"]})
    settings = load_settings(None, {"tune": {"cold_share": 0.0}})
    kept, report = simulate_cold_users(history, items, settings, val_cut=10)
    assert kept.equals(history) and report["simulated_cold_users"] == 0
    settings = load_settings(None, {"tune": {"cold_share": 1.0}})
    kept, report = simulate_cold_users(history, items, settings, val_cut=10)
    # both a and b have target-type events on both sides of the cut: they lose the early ones
    assert report["simulated_cold_users"] == 2 and len(kept) == 3
    assert set(kept.timestamp) == {20, 30, 3}


def test_every_trial_is_recorded_and_the_best_is_chosen(tuned):
    rd, settings, tuning, lines = tuned
    assert set(tuning["models"]) == {"ALS", "2T-HGNN"}
    assert tuning["metric"] == "hr@10" and tuning["segment"] == "all"
    trial_lines = [line for line in lines if not line.startswith("tune: ")]  # the rest: workers, HGNNs
    assert len(trial_lines) == 2 * 3 and all("hr@10" in line for line in trial_lines)
    for model, m in tuning["models"].items():
        trials = m["trials"]
        assert len(trials) == 3
        assert trials[0]["overrides"] == {k: get_setting(settings, k) for k in SEARCH_SPACES[model]}
        scores = [t["metrics"]["all"]["hr@10"] for t in trials]
        # [tune] choose = significant: the configured settings unless a trial's paired gain is
        # above 0 with 95% confidence, then the best of those (argmax: the first on ties)
        assert m["rule"] == "significant" and set(m["gains"]) == {"1", "2"}
        eligible = [0] + [i for i in (1, 2) if m["gains"][str(i)][1] > 0]
        assert m["chosen_trial"] == max(eligible, key=lambda i: (scores[i], -i))
        for i in (1, 2):  # the recorded gain is the per-user difference of the trials' values
            per_user = [t["per_user"] for t in (trials[0], trials[i])]
            assert per_user[0]["user_id"] == per_user[1]["user_id"]
            diff = np.mean(np.subtract(per_user[1]["value"], per_user[0]["value"]))
            assert m["gains"][str(i)][0] == pytest.approx(diff)
            assert np.mean(per_user[1]["value"]) == pytest.approx(scores[i])
        assert m["chosen"] == trials[m["chosen_trial"]]["overrides"]
        assert m["validation"] == trials[m["chosen_trial"]]["metrics"]
    assert load_tuning(rd.root) == json.loads((rd / "tune" / "tuning.json").read_text())


def test_finished_trials_are_reused_not_retrained(tuned):
    rd, settings, tuning, _ = tuned
    records = sorted((rd.root / "tune" / "trials").rglob("trial.json"))
    assert len(records) == 6
    before = {p: p.stat().st_mtime_ns for p in records}
    again = tune_models(rd, settings)
    assert {p: p.stat().st_mtime_ns for p in records} == before
    assert again["models"] == tuning["models"]


def test_trials_in_parallel_workers_equal_one_after_another(tuned, tmp_path):
    """The fixture tuned with the default [tune] workers (2 processes on a machine with 2 cores);
    the same trials one after another in this process give the same records, each HGNN that
    2T-HGNN trials share was trained once, and every trial is logged."""
    import torch

    from colisten.tune.search import tune_workers, usable_cores

    rd, settings, tuning, lines = tuned
    assert tune_workers(settings.tune.workers) == min(2, usable_cores())
    assert sum(line.startswith("tune ") for line in lines) == 6
    if tune_workers(settings.tune.workers) > 1:
        assert any(line.startswith("tune: 6 trials on 2 worker processes") for line in lines)
    copy = RunDir(tmp_path / "run")
    shutil.copytree(rd.root, copy.root, symlinks=True)
    shutil.rmtree(copy / "tune")
    one = settings.model_copy(update={"tune": settings.tune.model_copy(update={"workers": 1})})
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // tune_workers(settings.tune.workers)))
    try:
        again = tune_models(copy, one)
    finally:
        torch.set_num_threads(before)
    for model, m in tuning["models"].items():
        assert [t["metrics"] for t in again["models"][model]["trials"]] == [t["metrics"] for t in m["trials"]]
        assert again["models"][model]["chosen"] == m["chosen"]
    # one shared HGNN per distinct HGNN setting of the 2T-HGNN trials, each trained (before the workers)
    weightings = {t["overrides"]["hgnn.edge_weighting"] for t in tuning["models"]["2T-HGNN"]["trials"]}
    shared = list((rd.root / "tune" / "hgnn").iterdir())
    assert len(shared) == len(weightings)
    assert all((d / "hgnn" / "item_embeddings.npy").exists() for d in shared)


def test_the_run_trains_with_the_choice_and_evaluate_reads_it(tuned, tmp_path):
    rd, settings, tuning, _ = tuned
    copy = RunDir(tmp_path / "run")
    shutil.copytree(rd.root, copy.root, symlinks=True)
    tune_stage.run(copy, settings)  # every trial reused: nothing retrained
    tuned_settings = copy.settings()
    ours = tuning["models"]["2T-HGNN"]["chosen"]
    saved = copy.settings()
    for path, value in ours.items():
        assert get_setting(tuned_settings, path) == value == get_setting(saved, path)
    als = settings_for(copy.root, settings, "ALS")
    for path, value in tuning["models"]["ALS"]["chosen"].items():
        assert get_setting(als, path) == value
    # HGNN alone shares 2T-HGNN's HGNN settings but not its two-tower ones
    assert all(not k.startswith("twotower.") for k in chosen_overrides(tuning, "HGNN"))
    assert {k: v for k, v in ours.items() if k.startswith("hgnn.")} == chosen_overrides(tuning, "HGNN")


def test_a_choice_is_reused_only_if_it_never_saw_the_holdout(tuned, tmp_path):
    rd, _, tuning, _ = tuned
    other = RunDir(tmp_path / "other")
    (other.root / "split").mkdir(parents=True)
    split = read_json(rd / "split" / "split.json")
    (other.root / "split" / "split.json").write_text(json.dumps(split))
    adopted = reuse_tuning(other, rd.root)
    assert adopted["models"] == tuning["models"] and adopted["reused_from"]
    assert load_tuning(other.root)["models"] == tuning["models"]
    # a run whose hold-out starts before the source's validation window ends is refused
    early = {**split, "cut": split["cut"] - 20 * 86_400}
    (other.root / "split" / "split.json").write_text(json.dumps(early))
    with pytest.raises(ColistenError, match="inside this run's hold-out"):
        reuse_tuning(other, rd.root)
    # a tuning made for another split is not used
    assert load_tuning(other.root) is None


def test_unknown_models_are_refused_before_any_work(tuned, tmp_path):
    rd, settings, _, _ = tuned
    bad = settings.model_copy(update={"tune": settings.tune.model_copy(update={"models": ["Nope"]})})
    before = sorted(os.listdir(rd.root / "tune"))
    with pytest.raises(ColistenError, match="no search space"):
        tune_models(rd, bad)
    assert sorted(os.listdir(rd.root / "tune")) == before


def test_short_history_cannot_be_carved(tuned, tmp_path: Path):
    rd, settings, _, _ = tuned
    short = settings.model_copy(update={"data": settings.data.model_copy(update={"history_days": 14})})
    with pytest.raises(ColistenError, match="history_days"):
        tune_models(rd, short)


def _trial(values: list[float], users: list[str] | None = None) -> dict:
    users = users or [f"u{i}" for i in range(len(values))]
    return {
        "model": "ALS",
        "overrides": {"n": len(values)},
        "metrics": {"all": {"hr@10": float(np.mean(values))}},
        "per_user": {"metric": "hr@10", "user_id": users, "segment": ["warm"] * len(users), "value": values},
    }


def test_a_trial_replaces_the_configured_settings_only_on_evidence():
    from colisten.tune.search import _choose

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 300).astype(float)
    lucky = base.copy()
    lucky[rng.choice(np.flatnonzero(base == 0), 6, replace=False)] = 1  # +0.02: noise-sized
    lucky[rng.choice(np.flatnonzero(base == 1), 2, replace=False)] = 0
    better = np.maximum(base, rng.random(300) < 0.3)  # +0.15 and never worse: real
    trials = [_trial(base.tolist()), _trial(lucky.tolist()), _trial(better.tolist())]
    picked = _choose(trials[:2], "hr@10", "all", "significant")
    assert picked["chosen_trial"] == 0 and picked["gains"]["1"][1] <= 0 < picked["gains"]["1"][0]
    assert _choose(trials[:2], "hr@10", "all", "best")["chosen_trial"] == 1  # the old rule: any lead
    assert _choose(trials, "hr@10", "all", "significant")["chosen_trial"] == 2
    assert _choose(trials, "hr@10", "cold", "significant")["chosen_trial"] == 0  # no cold users: no evidence


def test_2t_and_2t_hgnn_take_one_choice_on_their_pooled_evidence():
    from colisten.tune.search import _choose, _choose_together

    rng = np.random.default_rng(1)
    users = [f"u{i}" for i in range(300)]
    trials = {}
    for m, (lo, hi) in {"2T": (0, 150), "2T-HGNN": (150, 300)}.items():
        base = rng.integers(0, 2, 300).astype(float)
        better = base.copy()  # +14 -6 hits on this model's own half of the users: +0.027
        better[lo + rng.choice(np.flatnonzero(base[lo:hi] == 0), 14, replace=False)] = 1
        better[lo + rng.choice(np.flatnonzero(base[lo:hi] == 1), 6, replace=False)] = 0
        trials[m] = [_trial(base.tolist(), users), _trial(better.tolist(), users)]
        for i, t in enumerate(trials[m]):
            t["model"], t["overrides"] = m, {"trial": i, "model": m}
        alone = _choose(trials[m], "hr@10", "all", "significant")
        assert alone["chosen_trial"] == 0 and alone["gains"]["1"][1] <= 0 < alone["gains"]["1"][0]
    together = _choose_together(trials, ["2T", "2T-HGNN"], "hr@10", "all", "significant", 0)
    for m, choice in together.items():
        assert choice["chosen_trial"] == 1 and choice["chosen"] == {"trial": 1, "model": m}
        assert choice["gains"]["1"][1] > 0 and choice["own_gains"]["1"][1] <= 0
        assert choice["validation"] == trials[m][1]["metrics"]
        assert choice["chosen_with"] == [x for x in together if x != m]
    pooled = np.mean([np.mean(trials[m][1]["per_user"]["value"]) for m in trials])
    assert together["2T"]["pooled_validation"]["all"]["hr@10"] == pytest.approx(pooled)
