"""The evaluation harness: full-catalogue ranking of every model, per item type and user segment.

For each item type, each model's users are ranked against the type's whole catalogue in user
batches (memory = batch x catalogue), already-consumed items filtered out as production does, and
only the top `k_list` per user is kept. Metrics are means of per-user values over the segment's
evaluated users; 95% confidence intervals come from resampling users (paired across models: the
same resamples for every model of a type and segment).

Scores are computed in float64 and rounded to float32 before ranking, so a user's scores do not
depend on which batch the user falls in (float32 matrix products do, at the last bit) and ties
are real ties, broken by type index.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from colisten import artifacts
from colisten.config import MODELS, SPEED_ONLY_SETTINGS, Settings
from colisten.console import Log, quiet
from colisten.errors import ColistenError
from colisten.evaluate.baselines import (
    ALS,
    LLMKNN,
    HGNNMean,
    HGNNWithUsers,
    NotAvailable,
    Popularity,
    RankingModel,
    TwoTower,
    UserItemVectors,
)
from colisten.evaluate.data import SEGMENTS, EvalData, load_eval_data
from colisten.evaluate.metrics import (
    bootstrap_means,
    catalogue_coverage,
    deterministic_top_k,
    hit_rate_at_k,
    ndcg_at_k,
    percentile_interval,
    recall_at_k,
    reciprocal_rank_at_k,
)
from colisten.evaluate.practitioner import EASE, ItemKNN, LightGCN, ease_too_large_message
from colisten.rundir import RunDir

KNOWN_MODELS = MODELS


class EvaluateError(ColistenError):
    """A bad evaluation request (unknown model name, artifact of the wrong shape)."""


@dataclass
class RankedLists:
    """Top-k lists of one model for the evaluated users of one item type."""

    users: np.ndarray  # int [n] rows into EvalData.user_ids
    top: np.ndarray  # int32 [n, k_list] type indices, -1 = empty slot
    hits: np.ndarray  # bool [n, k_list] the slot holds a held-out positive
    tiers: np.ndarray  # int8 [n, k_list] popularity tier of the slot's item (0 = empty)
    n_positives: np.ndarray  # int [n]
    positive_tiers: np.ndarray  # bool [n, tiers] the user has a positive in tier t+1
    servable: np.ndarray  # bool [n]


def rank_users(
    data: EvalData,
    vectors: UserItemVectors,
    item_type: str,
    settings: Settings,
    users: np.ndarray | None = None,
    on_batch: Any = None,
) -> RankedLists:
    """Rank the whole catalogue of `item_type` for `users` (default: the type's evaluated users).

    User and item vectors may be dense arrays or scipy sparse matrices (EASE, ItemKNN: a user's
    history row); with sparse ones the product is scipy's, densified one user batch at a time."""
    cfg = settings.evaluate
    tgt = data.targets[item_type]
    users = tgt.evaluated_users if users is None else np.asarray(users)
    n_items, k = tgt.n_items, cfg.k_list
    if vectors.items.shape[0] != n_items:
        raise EvaluateError(
            f"{item_type}: model gives {vectors.items.shape[0]} item vectors, the run has {n_items} items"
        )
    score = _batch_scorer(vectors)
    batch = max(1, min(cfg.batch_users, cfg.max_scores_per_batch // max(n_items, 1)))
    tier_of = tgt.tier.astype(np.int8)
    n = users.size
    top = np.full((n, k), -1, np.int32)
    hits = np.zeros((n, k), bool)
    tiers = np.zeros((n, k), np.int8)
    for lo in range(0, n, batch):
        rows = users[lo : lo + batch]
        scores = score(rows).to(torch.float32)
        scores[torch.from_numpy(~vectors.servable[rows])] = -math.inf
        r, c = _nonzero(tgt.consumed[rows])
        scores[r, c] = -math.inf
        idx = deterministic_top_k(scores, k)[0].numpy()
        # hits: is (row, item) among the batch's held-out positives? (sorted codes, no dense mask)
        pos = tgt.positives[rows]
        pos_rows = np.repeat(np.arange(rows.size, dtype=np.int64), np.diff(pos.indptr))
        codes = np.arange(rows.size, dtype=np.int64)[:, None] * n_items + idx
        valid = idx >= 0
        top[lo : lo + rows.size] = idx
        hits[lo : lo + rows.size] = np.isin(codes, pos_rows * n_items + pos.indices) & valid
        tiers[lo : lo + rows.size] = np.where(valid, tier_of[np.maximum(idx, 0)], 0)
        if on_batch is not None:
            on_batch(rows.size)
    pos = tgt.positives[users]
    positive_tiers = np.zeros((n, cfg.tiers), bool)
    r, c = pos.nonzero()
    positive_tiers[r, tgt.tier[c] - 1] = True
    return RankedLists(
        users=users,
        top=top,
        hits=hits,
        tiers=tiers,
        n_positives=np.diff(pos.indptr),
        positive_tiers=positive_tiers,
        servable=vectors.servable[users],
    )


def _batch_scorer(vectors: UserItemVectors) -> Any:
    """rows -> float64 scores [rows, type items]: users[rows] . items' (dense: torch; either one
    scipy sparse: scipy, per user batch, so no users x items matrix is ever held whole)."""
    if not (sp.issparse(vectors.users) or sp.issparse(vectors.items)):
        item_t = torch.from_numpy(np.ascontiguousarray(vectors.items, dtype=np.float64))
        users = vectors.users
        return lambda rows: torch.from_numpy(np.ascontiguousarray(users[rows], dtype=np.float64)) @ item_t.T
    items = vectors.items
    items_t = (
        sp.csc_matrix(items.T, dtype=np.float64) if sp.issparse(items) else np.asarray(items, np.float64).T
    )
    users = sp.csr_matrix(vectors.users, dtype=np.float64) if sp.issparse(vectors.users) else vectors.users

    def score(rows: np.ndarray) -> torch.Tensor:
        u = users[rows] if sp.issparse(users) else np.asarray(users[rows], np.float64)
        s = u @ items_t
        s = s.toarray() if sp.issparse(s) else np.asarray(s)
        return torch.from_numpy(np.ascontiguousarray(s, dtype=np.float64))

    return score


def _nonzero(m: Any) -> tuple[torch.Tensor, torch.Tensor]:
    r, c = m.nonzero()
    return torch.from_numpy(r.astype(np.int64)), torch.from_numpy(c.astype(np.int64))


def per_user_metrics(
    lists: RankedLists, k_hit: int, k_list: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-user metric values, and for tier metrics the mask of users they are averaged over.

    HR@k per tier t counts, among users with a held-out item in tier t, those with a tier-t
    held-out item in their top k; the long tail is tiers above the middle (3-5 of 5)."""
    h = lists.hits
    values = {
        f"hr@{k_hit}": hit_rate_at_k(h, k_hit),
        f"mrr@{k_list}": reciprocal_rank_at_k(h, k_list),
        f"recall@{k_hit}": recall_at_k(h, lists.n_positives, k_hit),
        f"ndcg@{k_hit}": ndcg_at_k(h, lists.n_positives, k_hit),
    }
    masks: dict[str, np.ndarray] = {}
    n_tiers = lists.positive_tiers.shape[1]
    for t in range(1, n_tiers + 1):
        name = f"hr@{k_hit}_tier{t}"
        values[name] = hit_rate_at_k(h & (lists.tiers == t), k_hit)
        masks[name] = lists.positive_tiers[:, t - 1].astype(np.float64)
    tail = lists.tiers > n_tiers // 2
    has_tail = lists.positive_tiers[:, n_tiers // 2 :].any(axis=1).astype(np.float64)
    values[f"hr@{k_hit}_longtail"] = hit_rate_at_k(h & tail, k_hit)
    values[f"mrr@{k_list}_longtail"] = reciprocal_rank_at_k(h & tail, k_list)
    masks[f"hr@{k_hit}_longtail"] = has_tail
    masks[f"mrr@{k_list}_longtail"] = has_tail
    return values, masks


def per_user_frame(
    data: EvalData, lists: RankedLists, item_type: str, model: str, k_hit: int, k_list: int
) -> pd.DataFrame:
    """One row per evaluated user: the user's metric values for `model` on `item_type`."""
    values, _ = per_user_metrics(lists, k_hit, k_list)
    keep = [f"hr@{k_hit}", f"mrr@{k_list}", f"ndcg@{k_hit}", f"recall@{k_hit}"]
    return pd.DataFrame(
        {
            "user_id": data.user_ids[lists.users],
            "item_type": item_type,
            "segment": data.targets[item_type].segment[lists.users],
            "model": model,
            **{k: values[k].astype(np.float32) for k in keep},
        }
    )


def summarize(
    lists: RankedLists,
    select: np.ndarray,
    n_items: int,
    settings: Settings,
    seed_key: str,
    bootstrap: int | None = None,
) -> dict[str, Any]:
    """Metrics (and bootstrap 95% CIs) of the users `select`ed (bool mask over lists.users)."""
    cfg = settings.evaluate
    b = cfg.bootstrap if bootstrap is None else bootstrap
    values, masks = per_user_metrics(lists, cfg.k_hit, cfg.k_list)
    values = {k: v[select] for k, v in values.items()}
    masks = {k: v[select] for k, v in masks.items()}
    top = lists.top[select]
    n = int(select.sum())
    out: dict[str, Any] = {}
    for name, v in values.items():
        w = masks.get(name)
        if w is None:
            out[name] = float(v.mean())
        else:
            out[name] = float((v * w).sum() / w.sum()) if w.sum() > 0 else None
            out[f"users_{name.split('_', 1)[1]}"] = int(w.sum())
    out[f"coverage@{cfg.k_list}"] = catalogue_coverage(top, n_items)
    out["users"] = n
    out["users_unserved"] = int((~lists.servable[select]).sum())
    if b > 0 and n > 0:
        # Coverage has no interval: it is a property of the union of all lists, and a resample of
        # users (about 63% distinct) always covers less, so a bootstrap would only show that bias.
        samples: dict[str, list[np.ndarray]] = {k: [] for k in values}
        for resamples in bootstrap_resamples(n, b, cfg.seed, seed_key):
            for name, s in bootstrap_means(values, resamples, masks).items():
                samples[name].append(s)
        out["ci95"] = {k: percentile_interval(np.concatenate(v)) for k, v in samples.items()}
    return out


def bootstrap_resamples(n: int, b: int, seed: int, key: str, max_cells: int = 4_000_000):
    """Chunks of B x n user resamples; the same (seed, key) gives the same resamples, so models
    compared on one type and segment share them (paired intervals)."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    step = max(1, max_cells // max(n, 1))
    for lo in range(0, b, step):
        yield rng.integers(0, n, size=(min(step, b - lo), n))


def segment_masks(data: EvalData, item_type: str, users: np.ndarray) -> dict[str, np.ndarray]:
    """warm / cold from split/segments.parquet; 'all' = both. They partition the evaluated users."""
    seg = data.targets[item_type].segment[users]
    return {"warm": seg == "warm", "cold": seg == "cold", "all": np.isin(seg, ["warm", "cold"])}


def evaluate(
    data: EvalData,
    models: Sequence[RankingModel],
    settings: Settings,
    bootstrap: int | None = None,
    console: Any = None,
    per_user: list[pd.DataFrame] | None = None,
    log: Log = quiet,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate every model on every item type and segment: (metrics, meta) as in RUN/eval/.
    With `per_user`, each model's per-user metric values are appended to it (one frame per model
    and type: user_id, item_type, segment, model, metrics), for paired comparisons across runs.
    `log` gets a line per model and type as it ends, and the lines of models that train on first
    use (the 2T baseline, HGNN-w-users, LightGCN: epochs with an ETA), so a piped log shows
    progress; `console` draws live bars instead."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = settings.evaluate
    metrics: dict[str, Any] = {}
    meta: dict[str, Any] = {
        "k_hit": cfg.k_hit,
        "k_list": cfg.k_list,
        "tiers": cfg.tiers,
        "bootstrap": cfg.bootstrap if bootstrap is None else bootstrap,
        "consumed": cfg.consumed,
        "positives": f"new {settings.data.strong_events} items in split/holdout.parquet",
        "tie_break": "score descending, then type index (data/items.parquet order) ascending",
        "models": {},
        "item_types": {},
    }
    types = settings.data.item_types
    done, total, t_start = 0, len(types) * len(models), time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=console is None,
    ) as progress:
        for item_type in types:
            tgt = data.targets[item_type]
            users = tgt.evaluated_users
            masks = segment_masks(data, item_type, users)
            meta["item_types"][item_type] = {
                "items": tgt.n_items,
                "evaluated_users": {s: int(m.sum()) for s, m in masks.items()},
                "eligible_users": tgt.eligible_users,
                "positives": int(tgt.positives.nnz),
                "tier_sizes": np.bincount(tgt.tier, minlength=cfg.tiers + 1)[1:].tolist(),
            }
            per_type = metrics.setdefault(item_type, {s: {} for s in SEGMENTS})
            for model in models:
                t0 = time.perf_counter()
                done += 1
                task = progress.add_task(f"{item_type:>10} · {model.name}", total=int(users.size))
                if hasattr(model, "log"):
                    model.log = lambda m, name=model.name: log(f"{name}: {m}")
                try:
                    vectors = _vectors(model, data, item_type, progress, console is not None)
                except NotAvailable as e:
                    log(f"{item_type} · {model.name}: n/a ({done}/{total}, {_clock(t_start)} in)")
                    for s in SEGMENTS:
                        per_type[s][model.name] = {"status": "n/a", "reason": e.reason}
                    meta["models"].setdefault(model.name, {})[item_type] = {
                        "status": "n/a",
                        "reason": e.reason,
                    }
                    progress.remove_task(task)
                    continue
                lists = rank_users(
                    data,
                    vectors,
                    item_type,
                    settings,
                    users,
                    on_batch=lambda m, t=task: progress.advance(t, m),
                )
                if per_user is not None:
                    per_user.append(per_user_frame(data, lists, item_type, model.name, cfg.k_hit, cfg.k_list))
                for s in SEGMENTS:
                    if s in vectors.unsupported:
                        per_type[s][model.name] = {"status": "n/a", "reason": vectors.unsupported[s]}
                        continue
                    if not masks[s].any():
                        reason = f"no {s} user has a new {item_type} stream in the hold-out"
                        per_type[s][model.name] = {"status": "n/a", "reason": reason}
                        continue
                    per_type[s][model.name] = summarize(
                        lists, masks[s], tgt.n_items, settings, f"{item_type}/{s}", bootstrap
                    )
                progress.remove_task(task)
                seconds = time.perf_counter() - t0
                meta["models"].setdefault(model.name, {})[item_type] = {"seconds": round(seconds, 3)}
                log(f"{item_type} · {model.name}: {seconds:.1f} s ({done}/{total}, {_clock(t_start)} in)")
                if getattr(model, "fit_info", None):
                    meta.setdefault("fit", {})[model.name] = model.fit_info
    return metrics, meta


def _clock(since: float) -> str:
    """Minutes:seconds since `since` (perf_counter), e.g. "3:07"."""
    m, sec = divmod(int(time.perf_counter() - since), 60)
    return f"{m}:{sec:02d}"


def _vectors(
    model: RankingModel, data: EvalData, item_type: str, progress: Any, show: bool
) -> UserItemVectors:
    """model.vectors; a model with its own training bar (a `progress` attribute: LightGCN) gets
    it switched on when there is a console, and draws it with the live table paused."""
    if not hasattr(model, "progress"):
        return model.vectors(data, item_type)
    model.progress = show
    if not (show and progress.console.is_interactive):  # no live table to pause
        return model.vectors(data, item_type)
    progress.stop()
    try:
        return model.vectors(data, item_type)
    finally:
        progress.start()


def build_models(
    run: str | Path, settings: Settings, names: Sequence[str] | None = None
) -> list[RankingModel]:
    """The named models (default: settings.evaluate.baselines) with the run's artifacts; a model
    whose artifacts are missing is still returned and reports 'n/a' with the command to run."""
    from colisten.tune.choice import settings_for

    rd = RunDir(run)
    names = list(settings.evaluate.baselines if names is None else names)
    unknown = [n for n in names if n not in KNOWN_MODELS]
    if unknown:
        raise EvaluateError(f"unknown model(s) {unknown}; known: {', '.join(KNOWN_MODELS)}")
    n_items = _count_items(rd)
    if "EASE" in names:  # refused before any model is built or fitted
        ease = settings_for(rd.root, settings, "EASE").evaluate
        if n_items > ease.ease_max_items:
            raise EvaluateError(ease_too_large_message(n_items, ease.ease_max_items))

    def array(artifact: artifacts.Artifact) -> np.ndarray | str:
        p = artifact.at(rd)
        if not p.exists():
            return f"{p} is missing (run `colisten {artifact.stage} --run {rd.root}`)"
        a = np.load(p, mmap_mode="r")
        if a.ndim != 2 or a.shape[0] != n_items:
            raise EvaluateError(
                f"{p}: shape {a.shape}, expected ({n_items}, d) rows in data/items.parquet order"
            )
        return np.asarray(a, dtype=np.float32)

    models: list[RankingModel] = []
    for name in names:
        own = settings_for(rd.root, settings, name)  # its settings chosen on validation, if tuned
        if name == "Popularity":
            models.append(Popularity())
        elif name == "ALS":
            models.append(ALS(own))
        elif name == "EASE":
            models.append(EASE(own))
        elif name == "ItemKNN":
            models.append(ItemKNN(own))
        elif name == "LightGCN":
            models.append(LightGCN(own))
        elif name == "LLM-KNN":
            text = array(artifacts.TEXT_EMBEDDINGS)
            models.append(LLMKNN(text) if not isinstance(text, str) else _Missing(name, text))
        elif name == "HGNN":
            emb = array(artifacts.HGNN_EMBEDDINGS)
            models.append(HGNNMean(emb) if not isinstance(emb, str) else _Missing(name, emb))
        elif name == "HGNN-w-users":
            text = array(artifacts.TEXT_EMBEDDINGS)
            models.append(
                HGNNWithUsers(text, own, artifacts.HGNN_W_USERS.at(rd))
                if not isinstance(text, str)
                else _Missing(name, text)
            )
        else:  # 2T, 2T-HGNN
            models.append(two_tower_model(rd.root, name, own))
    return models


def two_tower_model(run: Path, name: str, settings: Settings | None = None) -> RankingModel:
    """2T-HGNN = the run's twotower/ model. 2T = the same model without HGNN embeddings
    (use_hgnn = false), trained on first use into RUN/baselines/2T (see `two_tower_baseline`)."""
    from colisten.twotower.recommender import TwoTowerRecommender

    if name == "2T-HGNN":
        if not artifacts.TWOTOWER_MODEL.at(run).exists():
            return _Missing(
                name, f"{artifacts.TWOTOWER_MODEL.at(run)} is missing (`colisten train-2t --run {run}`)"
            )
        return TwoTower(name, lambda _log: TwoTowerRecommender.load(run))
    if not artifacts.TEXT_EMBEDDINGS.at(run).exists():
        missing = artifacts.TEXT_EMBEDDINGS.at(run)
        return _Missing(name, f"{missing} is missing (`colisten embed --run {run}`)")
    s = settings or RunDir(run).settings()
    return TwoTower(name, lambda log: TwoTowerRecommender.load(two_tower_baseline(run, s, log)))


def two_tower_baseline(run: Path, settings: Settings, log: Log = quiet) -> Path:
    """RUN/baselines/2T: a run-shaped folder sharing the run's data, split and content (symlinks)
    whose twotower/ holds the paper's 2T baseline: the run's two-tower settings with use_hgnn =
    false. The two-tower settings are those the run's 2T-HGNN was trained with
    (RUN/twotower/features.json), or the given ones before it exists, so 2T and 2T-HGNN are
    compared like for like. Trained when missing, when the run's split has changed or when those
    settings, or the data or content settings, differ from the ones it was built with (settings
    that only change speed, such as the device, do not count); returns the folder. When the run
    was tuned, 2T's own choice (RUN/tune/tuning.json) is applied over those settings. `log` gets
    the training's lines (one per epoch)."""
    from colisten.config import TwoTowerConfig
    from colisten.io import read_json
    from colisten.tune.choice import chosen_overrides, load_tuning
    from colisten.tune.spaces import apply_overrides
    from colisten.twotower import stage as twotower_stage

    root = artifacts.BASELINE_2T.at(run)
    cut = read_json(artifacts.SPLIT.at(run)).get("cut")
    trained_2t_hgnn = artifacts.TWOTOWER_FEATURES.at(run)
    twotower = (
        TwoTowerConfig.model_validate(read_json(trained_2t_hgnn)["settings"])
        if trained_2t_hgnn.exists()
        else settings.twotower
    )
    variant = settings.model_copy(update={"twotower": twotower.model_copy(update={"use_hgnn": False})})
    variant = apply_overrides(variant, chosen_overrides(load_tuning(run), "2T"))  # 2T's own choice
    done = artifacts.TWOTOWER_FEATURES.at(root)
    if done.exists() and artifacts.TWOTOWER_ITEM_VECTORS.at(root).exists():
        built = RunDir(root).manifest().get("config", {})
        if read_json(done).get("cut") == cut and _same_training_settings(built, variant):
            return root
    sub = RunDir(run).branch(root, share=["data", "split", "content"])
    sub.init(variant)
    log("training the 2T baseline (the run's two-tower settings without the HGNN inputs)")
    twotower_stage.run(sub, variant, log=log)
    return root


def _same_training_settings(built: dict[str, Any], wanted: Settings) -> bool:
    """Whether a 2T baseline built with config `built` used the data, content and two-tower
    settings of `wanted` (speed-only settings aside)."""
    now = wanted.model_dump(mode="json")
    for section in ("data", "content", "twotower"):
        a = {k: v for k, v in built.get(section, {}).items() if k not in SPEED_ONLY_SETTINGS}
        b = {k: v for k, v in now[section].items() if k not in SPEED_ONLY_SETTINGS}
        if a != b:
            return False
    return True


class _Missing:
    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason

    def vectors(self, data: EvalData, item_type: str) -> UserItemVectors:
        raise NotAvailable(self.reason)


def _count_items(rd: Any) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(rd.require(artifacts.ITEMS)).metadata.num_rows


def evaluate_run(
    run: str | Path,
    settings: Settings | None = None,
    models: Sequence[str | RankingModel] | None = None,
    bootstrap: int | None = None,
    console: Any = None,
    data: EvalData | None = None,
) -> dict[str, Any]:
    """Metrics of `models` (names, or RankingModel objects such as ablation variants) on the run;
    writes nothing. Pass `data` (load_eval_data) to reuse the split across several calls."""
    settings = settings or RunDir(run).settings()
    data = data or load_eval_data(run, settings)
    resolved = resolve_models(run, settings, models)
    metrics, _ = evaluate(data, resolved, settings, bootstrap=bootstrap, console=console)
    return metrics


def oracle_models(run: str | Path, settings: Settings) -> list[RankingModel]:
    """The world's oracles (evaluate.oracles) when the run was built from a synthetic world."""
    from colisten.evaluate.oracle import TasteFromHistory, TrueTaste, world_of_run
    from colisten.world.truth import WorldTruth

    world = world_of_run(run) if settings.evaluate.oracles else None
    if world is None:
        return []
    truth = WorldTruth.load(world)
    return [TrueTaste(truth), TasteFromHistory(truth)]


def resolve_models(
    run: str | Path, settings: Settings, models: Sequence[str | RankingModel] | None
) -> list[RankingModel]:
    if models is None:
        return build_models(run, settings) + oracle_models(run, settings)
    names = [m for m in models if isinstance(m, str)]
    built = iter(build_models(run, settings, names)) if names else iter(())
    return [next(built) if isinstance(m, str) else m for m in models]
