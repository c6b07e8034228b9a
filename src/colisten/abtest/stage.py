"""The `abtest` stage (`run`): check the request, build the arms, simulate, write
RUN/abtest/NAME/results.json, recorded in the manifest as `abtest/NAME`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from colisten import artifacts
from colisten.abtest.arms import (
    ORACLE,
    AbTestError,
    ArmSpec,
    HarnessRanker,
    OracleRanker,
    TwoTowerRanker,
)
from colisten.abtest.assignment import assign_arms, balance, sample_users
from colisten.abtest.history import EventLog
from colisten.abtest.metrics import MEAN_METRICS, RATIO_METRICS, lift_table
from colisten.abtest.simulate import ORGANIC, SHELF, SIGNAL, simulate_test
from colisten.config import Settings
from colisten.console import Log, quiet
from colisten.io import read_json, write_json_atomic
from colisten.rundir import RunDir
from colisten.world.simulate import DAY_S, ShelfResponse

# PAPER.md, online A/B test (Table 5): lifts against the production model
PAPER_LIFTS = {
    "2T": {"start_rate": "+23.87%", "stream_rate": "n.s."},
    "2T-HGNN": {"start_rate": "+46.83%", "stream_rate": "+25.82%"},
}


def run(
    rd: RunDir,
    settings: Settings,
    *,
    arms: list[ArmSpec],
    days: int = 14,
    shelf: int = 10,
    users: int | None = None,
    seed: int = 0,
    name: str | None = None,
    response: ShelfResponse | None = None,
    write: bool = True,
    context: dict[str, Any] | None = None,
    log: Log = quiet,
) -> dict[str, Any]:
    """Simulate the test and return its results; with `write`, RUN/abtest/NAME/results.json and a
    manifest record `abtest/NAME`. See colisten.abtest.simulate."""
    from colisten.evaluate.data import popularity_tiers
    from colisten.evaluate.oracle import world_of_run
    from colisten.evaluate.report import refresh_report

    t_start = time.perf_counter()
    say = log
    response = response or ShelfResponse()
    run = rd.root
    if not (rd / "manifest.json").exists():
        raise AbTestError(f"--run {run}: not a run directory (no manifest.json)")
    world_dir = world_of_run(run)
    if world_dir is None:
        source = rd.manifest().get("data", {}).get("source")
        raise AbTestError(
            f"--run {run}: its data ({source}) has no truth/ folder; a simulated A/B test needs a "
            "synthetic world (`colisten world --out DIR`, then `colisten run --data DIR`)"
        )
    if days < 1:
        raise AbTestError(f"--days must be at least 1 (got {days})")
    if shelf < 1:
        raise AbTestError(f"--shelf must be at least 1 (got {shelf})")
    if users is not None and users < len(arms):
        raise AbTestError(f"--users {users}: need at least one user per arm ({len(arms)} arms)")
    target = "audiobook"
    split = read_json(rd.require(artifacts.SPLIT))
    world_meta = read_json(world_dir / "world.json")
    start_epoch = int(world_meta["start_epoch_s"])
    cut = int(split["cut"])
    first_day = (cut - start_epoch) / DAY_S
    if first_day + days > world_meta["days"] + 1e-9:
        room = int(world_meta["days"] - first_day)
        raise AbTestError(
            f"--days {days}: the world's logs end {room} day(s) after the split's cut; give --days <= {room}"
        )

    say("loading the run and the world's process")
    ctx = context if context is not None else load_context(run, world_dir)
    base, truth, world = ctx["base"], ctx["truth"], ctx["world"]
    sl = base.type_slice(target)
    n_ab = sl.stop - sl.start
    if shelf > n_ab:
        raise AbTestError(f"--shelf {shelf} is larger than the catalogue ({n_ab} audiobooks)")

    # users, arms
    all_users = base.user_ids.astype(str)
    rows = sample_users(all_users, users, f"{seed}")
    arm = assign_arms(all_users[rows], len(arms), f"{seed}")
    bal = balance(arm, len(arms))
    empty = [a.name for i, a in enumerate(arms) if bal["users"][i] == 0]
    if empty:
        raise AbTestError(f"--arms: arm(s) {', '.join(empty)} got no users; raise --users")
    if not bal["balanced"]:
        say(f"warning: arm sizes {bal['users']} fail the balance check (p = {bal['srm_p']:.2g})")
    truth_users = truth.user_index(list(all_users[rows]))

    # the log: history window + the world's podcast events of the test period
    log_ = ctx["log"]()
    published = world.catalogue.types[target].published_day
    truth_rows = truth.user_index(list(all_users))
    rankers = [_ranker(a, rd, settings, base, sl, truth, truth_rows, published, shelf) for a in arms]
    for r in rankers:
        if isinstance(r, OracleRanker):
            r.day_of = lambda as_of: (as_of - start_epoch) / DAY_S
    pop = np.asarray(base.history_strong[:, sl].sum(axis=0)).ravel()
    tiers = popularity_tiers(pop, settings.evaluate.tiers)
    longtail = tiers > settings.evaluate.tiers // 2

    say(f"simulating {days} days, {len(rows):,} users, {len(arms)} arms, shelf of {shelf}")
    t_sim = time.perf_counter()

    def progress(done: int, total: int, visitors: int) -> None:
        say(f"  day {done}/{total}: {visitors:,} visitors, {time.perf_counter() - t_sim:.0f} s")

    out = simulate_test(
        world,
        log_,
        rows,
        truth_users,
        arm,
        rankers,
        first_day,
        days,
        shelf,
        sl.start,
        start_epoch,
        longtail,
        seed,
        response,
        progress,
    )
    table = lift_table(out.per_user, arm, [a.name for a in arms])
    cumulative = {}
    for i, a in enumerate(arms):
        m = arm[out.start_user] == i
        counts = np.bincount(np.floor(out.start_day[m]).astype(np.int64).clip(0, days - 1), minlength=days)
        cumulative[a.name] = np.cumsum(counts).tolist()
    sources = {
        a.name: {
            s: int(((arm[out.start_user] == i) & (out.start_source == code)).sum())
            for s, code in (("organic", ORGANIC), ("shelf", SHELF), ("weak_signal", SIGNAL))
        }
        for i, a in enumerate(arms)
    }
    results = {
        "name": name,
        "run": str(rd.root),
        "world": str(world_dir),
        "models": {a.name: a.label for a in arms},
        "control": arms[0].name,
        "days": days,
        "shelf": shelf,
        "users": int(len(rows)),
        "seed": seed,
        "first_day": first_day,
        "cut": cut,
        "assignment": {"salt": f"arm:{seed}", **bal},
        "response": {"salience": response.salience, "visit_scale": response.visit_scale},
        "metrics": {**MEAN_METRICS, **RATIO_METRICS},
        **table,
        "starts_by_source": sources,
        "cumulative_starts": cumulative,
        "visitors_per_day": out.visits.tolist(),
        "impressions": {a.name: int(out.per_user["impressions"][arm == i].sum()) for i, a in enumerate(arms)},
        "paper": PAPER_LIFTS,
        "leakage_check": all(newest < as_of for as_of, newest in log_.served_up_to),
        "seconds": {
            "total": round(time.perf_counter() - t_start, 2),
            "simulation": round(time.perf_counter() - t_sim, 2),
        },
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if write:
        name = name or "-vs-".join(a.name for a in arms)
        results["name"] = name
        path = artifacts.ABTEST_RESULTS.at(rd, name=name)
        write_json_atomic(path, results)
        results["path"] = str(path)
        rd.record_stage(f"abtest/{name}", results["seconds"]["total"], path=str(path))
        report = refresh_report(rd.root, settings)  # an evaluated run's report shows this test too
        if report is not None:
            results["report"] = str(report)
    return results


def load_context(run: str | Path, world_dir: Path) -> dict[str, Any]:
    """What every test on this run shares (the split as EvalData, truth, the world's process, the
    base event log): load once, pass as `context` to several `run` calls (seeds, A/A)."""
    from colisten.evaluate.data import load_eval_data
    from colisten.world.simulate import WorldProcess
    from colisten.world.truth import WorldTruth

    rd = RunDir(run)
    base = load_eval_data(run, rd.settings())
    truth = WorldTruth.load(world_dir)
    world = WorldProcess.load(world_dir)
    if not np.array_equal(base.item_ids.astype(str), truth.item_ids.astype(str)):
        raise AbTestError(
            f"--run {run}: its items differ from the world's ({world_dir}); rows were quarantined?"
        )
    template = _event_log(rd, base, base.type_slice("audiobook"))
    arrays, names = template.arrays(), list(template.event_names)

    def fresh_log() -> EventLog:
        log = EventLog(base.user_ids, base.item_ids, list(names))
        log.add(*(a.copy() for a in arrays))
        return log

    return {"base": base, "truth": truth, "world": world, "log": fresh_log}


def _event_log(rd: RunDir, base: Any, sl: slice) -> EventLog:
    """The run's history rows and the hold-out's rows of every other item type (the world's own
    podcast listening during the test, which the audiobook shelf does not change)."""
    cols = ["user_id", "item_id", "event", "timestamp"]
    history = pd.read_parquet(rd.require(artifacts.HISTORY), columns=cols)
    holdout = pd.read_parquet(rd.require(artifacts.HOLDOUT), columns=cols)
    items = pd.Index(base.item_ids.astype(str))
    h_item = items.get_indexer(holdout["item_id"].astype(str))
    holdout = holdout[(h_item >= 0) & ((h_item < sl.start) | (h_item >= sl.stop))]
    frame = pd.concat([history, holdout], ignore_index=True)
    log = EventLog(base.user_ids, base.item_ids, [])
    users = pd.Index(base.user_ids.astype(str)).get_indexer(frame["user_id"].astype(str))
    item = items.get_indexer(frame["item_id"].astype(str))
    ev = frame["event"].astype(str)
    codes = np.asarray([log.code(e) for e in ev.unique()])
    ev_code = pd.Index(ev.unique()).get_indexer(ev)
    keep = (users >= 0) & (item >= 0)
    log.add(users[keep], item[keep], codes[ev_code[keep]], frame["timestamp"].to_numpy(np.int64)[keep])
    return log


def _ranker(
    spec: ArmSpec,
    rd: RunDir,
    settings: Any,
    base: Any,
    sl: slice,
    truth: Any,
    truth_rows: np.ndarray,
    published: np.ndarray,
    shelf: int,
) -> Any:
    from colisten.evaluate.baselines import NotAvailable, TwoTower
    from colisten.evaluate.harness import build_models

    if spec.model == ORACLE:
        return OracleRanker(truth, truth_rows, sl, published)
    run = rd.root if spec.run is None else spec.run
    own = settings if spec.run is None else RunDir(run).settings()
    if spec.run is not None:
        other = pd.read_parquet(RunDir(run).require(artifacts.ITEMS), columns=["item_id"])
        if not np.array_equal(other["item_id"].astype(str).to_numpy(), base.item_ids.astype(str)):
            raise AbTestError(f"--arms {spec.name}: {run} has other items than --run {rd.root}")
    model = build_models(run, own, [spec.model])[0]
    k_settings = own.model_copy(update={"evaluate": own.evaluate.model_copy(update={"k_list": shelf})})
    if isinstance(model, TwoTower):
        try:
            return TwoTowerRanker(model.recommender(), sl)
        except NotAvailable as e:
            raise AbTestError(f"--arms {spec.name}={spec.label}: {e.reason}") from e
    if hasattr(model, "reason"):  # a model whose artifacts are missing
        raise AbTestError(f"--arms {spec.name}={spec.label}: {model.reason}")
    return HarnessRanker(model, base, k_settings)


def format_results(results: dict[str, Any]) -> list[str]:
    """The paper's Table 5 layout, within 80 columns: per arm the values, then per treatment
    arm and metric the lift against control, its 95% interval, p-value and the paper's lift
    (rows and number formats shared with report.html's section, colisten.evaluate.report)."""
    from colisten.evaluate.report import ab_arms, ab_ci, ab_lift_rows, ab_num, ab_p, ab_pct, ab_signed

    models = results["models"]
    lines = [
        f"Simulated A/B test: {len(models)} arms, {results['days']} days, shelf of {results['shelf']}, "
        f"{results['users']:,} users (seed {results['seed']})",
        "",
        f"{'arm':<12}{'model':<16}{'users':>7}{'start rate':>12}{'streams/u':>11}{'shelf/u':>9}{'tail':>7}",
    ]
    for arm_name in ab_arms(results):
        v, model = results["arms"][arm_name], models[arm_name]
        lines.append(
            f"{arm_name[:11]:<12}{model[:15]:<16}{v['users']:>7,}{ab_pct(v['start_rate']):>12}"
            f"{ab_num(v['stream_rate']):>11}{ab_num(v['shelf_starts']):>9}{ab_pct(v['longtail_share']):>7}"
        )
    lines += ["", f"lift vs {results['control']} (95% CI, delta method)"]
    lines.append(f"{'arm':<12}{'metric':<15}{'lift':>8}  {'95% CI':<19}{'p':>7}  {'paper':>8}")
    for arm_name, metric, x, paper in ab_lift_rows(results):
        lines.append(
            f"{arm_name[:11]:<12}{metric.replace('_', ' '):<15}{ab_signed(x['lift']):>8}  "
            f"{ab_ci(x['ci95']):<19}{ab_p(x['p']):>7}  {paper:>8}"
        )
    return lines
