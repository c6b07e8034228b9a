"""Choose every model's settings on the validation split, the same trial budget for each.

For each tuned model, each trial's settings (tune/spaces.py) are fitted on the validation inputs
and scored on the validation truth with the evaluation harness (same filtering and metrics as the
hold-out). `[tune] choose = "significant"` (default): a trial replaces the run's own settings (trial
1) only when its paired bootstrap 95% interval of (trial - own) `[tune] metric` on `[tune] segment`
of the tuned item type lies above 0, and the best of those wins; a validation split scores a few
hundred users, so the best of eight trials is mostly the luckiest, and its lead vanishes on the
hold-out. "best": the best trial (ties: the earlier). Each trial is recorded in
RUN/tune/trials/MODEL/N/trial.json as soon as it ends, so an interrupted tuning resumes where it
stopped; RUN/tune/tuning.json holds every trial and the choice.

`[tune] two_tower_together` (default): 2T and 2T-HGNN try the same two-tower settings in each
trial and take one choice, the pooled evidence of both models' validation users (each user's value
the mean of the two models'), so 2T stays 2T-HGNN without the HGNN inputs.

2T-HGNN trials train the whole chain (graph, HGNN, two-tower model) in their trial folder; trials
that share graph and HGNN settings share one trained HGNN (RUN/tune/hgnn/KEY/).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colisten import artifacts
from colisten.config import SPEED_ONLY_SETTINGS, Settings
from colisten.device import usable_cores, worker_pool
from colisten.errors import ColistenError
from colisten.io import read_json, write_json_atomic
from colisten.rundir import RunDir
from colisten.tune.spaces import SEARCH_SPACES, TUNED_TOGETHER, apply_overrides, trial_overrides
from colisten.tune.validation import (
    carve_validation_split,
    split_key,
    validation_key,
    validation_settings,
)


class TuningError(ColistenError):
    """A tuning request that cannot be carried out (unknown model, metric or segment)."""


def tune_models(
    run: RunDir, settings: Settings, log: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Tune `[tune] models` on the run's validation split; writes and returns RUN/tune/tuning.json."""
    from colisten.evaluate.data import load_eval_data

    cfg = settings.tune
    unknown = [m for m in cfg.models if m not in SEARCH_SPACES]
    if unknown:
        raise TuningError(
            f"[tune] models: {unknown} have no search space; tunable: {', '.join(SEARCH_SPACES)}"
        )
    item_type = cfg.item_type or settings.data.target_type
    if item_type not in settings.data.item_types:
        raise TuningError(f"[tune] item_type {item_type!r} is not among {settings.data.item_types}")
    metric = _metric_name(settings)
    val = carve_validation_split(run, settings)
    vsettings = validation_settings(settings)
    data = load_eval_data(val.root, vsettings)
    split = read_json(artifacts.SPLIT.at(val))
    vkey = validation_key(run, settings)  # trials are reused only on the same validation split
    out: dict[str, Any] = {
        "metric": metric,
        "item_type": item_type,
        "segment": cfg.segment,
        "trials_per_model": cfg.trials,
        "source_cut": read_json(run.require(artifacts.SPLIT))["cut"],
        "source_key": split_key(run),
        "validation": {
            "history_start": split["history_start_iso"],
            "cut": split["cut_iso"],
            "end": split["end_iso"],
            "simulated_cold_users": split.get("simulated_cold_users", 0),
            "evaluated_users": {
                t: {s: int(n) for s, n in _segment_sizes(data, t).items()} for t in data.targets
            },
        },
        "models": {},
    }
    candidates = {m: trial_overrides(m, vsettings, cfg.trials, cfg.seed) for m in cfg.models}
    jobs = [
        TrialJob(m, i, o, artifacts.TUNE_TRIAL.at(run, model=_slug(m), key=str(i)))
        for m in cfg.models
        for i, o in enumerate(candidates[m])
    ]

    def done(job: TrialJob, result: dict[str, Any]) -> None:
        score = result["metrics"].get(cfg.segment, {}).get(metric)
        shown = "n/a" if score is None else f"{score:.4f}"
        n = len(candidates[job.model])
        log(f"tune {job.model} {job.index + 1}/{n}: {metric} {shown} ({result['seconds']:.1f} s)")

    context = TrialContext(val.root, vsettings, run.root, item_type, vkey, metric)
    # trials recorded by an earlier tuning of the same settings and data (resume), looked up once
    results = {(j.model, j.index): r for j in jobs if (r := _finished_trial(j, context)) is not None}
    todo = [j for j in jobs if (j.model, j.index) not in results]
    workers = tune_workers(cfg.workers)
    if not any(j.model in _SLOW_FIRST for j in todo):
        workers = 1  # trials of seconds each (ALS, EASE, item-kNN): not worth starting processes
    if workers == 1:
        for job in jobs:
            if (job.model, job.index) not in results:
                results[job.model, job.index] = _run_trial(job, context, data)
            done(job, results[job.model, job.index])
    else:
        for job in jobs:
            if (job.model, job.index) in results:
                done(job, results[job.model, job.index])
        results.update(_run_trials_in_parallel(todo, context, workers, done, log))
    all_trials: dict[str, list[dict[str, Any]]] = {}
    for model in cfg.models:
        all_trials[model] = [results[model, i] for i in range(len(candidates[model]))]
        out["models"][model] = _choose(all_trials[model], metric, cfg.segment, cfg.choose, cfg.seed)
    together = [m for m in TUNED_TOGETHER if m in all_trials]
    if cfg.two_tower_together and len(together) > 1:
        out["models"].update(
            _choose_together(all_trials, together, metric, cfg.segment, cfg.choose, cfg.seed)
        )
    write_json_atomic(artifacts.TUNING.at(run), out)
    return out


def _choose(
    trials: list[dict[str, Any]], metric: str, segment: str, rule: str = "best", seed: int = 0
) -> dict[str, Any]:
    """The chosen trial (see the module docstring); with "significant", each trial's paired gain
    over trial 0 [mean, 95% low, high] is recorded under "gains"."""
    scores = [t["metrics"].get(segment, {}).get(metric) for t in trials]
    scored = [i for i, s in enumerate(scores) if s is not None]
    gains: dict[str, list[float]] = {}
    if rule == "significant" and scored and scored[0] == 0:
        for i in scored[1:]:
            gains[str(i)] = paired_gain(trials[0], trials[i], segment, seed)
        scored = [0] + [i for i in scored[1:] if gains[str(i)][1] > 0]
    best = max(scored, key=lambda i: (scores[i], -i)) if scored else 0
    out = {
        "chosen": trials[best]["overrides"],
        "chosen_trial": best,
        "validation": trials[best]["metrics"],
        "rule": rule,
        "trials": trials,
        "space": SEARCH_SPACES[trials[best]["model"]],
    }
    if gains:
        out["gains"] = gains
    return out


def _choose_together(
    all_trials: dict[str, list[dict[str, Any]]],
    models: list[str],
    metric: str,
    segment: str,
    rule: str,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """One trial index for all `models` (their trials share the two-tower settings, trial by
    trial): `_choose` over pooled trials, whose per-user value is the mean of the models' values
    for that user and whose score is the mean of their scores. Each model's record keeps its own
    trials and gets the pooled gains."""
    n = min(len(all_trials[m]) for m in models)
    pooled = []
    for i in range(n):
        trials = [all_trials[m][i] for m in models]
        per_model = [dict(zip(t["per_user"]["user_id"], t["per_user"]["value"], strict=True)) for t in trials]
        first = trials[0]["per_user"]
        keep = [j for j, u in enumerate(first["user_id"]) if all(u in v for v in per_model)]
        users = [first["user_id"][j] for j in keep]
        values = [sum(v[u] for v in per_model) / len(models) for u in users]
        scores = [t["metrics"].get(segment, {}).get(metric) for t in trials]
        metrics = {} if None in scores else {segment: {metric: sum(scores) / len(scores)}}
        pooled.append(
            {
                "model": models[0],
                "overrides": {},
                "metrics": metrics,
                "per_user": {
                    "user_id": users,
                    "segment": [first["segment"][j] for j in keep],
                    "value": values,
                },
            }
        )
    choice = _choose(pooled, metric, segment, rule, seed)
    best = choice["chosen_trial"]
    out = {}
    for m in models:
        trials = all_trials[m]
        out[m] = {
            **_choose(trials, metric, segment, rule, seed),
            "chosen": trials[best]["overrides"],
            "chosen_trial": best,
            "validation": trials[best]["metrics"],
            "chosen_with": [x for x in models if x != m],
            "pooled_validation": choice["validation"],
        }
        if "gains" in choice:
            out[m]["own_gains"] = out[m].get("gains", {})
            out[m]["gains"] = choice["gains"]
    return out


def paired_gain(base: dict[str, Any], other: dict[str, Any], segment: str, seed: int) -> list[float]:
    """[mean, 2.5%, 97.5%] of other - base over the users both scored (in `segment`): 2000 seeded
    bootstrap resamples of the users."""
    import numpy as np

    from colisten.evaluate.metrics import percentile_interval

    def values(trial: dict[str, Any]) -> dict[str, float]:
        u = trial["per_user"]
        keep = [segment in ("all", s) for s in u["segment"]]
        return {uid: v for uid, v, k in zip(u["user_id"], u["value"], keep, strict=True) if k}

    a, b = values(base), values(other)
    users = sorted(set(a) & set(b))
    if not users:
        return [0.0, 0.0, 0.0]
    d = np.array([b[u] - a[u] for u in users])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(2000, len(d)))].mean(axis=1)
    return [float(d.mean()), *percentile_interval(means)]


@dataclass(frozen=True)
class TrialJob:
    """One trial: the model, its index among the model's trials, its overrides and its folder."""

    model: str
    index: int
    overrides: dict[str, Any]
    trial_dir: Path


@dataclass(frozen=True)
class TrialContext:
    """What every trial shares (picklable: a worker process gets it once)."""

    val_root: Path
    vsettings: Settings
    run_root: Path
    item_type: str
    source_key: str
    metric: str


def tune_workers(workers: int | str) -> int:
    """[tune] workers as a number: 'auto' = 2 with 2 or more cores, else 1."""
    if workers == "auto":
        return 2 if usable_cores() >= 2 else 1
    return int(workers)


def _run_trials_in_parallel(
    todo: list[TrialJob],
    context: TrialContext,
    workers: int,
    done: Callable[[TrialJob, dict[str, Any]], None],
    log: Callable[[str], None],
) -> dict[tuple[str, int], dict[str, Any]]:
    """The trials `todo` on `workers` processes (spawned: torch and fork do not mix), each with
    cores / workers torch threads and its own copy of the validation data. The HGNNs that
    2T-HGNN trials share are trained first, here, one by one, so that no two workers train one.
    The slow models' trials are handed out first, so the last trials to finish are short ones."""
    from concurrent.futures import as_completed

    for job in todo:
        if job.model == "2T-HGNN":
            settings = apply_overrides(context.vsettings, job.overrides)
            _shared_hgnn(settings, RunDir(context.val_root), context, log)
    slow_first = sorted(
        todo, key=lambda j: _SLOW_FIRST.index(j.model) if j.model in _SLOW_FIRST else len(_SLOW_FIRST)
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    threads = max(1, usable_cores() // workers)
    log(f"tune: {len(todo)} trials on {workers} worker processes ({threads} torch thread(s) each)")
    pool = worker_pool(workers, threads, _init_worker, context)
    try:
        futures = {pool.submit(_worker_trial, job): job for job in slow_first}
        for future in as_completed(futures):
            job = futures[future]
            results[job.model, job.index] = future.result()
            done(job, results[job.model, job.index])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


# Models whose trials take longest (two-tower training, LightGCN epochs), handed out first.
_SLOW_FIRST = ("2T", "2T-HGNN", "LightGCN")

_WORKER: dict[str, Any] = {}


def _init_worker(context: TrialContext) -> None:
    from colisten.evaluate.data import load_eval_data

    _WORKER["context"] = context
    _WORKER["data"] = load_eval_data(context.val_root, context.vsettings)


def _worker_trial(job: TrialJob) -> dict[str, Any]:
    return _run_trial(job, _WORKER["context"], _WORKER["data"])


def _trial_identity(job: TrialJob, context: TrialContext) -> tuple[Settings, dict[str, Any]]:
    settings = apply_overrides(context.vsettings, job.overrides)
    identity = {
        "model": job.model,
        "overrides": job.overrides,
        "settings": _identity(settings),
        "data": context.source_key,
    }
    return settings, identity


def _finished_trial(job: TrialJob, context: TrialContext) -> dict[str, Any] | None:
    """The trial's record if it finished with the same model, settings, data and metric."""
    _, identity = _trial_identity(job, context)
    record = job.trial_dir / "trial.json"
    if not record.exists():
        return None
    done = read_json(record)
    same = {k: done.get(k) for k in identity} == json.loads(json.dumps(identity))
    return done if same and done.get("per_user", {}).get("metric") == context.metric else None


def _run_trial(job: TrialJob, context: TrialContext, data: Any) -> dict[str, Any]:
    """Fit the job's model with its overrides on the validation inputs and score it (tune_models
    reuses finished trials: _finished_trial)."""
    from colisten.evaluate.harness import build_models, evaluate

    model, trial_dir, item_type, metric = job.model, job.trial_dir, context.item_type, context.metric
    settings, identity = _trial_identity(job, context)
    record = trial_dir / "trial.json"
    t0 = time.perf_counter()
    trial = _trial_run(trial_dir, RunDir(context.val_root), settings)
    if model == "2T-HGNN":
        _train_chain(trial, settings, context)
    models = build_models(trial.root, settings, [model])
    frames: list[Any] = []
    metrics, _ = evaluate(data, models, settings, bootstrap=0, per_user=frames)
    users = next((f for f in frames if len(f) and f["item_type"].iloc[0] == item_type), None)
    per_segment = {
        segment: {
            k: v for k, v in rows[model].items() if isinstance(v, float | int) and not isinstance(v, bool)
        }
        for segment, rows in metrics[item_type].items()
        if "status" not in rows[model]
    }
    result = {
        **identity,
        "metrics": per_segment,
        # each user's metric value, for the paired comparison of trials ([tune] choose)
        "per_user": {
            "metric": metric,
            "user_id": [] if users is None else users["user_id"].astype(str).tolist(),
            "segment": [] if users is None else users["segment"].astype(str).tolist(),
            "value": [] if users is None else users[metric].astype(float).tolist(),
        },
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json_atomic(record, result)
    return result


def _trial_run(trial_dir: Path, val: RunDir, settings: Settings) -> RunDir:
    """A run-shaped folder over the validation split (data, split, content linked)."""
    trial = val.branch(trial_dir, share=["data", "split", "content"])
    trial.init(settings)
    return trial


def _train_chain(trial: RunDir, settings: Settings, context: TrialContext) -> None:
    """graph -> HGNN (shared between trials with the same graph and HGNN settings) -> two-tower."""
    from colisten.twotower import stage as twotower_stage

    _shared_hgnn(settings, trial, context).branch(trial.root, share=["graph", "hgnn"])
    twotower_stage.run(trial, settings)


def _shared_hgnn(
    settings: Settings, source: RunDir, context: TrialContext, log: Callable[[str], None] = lambda _m: None
) -> RunDir:
    """RUN/tune/hgnn/KEY: the graph and HGNN of these graph and HGNN settings, trained on the
    validation inputs (`source`: a run linking them) unless already there."""
    from colisten.graph import stage as graph_stage
    from colisten.hgnn import stage as hgnn_stage

    ident = _identity(settings)
    key = _key({"graph": ident["graph"], "hgnn": ident["hgnn"], "data": context.source_key})
    shared = RunDir(artifacts.TUNE_HGNN.at(context.run_root, key=key))
    if not artifacts.HGNN_EMBEDDINGS.at(shared).exists():
        log(f"tune: graph and HGNN shared by 2T-HGNN trials ({shared.root.name})")
        shared = source.branch(shared.root, share=["data", "split", "content"])
        shared.init(settings)
        graph_stage.run(shared, settings, describe=False)
        hgnn_stage.run(shared, settings)
    return shared


def _identity(settings: Settings) -> dict[str, Any]:
    """The settings that decide a trial's result (speed-only ones left out)."""
    dumped = settings.model_dump(mode="json")
    return {
        section: {k: v for k, v in values.items() if k not in SPEED_ONLY_SETTINGS}
        for section, values in dumped.items()
        if section not in ("serve", "retrieval", "tune")
    }


def _key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _metric_name(settings: Settings) -> str:
    cfg = settings.evaluate
    names = {"hr": f"hr@{cfg.k_hit}", "mrr": f"mrr@{cfg.k_list}", "ndcg": f"ndcg@{cfg.k_hit}"}
    names["recall"] = f"recall@{cfg.k_hit}"
    return names[settings.tune.metric]


def _segment_sizes(data: Any, item_type: str) -> dict[str, int]:
    from colisten.evaluate.harness import segment_masks

    users = data.targets[item_type].evaluated_users
    return {s: int(m.sum()) for s, m in segment_masks(data, item_type, users).items()}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


# --- using the choice ------------------------------------------------------------------------
