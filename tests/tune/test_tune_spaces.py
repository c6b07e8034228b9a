"""Search spaces: every key is a real setting, every value validates, trials are distinct and seeded."""

import pytest

from colisten.config import Settings
from colisten.tune.spaces import SEARCH_SPACES, apply_overrides, get_setting, trial_overrides


@pytest.mark.parametrize("model", sorted(SEARCH_SPACES))
def test_every_grid_value_is_a_valid_setting(model):
    base = Settings()
    for path, values in SEARCH_SPACES[model].items():
        for value in values:
            assert get_setting(apply_overrides(base, {path: value}), path) == value


@pytest.mark.parametrize("model", sorted(SEARCH_SPACES))
def test_trials_start_with_the_configured_settings_and_are_distinct(model):
    settings = Settings()
    trials = trial_overrides(model, settings, 6, seed=0)
    assert trials[0] == {k: get_setting(settings, k) for k in SEARCH_SPACES[model]}
    assert len({tuple(sorted(t.items())) for t in trials}) == len(trials) == 6
    assert trials == trial_overrides(model, settings, 6, seed=0)
    assert trials != trial_overrides(model, settings, 6, seed=1)


def test_one_trial_is_the_configured_settings_alone():
    assert trial_overrides("ALS", Settings(), 1, seed=0) == [
        {k: get_setting(Settings(), k) for k in SEARCH_SPACES["ALS"]}
    ]


def test_a_bad_override_is_refused_like_a_config_file():
    with pytest.raises(ValueError):
        apply_overrides(Settings(), {"evaluate.als_factors": 0})


def test_trials_train_one_two_tower_model_whatever_the_runs_ensemble():
    from colisten.tune.validation import validation_settings

    run = Settings.model_validate({"twotower": {"ensemble": 3}})
    trial = validation_settings(run)
    assert trial.twotower.ensemble == 1 and run.twotower.ensemble == 3
    assert trial.data.history_days == run.data.history_days - run.data.holdout_days


def test_2t_and_2t_hgnn_try_the_same_two_tower_settings_trial_by_trial():
    from colisten.tune.spaces import TUNED_TOGETHER

    settings = Settings()
    first, second = (trial_overrides(m, settings, 8, seed=0) for m in TUNED_TOGETHER)
    shared = [k for k in SEARCH_SPACES["2T-HGNN"] if k in SEARCH_SPACES["2T"]]
    assert shared == list(SEARCH_SPACES["2T"])
    assert [{k: t[k] for k in shared} for t in second] == first
    assert len({tuple(sorted(t.items())) for t in second}) == 8
    # 2T draws its trials as it did on its own; 2T-HGNN's HGNN settings still vary
    assert first[0]["twotower.epochs"] == settings.twotower.epochs
    assert len({t["hgnn.edge_weighting"] for t in second}) > 1
