"""The day loop of the simulated A/B test: shelves from each arm's model, the world's response.

Day d of the test covers world days [t0, t0 + 1) with t0 = (cut - world start) / 1 day + d. On
each day, with the world's own code (colisten.world.simulate) and the users' true traits
(truth/users.npz):

1. a user opens the app with the world's `visit_probability` (at least one event at their daily
   rates); each visitor is shown a shelf of k audiobooks by their arm's model, computed from
   their events before the day starts (no later event is ever handed to a model);
2. organic starts: `book_starts` (adopters start titles at their rate, by true affinity);
3. shelf starts: `shelf_starts` (`ShelfResponse`: position-weighted exposure in the world's
   choice model); titles the user already started give no new start;
4. weak signals: `signal_draws` + `weak_signals` (the browsing process and its later starts);
5. streams: `title_sessions` of every new start, up to the end of the test.

Podcast events during the test are the world's own (the run's hold-out rows): the audiobook
shelf does not change them. Every event joins the log at its timestamp, so histories grow and
the models react the next day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from colisten.abtest.history import EventLog
from colisten.world.simulate import (
    DAY_S,
    EVENTS,
    ShelfResponse,
    WorldProcess,
    book_starts,
    run_starts,
    shelf_starts,
    signal_draws,
    signal_start,
    title_sessions,
    visit_probability,
    weak_signals,
)

ORGANIC, SHELF, SIGNAL = 0, 1, 2  # where a start came from


@dataclass
class Outcomes:
    """Per test user (local index) totals, and every new start of the test."""

    per_user: dict[str, np.ndarray]  # starts, shelf_starts, longtail_starts, streams, impressions
    start_user: np.ndarray  # local user of each new start
    start_item: np.ndarray  # audiobook type index
    start_day: np.ndarray  # day of the test (0-based, float)
    start_source: np.ndarray  # ORGANIC / SHELF / SIGNAL
    visits: np.ndarray  # visitors per day


def simulate_test(
    world: WorldProcess,
    log: EventLog,
    run_users: np.ndarray,
    truth_users: np.ndarray,
    arm: np.ndarray,
    rankers: list,
    first_day: float,
    days: int,
    k: int,
    ab_offset: int,
    start_epoch: int,
    longtail: np.ndarray,
    seed: int,
    response: ShelfResponse | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Outcomes:
    """Run the test. `run_users` / `truth_users`: each test user's row in the run's users and in
    truth/; `arm`: their arm (index into `rankers`); `longtail`: bool per audiobook type index."""
    response = response or ShelfResponse()
    b = world.behaviour
    u = {key: v[truth_users] for key, v in world.users.items()}
    n = truth_users.size
    n_ab = world.catalogue.types["audiobook"].n
    ab = world.catalogue.types["audiobook"]
    end = first_day + days
    root = np.random.SeedSequence([int(seed), 0xAB7E57])
    setup_rng, *day_seeds = (np.random.default_rng(s) for s in root.spawn(1 + days))
    sig_from = signal_start(setup_rng, u["audiobook_adopter"].astype(bool), u["adoption_day"], end, b)
    visit_p = visit_probability(response, u["podcast_rate"], u["book_rate"], u["browse_rate"])

    # titles started before the test (any stream of an audiobook in the log before the cut)
    local_of = np.full(log.user_ids.size, -1, np.int64)
    local_of[run_users] = np.arange(n)
    lu, li, le, lt = log.arrays()
    cut = start_epoch + int(round(first_day * DAY_S))
    strong = le == log.code("stream")
    m = strong & (lt < cut) & (li >= ab_offset) & (li < ab_offset + n_ab) & (local_of[lu] >= 0)
    started = np.unique(local_of[lu[m]] * n_ab + (li[m] - ab_offset))
    started_day = np.full(started.size, -np.inf)

    def started_of(users_run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        local = local_of[users_run]
        pos = np.searchsorted(started, local * n_ab)
        end_pos = np.searchsorted(started, (local + 1) * n_ab)
        counts = end_pos - pos
        rows = np.repeat(np.arange(local.size), counts)
        idx = np.repeat(pos - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        return rows, started[idx] % n_ab

    codes = {e: log.code(e) for e in EVENTS}
    per_user = {
        key: np.zeros(n, np.int64)
        for key in ("starts", "shelf_starts", "longtail_starts", "streams", "impressions")
    }
    all_starts: list[tuple[np.ndarray, ...]] = []
    visits = np.zeros(days, np.int64)
    for d in range(days):
        rng = day_seeds[d]
        t0, t1 = first_day + d, first_day + d + 1
        as_of = cut + d * DAY_S
        visitor = rng.random(n) < visit_p
        visits[d] = int(visitor.sum())
        shelf_users, shelves = [], []
        for a, ranker in enumerate(rankers):
            who = np.flatnonzero(visitor & (arm == a))
            if who.size:
                shelves.append(ranker.shelf(log, run_users[who], as_of, k, started=started_of))
                shelf_users.append(who)
        chooser = world.chooser(truth_users, rng)
        o_user, o_item, o_day = book_starts(chooser, rng, u["book_rate"], u["adoption_day"], t0, t1)
        if shelf_users:
            who = np.concatenate(shelf_users)
            shelf = np.concatenate(shelves)
            per_user["impressions"][who] += (shelf >= 0).sum(axis=1)
            s_user, s_item, s_day, _ = shelf_starts(
                chooser, rng, who, shelf, response, u["book_rate"], u["adoption_day"], t0, t1
            )
        else:
            s_user = s_item = np.zeros(0, np.int64)
            s_day = np.zeros(0)
        # new titles of the day: earliest start per (user, title), none already started
        key = np.concatenate([o_user * n_ab + o_item, s_user * n_ab + s_item])
        day = np.concatenate([o_day, s_day])
        source = np.concatenate([np.full(o_user.size, ORGANIC), np.full(s_user.size, SHELF)])
        order = np.lexsort((day, key))
        key, day, source = key[order], day[order], source[order]
        first = run_starts(key)
        key, day, source = key[first], day[first], source[first]
        new = ~np.isin(key, started)
        key, day, source = key[new], day[new], source[new]
        keys = np.concatenate([started, key])
        kdays = np.concatenate([started_day, day])
        order = np.argsort(keys, kind="stable")
        keys, kdays = keys[order], kdays[order]
        # weak signals of the day and the later starts they cause (before the end of the test)
        sg_user, sg_item, sg_day = signal_draws(chooser, rng, u["browse_rate"], sig_from, t0, t1)
        parts: list = []
        boosted_keys, boosted_days = weak_signals(
            chooser,
            rng,
            sg_user,
            sg_item,
            sg_day,
            keys,
            kdays,
            u["book_rate"],
            u["adoption_day"],
            end,
            b,
            parts,
        )
        extra = ~np.isin(boosted_keys, keys)
        key = np.concatenate([key, boosted_keys[extra]])
        day = np.concatenate([day, boosted_days[extra]])
        source = np.concatenate([source, np.full(int(extra.sum()), SIGNAL)])
        started, started_day = boosted_keys, boosted_days
        # streams of the new titles, up to the end of the test
        order = np.argsort(key, kind="stable")
        key, day, source = key[order], day[order], source[order]
        parts.append(title_sessions(rng, ab, key, day, u["extra_sessions"], u["session_seconds"], end, b))
        for p_user, p_item, p_code, p_day, _ in parts:
            ts = start_epoch + np.floor(np.asarray(p_day) * DAY_S).astype(np.int64)
            log.add(run_users[p_user], p_item, np.full(len(p_user), codes[EVENTS[p_code]]), ts)
        s_user_all, s_items = key // n_ab, key % n_ab
        np.add.at(per_user["starts"], s_user_all, 1)
        np.add.at(per_user["shelf_starts"], s_user_all[source == SHELF], 1)
        np.add.at(per_user["longtail_starts"], s_user_all[longtail[s_items]], 1)
        np.add.at(per_user["streams"], parts[-1][0], 1)
        all_starts.append((s_user_all, s_items, day - first_day, source))
        if progress is not None:
            progress(d + 1, days, int(visitor.sum()))
    cat = [np.concatenate(c) for c in zip(*all_starts, strict=True)]
    return Outcomes(per_user, cat[0], cat[1], cat[2], cat[3], visits)
