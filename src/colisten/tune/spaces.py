"""The documented search space of every tuned model, and how a trial's settings are formed.

Each model gets the same number of trials ([tune] trials): trial 0 is the run's own settings,
the others a seeded sample without replacement from the model's grid below (random search:
with a budget this small it is as good as any sequential method, and it cannot favour a model).
A key is a dotted settings path; only the keys listed are varied, everything else stays as the
run has it. HGNN and HGNN-w-users have no space of their own: they share the HGNN settings
chosen for 2T-HGNN. Popularity and LLM-KNN have no settings.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from colisten.config import Settings, deep_merge

_TWO_TOWER: dict[str, list[Any]] = {
    "twotower.label_windows": [1, 3, 5],
    # no 0: with in-batch negatives an uncorrected softmax punishes popular items twice over the
    # popularity prior (every logq_weight = 0 trial was the worst of its tuning on ml-latest-small)
    "twotower.logq_weight": [0.5, 1.0],
    "twotower.temperature": [0.05, 0.1, 0.2],
    "twotower.epochs": [5, 10],
    # 0 turns the recency means off, for logs whose order says little about what comes next
    "twotower.recency_half_life": [0.0, 5.0, 10.0],
}

SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "ALS": {
        # implicit's penalty is not scaled by the data: on MovieLens the best values are 10-100
        # (a grid that stopped at 1.0 kept the configured settings on every seed), and fewer
        # factors do as well as more
        "evaluate.als_factors": [16, 32, 64, 128],
        "evaluate.als_regularization": [0.05, 1.0, 10.0, 50.0, 100.0],
        "evaluate.als_alpha": [1.0, 5.0, 10.0, 20.0, 40.0],
        "evaluate.als_weak_weight": [0.1, 0.3, 0.5, 1.0],
        "evaluate.als_iterations": [15, 30],
    },
    "EASE": {
        "evaluate.ease_lambda": [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0],
        "evaluate.ease_weak_weight": [0.3, 1.0],
    },
    "ItemKNN": {
        "evaluate.itemknn_neighbors": [10, 20, 50, 100, 200, 500],
        "evaluate.itemknn_shrinkage": [0.0, 10.0, 50.0, 100.0],
        "evaluate.itemknn_weak_weight": [0.3, 1.0],
    },
    "LightGCN": {
        "evaluate.lightgcn_layers": [1, 2, 3],
        "evaluate.lightgcn_lr": [1e-3, 5e-3, 1e-2],
        "evaluate.lightgcn_l2": [1e-5, 1e-4, 1e-3],
        "evaluate.lightgcn_dim": [32, 64, 128],
    },
    "2T": dict(_TWO_TOWER),
    "2T-HGNN": {**_TWO_TOWER, "hgnn.edge_weighting": ["none", "cocount"]},
}

# Models tuned together ([tune] two_tower_together): the same two-tower settings in every trial,
# and one choice for both, made on both models' validation users. 2T is 2T-HGNN without the HGNN
# inputs; with one choice it stays that ablation, and each trial's evidence is twice as large.
TUNED_TOGETHER = ("2T", "2T-HGNN")

# Models whose settings come from another model's tuning (they share its stages).
SHARES_SETTINGS_OF = {"HGNN": "2T-HGNN", "HGNN-w-users": "2T-HGNN"}


def get_setting(settings: Settings, path: str) -> Any:
    section, name = path.split(".", 1)
    return getattr(getattr(settings, section), name)


def apply_overrides(settings: Settings, overrides: dict[str, Any]) -> Settings:
    """`settings` with the dotted-path `overrides` applied (validated like a config file)."""
    if not overrides:
        return settings
    nested: dict[str, Any] = {}
    for path, value in overrides.items():
        section, name = path.split(".", 1)
        nested.setdefault(section, {})[name] = value
    return Settings.model_validate(deep_merge(settings.model_dump(mode="json"), nested))


def trial_overrides(model: str, settings: Settings, trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` distinct settings of `model`'s space; the first is the run's own.

    The models of TUNED_TOGETHER draw their two-tower settings alike (as 2T draws them), trial by
    trial, so that their trials can be compared user by user across both models; 2T-HGNN's other
    settings (the HGNN's) are drawn on their own for each trial."""
    space = SEARCH_SPACES[model]
    if model in TUNED_TOGETHER and model != TUNED_TOGETHER[0]:
        shared = trial_overrides(TUNED_TOGETHER[0], settings, trials, seed)
        rest = {k: v for k, v in space.items() if k not in _TWO_TOWER}
        own = {k: get_setting(settings, k) for k in rest}
        rng = np.random.default_rng([seed, sum(map(ord, model))])
        drawn = [own] + [{k: v[rng.integers(len(v))] for k, v in rest.items()} for _ in shared[1:]]
        return [{**s, **d} for s, d in zip(shared, drawn, strict=True)]
    keys = list(space)
    own_values = tuple(get_setting(settings, k) for k in keys)
    grid = [p for p in itertools.product(*(space[k] for k in keys)) if p != own_values]
    rng = np.random.default_rng([seed, sum(map(ord, model))])
    picked = [grid[i] for i in rng.permutation(len(grid))[: max(trials - 1, 0)]]
    return [dict(zip(keys, p, strict=True)) for p in [own_values, *picked]]
